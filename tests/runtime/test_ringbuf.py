"""RingBuf in the kernel: records output by a loaded program (BPF_PROG_TEST_RUN) reach Python through
libbpf's ring_buffer consumer, decoded as the record type; a full ring makes `output` False; records left
at close move to the Python side; and pure Python, the IR interpreter and the kernel emit the same records
in the same order."""

from __future__ import annotations

import threading
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, RingBuf, Struct, now_ns, u16, u32, u64, xdp
from pybpfdsl.differential import compare, run_kernel
from pybpfdsl.runtime.errors import StateBindingError
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.state_transfer import run_bytecode
from pybpfdsl.testing import reset_state

_BPF_OK, _BPF_REASON = kernel_bpf_available()
pytestmark = pytest.mark.skipif(not _BPF_OK, reason=f"bpf() unavailable: {_BPF_REASON}")


class Request(Struct):
    """AppNet's logging element: one record per request (4 bytes of padding before `ts`)."""

    saddr: u32
    daddr: u32
    sport: u16
    dport: u16
    length: u32
    ts: u64


class Flow(Struct):
    saddr: u32
    daddr: u32
    sport: u16
    dport: u16
    length: u32


requests = RingBuf(Request, 4096)
flows = RingBuf(Flow, 64 * 1024)
lost = Global(u64, 0)


