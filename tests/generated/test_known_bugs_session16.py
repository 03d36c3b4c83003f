"""Bugs the generated corpus found in session 16 (benchmarks/generated_corpus.py, seeds 40000..40150 and
42000..42199 EXTENDED, 41000..41100 Features()), each reduced to the smallest program that still shows it.
Each test states the correct behaviour and is a strict xfail: it starts to pass, and so fails here, when the
bug is fixed; then drop the marker and keep the test. A bug fixed in the same session keeps its program here
as a plain test. Programs are kept as generated: unused locals and nested checks are part of what the
verifier sees."""
# ruff: noqa: F841, SIM102, B007, UP034

from __future__ import annotations

import pytest

from pybpfdsl import (
    XDP_PASS,
    Global,
    HashMap,
    Packet,
    PerCpuArray,
    bounded,
    cpu_id,
    i8,
    i16,
    i32,
    i64,
    inline,
    randint,
    u8,
    u16,
    u32,
    u64,
    xdp,
)
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")


@xdp
def modulo_by_a_flag(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b is None:
        return XDP_PASS
    d: bool = bool(b)
    return u32(u64(pkt.len) % d) & 3


def test_a_mask_after_a_modulo_by_zero_is_kept() -> None:
    """By 0, `%` gives the dividend (as BPF does), and the mask still applies: a 43-byte packet whose first
    payload byte is 0 gives 43 & 3 = 3 (XDP_TX); the bytecode returned 43, not an XDP action."""
    packets = [bytes(42) + bytes([0]) + bytes(k) for k in range(4)] + [bytes(42) + bytes([1, 0, 0])]
    assert compare(modulo_by_a_flag, packets, executions=EXECUTIONS) is None


@xdp
def payload_writes_counting_down(pkt: Packet) -> int:
    for i in range(8, 0, -1):
        pkt.payload[i] = u8(i)
    return XDP_PASS


@needs_kernel
def test_a_loop_counting_down_that_writes_the_payload_loads() -> None:
    """Generated program 40089, reduced: the index, kept as `i - 1` with a 32-bit wrap in a 64-bit register,
    was added to the packet pointer before its correction, and the kernel refused it ("math between pkt
    pointer and 4294967296 is not allowed"); ours, "pointer arithmetic with an unbounded scalar". Fixed by
    `backend/packet_offsets`: the index is masked by its own range (`& 15`) in the register that is added
    (tests/backend/test_loop_offsets_bounded.py)."""
    with payload_writes_counting_down.load():
        pass  # the kernel loads it
    compiled = payload_writes_counting_down.compile(prove=False)
    assert compiled.verified, compiled.verification_summary()


lh_g1 = Global(i64, 6)
lh_m4 = HashMap(u16, i64, 4)


@xdp
def loop_over_nested_header_checks(pkt: Packet) -> int:
    for i in range(10, 0, -2):
        if lh_g1.value == 11:
            if pkt.udp is not None:
                tcp = pkt.tcp
                if tcp is not None:
                    v: i16 = i16(((i8(127) * i16(-32768)) >> (lh_g1.value ^ 1)) - lh_m4.get(0, 4))
    return XDP_PASS


@needs_kernel
def test_a_for_range_loop_over_nested_header_checks_is_accepted() -> None:
    """Generated program 42074, reduced: the kernel loads it; ours said `unbounded-loop: the loop starting here
    may never exit: iteration 2 starts from a state an earlier iteration already covered` (accepted before
    dcd0507, whose critical flags joined the loop's entry states into one, its counter a range). Fixed: an
    iteration that only shrinks the last one's states is unrolled further (tests/verify/analysis/
    test_shrinking_loop_states.py)."""
    with loop_over_nested_header_checks.load():
        pass  # the kernel loads it
    compiled = loop_over_nested_header_checks.compile(prove=False)
    assert compiled.verified, compiled.verification_summary()


wh_g1 = Global(i8, 0)
wh_m2 = HashMap(u32, i16, 64)
wh_m3 = PerCpuArray(bool, 4)


@inline
def wh_h4(a0: u16) -> u32:
    wh_g1.value += ((wh_m3[u32(a0) % 5] if (cpu_id() <= wh_m2.get(u32(u32(randint(2, 9)) & 7), i16(0))) else a0)
                    if (u64(19) <= wh_g1.value) else (a0 << 7))
    for idx5 in range(6, 0, -2):
        wh_g1.value += ((randint(3, 4) | a0) >> wh_m2.get(u32(u32(abs(a0)) & 7), i16(-32768)))
    return u32(i16(32767))


@inline
def wh_h6(a0: u16) -> u32:
    w7: u32 = 0
    while bounded(w7 < u32(wh_h4(u16(i32(8)))) and (a0 < wh_m2.get(u32(u32(a0) & 7), i16(179)) < cpu_id()), 5):
        w7 += 1
    return u32(wh_h4(u16(wh_h4(u16(u8(0))))))


@xdp
def bounded_while_calling_a_looping_helper(pkt: Packet) -> int:
    v8: u16 = u16(min(wh_h4(u16((cpu_id() >= u32(11)))), wh_h6(u16((wh_g1.value - wh_m3[u32(u64(wh_g1.value)) % 5]))),
                      wh_m3[1]))
    for idx10 in range(10, 0, -1):
        if ((wh_g1.value % i8(157)) <= min(v8, v8)):
            v8 = u16(pkt.len)
    return u32(wh_h6(u16(wh_m2.get(u32(u32((pkt.len <= v8)) & 7), i16(0))))) % 4


@needs_kernel
def test_a_bounded_while_calling_a_looping_helper_is_accepted() -> None:
    """Generated program 43129, reduced: the kernel loads it; ours said `complexity: ... its paths pass the
    kernel's limit of 1,000,000 instructions to verify within its first 4 iterations`. The closed-form
    estimate's complexity finding was not the cause: two inner loops were also called endless ("iteration 1
    starts from a state an earlier iteration already covered"), and that error kept the simulation of the
    kernel's exploration, which accepts the loop, from running. Fixed as 42074 above."""
    with bounded_while_calling_a_looping_helper.load():
        pass  # the kernel loads it
    compiled = bounded_while_calling_a_looping_helper.compile(prove=False)
    assert compiled.verified, compiled.verification_summary()
