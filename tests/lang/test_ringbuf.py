"""RingBuf on the Python side: the declaration's checks, the Python-side buffer (output, poll, records,
the kernel's capacity rule, save/restore), the DSL's `events.output(...)` in the frontend, the IR (printer,
check, interpreter), pure-Python mode and the backend's object (no kernel needed here)."""

from __future__ import annotations

import mmap
import threading
import time

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from pybpfdsl import XDP_DROP, XDP_PASS, DslError, Global, Packet, RingBuf, Struct, u16, u32, u64, xdp
from pybpfdsl.differential import compare, snapshot
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.check import IRError, check_program
from pybpfdsl.ir.interpreter import Environment, run_program
from pybpfdsl.ir.types import StructType
from pybpfdsl.lang.ringbuf import DEFAULT_RINGBUF_SIZE
from pybpfdsl.lang.state import MapKind
from pybpfdsl.lang.types import BOOL
from pybpfdsl.testing import reset_state

PAGE = mmap.PAGESIZE


class Event(Struct):
    saddr: u32
    daddr: u32
    sport: u16
    dport: u16
    length: u32


class Other(Struct):
    x: u32


class Padded(Struct):  # 2 + 6 padding + 8: the padding is zeroed before the helper reads the record
    flag: u16
    value: u64


events = RingBuf(Event, PAGE)  # small: (PAGE - 1) // 24 records fit, see test_capacity_follows_the_kernel
small = RingBuf(Padded, PAGE)
dropped = Global(u64, 0)


@xdp
def log_flows(pkt: Packet) -> int:
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
    if not events.output(Event(saddr=ip4.src, daddr=ip4.dst, sport=sport, dport=dport, length=pkt.len)):
        dropped.value += 1
        return XDP_DROP
    return XDP_PASS


@xdp
def log_padded(pkt: Packet) -> int:
    small.output(Padded(flag=7, value=pkt.len))  # a statement: the result is ignored
    return XDP_PASS


def _packet(i: int, udp: bool = False) -> bytes:
    l4 = UDP(sport=5000 + i, dport=53) if udp else TCP(sport=1000 + i, dport=80 + i)
    return bytes(Ether() / IP(src=f"10.0.0.{i % 250 + 1}", dst="192.168.1.1") / l4)


def _expected(i: int, udp: bool = False) -> Event:
    data = _packet(i, udp)
    sport, dport = (5000 + i, 53) if udp else (1000 + i, 80 + i)
    return Event(saddr=0x0A000000 + i % 250 + 1, daddr=0xC0A80101, sport=sport, dport=dport, length=len(data))


@pytest.fixture(autouse=True)
def _clean() -> None:
    reset_state(events, small, dropped)


# --------------------------------------------------------------------------------------- declaration
def test_declaration_defaults_and_attributes() -> None:
    rb = RingBuf(Event)
    assert rb.size == DEFAULT_RINGBUF_SIZE == 256 * 1024
    assert rb.record is Event
    assert rb.kind is MapKind.RINGBUF and MapKind.RINGBUF.value == 27
    assert rb.kind_name == "RingBuf"
    assert Event.size() == 16 and rb.footprint == 24  # 16-byte record + 8-byte header
    assert not rb.bound and rb.records == [] and len(rb) == 0


