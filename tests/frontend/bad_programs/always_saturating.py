"""Wrong programs: a conversion to float that saturates every time it runs (issue 16 §1). The value is
known at compile time (a typed constant, or a local holding one) and outside the float range
[-2**31, 2**31), so the code would give the largest or the smallest float, never the number written.
The error is at the line of the conversion, with the fix (divide first, or stay in integers).

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, Array, Global, Packet, Struct, i64, inline, u32, u64, xdp

seconds = Array(float, 4)
tokens = Global(float, 0.0)
NS_PER_S = 1_000_000_000


class Rate(Struct):
    per_second: float


@xdp
def explicit_conversion(pkt: Packet) -> int:
    seconds[0] = float(u64(5_000_000_000))  # error: the u64 value 5000000000 is outside the float range | hint: divide first
    return XDP_PASS


@xdp
def below_the_range(pkt: Packet) -> int:
    seconds[0] = 0.5 + i64(-3_000_000_000)  # error: converting it to a float always gives -2**31 | hint: x / 1e9
    return XDP_PASS


@xdp
def local_holding_a_constant(pkt: Packet) -> int:
    timeout = u64(30 * NS_PER_S)
    tokens.value = tokens.value + timeout * 0.5  # error: the u64 value 30000000000 is outside | hint: wider integer type
    return XDP_PASS


@xdp
def stored_into_a_float_array(pkt: Packet) -> int:
    seconds[1] = u32(4_294_967_295)  # error: always gives the largest float | hint: divide first
    return XDP_PASS


@xdp
def compared_with_a_float(pkt: Packet) -> int:
    if tokens.value > u32(4_000_000_000):  # error: the u32 value 4000000000 is outside the float range
        return XDP_DROP
    return XDP_PASS


@xdp
def float_record_field(pkt: Packet) -> int:
    r = Rate(u64(10_000_000_000))  # error: the u64 value 10000000000 is outside the float range
    return XDP_PASS


@xdp
def quotient_of_constants(pkt: Packet) -> int:
    seconds[2] = u64(5_000_000_000_000) / 1000  # error: 5000000000000 / 1000 is outside the float range | hint: divide first
    return XDP_PASS


@inline
def as_float(ns: u64) -> float:
    return float(ns)  # error(constant_through_a_helper): the u64 value 9000000000 is outside the float range


@xdp
def constant_through_a_helper(pkt: Packet) -> int:
    seconds[3] = as_float(u64(9_000_000_000))
    return XDP_PASS
