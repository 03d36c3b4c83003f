"""What is checked for one generated program, shared by the test sample and `benchmarks/generated_corpus.py`.

1. It compiles, or gives a DslError that names the generated file and a line in it (anything else that
   escapes the compiler is a bug, recorded with its traceback).
2. The executions agree on the packets: all four exactly for a program without kernel helpers; with
   `random()`/`now_ns()`, pure Python, the IR and the bytecode with the same fixed helper results, and,
   for `random()` without the clock, pure Python and the kernel by action frequencies.
   A program with `cpu_id()` is compared on one CPU that every execution agrees on; one with `fib_lookup`
   with the routes of a namespace made for it (`fib_namespace`), which pure Python and the interpreters
   get as a scripted table; one with `CHECKSUM_OFFLOAD` must leave those checksums as they were.
3. Our verifier accepts it iff the kernel loads it.
4. The proof (when asked for) says nothing false: "proven" only where the IR and the bytecode agree on the
   packets, "counterexample" only with a replay that differs.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import io
import os
import random as pyrandom
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from pybpfdsl import DslError, XdpProgram
from pybpfdsl.differential import EXECUTIONS, HelperFactory, compare, compare_statistically, run_python
from pybpfdsl.differential import _compiled as compiled_for_comparisons
from pybpfdsl.lang import fixed
from pybpfdsl.lang.fib import Route, use_routes
from pybpfdsl.runtime.errors import KernelVerifierError
from pybpfdsl.runtime.loaded import LoadedProgram
from pybpfdsl.testing import FixedHelpers
from tests.generated.checksums import changed_checksums, invalid_checksums
from tests.generated.program_strategy import RANDOM_PROBABILITIES, GeneratedProgram


@dataclass
class Outcome:
    """The result of every check on one program (None: the check did not run)."""

    name: str
    path: str
    constructs: list[str] = field(default_factory=list)
    compiled: bool = False
    dsl_error: str | None = None
    dsl_error_located: bool | None = None  # the error names the generated file and a line in it
    traceback: str | None = None  # a failure that is not a DslError (where, and the trace)
    disagreement: str | None = None
    printed: str | None = None  # print() output that differs between executions
    checksums: str | None = None  # a checksum valid before the program and not after it
    statistical: str | None = None
    mode: str = "exact"  # or "fixed helpers"
    verifier_ok: bool | None = None
    verifier_error: str | None = None
    verify_seconds: float | None = None  # CPU seconds of our verifier (the machine may be shared)
    kernel_ok: bool | None = None
    kernel_error: str | None = None
    proof: str | None = None
    proof_reason: str | None = None
    false_proof: str | None = None

    @property
    def verifier_mismatch(self) -> str | None:
        """"unsafe accept" (ours yes, the kernel no), "false alarm" (ours no, the kernel yes), or None."""
        if self.verifier_ok is None or self.kernel_ok is None or self.verifier_ok == self.kernel_ok:
            return None
        return "unsafe accept" if self.verifier_ok else "false alarm"

    def problems(self) -> list[str]:
        """Everything that is a bug, in a line each."""
        out = []
        if self.traceback:
            out.append(f"traceback: {self.traceback.strip().splitlines()[-1]}")
        if self.dsl_error is not None and not self.dsl_error_located:
            out.append(f"DslError without the generated file's line: {self.dsl_error}")
        if self.disagreement:
            out.append(f"executions disagree: {self.disagreement}")
        if self.printed:
            out.append(f"print output differs: {self.printed}")
        if self.checksums:
            out.append(f"checksum broken by a write: {self.checksums}")
        if self.statistical:
            out.append(f"kernel frequencies differ: {self.statistical}")
        if self.verifier_mismatch:
            out.append(f"verifier vs kernel: {self.verifier_mismatch}: ours: {self.verifier_error or 'safe'}; "
                       f"kernel: {self.kernel_error or 'loaded'}")
        if self.false_proof:
            out.append(f"false proof verdict: {self.false_proof}")
        return out


_loaded = 0


def load_module(source: str, directory: Path, stem: str) -> tuple[ModuleType, Path]:
    """Write `source` to `directory/stem.py` and import it (so errors point at a real file)."""
    global _loaded
    _loaded += 1
    path = directory / f"{stem}.py"
    path.write_text(source)
    name = f"_pybpfdsl_generated_{stem}_{_loaded}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module, path


FIB_SMAC, FIB_DMAC = 0x02_00_4D_00_00_01, 0x02_00_4D_00_00_02


@functools.cache
def fib_namespace() -> tuple[str, int] | None:
    """A network namespace whose FIB `fib_lookup` programs are run against in the kernel (one per
    process, deleted at exit): a veth `v0` with 10.77.0.1/24, a permanent neighbour 10.77.0.2, forwarding
    on. (name, index of v0), or None where namespaces cannot be made (the kernel is then left out)."""
    from tests.e2e.netns import add_routed_namespace, environment_problem, ip

    if environment_problem() is not None:
        return None
    ns = f"pbdgen{os.getpid()}"
    ip("netns", "del", ns, check=False)
    atexit.register(ip, "netns", "del", ns, check=False)
    return ns, add_routed_namespace(ns, FIB_SMAC, FIB_DMAC)


def fib_routes(v0: int) -> list[Route]:
    """The namespace's FIB as the scripted table: the neighbour found; the rest of its link without a
    neighbour (the kernel's NO_NEIGH, 7); anything else no route (NOT_FORWARDED, the table's default)."""
    return [Route("10.77.0.2/32", v0, FIB_SMAC, FIB_DMAC), Route("10.77.0.0/24", v0, status=7)]


@contextlib.contextmanager
def _fib_world(gen: GeneratedProgram, kernel: bool) -> Iterator[bool]:
    """The routes of `fib_namespace` for every execution; yields whether the kernel can take part."""
    if not gen.uses_fib:
        yield kernel
        return
    made = fib_namespace() if kernel else None
    if made is None:
        with use_routes(fib_routes(2)):
            yield False
        return
    from tests.e2e.netns import inside

    ns, v0 = made
    with use_routes(fib_routes(v0)), inside(ns):
        yield kernel


def _comparison_cpu() -> int:
    """The CPU a `cpu_id()` program is compared on: 0 where this process may run there."""
    return min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0


@contextlib.contextmanager
def _on_one_cpu(gen: GeneratedProgram, cpu: int) -> Iterator[None]:
    """For a program reading `cpu_id()`: the process kept on `cpu` (the kernel's test runs run on the
    caller's CPU, and `differential._one_cpu` keeps it there), which the other executions are told."""
    if not gen.uses_cpu or not hasattr(os, "sched_setaffinity"):
        yield
        return
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def _trace(where: str) -> str:
    return f"{where}:\n{traceback.format_exc()}"


def check_program(gen: GeneratedProgram, directory: Path, stem: str, packets: list[bytes], *, seed: int = 0,
                  kernel: bool = True, prove_budget: int | None = None, statistical_rounds: int = 60) -> Outcome:
    """Run every check on `gen` (written to `directory/stem.py`); never raises for a program's failure."""
    out = Outcome(stem, str(directory / f"{stem}.py"), sorted(gen.constructs))
    try:
        module, path = load_module(gen.source, directory, stem)
    except Exception:
        out.traceback = _trace("importing the generated module (a generator bug)")
        return out
    prog = getattr(module, gen.function)
    assert isinstance(prog, XdpProgram)
    try:
        prog.lower()
    except DslError as exc:
        out.dsl_error = exc.message
        loc = exc.location
        out.dsl_error_located = loc is not None and Path(loc.file).resolve() == path.resolve() and \
            1 <= loc.line <= gen.source.count("\n")
        return out
    except Exception:
        out.traceback = _trace("lowering")
        return out
    try:
        # The object the comparisons use too (one compilation instead of three: the IR passes are slow).
        compiled = compiled_for_comparisons(prog)
    except Exception:
        out.traceback = _trace("compiling")
        return out
    out.compiled = True

    from pybpfdsl.verify.analysis.api import verify_program

    started = time.process_time()
    try:
        report = verify_program(compiled.subject)
        out.verifier_ok = bool(report.ok)
        if not report.ok:
            first = report.errors[0]
            out.verifier_error = f"{first.code.value}: {first.message}"
    except Exception:
        out.traceback = _trace("our verifier")
    out.verify_seconds = time.process_time() - started

    if kernel:
        try:
            lowered = compiled.lowered
            with LoadedProgram.load(compiled.elf, lowered.program, lowered.state,
                                    source_lines=compiled.source_lines()):
                pass
            out.kernel_ok = True
        except KernelVerifierError as exc:
            out.kernel_ok = False
            lines = str(exc).strip().splitlines()  # where, then the kernel's reason
            out.kernel_error = " | ".join(line.strip() for line in lines[:2])[:300]
        except Exception:
            out.traceback = _trace("loading into the kernel")
    executions: tuple[str, ...] = ("python", "ir", "bytecode")
    rng = pyrandom.Random(seed)
    randoms = [rng.getrandbits(32) for _ in range(997)]
    # A quarter of the random values lie at the thresholds of `random() op p` for the generator's p
    # (the raw value just below, at and just above p * 2**32), where a rounding would show.
    edges = sorted({max(0, min(2**32 - 1, fixed.ceil_from_float(float(p)) + d))
                    for p in RANDOM_PROBABILITIES for d in (-1, 0, 1)})
    for i in range(0, len(randoms), 4):
        randoms[i] = edges[rng.randrange(len(edges))]

    cpu = _comparison_cpu() if gen.uses_cpu else 0

    def helpers() -> FixedHelpers:
        return FixedHelpers(random=randoms, clock_ns=seed * 1_000_003, clock_step_ns=977, cpu=cpu)

    # print() in pure Python and the interpreters
    with contextlib.redirect_stdout(io.StringIO()), _on_one_cpu(gen, cpu), \
            _fib_world(gen, bool(out.kernel_ok)) as with_kernel:
        _execute(out, gen, prog, packets, executions, helpers, statistical_rounds, with_kernel)

        if prove_budget:
            _prove(out, prog, compiled, packets, helpers if gen.uses_helpers or gen.uses_cpu else None, prove_budget)
    return out


def _execute(out: Outcome, gen: GeneratedProgram, prog: XdpProgram, packets: list[bytes],
             executions: tuple[str, ...], helpers: HelperFactory, statistical_rounds: int, kernel: bool) -> None:
    try:
        if gen.uses_helpers:
            out.mode = "fixed helpers"
            mismatch = compare(prog, packets, executions=executions, helpers=helpers)
        else:
            # The kernel ignores `helpers`; the others take the CPU from it (a cpu_id() program).
            mismatch = compare(prog, packets, executions=executions + (("kernel",) if kernel else ()),
                               helpers=helpers if gen.uses_cpu else None)
        out.disagreement = None if mismatch is None else str(mismatch)
        fixed_helpers = helpers if gen.uses_helpers or gen.uses_cpu else None
        if mismatch is None and gen.uses_print:
            out.printed = _compare_prints(prog, packets, fixed_helpers)
        if mismatch is None and gen.keeps_checksums:
            out.checksums = _broken_checksums(prog, packets, fixed_helpers, gen.offloaded)
        if gen.uses_random and not gen.uses_clock and out.kernel_ok and statistical_rounds:
            frequency = compare_statistically(prog, packets[:4], rounds=statistical_rounds)
            out.statistical = None if frequency is None else str(frequency)
    except Exception:
        out.traceback = _trace("running the executions")


def _broken_checksums(prog: XdpProgram, packets: list[bytes], helpers: HelperFactory | None,
                      offloaded: tuple[str, ...] = ()) -> str | None:
    """The first packet whose valid checksums the program's writes left invalid (computed from scratch;
    the executions agree, so pure Python's packets stand for all four), or whose offloaded checksums
    (`CHECKSUM_OFFLOAD`, which the NIC computes) they changed."""
    state = prog.lower().state
    saved = {name: obj.save() for name, obj in state.items()}
    try:
        steps = run_python(prog, packets, helpers)
    finally:
        for name, obj in state.items():
            obj.restore(saved[name])
    for index, (before, step) in enumerate(zip(packets, steps)):
        bad = [name for name in invalid_checksums(before, step.packet) if name.split()[0] not in offloaded]
        bad += [f"{name} (offloaded, changed)" for name in changed_checksums(before, step.packet, offloaded)]
        if bad:
            return f"packet #{index} ({before.hex()}) -> ({step.packet.hex()}): {', '.join(bad)}"
    return None


def _compare_prints(prog: XdpProgram, packets: list[bytes], helpers: HelperFactory | None,
                    executions: tuple[str, ...] = ("python", "ir")) -> str | None:
    """What print() wrote in pure Python and in the IR interpreter, from the same starting state; the first
    line that differs, or None. (The bytecode interpreter computes bpf_trace_printk's length, not its text;
    the kernel writes to the shared trace pipe: tests/differential/test_print.py reads it.)"""
    state = prog.lower().state
    saved = {name: obj.save() for name, obj in state.items()}
    texts: dict[str, list[str]] = {}
    try:
        for name in executions:
            for obj_name, obj in state.items():
                obj.restore(saved[obj_name])
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                EXECUTIONS[name](prog, packets, helpers)
            texts[name] = buffer.getvalue().splitlines()
    finally:
        for obj_name, obj in state.items():
            obj.restore(saved[obj_name])
    base = executions[0]
    for other in executions[1:]:
        a, b = texts[base], texts[other]
        for k in range(max(len(a), len(b))):
            left = a[k] if k < len(a) else "<nothing>"
            right = b[k] if k < len(b) else "<nothing>"
            if left != right:
                return f"line {k + 1}: {base} printed {left!r}, {other} {right!r}"
    return None


def _prove(out: Outcome, prog: XdpProgram, compiled: object, packets: list[bytes], helpers: object,
           budget: int) -> None:
    from pybpfdsl.verify.equivalence.prove import prove_compiled

    try:
        result = prove_compiled(compiled.subject, budget=budget)  # type: ignore[attr-defined]
    except Exception:
        out.traceback = _trace("the proof")
        return
    out.proof = result.status
    out.proof_reason = result.reason or None
    if result.status == "proven":
        mismatch = compare(prog, packets, executions=("ir", "bytecode"), helpers=helpers)  # type: ignore[arg-type]
        if mismatch is not None:
            out.false_proof = f"proven, but {mismatch}"
    elif result.status == "counterexample":
        cex = result.counterexample
        if cex is None or not cex.reproduced:
            out.false_proof = "a counterexample whose replay does not differ"
