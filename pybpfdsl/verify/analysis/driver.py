"""The whole analysis of one program: the fixpoint (:mod:`.fixpoint`) from the entry state, the loop
pass (:mod:`.loops`), then one more walk over the final states with the checks on, which collects the
findings. :func:`analyse` runs it without partitions first and again with them only if that finds errors.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pybpfdsl.bpf.abi import BPF_COMPLEXITY_LIMIT_INSNS
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.cfg import Cfg, build_cfg
from pybpfdsl.verify.analysis.checks import Code, Sink, VerifierFinding
from pybpfdsl.verify.analysis.fixpoint import WIDEN_LIMIT, NotConverging, narrow, propagate
from pybpfdsl.verify.analysis.liveness import live_in
from pybpfdsl.verify.analysis.loops import Deferred, Resolved, check_loops
from pybpfdsl.verify.analysis.partitions import MAX_PARTS, Partitioner, Parts, forget, joined
from pybpfdsl.verify.analysis.transfer import Env, step

__all__ = ["Analysis", "analyse"]


@dataclass
class Analysis:
    env: Env
    cfg: Cfg
    pre: dict[int, State]
    """The invariant before each abstractly reachable instruction (the join of its partitions)."""
    findings: list[VerifierFinding]
    processed: int
    """Instructions simulated (fixpoint + narrowing + loop unrolling): our analogue of the kernel's count."""
    loop_iterations: dict[int, int]
    """Loop head → iterations the termination pass needed (bounded loops only)."""
    parts: dict[int, tuple[State, ...]] = field(default_factory=dict)
    """The partitions before each instruction (their union is ``pre``)."""
    kernel_estimate: int = 0
    """Estimate of the instructions the kernel processes (its per-path exploration of each loop, see
    :func:`kernel_states_at`, plus our fixpoint's work for the rest, which undercounts the kernel's
    paths through loop-free code); past the kernel's limit the program is refused as too complex. It
    stops counting once past the limit."""
    deferred: list[Deferred] = field(default_factory=list)
    """Simulations of the kernel's work left for when the verdict depends on them (see ``check_loops``)."""


def analyse(env: Env, entry: State | None = None, max_parts: int = MAX_PARTS) -> Analysis:
    """Analyse without partitioning; if that finds errors, again with partitions (see :func:`partition_key`);
    see :func:`_analyse_both`."""
    with _no_cycle_collection():
        try:
            return _analyse_both(env, entry, max_parts)
        finally:
            forget()


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused for the analysis: the analysis allocates millions of small
    objects, none of them in reference cycles (states, values and tuples are immutable and refer only
    to older ones), so reference counting frees them all; the collector, run every few thousand
    allocations, would only walk the long-lived objects of the domain's caches again and again (a
    fifth of the time on the benchmark corpora). Cycles made meanwhile elsewhere are collected once
    it runs again.

    On the way out, what the analysis left alive (its report's states, the domain's caches: tens of
    thousands of objects) goes straight to the oldest generation (``freeze`` then ``unfreeze``), with the
    count of new allocations reset: else the first allocation after ``enable`` starts a young collection
    that walks every one of them, and the next ones walk them again on their way up (4% of the benchmark
    corpora's time). They are still examined by the next full collection, so a cycle among them is
    collected as it would have been. (Not when the process froze objects of its own, which ``unfreeze``
    would let go.)"""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
        gc.enable()


def _analyse_both(env: Env, entry: State | None, max_parts: int) -> Analysis:
    """Analyse without partitioning; if that finds errors, again with partitions (see :func:`partition_key`).

    Why keeping only the instructions *both* analyses flag is sound: each analysis over-approximates
    every execution up to that execution's first violation (a transfer function is sound on every
    step that does not violate a check), and each check is sound (a state that violates it concretely
    lies in an abstract state that fails it). So the instruction of any execution's first violation is
    flagged by both analyses, whatever each calls the problem: an instruction either one proves safe
    is safe, and one both flag is kept. The match is on the instruction alone, never on the code: at
    a join of a lookup result and its NULL the plain analysis sees "may be NULL" where the
    partitioned one sees "a scalar", and matching on (code, instruction) dropped both (an unsafe
    accept). The messages shown are the partitioned analysis' (closer to the kernel's, which follows
    one path at a time).
    """
    try:
        base = _analyse(env, entry, 1)
    except NotConverging as exc:
        return _not_converged(env, exc)
    # The simulation of the kernel's exploration that :func:`check_loops` deferred runs only where the
    # verdict depends on it: it can only add a refusal, so a program refused for another reason does not
    # need it (its estimate stays the bound that called for it).
    if not any(f.is_error for f in base.findings):
        _run_deferred(base)
    if max_parts <= 1 or not any(f.is_error for f in base.findings):
        _skip_deferred(base)
        return base
    # Loops: re-run the termination pass only where the plain analysis called a loop unbounded (a quick
    # verdict); one it proved bounded needs no second proof, and one that exhausted the unrolling budget
    # keeps its finding rather than spend the budget again.
    recheck = {f.insn for f in base.findings if f.code == Code.UNBOUNDED_LOOP}
    try:
        fine = _analyse(env, entry, max_parts, recheck)
    except NotConverging:
        # The partitioned analysis is no over-approximation once it stopped short; the plain one is, and
        # it already refuses the program (that is why the partitioned one ran).
        _skip_deferred(base)
        return base
    raw = fine.findings
    _keep_flagged(fine, raw, base)
    if base.deferred and not any(f.is_error for f in fine.findings):
        _run_deferred(base)
        _keep_flagged(fine, raw, base)
    _skip_deferred(base)
    fine.processed += base.processed
    fine.kernel_estimate = max(fine.kernel_estimate, base.kernel_estimate)
    return fine


def _keep_flagged(fine: Analysis, raw: list[VerifierFinding], base: Analysis) -> None:
    """``fine``'s findings: of ``raw`` (its own), the errors at instructions ``base`` flags too (see
    :func:`_analyse_both`), and ``base``'s refusals as too complex."""
    flagged_by_base = {f.insn for f in base.findings if f.is_error}
    fine.findings = [f for f in raw if not f.is_error or f.insn in flagged_by_base]
    fine.findings += [f for f in base.findings if f.code == Code.COMPLEXITY and f.insn >= 0]


