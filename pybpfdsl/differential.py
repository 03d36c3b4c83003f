"""Differential execution: run one program several ways on the same packets and find where they disagree.

An *execution* runs a sequence of packets from a given starting state and reports, after each packet,
the action, the packet bytes after the program and a snapshot of every state object. The four executions
are pure Python, the IR interpreter, the bytecode interpreter and the kernel (BPF_PROG_TEST_RUN). Each
execution starts from the same state (the state objects' values when `compare` is called) and leaves it
there afterwards, so comparisons can be repeated.

Every execution has the same reader of its ring buffers: it takes their records before the first packet
and after each one. Reading a kernel ring consumes it (the records move to the Python side and free
their room), so a reader that only looked in the Python executions would leave their buffers to fill
while the kernel's never did, and `output` would fail in one and not the other.

Randomness and time are inputs: pure Python and the IR interpreter read them from the same deterministic
source; the kernel's helpers cannot be fixed, so programs that use them are compared either without the
kernel, with fixed helper results (`compare(..., helpers=...)`: pure Python, the IR interpreter and the
bytecode interpreter running the very object the kernel loads), or with it, statistically
(`compare_statistically`: how often each packet gets each action, over many rounds). `uses_helpers` says
which programs need this.
"""

from __future__ import annotations

import math
import os
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field

from pybpfdsl.bpf.interpreter import ExecutionResult
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.interpreter import Environment, run_program
from pybpfdsl.lang.actions import XDP_REDIRECT
from pybpfdsl.lang.helpers import HelperSource, use_helpers
from pybpfdsl.lang.packet import Packet
from pybpfdsl.lang.redirect import RedirectTarget, last_redirect, record_redirect
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import BpfMap, Global, PerCpuArray, RawValue, StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType
from pybpfdsl.program import CompiledProgram, XdpProgram
from pybpfdsl.runtime.state_binding import sum_raw

Snapshot = dict[str, object]


@dataclass(frozen=True)
class Step:
    """What one packet did: the action, the packet afterwards and the state afterwards."""

    action: int
    packet: bytes
    state: Snapshot
    redirect: RedirectTarget | None = field(default=None, compare=False)
    """Where an XDP_REDIRECT goes, where the execution shows it (not the kernel's test run); compared by
    `compare` when both executions show it."""


def snapshot(state: dict[str, StateObject]) -> Snapshot:
    """Raw values of every state object (per-CPU arrays summed over CPUs, field by field for a Struct;
    a ring buffer: the records emitted so far and not polled, which a kernel's ring buffer gives up to
    the Python side)."""
    out: Snapshot = {}
    for name, obj in sorted(state.items()):
        if isinstance(obj, Global):
            out[name] = obj.raw_get()
        elif isinstance(obj, PerCpuArray):
            # Which CPU a kernel test run uses is not ours to choose, and Python lists the copies of the
            # CPUs it simulated while the kernel lists every possible CPU: compare totals over CPUs.
            if isinstance(obj.value_type, ScalarType):
                out[name] = {k: obj[k] for k in range(obj.max_entries)}
            else:
                out[name] = {k: sum_raw([v for v in obj.per_cpu(k) if isinstance(v, Struct)], obj.value_type)
                             for k in range(obj.max_entries)}
        elif isinstance(obj, BpfMap):
            entries: dict[RawValue, RawValue | None] = {k: obj.raw_lookup(k) for k in obj.raw_keys()}
            out[name] = dict(sorted(entries.items(), key=lambda kv: repr(kv[0])))
        elif isinstance(obj, RingBuf):
            out[name] = obj.records
    return out


HelperFactory = Callable[[], HelperSource]


@contextmanager
def _reading(state: dict[str, StateObject]) -> Iterator[Callable[[], Snapshot]]:
    """The ring buffers' reader for one execution: takes their records now, and on each call the records
    since, and gives the snapshot with every record taken so far. Afterwards the records taken are
    pending again, on the Python side, oldest first (the state an execution leaves, as without a reader).
    Enter it before loading a program and leave it after closing, so that the kernel's last records are
    on the Python side by then."""
    rings = {name: obj for name, obj in state.items() if isinstance(obj, RingBuf)}
    taken: dict[str, list[Struct]] = {name: [] for name in rings}

    def take() -> None:
        for name, ring in rings.items():
            taken[name] += ring.poll()

    def observe() -> Snapshot:
        take()
        return {**snapshot(state), **{name: list(records) for name, records in taken.items()}}

    take()
    try:
        yield observe
    finally:
        for name, ring in rings.items():
            ring.restore(taken[name] + ring.records)


def run_python(prog: XdpProgram, packets: Sequence[bytes], helpers: HelperFactory | None = None) -> list[Step]:
    """Pure-Python mode on each packet in turn."""
    state = prog.lower().state
    steps = []
    with _helpers(helpers), _reading(state) as observe:
        for p in packets:
            record_redirect(None)
            pkt = Packet(p)
            action = prog(pkt)
            steps.append(Step(action, pkt.data, observe(), last_redirect()))  # the packet as written
    return steps


