"""The numbers: sizes from the objects, JIT instructions and run time from the kernel, executed
instructions from the bytecode interpreter, compile times from the compilers.

Run time is BPF_PROG_TEST_RUN's own per-run average over `REPEAT` runs of the hot packet; `TRIALS` such
measurements per program, interleaved across the programs being compared (so a busy moment of the machine
hits them all alike), reduced to their median, minus the median of an empty program measured alongside.
"""

from __future__ import annotations

import inspect
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from benchmarks.size_speed.state import seed_kernel
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.bpf_object import BpfObject
from pybpfdsl.runtime.jit_info import jited_instruction_count, xlated_instruction_count
from pybpfdsl.runtime.kernel_run import run_xdp

TRIALS = 7
REPEAT = 100_000
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
    """Median ns per run of the hot packet, the empty program's median subtracted."""
    raw_ns: float


def kernel_numbers(objects: dict[str, tuple[bytes, str]], empty: tuple[bytes, str], packet: bytes,
                   globals_init: Mapping[str, int]) -> tuple[dict[str, KernelNumbers], float]:
    """Load every object (key -> (ELF, program name)) and the empty program, write `globals_init` into
    each object but the empty one, time them interleaved; the numbers by key, and the empty program's
    median ns."""
    loaded: dict[str, tuple[BpfObject, int]] = {}
    try:
        for key, (elf, name) in {**objects, "_empty": empty}.items():
            obj = BpfObject.load(elf, key[:15])
            loaded[key] = (obj, obj.program_fd(name))
            if key != "_empty":
                seed_kernel(elf, obj, globals_init, ())
        times: dict[str, list[int]] = {key: [] for key in loaded}
        for _ in range(TRIALS):
            for key, (_, fd) in loaded.items():
                times[key].append(run_xdp(fd, packet, repeat=REPEAT).duration_ns)
        baseline = statistics.median(times["_empty"])
        return {key: KernelNumbers(xlated_instruction_count(fd), jited_instruction_count(fd),
                                   statistics.median(times[key]) - baseline, statistics.median(times[key]))
                for key, (_, fd) in loaded.items() if key != "_empty"}, baseline
    finally:
        for obj, _ in loaded.values():
            obj.close()
