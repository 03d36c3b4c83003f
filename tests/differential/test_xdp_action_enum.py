"""`XdpAction.DROP` (the documented IntEnum) works where `XDP_DROP` does, in the four executions."""

from __future__ import annotations

from pybpfdsl import Packet, XdpAction, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")


@xdp
def by_length(pkt: Packet) -> int:
    if pkt.len > 100:
        return XdpAction.DROP
    action = XdpAction.TX if pkt.len == 60 else XdpAction.PASS
    return action


def test_xdp_action_members_are_their_numbers_in_every_execution() -> None:
    packets = [bytes(60), bytes(61), bytes(200)]
    assert compare(by_length, packets, executions=EXECUTIONS) is None
    assert [by_length(p) for p in packets] == [XdpAction.TX, XdpAction.PASS, XdpAction.DROP]
