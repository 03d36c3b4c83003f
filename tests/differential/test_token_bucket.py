"""The natural token bucket refills by the elapsed time, whatever the uptime (issue 16 §1).

`tokens.value + RATE * (elapsed / 1e9)` with `elapsed` a u64 of nanoseconds: an integer divided by an
integral float constant is an exact integer quotient (docs/language.md, "Floats"), so the refill is
RATE times elapsed seconds, truncated to Q32.32, in all four executions. Before, the dividend became a
float first and wrapped past 2**31 ns, so the refill depended on the uptime modulo about 4.3 s. The
clock is an input the kernel cannot be given, so the elapsed time comes from a Global set from Python.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang import fixed
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
FRAME = bytes(12) + b"\x88\xb5"

RATE = 100.0  # tokens per second
BURST = 1_000_000.0

tokens = Global(float, 0.0)
elapsed_ns = Global(u64, 0)


@xdp
def token_bucket(pkt: Packet) -> int:
    elapsed = elapsed_ns.value
    tokens.value = min(BURST, tokens.value + RATE * (elapsed / 1e9))
    if tokens.value < 1.0:
        return XDP_DROP
    tokens.value -= 1.0
    return XDP_PASS


ELAPSED = [2**31 - 1, 2**31, 2**31 + 1, 2**32 - 1, 2**32, 2**32 + 1, 5 * 10**9 + 7, 2**40 - 1, 2**40, 2**40 + 1]


@pytest.mark.parametrize("elapsed", ELAPSED)
def test_the_refill_is_rate_times_elapsed_seconds_in_every_execution(elapsed: int) -> None:
    reset_state(tokens, elapsed_ns)
    elapsed_ns.value = elapsed
    assert compare(token_bucket, [FRAME], executions=EXECUTIONS) is None
    assert token_bucket(FRAME) == XDP_PASS
    # The exact rule: the quotient truncated to Q32.32, times RATE truncated, minus the token taken.
    refill = fixed.mul(fixed.from_float(RATE), fixed.quotient(elapsed, 10**9))
    assert tokens.value == fixed.to_float(refill - fixed.ONE)
    # ... which is RATE * elapsed / 1e9 to within two units of the last place (two truncations).
    exact = Fraction(int(RATE)) * Fraction(elapsed, 10**9) - 1
    assert abs(Fraction(fixed.from_float(tokens.value), fixed.ONE) - exact) <= Fraction(1 + int(RATE), fixed.ONE)


def test_the_refill_does_not_depend_on_the_uptime_modulo_4_3_seconds() -> None:
    """The same elapsed time, once just past 2**32 ns: 4.294967297 s gives 429 tokens, not 0."""
    reset_state(tokens, elapsed_ns)
    elapsed_ns.value = 2**32 + 1
    token_bucket(FRAME)
    assert 428 < tokens.value < 429