@pytest.mark.parametrize("size", [PAGE * 3, PAGE // 2, 0, -PAGE, 1000, 2.0 * PAGE, "4096", True])
def test_size_must_be_a_power_of_two_multiple_of_the_page(size: object) -> None:
    with pytest.raises(TypeError, match="RingBuf's size"):
        RingBuf(Event, size)  # type: ignore[arg-type]


@pytest.mark.parametrize("record", [u32, int, Struct, object, Event()])
def test_record_must_be_a_struct_subclass(record: object) -> None:
    with pytest.raises(TypeError, match="Struct subclass"):
        RingBuf(record)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- Python side
def test_output_then_poll_in_order() -> None:
    rb = RingBuf(Event, PAGE)
    recs = [Event(saddr=i, length=i * 10) for i in range(5)]
    assert all(rb.raw_output(r) for r in recs)
    assert rb.records == recs  # a view: nothing taken
    assert len(rb) == 5
    assert list(rb.poll()) == recs
    assert rb.poll() == [] and rb.records == []


def test_output_rejects_other_records() -> None:
    with pytest.raises(TypeError, match="holds Event records"):
        events.raw_output(Other(1))
    with pytest.raises(TypeError, match="holds Event records"):
        events.output(Other(1))  # type: ignore[arg-type]


def test_output_from_python_is_the_dsl_operation() -> None:
    rb = RingBuf(Event, PAGE)
    assert rb.output(Event(saddr=5)) is True
    assert rb.poll() == [Event(saddr=5)]


def test_capacity_follows_the_kernel() -> None:
    """The kernel keeps the producer at most size - 1 bytes ahead of the consumer; each record takes
    its size plus an 8-byte header, rounded up to 8."""
    rb = RingBuf(Event, PAGE)
    fits = (PAGE - 1) // 24
    assert all(rb.raw_output(Event(saddr=i)) for i in range(fits))
    assert not rb.raw_output(Event(saddr=fits))  # full: dropped
    assert [r.saddr for r in rb.records] == list(range(fits))
    assert len(rb.poll()) == fits
    assert rb.raw_output(Event(saddr=1))  # polling frees the space


def test_save_and_restore_pending_records() -> None:
    rb = RingBuf(Event, PAGE)
    rb.raw_output(Event(saddr=1))
    saved = rb.save()
    rb.raw_output(Event(saddr=2))
    rb.restore(saved)
    assert rb.records == [Event(saddr=1)]
    rb.poll()
    rb.restore(saved)
    assert rb.poll() == [Event(saddr=1)]


def test_poll_timeout_none_does_not_wait_and_a_number_waits() -> None:
    rb = RingBuf(Event, PAGE)
    started = time.monotonic()
    assert rb.poll() == [] and rb.poll(timeout=None) == [] and rb.poll(timeout=0) == []
    assert time.monotonic() - started < 0.1
    started = time.monotonic()
    assert rb.poll(timeout=0.15) == []
    assert time.monotonic() - started >= 0.14
    timer = threading.Timer(0.05, lambda: rb.raw_output(Event(saddr=9)))
    timer.start()
    started = time.monotonic()
    got = rb.poll(timeout=5.0)
    timer.join()
    assert got == [Event(saddr=9)]
    assert time.monotonic() - started < 4.0  # woke up on the record, not at the timeout
    with pytest.raises(ValueError, match="timeout"):
        rb.poll(timeout=-1)


def test_reset_state_and_snapshot() -> None:
    events.raw_output(Event(saddr=3))
    assert snapshot({"events": events}) == {"events": [Event(saddr=3)]}
    reset_state(events)
    assert events.records == []


# --------------------------------------------------------------------------------------- pure Python
def test_pure_python_mode_emits_one_record_per_packet() -> None:
    packets = [_packet(i, udp=i % 3 == 0) for i in range(10)]
    for p in packets:
        assert log_flows(p) == XDP_PASS
    assert log_flows(bytes(Ether(type=0x0806) / (b"\x00" * 28))) == XDP_PASS  # not IPv4: no record
    assert events.poll() == [_expected(i, udp=i % 3 == 0) for i in range(10)]


def test_pure_python_mode_output_is_false_when_full() -> None:
    fits = (PAGE - 1) // events.footprint
    for i in range(fits):
        assert log_flows(_packet(i)) == XDP_PASS
    assert log_flows(_packet(fits)) == XDP_DROP
    assert dropped.value == 1
    assert len(events.poll()) == fits
    assert log_flows(_packet(0)) == XDP_PASS


def test_output_as_a_statement() -> None:
    log_padded(_packet(1))
    assert small.poll() == [Padded(flag=7, value=len(_packet(1)))]


# --------------------------------------------------------------------------------------- frontend & IR
def test_lowered_program_declares_the_ring_buffer() -> None:
    lowered = log_flows.lower()
    assert lowered.state["events"] is events
    assert lowered.program.ringbufs == (n.RingBufDecl("events", StructType(Event), PAGE),)
    assert lowered.program.maps == ()
    outs = [i for b in lowered.program.blocks for i in b.instrs if isinstance(i, n.RingbufOutput)]
    assert len(outs) == 1 and outs[0].map_name == "events" and outs[0].out.type == BOOL
    text = log_flows.ir
    assert f"ringbuf @events: struct Event ({PAGE} bytes)" in text
    assert "= ringbuf_output @events, %" in text


def test_ir_interpreter_matches_pure_python() -> None:
    packets = [_packet(i, udp=i % 2 == 0) for i in range(8)]
    assert compare(log_flows, packets, executions=("python", "ir")) is None
    lowered = log_flows.lower()
    env = Environment(maps={}, globals={"dropped": dropped}, ringbufs={"events": events})
    for p in packets:
        assert run_program(lowered.program, p, env).action == XDP_PASS
    assert events.poll() == [_expected(i, udp=i % 2 == 0) for i in range(8)]


def test_check_rejects_wrong_record_and_undeclared_ring_buffer() -> None:
    def program(decls: tuple[n.RingBufDecl, ...], record_type: StructType) -> n.Program:
        rec = n.Value(1, record_type)
        fields = [n.Const(n.Value(10 + k, f.type), 0) for k, f in enumerate(record_type.cls.fields())]
        ok = n.Value(2, BOOL)
        action = n.Value(3, u32)
        entry = n.Block("entry", instrs=[
            *fields,
            n.MakeStruct(rec, tuple(c.out for c in fields)),
            n.RingbufOutput(ok, "events", rec),
            n.Const(action, XDP_PASS),
        ], terminator=n.Return(action))
        return n.Program("p", "x.py", 1, [entry], ringbufs=decls)

    decl = n.RingBufDecl("events", StructType(Event), PAGE)
    check_program(program((decl,), StructType(Event)))
    with pytest.raises(IRError, match="record of ring buffer events"):
        check_program(program((decl,), StructType(Other)))
    with pytest.raises(IRError, match="not declared as a ring buffer"):
        check_program(program((), StructType(Event)))


def _lower_error(fn: object) -> DslError:
    with pytest.raises(DslError) as info:
        xdp(fn).lower()  # type: ignore[call-overload]
    return info.value


def test_frontend_errors() -> None:
    def wrong_record(pkt: Packet) -> int:
        events.output(Other(x=1))
        return XDP_PASS

    def not_a_record(pkt: Packet) -> int:
        events.output(pkt.len)
        return XDP_PASS

    def two_args(pkt: Packet) -> int:
        events.output(Event(), Event())
        return XDP_PASS

    def no_args(pkt: Packet) -> int:
        events.output()
        return XDP_PASS

    def keyword(pkt: Packet) -> int:
        events.output(record=Event())
        return XDP_PASS

    def poll_in_program(pkt: Packet) -> int:
        events.poll()
        return XDP_PASS

    err = _lower_error(wrong_record)
    assert "events holds Event records, not a Other record" in err.message
    assert err.hint is not None and "Event(...)" in err.hint
    assert err.location is not None and err.location.line == wrong_record.__code__.co_firstlineno + 1
    assert "not a u32 value" in _lower_error(not_a_record).message
    for fn in (two_args, no_args, keyword):
        err = _lower_error(fn)
        assert "takes exactly one Event record" in err.message
        assert err.hint is not None and "events.output(Event(" in err.hint
    err = _lower_error(poll_in_program)
    assert "RingBuf has no method `poll`" in err.message
    assert err.hint is not None and "events.poll()" in err.hint


# --------------------------------------------------------------------------------------- backend
def test_object_has_a_ringbuf_map_and_calls_bpf_ringbuf_output() -> None:
    from pybpfdsl.bpf.elf import BpfElf

    compiled = log_padded.compile(prove=False)
    assert "bpf_ringbuf_output#130" in compiled.disasm()
    btf = BpfElf.from_bytes(compiled.elf).btf
    assert btf is not None
    definition = btf.map_definitions()["small"]
    assert definition.map_type == MapKind.RINGBUF.value
    assert definition.max_entries == PAGE
    assert definition.key_size is None and definition.value_size is None
    assert definition.key_type_id is None and definition.value_type_id is None
