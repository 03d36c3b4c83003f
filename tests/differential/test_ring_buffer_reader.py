"""Ring buffers fill alike in the four executions (generated programs 233 and 545 disagreed).

Reading a kernel ring consumes it: the comparison's snapshot after each packet moved the kernel's records
to the Python side, freeing their room, while pure Python, the IR and the bytecode kept every record
pending, so from the 32nd packet here their `output` failed and the kernel's did not. Every execution now
has the same reader, which takes the records after each packet; within one packet the capacity rule
(`size - 1` bytes pending) still refuses the same records everywhere."""

from __future__ import annotations

from pybpfdsl import XDP_PASS, Global, Packet, RingBuf, Struct, u32, u64, xdp
from pybpfdsl.differential import compare, run_python
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
FRAME = bytes(60)


class Small(Struct):
    n: u64


class Wide(Struct):
    a: u64
    b: u64
    c: u64
    d: u64


small = RingBuf(Small, 4096)  # 8 + 8 bytes a record: 255 fit
wide = RingBuf(Wide, 4096)  # 32 + 8 bytes a record: 102 fit
lost = Global(u32, 0)


@xdp
def eight_a_packet(pkt: Packet) -> int:
    for i in range(8):
        if not small.output(Small(u64(i))):
            lost.value += 1
    return XDP_PASS


@xdp
def more_than_fit_in_one_packet(pkt: Packet) -> int:
    for i in range(110):
        if not wide.output(Wide(u64(i), u64(0), u64(0), u64(0))):
            lost.value += 1
    return XDP_PASS


def test_records_read_after_every_packet_never_fill_the_ring() -> None:
    reset_state(small, lost)
    packets = [FRAME] * 40  # 320 records: more than the ring holds, but never at once
    assert compare(eight_a_packet, packets, executions=EXECUTIONS) is None
    steps = run_python(eight_a_packet, packets)
    assert steps[-1].state["lost"] == 0
    assert steps[-1].state["small"] == [Small(u64(i % 8)) for i in range(320)]  # every record, in order
    assert len(small.poll()) == 320  # and they are pending afterwards, as without a reader


def test_a_packet_that_outputs_more_than_fit_loses_the_same_records_everywhere() -> None:
    reset_state(wide, lost)
    assert compare(more_than_fit_in_one_packet, [FRAME] * 3, executions=EXECUTIONS) is None
    steps = run_python(more_than_fit_in_one_packet, [FRAME] * 3)
    assert [s.state["lost"] for s in steps] == [8, 16, 24]
    reset_state(wide, lost)