@xdp
def log_requests(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    sport: u16 = 0
    dport: u16 = 0
    if pkt.tcp is not None:
        sport = pkt.tcp.sport
        dport = pkt.tcp.dport
    elif pkt.udp is not None:
        sport = pkt.udp.sport
        dport = pkt.udp.dport
    record = Request(saddr=ip4.src, daddr=ip4.dst, sport=sport, dport=dport, length=pkt.len, ts=now_ns())
    if not requests.output(record):
        lost.value += 1
        return XDP_DROP
    return XDP_PASS


@xdp
def log_flows(pkt: Packet) -> int:
    """Deterministic (no helpers): the differential suite compares every field."""
    ip4 = pkt.ipv4
    if ip4 is None:
        if pkt.ipv6 is not None:
            flows.output(Flow(length=pkt.len))
        return XDP_PASS
    if pkt.tcp is not None:
        flows.output(Flow(ip4.src, ip4.dst, pkt.tcp.sport, pkt.tcp.dport, pkt.len))
        if pkt.tcp.dport == 443:  # two records for one packet: order matters
            flows.output(Flow(saddr=ip4.src, dport=443, length=pkt.tcp.sport))
    elif pkt.udp is not None:
        flows.output(Flow(ip4.src, ip4.dst, pkt.udp.sport, pkt.udp.dport, pkt.len))
    return XDP_PASS


def _tcp(i: int) -> bytes:
    return bytes(Ether() / IP(src=f"10.0.{i // 250}.{i % 250 + 1}", dst="172.16.0.9")
                 / TCP(sport=1024 + i, dport=8000 + i % 7) / (b"x" * (i % 50)))


def _udp(i: int) -> bytes:
    return bytes(Ether() / IP(src="10.9.9.9", dst=f"192.168.0.{i % 200 + 1}") / UDP(sport=53, dport=4000 + i))


def _ip(text: str) -> int:
    a, b, c, d = (int(x) for x in text.split("."))
    return a << 24 | b << 16 | c << 8 | d


@pytest.fixture(autouse=True)
def _clean() -> None:
    reset_state(requests, flows, lost)


def test_one_record_per_packet_with_the_packets_fields() -> None:
    packets = [_tcp(i) if i % 3 else _udp(i) for i in range(60)]
    with log_requests.load() as loaded:
        assert requests.bound
        before = time.monotonic_ns()
        for p in packets:
            assert loaded.run(p).action == XDP_PASS
        after = time.monotonic_ns()
        got = list(requests.poll(timeout=1.0))
    assert not requests.bound
    assert len(got) == len(packets)
    for i, (rec, p) in enumerate(zip(got, packets)):
        assert isinstance(rec, Request)
        ip4 = Ether(p)[IP]
        l4 = ip4.payload
        assert (rec.saddr, rec.daddr) == (_ip(ip4.src), _ip(ip4.dst)), i
        assert (rec.sport, rec.dport) == (l4.sport, l4.dport), i
        assert rec.length == len(p), i
        assert before <= rec.ts <= after, i  # bpf_ktime_get_ns and time.monotonic_ns: CLOCK_MONOTONIC
    assert [r.ts for r in got] == sorted(r.ts for r in got)
    assert lost.value == 0
    assert requests.poll() == []


def test_full_ring_makes_output_false() -> None:
    # 4096-byte ring, 24-byte records + 8-byte headers: the kernel keeps at most 4095 bytes pending.
    fits = (requests.size - 1) // requests.footprint
    assert fits == 127
    with log_requests.load() as loaded:
        actions = [loaded.run(_tcp(i)).action for i in range(fits + 5)]
        assert actions == [XDP_PASS] * fits + [XDP_DROP] * 5
        assert lost.value == 5
        got = requests.poll()
        assert [r.sport for r in got] == [1024 + i for i in range(fits)]
        assert loaded.run(_tcp(500)).action == XDP_PASS  # consuming freed the space
        assert [r.sport for r in requests.poll()] == [1024 + 500]


def test_python_side_buffer_and_kernel_agree_on_capacity() -> None:
    fits = (requests.size - 1) // requests.footprint
    python_actions = [log_requests(_tcp(i)) for i in range(fits + 2)]
    requests.poll()
    with log_requests.load() as loaded:
        kernel_actions = [loaded.run(_tcp(i)).action for i in range(fits + 2)]
    assert python_actions == kernel_actions
    requests.poll()
    compiled = log_requests.compile(prove=False)
    bytecode_actions = [run_bytecode(compiled, _tcp(i))[0] for i in range(fits + 2)]
    assert bytecode_actions == kernel_actions


def test_poll_waits_for_a_record_from_another_thread() -> None:
    with log_requests.load() as loaded:
        started = time.monotonic()
        assert requests.poll(timeout=0.2) == []
        assert time.monotonic() - started >= 0.19
        timer = threading.Timer(0.1, lambda: loaded.run(_tcp(7)))
        timer.start()
        started = time.monotonic()
        got = requests.poll(timeout=10.0)
        timer.join()
        assert [r.sport for r in got] == [1024 + 7]
        assert time.monotonic() - started < 5.0  # woken by the record, not by the timeout


def test_records_left_at_close_move_to_the_python_side_after_earlier_ones() -> None:
    requests.raw_output(Request(sport=1))  # pending on the Python side before the load
    with log_requests.load() as loaded:
        loaded.run(_tcp(1))
        loaded.run(_tcp(2))
        assert [r.sport for r in requests.records] == [1, 1025, 1026]  # a view: nothing taken
        loaded.run(_tcp(3))
    assert not requests.bound
    assert [r.sport for r in requests.poll()] == [1, 1025, 1026, 1027]


def test_a_bound_ring_buffer_cannot_be_bound_twice() -> None:
    with log_requests.load(), pytest.raises(StateBindingError, match="already bound"):
        log_requests.load()
    with log_requests.load():  # free again after close
        pass


def _differential_packets() -> list[bytes]:
    out = []
    for i in range(40):
        match i % 5:
            case 0:
                out.append(_udp(i))
            case 1:
                out.append(bytes(Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / TCP(sport=999 + i, dport=443)))
            case 2:
                out.append(bytes(Ether() / IPv6() / UDP(dport=i)))
            case 3:
                out.append(bytes(Ether(type=0x0806) / (b"\x00" * 28)))
            case _:
                out.append(_tcp(i))
    return out


def test_python_ir_and_kernel_emit_the_same_records_in_the_same_order() -> None:
    packets = _differential_packets()
    assert compare(log_flows, packets, executions=("python", "ir", "bytecode", "kernel")) is None
    steps = run_kernel(log_flows, packets)
    records = steps[-1].state["flows"]
    assert isinstance(records, list)
    assert len(records) == 8 * 1 + 8 * 2 + 8 * 1 + 0 + 8 * 1  # udp, tcp:443 (two), ipv6, arp, tcp
    assert records[:3] == [
        Flow(_ip("10.9.9.9"), _ip("192.168.0.1"), 53, 4000, len(packets[0])),
        Flow(_ip("1.2.3.4"), _ip("5.6.7.8"), 1000, 443, len(packets[1])),
        Flow(saddr=_ip("1.2.3.4"), dport=443, length=1000),
    ]
    # Snapshots after each packet: the records emitted so far.
    assert [len(s.state["flows"]) for s in steps[:5]] == [1, 3, 4, 4, 5]  # type: ignore[arg-type]
    # compare() restores the state it found; run_kernel alone leaves the records, moved to the Python
    # side when the program was closed.
    assert flows.poll() == records
