"""An integer that becomes a float saturates instead of wrapping, the same in all four executions
(docs/language.md, "Floats"): a conversion `float(x)`, an implicit one (`f + x`), and an integer quotient
whose whole part does not fit. The values come from Globals set from Python, so the code converts them."""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_PASS, Array, Global, Packet, i64, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang import fixed
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
FRAME = bytes(12) + b"\x88\xb5"

signed = Global(i64, 0)
unsigned = Global(u64, 0)
narrow = Global(u32, 0)
out = Array(float, 6)


@xdp
def conversions(pkt: Packet) -> int:
    out[0] = float(signed.value)
    out[1] = float(unsigned.value)
    out[2] = float(narrow.value)
    out[3] = 0.5 + narrow.value  # implicit conversion
    out[4] = signed.value / 3.0  # an integer quotient: saturates when the whole part does not fit
    out[5] = unsigned.value / 1000  # the u64 dividend is an i64 (as every integer quotient's is)
    return XDP_PASS


MAX, MIN = fixed.to_float(fixed.RAW_MAX), fixed.to_float(fixed.RAW_MIN)


@pytest.mark.parametrize(("s", "u", "n"), [
    (2**31 - 1, 2**31 - 1, 2**31 - 1),           # the largest integers a float holds
    (2**31, 2**31, 2**31),                         # one past: the largest float
    (-(2**31), 2**63, 2**32 - 1),                  # -2**31 holds; u64 above i64's range is still large
    (-(2**31) - 1, 2**64 - 1, 7),
    (-(2**63), 2**44, 0),
    (2**63 - 1, 2**41, 1),
])
def test_integers_become_floats_saturating_in_every_execution(s: int, u: int, n: int) -> None:
    reset_state(signed, unsigned, narrow, out)
    signed.value, unsigned.value, narrow.value = s, u, n
    assert compare(conversions, [FRAME], executions=EXECUTIONS) is None
    conversions(FRAME)
    clamp = lambda x: min(max(x, MIN), MAX)  # noqa: E731
    assert out[0] == clamp(s) and out[1] == clamp(u) and out[2] == clamp(n)
    if n < 2**31:
        assert out[3] == n + 0.5
    else:  # the largest float plus 0.5 wraps, as float `+` does
        assert out[3] == fixed.to_float(fixed.wrap64(fixed.RAW_MAX + fixed.ONE // 2))
    assert out[4] == fixed.to_float(fixed.quotient(s, 3))
    assert out[5] == fixed.to_float(fixed.quotient(u - (1 << 64) if u >> 63 else u, 1000))
