"""Each C twin against its DSL program, on the same packet sequence from the same starting state.

Two executions, each the strongest check it allows:

- the bytecode interpreter (`pybpfdsl.bpf`) runs both objects with the same scripted helper results
  (random values on both sides of the 0.95 threshold, a clock moving 1 ms per reading): the actions, the
  packet bytes the program leaves (vlan_tagging's tags) and the whole state must agree after every
  packet, whatever helpers the program calls;
- the kernel (BPF_PROG_TEST_RUN) runs both objects: the actions and the packets left must agree on every
  packet that called no random helper, and the state after every packet, except the values that depend on the kernel's
  clock or random numbers (`Benchmark.kernel_volatile`); for programs that call random(), the counter
  of random drops must agree statistically over many runs of the hot packet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchmarks.size_speed.programs import RANDOM_VALUES, Benchmark
from benchmarks.size_speed.state import differences, interp_state, kernel_state, seed_interp, seed_kernel
from pybpfdsl.bpf.image import BytecodeImage
from pybpfdsl.runtime.bpf_object import BpfObject
from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.testing import FixedHelpers

STAT_RUNS = 20_000
"""Runs of the hot packet in the statistical comparison (one BPF_PROG_TEST_RUN with this repeat)."""


@dataclass
class Trace:
    """One execution of the packet sequence: action, executed instructions, random calls and the packet
    left, per packet."""

    actions: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    random_calls: list[int] = field(default_factory=list)
    states: list[dict[str, object]] = field(default_factory=list)
    packets: list[bytes] = field(default_factory=list)


def interp_trace(bench: Benchmark, elf: bytes) -> Trace:
    image = BytecodeImage.from_elf(elf, bench.name)
    maps = image.fresh_maps()
    seed_interp(elf, maps, bench.globals_init, bench.map_init)
    helpers = FixedHelpers(random=RANDOM_VALUES, clock_ns=10**9, clock_step_ns=10**6)
    trace = Trace()
    for _, packet in bench.packets:
        before = helpers.random_calls
        result = image.run(packet, maps, helpers=helpers)
        trace.actions.append(result.action)
        trace.steps.append(result.steps)
        trace.random_calls.append(helpers.random_calls - before)
        trace.packets.append(result.packet)
        trace.states.append(dict(interp_state(elf, maps)))
    return trace


def interp_disagreements(bench: Benchmark, ours: Trace, theirs: Trace) -> list[str]:
    found = []
    for i, (label, _) in enumerate(bench.packets):
        if ours.actions[i] != theirs.actions[i]:
            found.append(f"interpreter, {label}: action {ours.actions[i]} != C {theirs.actions[i]}")
        if ours.packets[i] != theirs.packets[i]:
            found.append(f"interpreter, {label}: packet {ours.packets[i].hex()} != C {theirs.packets[i].hex()}")
        if ours.random_calls[i] != theirs.random_calls[i]:
            found.append(f"interpreter, {label}: {ours.random_calls[i]} random calls != C {theirs.random_calls[i]}")
        found += [f"interpreter, after {label}: {d}" for d in differences(ours.states[i], theirs.states[i])]  # type: ignore[arg-type]
    return found


def kernel_disagreements(bench: Benchmark, ours_elf: bytes, c_elf: bytes, ours_trace: Trace) -> list[str]:
    found = []
    with BpfObject.load(ours_elf, "ours") as ours, BpfObject.load(c_elf, "twin") as twin:
        seed_kernel(ours_elf, ours, bench.globals_init, bench.map_init)
        seed_kernel(c_elf, twin, bench.globals_init, bench.map_init)
        ours_fd, twin_fd = ours.program_fd(bench.name), twin.program_fd(bench.name)
        for i, (label, packet) in enumerate(bench.packets):
            a, b = run_xdp(ours_fd, packet), run_xdp(twin_fd, packet)
            if a.action != b.action and not ours_trace.random_calls[i]:
                found.append(f"kernel, {label}: action {a.action} != C {b.action}")
            if a.packet != b.packet and not ours_trace.random_calls[i]:
                found.append(f"kernel, {label}: packet {a.packet.hex()} != C {b.packet.hex()}")
            diff = differences(kernel_state(ours_elf, ours), kernel_state(c_elf, twin), bench.kernel_volatile)
            found += [f"kernel, after {label}: {d}" for d in diff]
        if bench.random_counter is not None:
            found += _statistically(bench, ours_elf, ours, c_elf, twin)
    return found


def _counter(elf: bytes, obj: BpfObject, name: str) -> int:
    value = kernel_state(elf, obj)[name]
    assert isinstance(value, bytes)
    return int.from_bytes(value, "little")


def _statistically(bench: Benchmark, ours_elf: bytes, ours: BpfObject, c_elf: bytes, twin: BpfObject) -> list[str]:
    """The random counter's growth over STAT_RUNS runs of the hot packet, within six standard deviations."""
    assert bench.random_counter is not None
    grew = []
    for elf, obj in ((ours_elf, ours), (c_elf, twin)):
        before = _counter(elf, obj, bench.random_counter)
        run_xdp(obj.program_fd(bench.name), bench.hot_packet(), repeat=STAT_RUNS)
        grew.append(_counter(elf, obj, bench.random_counter) - before)
    a, b = grew
    if abs(a - b) > 6 * math.sqrt(a + b + 1):
        return [f"kernel, {STAT_RUNS} x {bench.hot}: {bench.random_counter} grew by {a} != C {b} (beyond chance)"]
    return []
