"""A negative payload index counts from the payload's end, as Python's does (issue 16 §2, one rule:
`lang.packet.payload_position`): `pkt.payload[-1]` is the last byte, `pkt.payload[-k]` None when the
payload holds fewer than k bytes; `payload.read(T, -k)` / `payload.write(-k, r)` / `pkt.payload[-k] = b`
the same, for constant indexes and for signed ones computed at run time. Pure Python, the IR interpreter,
the bytecode interpreter and the kernel agree (actions, state and the bytes written), our verifier and the
kernel's accept the programs, and the proof covers them.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pybpfdsl import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, Global, Packet, Struct, i8, i32, i64, u8, u16, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang.packet import Packet as PyPacket
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis.api import verify_program
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

seen = Global(u32, 0)
seen_wide = Global(u32, 0)


class Trailer(Struct):
    kind: u8
    value: u16


@xdp
def last_byte(pkt: Packet) -> int:
    b = pkt.payload[-1]
    if b is None:
        return XDP_ABORTED
    seen.value = b
    c = pkt.payload[-3]
    if c is None:
        return XDP_PASS
    return XDP_DROP if c == 0x42 else XDP_TX


@xdp
def runtime_index(pkt: Packet) -> int:
    first = pkt.payload[0]
    if first is None:
        return XDP_ABORTED
    i = i8(first)                      # -128..127: from the end when negative
    b = pkt.payload[i]
    if b is None:
        return XDP_PASS
    seen.value = u32(b) + 1000 * u32(first)
    return XDP_DROP


@xdp
def wide_index(pkt: Packet) -> int:
    first = pkt.payload[0]
    if first is None:
        return XDP_ABORTED
    i = i64(first) - 256 if first > 200 else (i64(-1) << 63) + i64(first)   # near 0, or near i64's minimum
    b = pkt.payload[i]
    if b is None:
        return XDP_PASS
    seen.value = b
    return XDP_DROP


@xdp
def trailer(pkt: Packet) -> int:
    t = pkt.payload.read(Trailer, -3)
    if t is None:
        return XDP_ABORTED
    seen.value = u32(t.kind) << 16 | t.value
    first = pkt.payload[0]
    if first is None:
        return XDP_PASS
    u = pkt.payload.read(Trailer, i32(first) - 20)   # run time: negative or not
    if u is None:
        return XDP_PASS
    seen_wide.value = u32(u.kind) << 16 | u.value
    return XDP_DROP


@xdp
def record_from_end(pkt: Packet) -> int:
    pkt.payload.write(-6, Trailer(kind=9, value=0xBEEF))
    return XDP_TX


@xdp
def write_from_end(pkt: Packet) -> int:
    pkt.payload[-1] = 0x5A
    first = pkt.payload[0]
    if first is None:
        return XDP_PASS
    pkt.payload[i8(first)] = 0x77
    pkt.payload.write(-6, Trailer(kind=9, value=0xBEEF))
    pkt.payload.write(i32(first) - 30, Trailer(kind=1, value=2))
    return XDP_TX


@xdp
def loops_over_positions(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(8):                  # never negative: no test of its sign
        b = pkt.payload[i]
        if b is not None:
            total += b
    for j in range(-4, 4):              # the last four bytes, then the first four
        c = pkt.payload[j]
        if c is not None:
            total = total * 3 + c
    seen.value = total
    return XDP_PASS


PROVEN = [last_byte, runtime_index, wide_index, trailer]
PROGRAMS = [*PROVEN, record_from_end, write_from_end, loops_over_positions]


def _udp(payload: bytes) -> bytes:
    return bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6) / Raw(payload))


FRAMES = [
    *(_udp(bytes([first]) + bytes(range(1, n))) for first, n in
      [(0xFF, 1), (0xFE, 2), (0xFD, 3), (0x80, 40), (0xF0, 17), (0x05, 8), (0xE0, 30), (0xC9, 60), (0x10, 25),
       (0xFC, 100), (0xFF, 3), (0xFA, 9)]),
    _udp(b""),
    _udp(b"\x42\x00\x07"),
    bytes(Ether() / IPv6() / TCP(dport=443) / Raw(b"\xfd" + b"q" * 20)),
    bytes(Ether() / IP(proto=17) / Raw(b"\x01\x02")),   # UDP header cut short: the payload starts past the end
    bytes(Ether(type=0x0806) / Raw(bytes(range(0xE2, 0xFE)))),
    bytes(range(14)),
]


def test_python_counts_from_the_payload_end() -> None:
    pkt = PyPacket(_udp(b"\x01\x02\x03\x42"))
    assert (pkt.payload[-1], pkt.payload[-4], pkt.payload[-5]) == (0x42, 1, None)
    assert last_byte(pkt) == XDP_TX and seen.value == 0x42
    assert last_byte(PyPacket(_udp(b"\x42\x00\x07"))) == XDP_DROP
    assert last_byte(PyPacket(_udp(b""))) == XDP_ABORTED


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_the_executions_agree(prog: XdpProgram) -> None:
    seen.value = seen_wide.value = 0
    mismatch = compare(prog, FRAMES, EXECUTIONS)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_our_verifier_accepts(prog: XdpProgram) -> None:
    report = verify_program(prog.compile(prove=False).subject)
    assert report.ok, report.format()


@pytest.mark.parametrize("prog", PROVEN, ids=lambda p: p.name)
def test_the_proof_covers(prog: XdpProgram) -> None:
    # (Writes from the end can run out of the proof's budget, as writes at offsets computed from packet
    # data can (documented): record_from_end and write_from_end are compared in the executions only.)
    result = prove_compiled(prog.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()


@pytest.mark.skipif(not KERNEL, reason=WHY)
@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_the_kernel_loads_them(prog: XdpProgram) -> None:
    with prog.load() as loaded:
        assert loaded.run(_udp(b"\x01\x02\x42")).action in (XDP_PASS, XDP_DROP, XDP_TX, XDP_ABORTED)


def test_python_writes_count_from_the_end() -> None:
    pkt = PyPacket(_udp(bytes([0xFE]) + bytes(9)))
    assert write_from_end(pkt) == XDP_TX
    payload = pkt.data[-10:]
    assert payload[-1] == 0x5A and payload[-2] == 0x77
    assert payload[4] == 9 and payload[6:8] == bytes([0xBE, 0xEF])  # kind, padding, value


def test_a_loop_counter_that_is_never_negative_has_no_sign_test() -> None:
    blocks = [b.name for b in loops_over_positions.lower().program.blocks]
    assert sum(name.startswith("payload_from_end") for name in blocks) == 1  # range(-4, 4)'s only
