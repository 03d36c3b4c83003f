"""The numbers: sizes from the objects, JIT instructions and run time from the kernel, executed
instructions from the bytecode interpreter, compile times from the compilers.

Run time per packet: the CPU time this thread spends in one BPF_PROG_TEST_RUN of `REPEAT` runs of the hot
packet, divided by `REPEAT` (the kernel's own `duration` is that average rounded down to a whole ns, too
coarse for programs 2-5 ns above the empty one; the syscall's setup, a few microseconds, is the same for
every program and comes out with the empty program's time). Each object is loaded `LOADS` times (where the
JIT image and the maps land moves a program's time by up to a nanosecond from one load to the next, more
than the rounds of one load vary), and each of `TRIALS` rounds times every loaded copy once, in a shuffled
order (so a busy moment of the machine or a cache state left by one program does not always fall on the
same one). A program's ns is the median of its samples minus the empty program's median. Ours against
clang (`paired`): for each load, the median over the rounds of the two programs' difference in the same
round; then the median of those `LOADS` numbers, with a distribution-free interval over the loads (the
placement is what varies most, so the interval is over placements, not rounds).

The kernel runs the repeats on one buffer: a program that moves the packet sees its own output the next
time. vlan_tagging's timed runs alternate its two paths (the push to the trunk, then the pop of the tag it
pushed), for both compilers alike.
"""

from __future__ import annotations

import inspect
import math
import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from benchmarks.size_speed.state import seed_kernel
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.bpf_object import BpfObject
from pybpfdsl.runtime.jit_info import jited_instruction_count, xlated_instruction_count
from pybpfdsl.runtime.kernel_run import run_xdp

TRIALS = 11
REPEAT = 100_000
LOADS = 8
SHUFFLE_SEED = 0
COMPILE_TRIALS = 3

PASS_SWITCHES = ("optimize", "passes", "ir_passes")
"""Keywords that turn the IR optimizer passes on or off, if the build has one: looked for on
`XdpProgram.compile` first, then on `backend.compile.compile_program` (which `compile` calls)."""


def _keyword(function: Callable[..., object]) -> str | None:
    params = inspect.signature(function).parameters
    return next((name for name in PASS_SWITCHES if name in params), None)


def passes_switch() -> str | None:
    """Where this build turns the IR passes on and off (`XdpProgram.compile(optimize=)` or
    `compile_program(optimize=)`), or None when it has no switch."""
    from pybpfdsl.backend.compile import compile_program

    if (name := _keyword(XdpProgram.compile)) is not None:
        return f"XdpProgram.compile({name}=)"
    if (name := _keyword(compile_program)) is not None:
        return f"compile_program({name}=)"
    return None


def compile_ours(prog: XdpProgram, passes: bool | None) -> Callable[[], tuple[bytes, float]]:
    """A function that compiles `prog` afresh (lowering included) with the passes on, off, or the default
    (None), and returns the object and the seconds it took."""
    from pybpfdsl.backend.compile import compile_program
    from pybpfdsl.frontend.lower import lower_function

    on_program = _keyword(XdpProgram.compile)
    on_backend = _keyword(compile_program)

    def run() -> tuple[bytes, float]:
        started = time.perf_counter()
        if passes is None or on_program is not None or on_backend is None:
            fresh = XdpProgram(prog.function, name=prog.name, cpu=prog.cpu, license=prog.license)
            kwargs: dict[str, object] = {"prove": False, "verify": False}
            if passes is not None and on_program is not None:
                kwargs[on_program] = passes
            elf = fresh.compile(**kwargs).elf  # type: ignore[arg-type]
        else:  # the switch is only on the backend: the same steps compile() takes, with it
            lowered = lower_function(prog.function, prog.name)
            elf = compile_program(lowered.program, cpu=prog.cpu, opt_level=2, license=prog.license,
                                  **{on_backend: passes}).elf
        return elf, time.perf_counter() - started

    return run


def median_seconds(build: Callable[[], tuple[bytes, float]]) -> tuple[bytes, float]:
    results = [build() for _ in range(COMPILE_TRIALS)]
    return results[-1][0], statistics.median(s for _, s in results)


@dataclass(frozen=True)
class KernelNumbers:
    xlated: int
    jited: int | None
    ns: float
    """Median ns per run of the hot packet (CPU time), the empty program's median subtracted."""
    raw_ns: float
    kernel_ns: float
    """The kernel's own per-run duration (whole ns), mean over the samples, the empty program's subtracted."""
    samples: tuple[tuple[float, ...], ...]
    """ns per run, by load then round: the samples `paired` compares."""


