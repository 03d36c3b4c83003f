"""A typed integer constant converted to float outside the float range saturates every time it runs, the
same in every execution (docs/language.md, "Floats"); the compiler warns at its line (a `DslWarning`),
with the fix. Constants that fit, and values known only at run time, give no warning."""

from __future__ import annotations

import inspect
import warnings

from pybpfdsl import XDP_PASS, Array, Packet, i64, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang import fixed
from pybpfdsl.lang.errors import DslWarning
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
FRAME = bytes(12) + b"\x88\xb5"

seconds = Array(float, 4)


@xdp
def clock_as_seconds(pkt: Packet) -> int:
    seconds[0] = float(u64(5_000_000_000))  # saturates: above
    seconds[1] = 0.5 + i64(-3_000_000_000)  # saturates: below
    seconds[2] = float(u32(2_000_000_000))  # fits: no warning
    seconds[3] = float(pkt.len)  # known at run time only: no warning
    return XDP_PASS


def _line(marker: str) -> int:
    lines = inspect.getsource(inspect.getmodule(_line)).splitlines()  # type: ignore[arg-type]
    (index,) = [i for i, text in enumerate(lines) if marker in text and "_line(" not in text]
    return index + 1


def _lower_recording(program: XdpProgram) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xdp(program.function).lower()
    return [w for w in caught if issubclass(w.category, DslWarning)]


def test_a_constant_that_always_saturates_warns_at_its_line_with_the_fix() -> None:
    caught = _lower_recording(clock_as_seconds)
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, _line("# saturates: above")),
                                                        (__file__, _line("# saturates: below"))]
    above, below = (str(w.message) for w in caught)
    assert "u64 value 5000000000 is outside the float range" in above and "the largest float" in above
    assert "i64 value -3000000000" in below and "-2**31" in below
    assert "`x / 1e9`" in above


def test_the_saturated_constants_agree_in_every_execution() -> None:
    reset_state(seconds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DslWarning)
        assert compare(clock_as_seconds, [FRAME], executions=EXECUTIONS) is None
    clock_as_seconds(FRAME)
    assert seconds[0] == fixed.to_float(fixed.RAW_MAX)
    assert seconds[1] == -(2**31) + 0.5
    assert seconds[2] == 2_000_000_000.0 and seconds[3] == 14.0