def run_ir(prog: XdpProgram, packets: Sequence[bytes], helpers: HelperFactory | None = None) -> list[Step]:
    """The IR interpreter on each packet in turn."""
    lowered = prog.lower()
    env = _environment(lowered.program, lowered.state)
    steps = []
    with _helpers(helpers), _reading(lowered.state) as observe:
        for p in packets:
            result = run_program(lowered.program, p, env)
            steps.append(Step(result.action, result.packet, observe(), result.redirect))
    return steps


def run_bytecode(prog: XdpProgram, packets: Sequence[bytes], helpers: HelperFactory | None = None) -> list[Step]:
    """The bytecode interpreter on the compiled object, against the state objects."""
    from pybpfdsl.state_transfer import run_bytecode_result as interpret

    compiled = _compiled(prog)
    state = compiled.lowered.state
    steps = []
    with _helpers(helpers), _reading(state) as observe:
        for p in packets:
            result = interpret(compiled, p, state)
            steps.append(Step(result.action, result.packet, observe(), _bytecode_target(result)))
    return steps


def _bytecode_target(result: ExecutionResult) -> RedirectTarget | None:
    if result.redirect_element is not None:
        interp_map, key, _ = result.redirect_element
        return RedirectTarget(interp_map.name, key)
    return None if result.redirect_ifindex is None else RedirectTarget(None, result.redirect_ifindex)


def _redirects_differ(a: Step, b: Step) -> bool:
    return (a.action == XDP_REDIRECT and a.redirect is not None and b.redirect is not None
            and a.redirect != b.redirect)


def run_kernel(prog: XdpProgram, packets: Sequence[bytes]) -> list[Step]:
    """The kernel (BPF_PROG_TEST_RUN) on each packet in turn, with the state objects bound to its maps."""
    from pybpfdsl.runtime.loaded import LoadedProgram

    compiled = _compiled(prog)
    lowered = compiled.lowered
    lines = {i + 1: text for i, text in enumerate(lowered.source.file_lines)}
    state = lowered.state
    steps = []
    # What `prog.load()` does, from the object compiled once for every comparison of `prog`.
    with _reading(state) as observe, \
            LoadedProgram.load(compiled.elf, lowered.program, state, source_lines=lines) as loaded, _one_cpu():
        for p in packets:
            result = loaded.run(p)
            steps.append(Step(result.action, result.packet, observe()))
    return steps


@contextmanager
def _one_cpu() -> Iterator[None]:
    """Keep this thread on one CPU: a test run executes on the caller's CPU, and a program reading a
    per-CPU map must see the copy the previous packets wrote, as in pure Python."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    allowed = os.sched_getaffinity(0)
    cpus = sorted(allowed)
    os.sched_setaffinity(0, {cpus[os.getpid() % len(cpus)]})  # spread parallel test processes
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


_COMPILED: weakref.WeakKeyDictionary[XdpProgram, CompiledProgram] = weakref.WeakKeyDictionary()


def _compiled(prog: XdpProgram) -> CompiledProgram:
    """`prog`'s object, compiled once for all comparisons (the same IR gives the same bytes): comparing
    executions needs the bytecode, neither its proof nor the safety verifier's verdict."""
    compiled = _COMPILED.get(prog)
    if compiled is None or compiled.lowered is not prog.lower() or compiled.cpu != prog.cpu:
        compiled = _COMPILED[prog] = prog.compile(prove=False, verify=False)
    return compiled


def _environment(program: n.Program, state: dict[str, StateObject]) -> Environment:
    maps = {m.name: state[m.name] for m in program.maps}
    globals_ = {g.name: state[g.name] for g in program.globals}
    ringbufs = {r.name: state[r.name] for r in program.ringbufs}
    return Environment(maps=maps, globals=globals_, ringbufs=ringbufs)  # type: ignore[arg-type]


def _helpers(factory: HelperFactory | None) -> AbstractContextManager[object]:
    return use_helpers(factory()) if factory is not None else nullcontext()


@dataclass(frozen=True)
class Mismatch:
    """The first packet where two executions disagree, and how."""

    index: int
    packet: bytes
    left: str
    right: str
    left_step: Step
    right_step: Step

    def __str__(self) -> str:
        what = []
        a, b = self.left_step, self.right_step
        if a.action != b.action:
            what.append(f"action {a.action} vs {b.action}")
        if a.packet != b.packet:
            what.append("packet bytes differ")
        if _redirects_differ(a, b):
            what.append(f"redirect to {a.redirect} vs {b.redirect}")
        if a.state != b.state:
            keys = [k for k in a.state if a.state.get(k) != b.state.get(k)]
            what.append("state differs in " + ", ".join(keys) + f": {[a.state[k] for k in keys]} vs "
                        f"{[b.state.get(k) for k in keys]}")
        return (f"packet #{self.index} ({self.packet.hex()}): {self.left} and {self.right} disagree: "
                + "; ".join(what))


