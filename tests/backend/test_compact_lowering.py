"""The lowering's size choices (issue 15), each checked on the bytecode of a small program that needs it,
and each program proven equivalent to its IR and checked against the interpreters:

- `pkt.len` widened to 64 bits costs nothing (the pointer difference is known to fit 32 bits);
- a global used in several places has its address formed once (one 2-slot `lddw`, not one per use);
- a division by a constant divides by an immediate, not by a register loaded with it;
- a Q32.32 product by a float with no high half (`random()`) takes two multiplications, not four, and a
  product by a constant none (LLVM's shifts and adds);
- a read past a header is checked from the header's pointer and read at constant offsets from it.
"""

from __future__ import annotations

import re

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, random, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

total_bytes = Global(u64, 0)
hits = Global(u64, 0)
limit = Global(u64, 5)
rate = Global(float, 2.5)
level = Global(float, 0.0)


@xdp
def add_length(pkt: Packet) -> int:
    total_bytes.value += pkt.len
    return XDP_PASS


@xdp
def counted_twice(pkt: Packet) -> int:
    if hits.value < limit.value:
        hits.value += 1
        return XDP_PASS
    if pkt.len > 100 and hits.value > 0:
        hits.value -= 1
    return XDP_DROP


@xdp
def per_second(pkt: Packet) -> int:
    level.value = rate.value * (pkt.len / 1000)
    return XDP_PASS


@xdp
def times_random(pkt: Packet) -> int:
    level.value = random() * rate.value
    return XDP_PASS


@xdp
def times_constant(pkt: Packet) -> int:
    level.value = rate.value * 1.5
    return XDP_PASS


@xdp
def payload_bytes(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None or udp.dport != 53:
        return XDP_PASS
    first = pkt.payload[0]
    second = pkt.payload[3]
    if first is None or second is None:
        return XDP_DROP
    return XDP_DROP if first == second else XDP_PASS


def _text(prog) -> list[str]:  # type: ignore[no-untyped-def]
    compiled = prog.compile(prove=True)
    assert compiled.proven, compiled.proof_summary()
    return [str(i) for i in compiled.instructions]


def test_the_length_is_widened_without_shifts() -> None:
    text = _text(add_length)
    assert not any("<<= 32" in t for t in text), text


def test_a_global_used_three_times_is_addressed_once() -> None:
    text = _text(counted_twice)
    assert sum(t.endswith(" ll") for t in text) == 2, text  # hits and limit, each addressed once


def test_a_constant_divisor_is_an_immediate() -> None:
    text = _text(per_second)
    assert any("/= 1000" in t for t in text), text


def test_a_product_by_random_multiplies_twice() -> None:
    text = _text(times_random)
    assert sum(" *= r" in t for t in text) == 2, text


def test_a_product_by_a_constant_multiplies_nothing_at_run_time() -> None:
    text = _text(times_constant)
    assert not any(" *= " in t for t in text), text


def test_payload_reads_are_at_constant_offsets_from_the_header_pointer() -> None:
    text = _text(payload_bytes)
    loads = [t for t in text if "*(u8 *)" in t and "= *(" in t]
    # Read through the UDP header's pointer or the one its check stepped on to: no pointer is formed from
    # `data` and an offset again (the only register sum is the L4 offset's), and each check past the
    # first steps on from the one before (`r += k`, no copy of `data` first).
    assert loads and sum(bool(re.fullmatch(r"r\d \+= r\d", t)) for t in text) == 1, text
    assert sum(t.endswith(" = r1") for t in text) <= 3, text


PACKETS = [bytes(14), bytes(60), bytes(140),
           bytes(12) + b"\x08\x00" + b"\x45" + bytes(8) + b"\x11" + bytes(10) + b"\x00\x35\x00\x35" + bytes(4)
           + b"\x07\x01\x02\x07",
           bytes(12) + b"\x08\x00" + b"\x45" + bytes(8) + b"\x11" + bytes(10) + b"\x00\x35\x00\x35" + bytes(4)
           + b"\x07\x01"]


@pytest.mark.parametrize("prog", [add_length, counted_twice, per_second, times_constant, payload_bytes],  # not random
                         ids=lambda p: p.name)
def test_every_execution_agrees(prog) -> None:  # type: ignore[no-untyped-def]
    assert compare(prog, PACKETS * 3, executions=EXECUTIONS) is None