def _run_deferred(a: Analysis) -> None:
    """Run ``a``'s deferred simulations (see :func:`.loops.check_loops`), adding what they find."""
    for d in a.deferred:
        found, work, estimate = d.run()
        a.findings += found
        a.processed += work
        a.kernel_estimate = max(a.kernel_estimate, estimate)
    a.deferred = []


def _skip_deferred(a: Analysis) -> None:
    """Drop ``a``'s deferred simulations (it is refused without them): its estimate is their bounds."""
    for d in a.deferred:
        a.kernel_estimate = max(a.kernel_estimate, d.bound)
    a.deferred = []


def _not_converged(env: Env, exc: NotConverging) -> Analysis:
    """A refusal, with the instruction where the fixpoint kept changing: sound (nothing is accepted) and
    quick, where analysing on would never end."""
    finding = VerifierFinding(
        Code.COMPLEXITY, exc.insn, f"our analysis did not settle at this loop after {WIDEN_LIMIT:,} passes "
        "(a limit of pybpfdsl's verifier, not the kernel's): the program is refused; simplify the loop, or "
        "report the program as a pybpfdsl bug")
    return Analysis(env, build_cfg(env), {}, [finding], 0, {})


def _recheck(env: Env, found: list[VerifierFinding], unrolled: dict[int, list[list[State]]]) -> list[VerifierFinding]:
    """``found`` without the errors at instructions that the unrolled states of a bounded loop show safe.

    Widening loses what a loop's counter is when its test is on a copy (``r0 = r5 - 3; if r5 > 5 ...;
    r5 = r0``: generated programs 20, 532, 557, 967): no interval holds it from one iteration to the next.
    The termination pass unrolls such a loop without widening, from every state that enters it; when the
    loop has one entry and the unrolling ends (bounded), the states of its iterations are all the states
    its body is in, so an instruction none of them fails is safe, whatever the widened states say (the
    argument of ``_analyse_both``: each over-approximation is sound up to an execution's first fault)."""
    if not unrolled:
        return found
    safe = set()
    for idx, loops in unrolled.items():
        for states in loops:
            sink = Sink(active=True)
            for s in states:
                step(env, idx, s, sink)
                if any(f.is_error for f in sink.findings):
                    break
            else:
                safe.add(idx)
                break
    return [f for f in found if not (f.is_error and f.insn in safe)]


