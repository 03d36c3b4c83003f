"""Shared fixtures of the example tests.

Each test module names the example it tests at module level::

    import rate_limiter as EXAMPLE          # the module in examples/
    PROGRAM = EXAMPLE.rate_limiter          # its @xdp program

and gets:

- `fresh_state` (automatic): the example's state objects (Globals, maps) are reset to their declared
  initial values before and after every test (`pybpfdsl.testing.reset_state`);
- `loaded`: the program compiled and loaded into the kernel (the verifier ran), once per test class;
  tests that use it are marked `kernel`; the state objects read and write the kernel's maps meanwhile;
- `@pytest.mark.kernel`: skipped, with the reason, when this process cannot use bpf().

The packet builders and the hypothesis strategies live in `example_harness.py` next to this file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
HERE = Path(__file__).resolve().parent
for directory in (EXAMPLES_DIR, HERE):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

KERNEL_AVAILABLE, KERNEL_UNAVAILABLE_REASON = kernel_bpf_available()


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("kernel") is not None and not KERNEL_AVAILABLE:
        pytest.skip(f"kernel test skipped: {KERNEL_UNAVAILABLE_REASON}")


@pytest.fixture(autouse=True)
def fresh_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Reset the example module's state before and after each test."""
    module = getattr(request.module, "EXAMPLE", None)
    if module is not None:
        reset_state(module)
    yield
    if module is not None:
        reset_state(module)


@pytest.fixture(scope="class")
def loaded(request: pytest.FixtureRequest) -> Iterator[object]:
    """The test module's PROGRAM loaded into the kernel for the duration of one test class."""
    if not KERNEL_AVAILABLE:
        pytest.skip(f"kernel test skipped: {KERNEL_UNAVAILABLE_REASON}")
    program = request.module.PROGRAM
    with program.load() as lp:
        yield lp
