"""`pkt.len` mixed with 32-bit arithmetic compiles to code the kernel loads: the length is a 64-bit pointer
difference, and instruction selection must not fold a later `pkt.len - x` into 32-bit arithmetic on the
packet pointers themselves (the kernel refuses "32-bit pointer arithmetic prohibited"). Found by the
generated-program tests (tests/generated)."""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, Global, Packet, i32, u8, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

offset = Global(i32, 0)
limit = Global(u8, 110)
wide = Global(u32, 7)


@xdp
def length_minus_global(pkt: Packet) -> int:
    return XDP_TX if (pkt.len - offset.value) != u8(limit.value) else XDP_ABORTED


@xdp
def length_plus_and_minus(pkt: Packet) -> int:
    a = pkt.len + wide.value
    b = wide.value - pkt.len
    return XDP_DROP if a == 100 or b == 3 or pkt.len - wide.value == 50 else XDP_PASS


PROGRAMS = [length_minus_global, length_plus_and_minus]
PACKETS = [bytes(14), bytes(60), bytes(117), bytes(100)]


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_our_verifier_accepts(prog) -> None:  # type: ignore[no-untyped-def]
    compiled = prog.compile(prove=False)
    assert compiled.verified, compiled.verification_summary()


@pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")
@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_the_kernel_loads_it_and_the_executions_agree(prog) -> None:  # type: ignore[no-untyped-def]
    reset_state(offset, limit, wide)
    assert compare(prog, PACKETS, executions=EXECUTIONS) is None
    offset.value = -7
    assert compare(prog, PACKETS, executions=EXECUTIONS) is None