EXECUTIONS: dict[str, Callable[[XdpProgram, Sequence[bytes], HelperFactory | None], list[Step]]] = {
    "python": run_python,
    "ir": run_ir,
    "bytecode": run_bytecode,
    "kernel": lambda prog, packets, helpers: run_kernel(prog, packets),
}


def compare(prog: XdpProgram, packets: Iterable[bytes],
            executions: Sequence[str] = ("python", "ir", "bytecode", "kernel"),
            helpers: HelperFactory | None = None) -> Mismatch | None:
    """Run `packets` through each execution from the current state; the first disagreement, or None.

    `helpers` makes a fresh deterministic helper source per execution (all but the kernel). The
    state objects are left as they were before the call.
    """
    packets = list(packets)
    state = prog.lower().state
    saved = {name: obj.save() for name, obj in state.items()}

    def restore() -> None:
        for name, obj in state.items():
            obj.restore(saved[name])

    results: dict[str, list[Step]] = {}
    try:
        for name in executions:
            restore()
            results[name] = EXECUTIONS[name](prog, packets, helpers)
    finally:
        restore()
    base = executions[0]
    for other in executions[1:]:
        for index, (a, b) in enumerate(zip(results[base], results[other])):
            if a != b or _redirects_differ(a, b):
                return Mismatch(index, packets[index], base, other, a, b)
    return None


def uses_helpers(prog: XdpProgram, helpers: Iterable[n.Helper] = (n.Helper.PRANDOM_U32, n.Helper.KTIME_GET_NS,
                                                                   n.Helper.SMP_PROCESSOR_ID)) -> bool:
    """True when the program calls a helper whose result the kernel does not let a test fix."""
    wanted = set(helpers)
    return any(isinstance(i, n.CallHelper) and i.helper in wanted
               for b in prog.lower().program.blocks for i in b.instrs)


@dataclass(frozen=True)
class FrequencyMismatch:
    """A packet that two executions give an action at rates too far apart to be chance."""

    index: int
    packet: bytes
    action: int
    left: str
    right: str
    left_count: int
    right_count: int
    rounds: int

    def __str__(self) -> str:
        return (f"packet #{self.index} ({self.packet.hex()}): action {self.action} in {self.left_count} of "
                f"{self.rounds} rounds in {self.left} but {self.right_count} in {self.right}")


def _action_counts(steps: Sequence[Step], packets: int) -> list[Counter[int]]:
    counts: list[Counter[int]] = [Counter() for _ in range(packets)]
    for k, step in enumerate(steps):
        counts[k % packets][step.action] += 1
    return counts


def _beyond_chance(k1: int, k2: int, n: int, z: float) -> bool:
    """Whether k1 and k2 successes out of n each differ by more than `z` standard errors of the
    difference of two proportions (pooled), plus one count of slack for rates near 0 or 1."""
    pooled = (k1 + k2) / (2 * n)
    se = math.sqrt(2 * pooled * (1 - pooled) / n)
    return abs(k1 - k2) / n > z * se + 1 / n


def compare_statistically(prog: XdpProgram, packets: Iterable[bytes], rounds: int = 200,
                          executions: tuple[str, str] = ("python", "kernel"),
                          z: float = 5.0) -> FrequencyMismatch | None:
    """Run `packets` `rounds` times in a row through each of two executions, each with its own helper
    results (the kernel's own; outside the kernel the system's randomness and clock), from the same
    starting state; the first (packet, action) whose frequencies differ beyond chance, or None.

    For programs whose actions depend on `random()`, which no test can fix in the kernel. At `z`
    standard errors (5 by default), a correct program is reported less than once in a million
    comparisons. At 200 rounds it finds a drop rate of 5 % where 50 % was meant; a difference of a
    few percent needs thousands of rounds (the standard error shrinks with their square root). Not for
    programs whose actions depend on elapsed time: the kernel runs a round in microseconds, Python in
    milliseconds, so a rate limiter refills differently (compare those with fixed helper results).
    The state objects are left as they were before the call."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    once = list(packets)
    sequence = once * rounds
    state = prog.lower().state
    saved = {name: obj.save() for name, obj in state.items()}
    counts: dict[str, list[Counter[int]]] = {}
    try:
        for name in executions:
            for obj_name, obj in state.items():
                obj.restore(saved[obj_name])
            counts[name] = _action_counts(EXECUTIONS[name](prog, sequence, None), len(once))
    finally:
        for obj_name, obj in state.items():
            obj.restore(saved[obj_name])
    left, right = executions
    for index, (a, b) in enumerate(zip(counts[left], counts[right])):
        for action in sorted(set(a) | set(b)):
            if _beyond_chance(a[action], b[action], rounds, z):
                return FrequencyMismatch(index, once[index], action, left, right, a[action], b[action], rounds)
    return None
