"""Floats wherever a number goes (issue 16 §2): float fields of Structs (the Q32.32 number the DSL
computes floats in, 8 bytes) in map values and keys, floats in a PerCpuArray, float keys of a HashMap,
the same in the four executions, and the program is proven."""

from __future__ import annotations

import random

from pybpfdsl import XDP_DROP, XDP_PASS, HashMap, Packet, PerCpuArray, Struct, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang import fixed
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")


class Rate(Struct):
    count: u32
    ewma: float


class Weighted(Struct):
    weight: float
    port: u32


rates = HashMap(u32, Rate, 16)
by_weight = HashMap(Weighted, u64, 64)
by_half_length = HashMap(float, u32, 64)
load = PerCpuArray(float, 4)


@xdp
def float_records(pkt: Packet) -> int:
    old = rates.get(pkt.len % 3)
    ewma = 0.0
    count: u32 = 1
    if old is not None:
        ewma = old.ewma * 0.75 + pkt.len * 0.25
        count = old.count + 1
    rates[pkt.len % 3] = Rate(count, ewma)
    by_weight[Weighted(pkt.len * 0.5, 7)] = count
    by_half_length[pkt.len * 0.5] += 1
    load[0] += pkt.len * 0.125
    load[1] = -2.5
    if by_weight.get(Weighted(30.5, 7), 0) > 1 or ewma > 70.0:
        return XDP_DROP
    return XDP_PASS


def test_float_fields_keys_and_per_cpu_floats_agree_in_every_execution() -> None:
    reset_state(rates, by_weight, by_half_length, load)
    rates[0] = Rate(4, 64.25)
    rng = random.Random(3)
    packets = [bytes(rng.choice([60, 61, 90, 100, 64])) for _ in range(30)]
    assert compare(float_records, packets, executions=EXECUTIONS) is None
    assert {float_records(p) for p in packets} == {XDP_DROP, XDP_PASS}


def test_pure_python_state_reads_as_floats() -> None:
    reset_state(rates, by_weight, by_half_length, load)
    for length in (61, 61, 100):
        float_records(bytes(length))
    assert rates[1].field_value("ewma") == 61 * 0.25 * 0.75 + 100 * 0.25
    assert rates[1].ewma == fixed.from_float(rates[1].field_value("ewma"))  # the field holds its Q32.32 number
    assert repr(rates[1]) == f"Rate(count=3, ewma={61 * 0.25 * 0.75 + 100 * 0.25})"
    assert by_weight[Weighted(30.5, 7)] == 2
    assert by_half_length[30.5] == 2 and by_half_length[50.0] == 1
    assert load[0] == (61 + 61 + 100) * 0.125 and load[1] == -2.5


def test_a_float_field_is_eight_bytes_of_q32_32() -> None:
    assert [(f.name, f.offset) for f in Rate.fields()] == [("count", 0), ("ewma", 8)] and Rate.size() == 16
    r = Rate(3, -1.5)
    assert r.to_bytes()[8:] == fixed.from_float(-1.5).to_bytes(8, "little", signed=True)
    assert Rate.from_bytes(r.to_bytes()) == r and r.field_value("ewma") == -1.5


def test_an_int_for_a_float_field_is_that_number() -> None:
    """`Rate(1, 2)` holds 2.0 (not the Q32.32 number 2, i.e. 2**-32); `of_raw` takes stored numbers."""
    assert Rate(1, 2).field_value("ewma") == 2.0 and Rate(1, 2) == Rate(1, 2.0)
    assert Rate.of_raw(1, 2 << 32) == Rate(1, 2.0) and Rate.of_raw(1, 2).field_value("ewma") == 2 / 2**32


def test_the_program_is_proven() -> None:
    assert float_records.compile().proof.status == "proven"  # type: ignore[union-attr]
