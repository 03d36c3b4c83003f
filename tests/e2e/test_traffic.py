"""Real UDP and TCP traffic through attached programs: drops, ACLs, exact counters, live state, hot swap.

Datagrams are sent from the tx namespace to a socket in the rx namespace over the veth pair; the
program runs on the receiving veth (`veth1`). Each test counts what it sent, what the receiving socket
got, and what the program's state says, and checks that the three agree.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import fault_injection as FI
import logging_counters as LC
import port_acl as ACL
import pytest

from pybpfdsl import (
    XDP_DROP,
    XDP_PASS,
    Global,
    HashMap,
    Packet,
    PerCpuArray,
    RingBuf,
    Struct,
    random,
    u16,
    u32,
    u64,
    xdp,
)
from pybpfdsl.deploy import Attachment, attach
from pybpfdsl.runtime.libbpf import get_libbpf
from pybpfdsl.testing import reset_state

from .netns import (  # noqa: F401 - fixtures
    UDP_FRAME_OVERHEAD,
    VethPair,
    drain,
    inside,
    send_udp,
    serve_tcp,
    veth_fixture,
    xdp_prog_id,
)

Z_999 = 3.2905  # two-sided 99.9% normal quantile


def binomial_interval(n: int, p: float) -> tuple[float, float]:
    half = Z_999 * (n * p * (1 - p)) ** 0.5
    return n * p - half, n * p + half


@pytest.fixture(autouse=True)
def fresh_examples() -> Iterator[None]:
    reset_state(FI, LC, ACL)
    yield
    reset_state(FI, LC, ACL)


def attach_rx(veth: VethPair, program: object, mode: str = "auto") -> Attachment:
    with inside(veth.rx_ns):
        return attach(program, veth.rx_if, mode=mode)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ fault injection


@pytest.mark.parametrize("mode", ["native", "skb"])
def test_fault_injection_drops_five_percent_of_2000_datagrams(veth: VethPair, mode: str) -> None:
    n = 2000
    p_drop = 1 - FI.PASS_PROBABILITY
    receiver, sender = veth.udp_receiver(9000), veth.udp_sender()
    with attach_rx(veth, FI.fault_injection, mode) as att:
        assert att.mode == mode
        send_udp(sender, (veth.rx_ip, 9000), n)
        got = drain(receiver, n)
        injected = FI.injected_faults.value
    drops = n - len(got)
    low, high = binomial_interval(n, p_drop)
    print(f"fault injection ({mode}): {drops}/{n} dropped = {drops / n:.4f}; "
          f"99.9% interval [{low:.1f}, {high:.1f}]")
    assert low <= drops <= high
    assert injected == drops  # every datagram the program dropped is counted, and none else is missing


# --------------------------------------------------------------------------------------------- port ACL


def test_the_port_acl_drops_exactly_the_denied_port(veth: VethPair) -> None:
    n = 200
    receivers = {port: veth.udp_receiver(port) for port in (9000, 9001, 9002)}
    sender = veth.udp_sender()
    ACL.deny_port(9001)  # set before attaching: copied into the kernel map on load
    with attach_rx(veth, ACL.port_acl_filter):
        for port in receivers:
            send_udp(sender, (veth.rx_ip, port), n)
        counts = {port: len(drain(sock, n)) for port, sock in receivers.items()}
        assert counts == {9000: n, 9001: 0, 9002: n}
        assert ACL.denied_packets.value == n
        # live rules: deny 9000 and allow 9001 again, without re-attaching
        ACL.port_acl[9000] = ACL.DENY
        ACL.allow_port(9001)
        assert dict(ACL.port_acl.items()) == {9000: ACL.DENY, 9001: ACL.ALLOW}
        for port in receivers:
            send_udp(sender, (veth.rx_ip, port), n)
        counts = {port: len(drain(sock, n)) for port, sock in receivers.items()}
        assert counts == {9000: 0, 9001: n, 9002: n}
        assert ACL.denied_packets.value == 2 * n
    assert ACL.denied_packets.value == 2 * n  # copied back on detach


def test_the_port_acl_blocks_a_denied_tcp_port_and_passes_the_others(veth: VethPair) -> None:
    open_listener, denied_listener = veth.tcp_listener(8080), veth.tcp_listener(8081)
    with attach_rx(veth, ACL.port_acl_filter), serve_tcp(open_listener), serve_tcp(denied_listener):
        assert veth.tcp_exchange(8081, b"before") == b"before"  # no rule yet
        ACL.deny_port(8081)
        assert veth.tcp_exchange(8080, b"hello over tcp") == b"hello over tcp"
        assert veth.tcp_exchange(8081, b"blocked", timeout=0.5) is None  # the SYNs are dropped
        denied = ACL.denied_packets.value
        assert denied >= 1
        ACL.allow_port(8081)
        assert veth.tcp_exchange(8081, b"after") == b"after"
        assert ACL.denied_packets.value == denied


# --------------------------------------------------------------------------------------------- counters


def test_the_counters_equal_the_datagrams_and_bytes_that_arrived(veth: VethPair) -> None:
    n = 2000
    sizes = [1, 64, 512, 1400, 18]
    receiver, sender = veth.udp_receiver(9000), veth.udp_sender()
    with attach_rx(veth, LC.logging_counters):
        payload_bytes = send_udp(sender, (veth.rx_ip, 9000), n, sizes)
        got = drain(receiver, n)
        requests, request_bytes = LC.requests.value, LC.request_bytes.value
    frame_bytes = payload_bytes + n * UDP_FRAME_OVERHEAD
    print(f"counters: {requests} requests, {request_bytes} bytes; received {len(got)} datagrams, "
          f"{sum(map(len, got))} payload bytes = {frame_bytes} frame bytes")
    assert len(got) == n and sum(map(len, got)) == payload_bytes
    assert requests == n
    assert request_bytes == frame_bytes
    assert (LC.requests.value, LC.request_bytes.value) == (requests, request_bytes)  # copied back


# ----------------------------------------------------------------------------------------- live state

drop_rate = Global(float, 0.0)


@xdp
def tunable_drops(pkt: Packet) -> int:
    if pkt.udp is None and pkt.tcp is None:
        return XDP_PASS
    if random() < drop_rate.value:
        return XDP_DROP
    return XDP_PASS


port_packets = HashMap(u16, u64, max_entries=64)
cpu_packets = PerCpuArray(u64, 1)


@xdp
def per_port_stats(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is not None:
        port_packets[udp.dport] += 1
        cpu_packets[0] += 1
    return XDP_PASS


def test_changing_a_global_from_python_changes_behaviour_without_reattaching(veth: VethPair) -> None:
    reset_state(drop_rate)
    n = 500
    receiver, sender = veth.udp_receiver(9000), veth.udp_sender()
    with attach_rx(veth, tunable_drops) as att:
        link, prog = att.link_id, att.prog_id
        received: list[tuple[float, int]] = []
        for rate in (0.0, 1.0, 0.25, 0.0):
            drop_rate.value = rate
            send_udp(sender, (veth.rx_ip, 9000), n)
            received.append((rate, len(drain(receiver, n, idle=0.2))))
        assert (att.link_id, att.prog_id) == (link, prog)
        assert xdp_prog_id(veth.rx_ns, veth.rx_if) == prog
    print(f"drop_rate -> datagrams received of {n}: {received}")
    counts = [count for _, count in received]
    assert counts[0] == n and counts[1] == 0 and counts[3] == n
    low, high = binomial_interval(n, 0.25)
    assert low <= n - counts[2] <= high
    reset_state(drop_rate)


def test_maps_iterate_and_per_cpu_values_are_per_cpu_and_summed(veth: VethPair) -> None:
    reset_state(port_packets, cpu_packets)
    receivers = {port: veth.udp_receiver(port) for port in (7001, 7002, 7003)}
    sender = veth.udp_sender()
    ncpus = get_libbpf().num_possible_cpus()
    usable = sorted(os.sched_getaffinity(0))
    plan = {7001: 100, 7002: 40, 7003: 7}
    with attach_rx(veth, per_port_stats):
        port_packets[9999] = 5  # a control-plane entry next to the program's
        original = os.sched_getaffinity(0)
        sent_on: dict[int, int] = {}
        try:
            for i, (port, count) in enumerate(plan.items()):
                cpu = usable[i % len(usable)]
                os.sched_setaffinity(0, {cpu})  # the veth receive path runs on the sending CPU
                send_udp(sender, (veth.rx_ip, port), count)
                sent_on[cpu] = sent_on.get(cpu, 0) + count
        finally:
            os.sched_setaffinity(0, original)
        for port, sock in receivers.items():
            assert len(drain(sock, plan[port])) == plan[port]
        assert dict(port_packets.items()) == {**plan, 9999: 5}
        per_cpu = cpu_packets.per_cpu(0)
        assert len(per_cpu) == ncpus
        assert cpu_packets[0] == sum(per_cpu) == sum(plan.values())
        print(f"per-CPU packets: {per_cpu} (sent from CPUs: {sent_on})")
        assert per_cpu == [sent_on.get(cpu, 0) for cpu in range(ncpus)]
        del port_packets[9999]
        assert 9999 not in port_packets
    reset_state(port_packets, cpu_packets)


# ------------------------------------------------------------------------------------------- hot swap

swap_port_hits = HashMap(u16, u64, max_entries=64)


@xdp
def logging_counters_v2(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is not None or pkt.tcp is not None:
        LC.requests.value += 1
        LC.request_bytes.value += pkt.len
    if udp is not None:
        swap_port_hits[udp.dport] += 1
    return XDP_PASS


@pytest.mark.parametrize("mode", ["native", "skb"])
def test_replace_keeps_the_counters_and_loses_no_packet_of_a_steady_stream(veth: VethPair, mode: str) -> None:
    reset_state(swap_port_hits)
    # Compile (and so verify and prove) the replacement first: the gates' results are cached by the
    # object, so the swap below happens mid-stream instead of after a proof that outlasts the stream.
    logging_counters_v2.compile()
    n, size = 4000, 100
    receiver, sender = veth.udp_receiver(9000), veth.udp_sender()
    sent = 0
    started = threading.Event()

    def stream() -> None:
        nonlocal sent
        for i in range(n):
            sender.sendto(i.to_bytes(4, "big") + bytes(size - 4), (veth.rx_ip, 9000))
            sent += 1
            if i == 200:
                started.set()
            if i % 4 == 3:
                time.sleep(0.0005)  # paced: about 1.5 s for the stream

    with attach_rx(veth, LC.logging_counters, mode) as att:
        old_prog = att.prog_id
        thread = threading.Thread(target=stream)
        thread.start()
        try:
            assert started.wait(10)
            att.replace(logging_counters_v2)
            swapped_at = sent
        finally:
            thread.join(30)
        got = drain(receiver, n)
        assert att.prog_id != old_prog and xdp_prog_id(veth.rx_ns, veth.rx_if) == att.prog_id
        requests, request_bytes = LC.requests.value, LC.request_bytes.value
        after_swap = swap_port_hits.get(9000, 0)
    print(f"replace ({mode}): sent {sent}, received {len(got)}, requests {requests}; swapped after "
          f"~{swapped_at} sent, new program counted {after_swap}")
    assert sent == n
    assert len(got) == n and sorted(int.from_bytes(g[:4], "big") for g in got) == list(range(n))
    assert requests == n and request_bytes == n * (size + UDP_FRAME_OVERHEAD)
    assert 0 < after_swap < n
    reset_state(swap_port_hits)


class Seen(Struct):
    dport: u16
    version: u16
    length: u32


seen = RingBuf(Seen, 64 * 1024)


@xdp
def record_v1(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is not None:
        seen.output(Seen(dport=udp.dport, version=1, length=pkt.len))
    return XDP_PASS


@xdp
def record_v2(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is not None:
        seen.output(Seen(dport=udp.dport, version=2, length=pkt.len))
    return XDP_PASS


def test_replace_keeps_the_ring_buffer_and_its_pending_records(veth: VethPair) -> None:
    reset_state(seen)
    n = 300
    receiver, sender = veth.udp_receiver(9000), veth.udp_sender()
    with attach_rx(veth, record_v1) as att:
        send_udp(sender, (veth.rx_ip, 9000), n, 20)
        assert len(drain(receiver, n)) == n
        att.replace(record_v2)  # records still in the kernel ring are taken before the swap's reader
        send_udp(sender, (veth.rx_ip, 9000), n, 20)
        assert len(drain(receiver, n)) == n
        records = seen.poll(timeout=1)
        while len(records) < 2 * n:
            more = seen.poll(timeout=0.5)
            if not more:
                break
            records += more
    versions = [r.version for r in records]
    print(f"ring buffer across replace: {versions.count(1)} v1 records, then {versions.count(2)} v2 records")
    assert versions == [1] * n + [2] * n
    assert {(r.dport, r.length) for r in records} == {(9000, 20 + UDP_FRAME_OVERHEAD)}
    reset_state(seen)
