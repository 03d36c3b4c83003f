"""A "counterexample" verdict is never wrong: ring-buffer records under merged paths, and replays.

The programs below were reported as counterexamples while both interpreters agreed on the
counterexample's inputs: a run-time `//` or `%` makes the prover merge paths from the start, and a
ring-buffer record built from a header field then held arms for inputs that log no record at all.
"""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Packet, RingBuf, Struct, now_ns, u16, u32, xdp
from pybpfdsl.verify.equivalence.prove import prove_compiled


class Ev(Struct):
    port: u16


class Ev32(Struct):
    addr: u32
    port: u16


events = RingBuf(Ev, 4096)
wide = RingBuf(Ev32, 4096)


@xdp
def w2(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    e = now_ns() // 1000000000  # noqa: F841 (unused: the quotient alone makes the prover merge paths)
    events.output(Ev(tcp.dport))
    return XDP_DROP


@xdp
def two_records(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    e = now_ns() // 1000000000  # noqa: F841
    events.output(Ev(tcp.dport))
    events.output(Ev(tcp.sport))
    return XDP_DROP


@xdp
def record_under_condition(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    e = now_ns() // 1000000000  # noqa: F841
    if tcp.dport == 80:
        events.output(Ev(tcp.sport))
    return XDP_DROP


@xdp
def wide_record(pkt: Packet) -> int:
    ip = pkt.ipv4
    tcp = pkt.tcp
    if ip is None or tcp is None:
        return XDP_PASS
    e = now_ns() // 1000000000  # noqa: F841
    wide.output(Ev32(ip.src, tcp.dport))
    return XDP_DROP


@xdp
def with_remainder(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    e = now_ns() % 1000000000  # noqa: F841
    events.output(Ev(tcp.dport))
    return XDP_DROP


@pytest.mark.parametrize("program", [w2, two_records, record_under_condition, wide_record, with_remainder],
                         ids=lambda p: p.name)
def test_ring_records_under_merged_paths_prove(program: object) -> None:
    result = prove_compiled(program.compile(prove=False), timeout_ms=30_000)  # type: ignore[attr-defined]
    assert result.status == "proven", result.report()
