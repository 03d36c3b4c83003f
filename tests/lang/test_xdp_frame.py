"""`Packet.adjust_head` / `adjust_tail` (issue 16 §3) move the packet in its frame as the kernel's helpers
do: the same answers and the same bytes as the bytecode interpreter's models of bpf_xdp_adjust_head/tail
(`bpf.helper_calls`) on BPF_PROG_TEST_RUN's frame, for any sequence of moves; and every header is parsed
afresh after each."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from pybpfdsl.bpf import memory
from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.helper_calls import HELPER_CALLS, XDP_FRAME_SIZE
from pybpfdsl.lang import xdp_frame
from pybpfdsl.lang.packet import Packet

FRAME = bytes(Ether() / IP(src="10.0.0.1") / UDP(sport=1, dport=2) / (b"p" * 20))


def test_the_frame_is_the_one_the_interpreter_models() -> None:
    assert xdp_frame.XDP_PACKET_HEADROOM == memory.XDP_PACKET_HEADROOM
    assert xdp_frame.XDP_FRAME_SIZE == XDP_FRAME_SIZE
    assert xdp_frame.FRAME_END == memory.XDP_FRAME_END


def _interpreter_machine(data: bytes) -> SimpleNamespace:
    room = memory.XDP_PACKET_HEADROOM
    region = memory.Region("packet", "packet", bytearray(room) + bytearray(data), lo=room, hi=room + len(data))
    return SimpleNamespace(packet=region)


moves = st.lists(st.tuples(st.booleans(), st.integers(-400, 400) | st.integers(-5000, 5000)), max_size=8)


@settings(max_examples=300, deadline=None)
@given(moves)
def test_moves_agree_with_the_bytecode_interpreters_helpers(steps: list[tuple[bool, int]]) -> None:
    pkt, machine = Packet(FRAME), _interpreter_machine(FRAME)
    for head, delta in steps:
        helper = HELPER_CALLS[Helper.XDP_ADJUST_HEAD if head else Helper.XDP_ADJUST_TAIL]
        ok = helper(machine, [0, delta & memory.MASK64]) == 0  # type: ignore[arg-type]
        assert (pkt.adjust_head(delta) if head else pkt.adjust_tail(delta)) == ok
        region = machine.packet
        assert pkt.data == bytes(region.data[region.lo:region.hi])


def test_headers_are_parsed_afresh() -> None:
    pkt = Packet(FRAME)
    assert pkt.udp is not None and pkt.udp.dport == 2
    assert pkt.adjust_head(14)  # the Ethernet header stripped: the IPv4 header is read as Ethernet
    assert pkt.ipv4 is None and pkt.udp is None and len(pkt) == len(FRAME) - 14
    assert pkt.adjust_head(-14)  # back: the bytes are still in the frame
    assert pkt.data == FRAME and pkt.udp is not None and pkt.udp.dport == 2


def test_refused_moves_leave_the_packet() -> None:
    pkt = Packet(FRAME)
    assert not pkt.adjust_head(-xdp_frame.HEADROOM - 1)
    assert not pkt.adjust_head(len(FRAME) - 13)  # fewer than 14 bytes would remain
    assert not pkt.adjust_tail(xdp_frame.FRAME_END - len(FRAME) + 1)
    assert pkt.data == FRAME
    assert pkt.adjust_head(-xdp_frame.HEADROOM) and pkt.data == bytes(xdp_frame.HEADROOM) + FRAME
    assert pkt.adjust_tail(3) and pkt.data.endswith(b"p\x00\x00\x00")
