"""A float constant that rounding to Q32.32 changes by more than 1% is a compile-time warning at its line
(docs/language.md, "Floats"): `1e-9` becomes 4·2⁻³², 7% less. The warning is a `DslWarning` issued with the
user's file and line, once per constant and line per compile, and says what to write instead; constants
that round harmlessly (0.5, 0.1, 1e-3) give none. The rounding itself is the language's rule: every
execution computes with the rounded constant."""

from __future__ import annotations

import inspect
import warnings

import pytest

from pybpfdsl import XDP_PASS, Array, Packet, inline, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang.errors import DslWarning
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
NS_PER_S = 1e-9  # a module-level constant: warned where the program uses it

out = Array(float, 4)


def _line(marker: str) -> int:
    """The line of this file holding `marker` (so the tests do not hard-code line numbers)."""
    lines = inspect.getsource(inspect.getmodule(_line)).splitlines()  # type: ignore[arg-type]
    (index,) = [i for i, text in enumerate(lines) if marker in text and "_line(" not in text]
    return index + 1


@xdp
def scaled_by_tiny_constant(pkt: Packet) -> int:
    n = pkt.len
    out[0] = n * 1e-9  # lossy: multiply
    out[1] = n * 1e-9 + n * 1e-9  # lossy: twice on one line
    return XDP_PASS


@xdp
def divided_by_large_float(pkt: Packet) -> int:
    out[0] = float(pkt.len) / 1e9  # lossy: reciprocal
    out[1] = pkt.len / 1e9  # an integer over an integral constant: exact, no reciprocal
    return XDP_PASS


@xdp
def uses_module_constant(pkt: Packet) -> int:
    out[0] = pkt.len * NS_PER_S  # lossy: module constant
    return XDP_PASS


@inline
def to_seconds(ns: u32) -> float:
    return ns * 1e-9  # lossy: in a helper


@xdp
def calls_helper_twice(pkt: Packet) -> int:
    out[0] = to_seconds(pkt.len)
    out[1] = to_seconds(pkt.len + 1)
    return XDP_PASS


@xdp
def harmless_constants(pkt: Packet) -> int:
    n = pkt.len
    out[0] = n * 0.5
    out[1] = n * 0.1
    out[2] = n * 1e-3
    out[3] = n / 1e-9 + n / 1000000000 + n * 0.0
    return XDP_PASS


def _fresh(program: XdpProgram) -> XdpProgram:
    """The same function as a program not lowered yet (lowering is cached: a test that ran a program
    earlier would otherwise leave nothing to warn about)."""
    return xdp(program.function)


def _lower_recording(program: XdpProgram) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        program.lower()
    return [w for w in caught if issubclass(w.category, DslWarning)]


def test_a_tiny_constant_warns_at_its_line_once_per_line_with_the_fix() -> None:
    program = _fresh(scaled_by_tiny_constant)
    caught = _lower_recording(program)
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, _line("# lossy: multiply")),
                                                        (__file__, _line("# lossy: twice"))]
    message = str(caught[0].message)
    assert "1e-09 becomes 4·2⁻³²" in message and "6.9% off" in message
    assert "`x / 1000000000` is exact" in message
    # Compiling later (the lowering is cached) warns no more.
    assert _lower_recording(program) == []


def test_pytest_sees_the_warning_at_the_users_line() -> None:
    with pytest.warns(DslWarning, match=r"dividing by 1000000000\.0 multiplies by its reciprocal 1e-09") as record:
        _fresh(divided_by_large_float).lower()
    assert [(w.filename, w.lineno) for w in record] == [(__file__, _line("# lossy: reciprocal"))]


def test_a_module_constant_warns_where_it_is_used() -> None:
    caught = _lower_recording(_fresh(uses_module_constant))
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, _line("# lossy: module constant"))]


def test_a_helper_inlined_twice_warns_once_at_the_helpers_line() -> None:
    caught = _lower_recording(_fresh(calls_helper_twice))
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, _line("# lossy: in a helper"))]


def test_constants_that_round_harmlessly_do_not_warn() -> None:
    assert _lower_recording(_fresh(harmless_constants)) == []


@pytest.mark.parametrize("program", [scaled_by_tiny_constant, divided_by_large_float, harmless_constants],
                         ids=lambda p: p.name)
def test_every_execution_computes_with_the_rounded_constant(program: XdpProgram) -> None:
    reset_state(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DslWarning)
        assert compare(program, [bytes(14), bytes(1500)], executions=EXECUTIONS) is None
        scaled_by_tiny_constant(bytes(1500))
    assert out[0] == 1500 * 4 / 2**32  # not 1.5e-6: the constant is 4·2⁻³²


def test_warnings_made_errors_by_the_user_stay_warnings_not_compiler_bugs() -> None:
    """`python -W error` turns the warning into an exception: it is the user's DslWarning, never an
    InternalCompilerError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DslWarning)
        with pytest.raises(DslWarning, match="1e-09 becomes 4·2⁻³²"):
            _fresh(uses_module_constant).lower()
