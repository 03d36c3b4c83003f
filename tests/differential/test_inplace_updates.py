"""A map update after a lookup of the same key, which the optimiser turns into a store through the looked-up
value where the key was found (`ir/passes/inplace.py`), agrees in every execution: pure Python, the IR
interpreter on the frontend's IR and on the optimised IR, the bytecode interpreter and the kernel, on each
map kind the pass rewrites, and where it must not rewrite (a delete between the lookup and the update)."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pybpfdsl import XDP_DROP, XDP_PASS, Array, HashMap, LruHashMap, Packet, PerCpuArray, Struct, u32, u64, xdp
from pybpfdsl.differential import Step, compare, snapshot
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.interpreter import Environment, run_program
from pybpfdsl.ir.passes.pipeline import optimize
from pybpfdsl.lang.percpu_hash import LruPerCpuHashMap, PerCpuHashMap
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")


class Pair(Struct):
    packets: u64
    bytes: u64


counts = HashMap(u32, u64, 64)
pairs = LruHashMap(u32, Pair, 64)
per_cpu = PerCpuHashMap(u32, u64, 16)
recent = LruPerCpuHashMap(u32, u64, 16)
slots = Array(u64, 8)
cpu_slots = PerCpuArray(u64, 8)


@xdp
def hash_counts(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    key = ip4.src & 15
    seen = counts.get(key, 0)
    counts[key] = seen + pkt.len
    if ip4.ttl == 9:
        del counts[key]
    return XDP_DROP if seen > 1000 else XDP_PASS


@xdp
def lru_pairs(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    key = ip4.dst & 7  # at most 8 keys: within the kernel's approximate LRU's room
    seen = pairs.get(key, Pair(packets=0, bytes=0))
    pairs[key] = Pair(packets=seen.packets + 1, bytes=seen.bytes + pkt.len)
    return XDP_DROP if seen.packets > 5 else XDP_PASS


@xdp
def per_cpu_maps(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    key = ip4.ttl & 7
    per_cpu[key] = per_cpu.get(key, 0) * 3 + 1
    recent[key] = recent.get(key, 7) + pkt.len
    return XDP_PASS


@xdp
def arrays(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    slot = ip4.ttl & 15  # half of them out of range: the lookup misses and the update fails
    slots[slot] = slots[slot] * 2 + 1
    cpu_slots[slot & 7] = cpu_slots[slot & 7] + pkt.len
    return XDP_DROP if slots[slot] > 100 else XDP_PASS


@xdp
def deleted_between(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    key = ip4.src & 7
    seen = counts.get(key, 5)
    if ip4.ttl & 1 == 1:
        del counts[key]  # the update below inserts the key again: no store through the old value
    counts[key] = seen + 1
    return XDP_PASS


REWRITTEN = [hash_counts, lru_pairs, per_cpu_maps, arrays]
PROGRAMS = [*REWRITTEN, deleted_between]


def _stores(program: n.Program) -> int:
    return sum(isinstance(i, n.StoreValue) and not i.atomic_add for b in program.blocks for i in b.instrs)


def _packets(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    return [bytes(Ether() / IP(src=rng.choice(["10.0.0.1", "10.0.0.2", "10.0.0.19"]),
                               dst=f"10.1.0.{rng.randrange(256)}", ttl=rng.randrange(20))
                  / UDP(dport=53) / Raw(bytes(rng.randrange(40))))
            for _ in range(count)]


def _run_optimised_ir(prog: XdpProgram, packets: list[bytes]) -> list[Step]:
    lowered = prog.lower()
    program = optimize(lowered.program)
    env = Environment(maps={m.name: lowered.state[m.name] for m in program.maps}, globals={})  # type: ignore[misc]
    steps = []
    for p in packets:
        result = run_program(program, p, env)
        steps.append(Step(result.action, result.packet, snapshot(lowered.state)))
    return steps


@pytest.fixture(autouse=True)
def clean_state() -> None:
    reset_state(counts, pairs, per_cpu, recent, slots, cpu_slots)


@pytest.mark.parametrize("prog", REWRITTEN, ids=lambda p: p.name)
def test_the_optimiser_stores_in_place(prog: XdpProgram) -> None:
    before = prog.lower().program
    assert _stores(before) == 0
    assert _stores(optimize(before)) > 0


def test_no_store_in_place_across_a_delete() -> None:
    assert _stores(optimize(deleted_between.lower().program)) == 0


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_every_execution_agrees(prog: XdpProgram) -> None:
    packets = _packets(len(prog.name), 120)
    mismatch = compare(prog, packets, executions=EXECUTIONS)
    assert mismatch is None, str(mismatch)


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_the_optimised_ir_agrees_with_the_frontends(prog: XdpProgram) -> None:
    packets = _packets(7 * len(prog.name), 120)
    state = prog.lower().state
    saved = {name: obj.save() for name, obj in state.items()}
    expected = _steps(prog, packets)
    for name, obj in state.items():
        obj.restore(saved[name])
    assert _run_optimised_ir(prog, packets) == expected


def _steps(prog: XdpProgram, packets: list[bytes]) -> list[Step]:
    lowered = prog.lower()
    env = Environment(maps={m.name: lowered.state[m.name] for m in lowered.program.maps}, globals={})  # type: ignore[misc]
    return [Step(r.action, r.packet, snapshot(lowered.state))
            for r in (run_program(lowered.program, p, env) for p in packets)]
