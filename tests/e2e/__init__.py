"""End-to-end tests: programs attached to veth pairs in private network namespaces, real traffic.

The example programs in `examples/` are imported by module name, as `tests/examples` does."""

import sys
from pathlib import Path

_EXAMPLES = str(Path(__file__).resolve().parents[2] / "examples")
if _EXAMPLES not in sys.path:
    sys.path.insert(0, _EXAMPLES)
