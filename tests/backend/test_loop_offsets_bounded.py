"""Payload offsets are bounded in the very register added to the packet pointer, whatever LLVM does.

A counting-down loop that writes the payload (generated program 40089) was refused by the kernel ("math
between pkt pointer and 4294967296 is not allowed") and by pybpfdsl's verifier: LLVM kept the index as
`i - 1` with a 32-bit wrap in a 64-bit register and added that to the packet pointer, the bound (the
mask, the loop's test) living in other registers. The lowering now splits each offset into the terms of
its sum (`backend.packet_offsets`): a loop's index is masked, behind a constant LLVM cannot see, with the
least all-ones constant over its largest value (`& 15` for `range(16)`: a verifier following the loop
sees the same small range), in the register its loop tests; the payload's offset, computed on each path
of the parse, is added as it is. Each program below loads in the kernel, is accepted by pybpfdsl's
verifier, and agrees in the four executions (pure Python, IR, bytecode, kernel).
"""

from __future__ import annotations

import re
import struct

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, i8, u8, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

total = Global(u64, 0)


@xdp
def payload_writes_counting_down(pkt: Packet) -> int:
    for i in range(8, 0, -1):
        pkt.payload[i] = u8(i)
    return XDP_PASS


@xdp
def payload_writes_counting_up(pkt: Packet) -> int:
    for i in range(16):
        pkt.payload[i] = u8(i + 1)
    return XDP_PASS


@xdp
def payload_reads_stride_up(pkt: Packet) -> int:
    s: u64 = 0
    for i in range(0, 40, 4):
        b = pkt.payload[i]
        if b is None:
            break
        s += b
    total.value = s
    return XDP_DROP if s % 3 == 0 else XDP_PASS


@xdp
def payload_writes_stride_down(pkt: Packet) -> int:
    for i in range(30, 0, -3):
        b = pkt.payload[i]
        if b is not None:
            pkt.payload[i] = b ^ u8(i)
    return XDP_PASS


@xdp
def payload_index_from_packet(pkt: Packet) -> int:
    n = pkt.payload[0]
    if n is None:
        return XDP_PASS
    b = pkt.payload[n]
    if b is None:
        return XDP_DROP
    pkt.payload[u32(n) & 7] = b
    m = pkt.payload[1]
    if m is not None and pkt.payload[i8(m)] == 0:  # signed: from the end when negative
        pkt.payload[i8(m)] = 9
    return XDP_PASS


PROGRAMS = [payload_writes_counting_down, payload_writes_counting_up, payload_reads_stride_up,
            payload_writes_stride_down, payload_index_from_packet]


def _udp(payload: bytes) -> bytes:
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(payload), 1, 0, 64, 17, 0, bytes([10, 0, 0, 1]),
                     bytes([10, 0, 0, 2]))
    udp = struct.pack("!HHHH", 1234, 5678, 8 + len(payload), 0)
    return eth + ip + udp + payload


PACKETS = [_udp(bytes((k + j) % 256 for j in range(size)))
           for size in (0, 1, 5, 9, 17, 31, 45, 300) for k in (0, 3, 200)] + [
    _udp(bytes([2, 250]) + bytes(40)), _udp(bytes([40, 0xFD]) + bytes(range(60))),
    b"\x02" * 6 + b"\x04" * 6 + b"\x88\xb5" + bytes(range(50)),  # not IP: the payload follows Ethernet
    b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + b"\x45",  # a truncated IPv4 header
]


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_our_verifier_accepts_it(prog) -> None:  # type: ignore[no-untyped-def]
    compiled = prog.compile(prove=False)
    assert compiled.verified, compiled.verification_summary()


@pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")
@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_the_kernel_loads_it(prog) -> None:  # type: ignore[no-untyped-def]
    with prog.load():
        pass


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_the_executions_agree(prog) -> None:  # type: ignore[no-untyped-def]
    assert compare(prog, PACKETS, executions=EXECUTIONS) is None


def test_a_range_index_is_masked_by_its_own_bound() -> None:
    """The counting-up loop's index is masked with 15 (its range, 0..15), not 0x7FFF: a verifier that
    follows the loop sees the pointer within 15 bytes of the payload's start."""
    llvm = payload_writes_counting_up.compile(prove=False, verify=False).llvm_ir
    hidden = re.findall(r'asm\s+"", "=r,0"\((i\d+ \d+)\)', llvm)
    assert hidden == ["i32 15"], hidden
