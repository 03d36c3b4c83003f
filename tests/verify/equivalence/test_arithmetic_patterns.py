"""Each arithmetic pattern a packet function uses proves equivalent on its own.

The `float_ops` and `int_division` construct programs pack many of these into one function and are
still "unknown" within the budget; alone, each pattern must prove within the budget `compile()` gives a
proof (`COMPILE_BUDGET`, resource units: the same verdict on a busy machine), or `attach` would refuse
a program that uses it.
"""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, i32, i64, u64, xdp
from pybpfdsl.program import XdpProgram
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled

ratio = Global(float, 0.5)
count = Global(u64, 0)
signed = Global(i32, 0)
divisor = Global(i64, 3)


@xdp
def float_times_constant(pkt: Packet) -> int:
    ratio.value = float(pkt.len) * 0.75 - 1.5
    return XDP_PASS


@xdp
def float_times_float(pkt: Packet) -> int:
    ratio.value = float(pkt.len) * ratio.value
    return XDP_PASS


@xdp
def float_over_int(pkt: Packet) -> int:
    ratio.value = ratio.value / 3
    return XDP_PASS


@xdp
def float_over_constant(pkt: Packet) -> int:
    ratio.value = ratio.value / 10.0  # times the reciprocal
    return XDP_PASS


@xdp
def float_to_int(pkt: Packet) -> int:
    count.value = u64(ratio.value)
    return XDP_PASS


@xdp
def scaled_float_to_int(pkt: Packet) -> int:
    count.value = u64(ratio.value * 3.0) + u64(ratio.value * 1000.0)
    return XDP_PASS


@xdp
def float_squared_to_int(pkt: Packet) -> int:
    count.value = u64(ratio.value * ratio.value)
    return XDP_PASS


@xdp
def negated_float_to_i32(pkt: Packet) -> int:
    signed.value = i32(-ratio.value)
    return XDP_PASS


@xdp
def float_comparison(pkt: Packet) -> int:
    if ratio.value >= 30.25:
        return XDP_DROP
    return XDP_PASS


@xdp
def int_over_constants(pkt: Packet) -> int:
    ratio.value = i64(count.value) / 1000000000 - i64(count.value) / 4294967296
    return XDP_PASS


@xdp
def int_over_int(pkt: Packet) -> int:
    ratio.value = pkt.len / divisor.value
    return XDP_PASS


PATTERNS = [float_times_constant, float_times_float, float_over_int, float_over_constant, float_to_int,
            scaled_float_to_int, float_squared_to_int, negated_float_to_i32, float_comparison,
            int_over_constants, int_over_int]


@pytest.mark.parametrize("program", PATTERNS, ids=lambda p: p.name)
def test_each_arithmetic_pattern_proves_alone(program: XdpProgram) -> None:
    result = prove_compiled(program.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()
