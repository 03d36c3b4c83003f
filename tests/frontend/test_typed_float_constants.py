"""Typed constants fold as the code computes at run time, floats included (docs/language.md, "Constant
expressions"): an integer converts to float as at run time (a constant outside the float range, which
would saturate every time, is refused: tests/frontend/bad_programs/always_saturating.py), a quotient by a
typed zero is 0, and products and quotients truncate in Q32.32. Each constant below is stored beside the same expression
computed at run time (`pkt.len - 14` is 0 for the 14-byte packet), and the four executions must agree.
Found by the generated-program tests (tests/generated): these were internal compiler errors or false
"division by zero" / "outside the float range" errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpfdsl import XDP_PASS, Array, Packet, i8, i16, i32, i64, u8, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang.errors import DslError
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
FRAME = bytes(12) + b"\x88\xb5"

folded = Array(float, 8)
computed = Array(float, 8)


@xdp
def typed_float_constants(pkt: Packet) -> int:
    zero = pkt.len - 14                                   # 0 at run time
    folded[0] = float(u32(2147483647))                    # the largest integer a float holds
    computed[0] = float(u32(zero + 4294949981))           # may saturate (it does, to the largest)
    folded[1] = i64(-1073741824) / 0.5                    # the i64 converts before the product: -2**31
    computed[1] = (i64(zero) - 1073741824) / 0.5
    folded[2] = i8(127) / i16(0)                          # a typed zero divisor gives 0, as at run time
    computed[2] = i8(127) / i16(zero)
    folded[3] = u32(7) / u32(3)                           # truncated toward zero, not rounded
    computed[3] = u32(zero + 7) / u32(3)
    third = 0.1                                           # a local: a typed constant
    folded[4] = third * 3.0 - 0.3                         # Q32.32 products truncate
    computed[4] = (third + float(zero)) * 3.0 - 0.3
    return XDP_PASS


@xdp
def typed_constants_meet_floats(pkt: Packet) -> int:
    f = float(pkt.len) - 14.0                             # 0.0 at run time
    folded[5] = 1.0 if f > u32(2147483647) else 2.0       # the u32 converts exactly: false
    folded[6] = 1.0 if 0.5 * f + 0.5 > u32(2147483647) else 2.0
    half = 0.5
    folded[7] = 1.0 if half > u32(2147483647) else 2.0    # both constants: the same answer
    computed[5] = f - i64(-2147483648)                    # plus 2**31: wraps, as float `+` does
    return XDP_PASS


def test_typed_constants_fold_like_the_run_time_code() -> None:
    reset_state(folded, computed)
    assert compare(typed_float_constants, [FRAME, FRAME], executions=EXECUTIONS) is None
    typed_float_constants(FRAME)
    assert [folded[i] for i in range(1, 5)] == [computed[i] for i in range(1, 5)]
    assert folded[0] == 2147483647.0 and computed[0] == 2147483648.0  # (the largest float, as a double)
    assert folded[1] == -2147483648.0 and folded[2] == 0.0


def test_an_untyped_constant_outside_the_float_range_is_a_dsl_error(tmp_path: Path) -> None:
    source = tmp_path / "too_big_float.py"
    source.write_text("from pybpfdsl import *\n\n@xdp\ndef too_big(pkt: Packet) -> int:\n"
                      "    x = float(3000000000)\n    return XDP_PASS\n")
    namespace: dict[str, object] = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    with pytest.raises(DslError, match="outside the float range") as info:
        namespace["too_big"].lower()  # type: ignore[attr-defined]
    assert info.value.location is not None and info.value.location.line == 5


def test_typed_integer_constants_meet_run_time_floats_converted() -> None:
    reset_state(folded, computed)
    assert compare(typed_constants_meet_floats, [FRAME, FRAME + b"x"], executions=EXECUTIONS) is None
    typed_constants_meet_floats(FRAME)
    assert (folded[5], folded[6], folded[7], computed[5]) == (2.0, 2.0, 2.0, -2147483648.0)


def test_typed_constants_outside_the_float_range_are_refused_where_they_meet_a_float(tmp_path: Path) -> None:
    """What the generated programs wrote (`f > u32(4294967295)`, `i64(-2**63) / 0.5`, `float(abs(u64(...)))`)
    saturates every time: a DslError at the line, with the fix."""
    for line in ("x = 1.0 if float(pkt.len) > u32(4294967295) else 2.0", "x = i64(-9223372036854775808) / 0.5",
                 "x = float(abs(u64(3180175763633726961)))", "x = u32(4294949981) * 0.5"):
        source = tmp_path / "generated_like.py"
        source.write_text(f"from pybpfdsl import *\n\n@xdp\ndef prog(pkt: Packet) -> int:\n    {line}\n"
                          "    return XDP_PASS\n")
        namespace: dict[str, object] = {}
        exec(compile(source.read_text(), str(source), "exec"), namespace)
        with pytest.raises(DslError, match="outside the float range") as info:
            namespace["prog"].lower()  # type: ignore[attr-defined]
        assert info.value.location is not None and info.value.location.line == 5, line
        assert info.value.hint is not None and "divide first" in info.value.hint


ints = Array(i64, 4)


@xdp
def abs_of_typed_constants(pkt: Packet) -> int:
    zero = pkt.len - 14
    ints[0] = abs(i32(-2147483648))                       # folds in i32: wraps, as at run time
    ints[1] = abs(i32(zero) - 2147483647 - 1)
    ints[3] = i64(abs(u64(3180175763633726961)))          # a typed u64 (was an untyped constant: an error)
    folded[0] = float(abs(u64(zero + 3180175763633726961)))  # may saturate (it does)
    computed[0] = float(abs(u64(zero + 2147483647)))
    for _ in range(abs(u8(3))):                           # still a constant bound
        ints[2] += 1
    return XDP_PASS


def test_abs_of_a_typed_constant_folds_in_its_type() -> None:
    reset_state(folded, computed, ints)
    assert compare(abs_of_typed_constants, [FRAME, FRAME], executions=EXECUTIONS) is None
    abs_of_typed_constants(FRAME)
    assert (ints[0], ints[1], ints[2], ints[3]) == (-2147483648, -2147483648, 3, 3180175763633726961)
    assert folded[0] == 2147483648.0 and computed[0] == 2147483647.0