def _past_loops(env: Env, cfg: Cfg, start: State, max_parts: int, resolved: Resolved,
                found: list[VerifierFinding]) -> list[VerifierFinding]:
    """``found`` without the errors after bounded loops that a second analysis shows safe: one that leaves
    the bodies of the ``resolved`` loops out and starts their exits from the states that left them in the
    termination pass's iterations (so a counter a loop tests on a copy, ``r4 = r3 << 32 >> 32; if r4 ==
    1522 ...``, leaves it within what it can be, not widened; xdp-tutorial's ``_xdp_end_loop``).

    Sound: each resolved loop has one entry, and its iterations were unrolled from every state the first
    analysis lets in, so the states leaving it include every concrete exit; everything else is the
    fixpoint as before. An instruction outside the bodies that this analysis finds safe is safe (the
    argument of ``_analyse_both``); inside them ``_recheck`` decides. Not settling refuses nothing more.

    The runs keep partitions (``MAX_PARTS``) even when called by the plain analysis (``max_parts`` 1): past
    the loop the paths meet again (``ok = 0`` where a bounds check failed, the pointer checked where it
    passed: xdp-filter's TCP filters at -O1 then read through a number on the joined path), and the plain
    analysis' errors are what the partitioned one's are matched against."""
    max_parts = max(max_parts, MAX_PARTS)
    bodies: set[int] = set().union(*(body for body, _ in resolved.values()))
    nodes = set(range(len(env.insns))) - bodies
    # Only errors the loops' exits lead to can go: elsewhere this analysis is the first one again.
    after: set[int] = set()
    todo = [t for _, exits in resolved.values() for t, _ in exits if t in nodes]
    while todo:
        n = todo.pop()
        if n not in after:
            after.add(n)
            todo.extend(t for t in cfg.succs[n] if t in nodes)
    if not any(f.is_error and f.insn in after for f in found):
        return found
    live = live_in(env.insns, cfg.succs)
    starts = list(dict.fromkeys([(t, s) for t, s in ((0, start), *(e for _, exits in resolved.values() for e in exits))
                                 if t in nodes]))
    # Each start on its own first: a join of the exits loses how the counter and the packet range go
    # together (iteration i exits with i and i + 14 bytes proven); the runs' union is as sound as one run
    # from them all, which is the fallback past SEPARATE_WORK.
    still: set[int] = set()
    work = 0
    for s in starts:
        run = _run_from(env, cfg, nodes, max_parts, live, [s]) if work <= SEPARATE_WORK else None
        if run is None:
            break
        work += run[0]
        still |= run[1]
    else:
        return [f for f in found if not (f.is_error and f.insn in nodes and f.insn not in still)]
    run = _run_from(env, cfg, nodes, max_parts, live, starts)
    if run is None:
        return found
    still = run[1]
    return [f for f in found if not (f.is_error and f.insn in nodes and f.insn not in still)]


SEPARATE_WORK = 60_000
"""Instructions :func:`_past_loops` may step analysing from each loop exit on its own."""


def _run_from(env: Env, cfg: Cfg, nodes: set[int], max_parts: int, live: list[int],
              starts: list[tuple[int, State]]) -> tuple[int, set[int]] | None:
    """The fixpoint over ``nodes`` from the states ``starts`` (instruction, state): (instructions stepped,
    the instructions it finds errors at), None if it does not settle."""
    part = Partitioner(max_parts, live)
    pre: dict[int, Parts] = {}
    work: list[tuple[int, int]] = []
    for t, s in starts:
        part.put(pre.setdefault(t, {}), t, s)
        work.append((cfg.order.get(t, t), t))
    heapq.heapify(work)
    try:
        done, _ = propagate(env, cfg, pre, work, {}, nodes, part=part)
    except NotConverging:
        return None
    sink = Sink(active=True)
    for idx in sorted(pre):
        for s in pre[idx].values():
            step(env, idx, s, sink)
            done += 1
    return done, {f.insn for f in sink.findings if f.is_error}


def _analyse(env: Env, entry: State | None, max_parts: int, loop_heads: set[int] | None = None) -> Analysis:
    cfg = build_cfg(env)
    findings = list(cfg.findings)
    start = entry or st.entry_state()
    pre: dict[int, Parts] = {}
    part = Partitioner(max_parts, live_in(env.insns, cfg.succs))
    processed = 0
    # The findings of each point's final states, stepped with the checks on: the last narrowing pass
    # steps those very states, so it collects them rather than a walk over them all again.
    found: dict[int, list[VerifierFinding]] = {}
    if env.insns:
        pre[0] = {}
        part.put(pre[0], 0, start)
        done, _ = propagate(env, cfg, pre, [(0, 0)], {}, part=part)
        processed += done
        processed += narrow(env, cfg, pre, start, part, found)
    sink = Sink(active=True)
    seen: set[tuple[Code, int]] = set()
    for idx in sorted(found):
        for f in found[idx]:
            if (f.code, f.insn) not in seen:
                seen.add((f.code, f.insn))
                sink.findings.append(f)
    unrolled: dict[int, list[list[State]]] = {}
    flagged = frozenset(f.insn for f in sink.findings if f.is_error)
    in_loops = set().union(*(cfg.loop_body(h) for h in cfg.heads)) if flagged and cfg.heads else set()
    resolved: Resolved | None = {} if flagged - in_loops else None
    deferred: list[Deferred] = []
    loop_findings, work, loops, kernel_work = check_loops(env, cfg, pre, part, processed, loop_heads, flagged,
                                                          unrolled, resolved, deferred)
    findings.extend(loop_findings)
    processed += work
    walked = _recheck(env, sink.findings, unrolled)
    if resolved:
        walked = _past_loops(env, cfg, start, max_parts, resolved, walked)
    findings.extend(walked)
    if processed > BPF_COMPLEXITY_LIMIT_INSNS:
        findings.append(VerifierFinding(
            Code.COMPLEXITY, -1, f"about {processed} instructions to verify, above the kernel's limit of "
            f"{BPF_COMPLEXITY_LIMIT_INSNS}"))
    flat: dict[int, State] = {}
    for i, p in pre.items():
        j = joined(p)
        if j is not None:
            flat[i] = j
    return Analysis(env, cfg, flat, findings, processed, loops, {i: tuple(p.values()) for i, p in pre.items()},
                    kernel_work, deferred)
