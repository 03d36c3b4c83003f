"""`hits = 5` with a module-level `hits = Global(...)` keeps Python's meaning (a local variable that hides
the Global, which does not change) and warns at the line with the fix, `hits.value = 5` (issue 16 §2/§6:
Python's meaning, and a message that leads to the fix). Names that are not state objects, and locals of
other names, give no warning; the program runs as Python would in every execution."""

from __future__ import annotations

import inspect
import warnings

from pybpfdsl import XDP_DROP, XDP_PASS, Global, HashMap, Packet, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang.errors import DslWarning
from pybpfdsl.program import XdpProgram
from pybpfdsl.testing import reset_state

hits = Global(u64, 0)
seen = HashMap(u32, u64, max_entries=4)
LIMIT = 5
FRAME = bytes(12) + b"\x88\xb5"


@xdp
def hides_state(pkt: Packet) -> int:
    hits = 5  # noqa: F841 - hides the Global (the warning's line)
    seen = pkt.len  # hides the map
    LIMIT = 6  # noqa: F841 - a plain module constant: no warning
    count = seen + 1  # no module name: no warning
    return XDP_DROP if count > 100 else XDP_PASS


def _line(marker: str) -> int:
    lines = inspect.getsource(inspect.getmodule(_line)).splitlines()  # type: ignore[arg-type]
    (index,) = [i for i, text in enumerate(lines) if marker in text and "_line(" not in text]
    return index + 1


def _warnings_of(program: XdpProgram) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xdp(program.function).lower()
    return [w for w in caught if issubclass(w.category, DslWarning)]


def test_a_local_hiding_a_state_object_warns_at_its_line_with_the_fix() -> None:
    caught = _warnings_of(hides_state)
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, _line("- hides the Global")),
                                                        (__file__, _line("# hides the map"))]
    first, second = (str(w.message) for w in caught)
    assert "makes hits a local variable" in first and "Global hits" in first and "`hits.value = ...`" in first
    assert "HashMap seen" in second and "`seen[key] = ...`" in second


def test_python_meaning_is_kept_the_state_does_not_change() -> None:
    reset_state(hits, seen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DslWarning)
        assert hides_state(FRAME) == XDP_PASS
        assert compare(hides_state, [FRAME, FRAME + bytes(100)], executions=("python", "ir", "bytecode")) is None
    assert hits.value == 0 and list(seen.keys()) == []