@dataclass(frozen=True)
class Paired:
    """`a - b` in ns per packet: the median over loads of each load's median paired difference, and an
    interval over the loads (93% for 8 loads: the 2nd and 7th of the 8 sorted)."""
    median: float
    low: float
    high: float
    a_faster: int
    """Samples (a load's round) in which a took less time than b."""
    samples: int


def _interval_rank(n: int) -> int:
    """The 0-based rank of the interval's low end among `n` sorted per-load numbers."""
    return max(0, math.floor((n - 1.96 * math.sqrt(n)) / 2))


def interval_confidence(loads: int) -> float:
    """How often `paired`'s interval over `loads` loads holds the median of the per-load numbers'
    distribution, whatever it is (exact binomial: 0.93 for 8 loads, 0.96 for 128)."""
    k = _interval_rank(loads)
    outside = sum(math.comb(loads, i) for i in range(k + 1)) / 2 ** loads
    return 1 - 2 * outside


def paired(a: KernelNumbers, b: KernelNumbers) -> Paired:
    """The differences of two programs timed in the same rounds (a round's busy moment falls on both),
    reduced per load to their median, then over the loads. The interval holds the median of the loads'
    numbers whatever their distribution: order statistics n/2 -+ 0.98 sqrt(n) (the binomial's normal
    approximation; the extremes for fewer than 8 loads)."""
    per_load = [[x - y for x, y in zip(xs, ys, strict=True)] for xs, ys in zip(a.samples, b.samples, strict=True)]
    medians = sorted(statistics.median(d) for d in per_load)
    n = len(medians)
    k = _interval_rank(n)
    every = [x for d in per_load for x in d]
    return Paired(statistics.median(medians), medians[k], medians[n - 1 - k], sum(d < 0 for d in every),
                  len(every))


def _time_one(fd: int, packet: bytes) -> tuple[float, int]:
    """One test run of `REPEAT` runs: (CPU ns per run of this thread, the kernel's per-run duration)."""
    started = time.thread_time_ns()
    duration = run_xdp(fd, packet, repeat=REPEAT).duration_ns
    return (time.thread_time_ns() - started) / REPEAT, duration


def kernel_numbers(objects: dict[str, tuple[bytes, str]], empty: tuple[bytes, str], packet: bytes,
                   globals_init: Mapping[str, int],
                   map_init: tuple[tuple[str, bytes, bytes], ...] = ()) -> tuple[dict[str, KernelNumbers], float]:
    """Load every object (key -> (ELF, program name)) and the empty program `LOADS` times each, write
    `globals_init` and `map_init` into each copy but the empty ones, time them in shuffled rounds; the
    numbers by key, and the empty program's median ns."""
    copies: dict[tuple[str, int], tuple[BpfObject, int]] = {}
    shuffle = random.Random(SHUFFLE_SEED)
    try:
        for load in range(LOADS):
            for key, (elf, name) in {**objects, "_empty": empty}.items():
                obj = BpfObject.load(elf, key[:15])
                copies[key, load] = (obj, obj.program_fd(name))
                if key != "_empty":
                    seed_kernel(elf, obj, globals_init, map_init)
        cpu: dict[tuple[str, int], list[float]] = {c: [] for c in copies}
        kernel: dict[tuple[str, int], list[int]] = {c: [] for c in copies}
        order = list(copies)
        for _ in range(TRIALS):
            shuffle.shuffle(order)
            for c in order:
                ns, duration = _time_one(copies[c][1], packet)
                cpu[c].append(ns)
                kernel[c].append(duration)

        def samples(key: str) -> tuple[float, ...]:
            return tuple(x for load in range(LOADS) for x in cpu[key, load])

        def kernel_mean(key: str) -> float:
            return statistics.mean(d for load in range(LOADS) for d in kernel[key, load])

        baseline = statistics.median(samples("_empty"))
        numbers = {}
        for key in objects:
            fd = copies[key, 0][1]
            mine = samples(key)
            numbers[key] = KernelNumbers(
                xlated_instruction_count(fd), jited_instruction_count(fd),
                statistics.median(mine) - baseline, statistics.median(mine),
                kernel_mean(key) - kernel_mean("_empty"),
                tuple(tuple(x - baseline for x in cpu[key, load]) for load in range(LOADS)))
        return numbers, baseline
    finally:
        for obj, _ in copies.values():
            obj.close()
