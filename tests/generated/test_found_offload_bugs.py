"""Bugs the generated programs found with `CHECKSUM_OFFLOAD` (a module-level constant, so these programs
live in a module of their own: it would change the other tests' programs)."""

from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, Global, LruPerCpuHashMap, Packet, i16, i64, u8, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

CHECKSUM_OFFLOAD = ("tcp", "udp")

value = Global(u32, 60)
selector = Global(i64, 234)
slots = LruPerCpuHashMap(i16, bool, 64)


@xdp
def write_after_a_move(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_DROP
    if not pkt.adjust_tail(8):
        return XDP_PASS
    pkt.payload[u32(slots.get(i16(u32(selector.value) & 7), True)) % 8] = u8(value.value)
    return u32(pkt.len) % 4


PACKET = bytes.fromhex(
    "0202020202020404040404040800459400493c4b40001f1100000a000001e3829578b111376a003500000c7500e7a4"
    "7e9797c029c77c37d7a27ead915621c6bcc54f985794b740d54922034ecbd563602b6dc5b31f7b9a")


def test_a_payload_write_after_a_move_is_checked_against_the_packet_end() -> None:
    """Was (generated program 3222): after the move LLVM compared the write's end with the zero-extended
    32-bit `data_end`, an integer, not pkt_end; the bytecode skipped the write and the kernel refused the
    program ('invalid access to packet'). `data_end` is now pinned in programs that move the packet."""
    assert compare(write_after_a_move, [PACKET], executions=EXECUTIONS) is None
