"""Loops: does each one end, and what does it cost the kernel?

Widening proves nothing about how often a loop runs, and the kernel only accepts loops it can simulate
to the end. So each loop is unrolled abstractly from its entry state, one iteration at a time with no
join across iterations, until the back edges become infeasible (bounded) or an iteration no longer
changes the state (it may run forever) or the work exceeds the budget. The kernel explores every path
through a loop separately (pruning a path only when an explored state includes it): the estimate of
that work refuses loops the kernel would call too large.

Long because the unrolling, its termination tests (an endless iteration, a narrowing one) and the rescue
by the kernel's simulated exploration decide one verdict per loop together; split, each would re-derive
the others' facts about the same iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pybpfdsl.bpf.abi import BPF_COMPLEXITY_LIMIT_INSNS
from pybpfdsl.bpf.opcode import Source, source
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.cfg import Cfg
from pybpfdsl.verify.analysis.checks import QUIET, Code, VerifierFinding
from pybpfdsl.verify.analysis.endless import REPEAT_AFTER, relevant_in, repeats
from pybpfdsl.verify.analysis.exploration import explore
from pybpfdsl.verify.analysis.fixpoint import loop_entry, propagate
from pybpfdsl.verify.analysis.partitions import Partitioner, Parts, joined
from pybpfdsl.verify.analysis.path_counts import entry_paths, path_bound
from pybpfdsl.verify.analysis.transfer import Env, step
from pybpfdsl.verify.analysis.values import PacketEnd, PacketPtr, ScalarValue
from pybpfdsl.verify.domains.scalar import Scalar

__all__ = ["CONFIRM_ABOVE", "CONFIRM_BELOW", "CONFIRM_WORK", "DEEP_PASSES", "DEEP_WORK", "Deferred", "LoopVerdict",
           "NARROWING_ITERATIONS", "RESCUE_MARGIN", "RESCUE_WORK", "SHALLOW_ITERATIONS", "UNROLL_BUDGET", "check_loops",
           "deep_passes", "kernel_states_at", "loop_free", "loop_test", "path_bound", "path_splits", "terminates"]

UNROLL_BUDGET = 300_000
"""Instructions the termination pass may simulate per program before it calls a loop too complex."""

NARROWING_ITERATIONS = 128
"""Iterations in a row, each covered by the one before without repeating it, after which the termination pass
stops unrolling a loop and refuses it as possibly endless (verdict 'narrowing'). Such iterations narrow the
ranges the loop entered with (a counter that entered as [2, 40], joined over the iterations of an enclosing
loop, leaves as [2, 38]) and usually end in a few (generated programs 42074 and 43129: 5 to 6, which the
kernel loads, following each path with its counter known). Each narrowing step of a wide range is costly in
the scalar domain: ``r7 = random; l: r7 -= 1; if r7 s> 1 goto l`` (refused by the kernel too: its ranges
narrow as ours do, past its limit) took 96 s to reach the unrolling budget, 150,000 iterations. Past 128
iterations a loop with paths to tell apart does not load anyway (``DEEP_PASSES``). Before, the first such
iteration was refused."""


def path_splits(env: Env, cfg: Cfg, body: set[int], states: dict[int, Parts]) -> int:
    """Conditional jumps of a loop body that go both ways, staying in the loop, from the ``states`` of
    one iteration: each sends the kernel's per-path exploration two ways. (A jump on the loop counter
    goes one way in each iteration, and one that leaves the loop adds no state at its head.)"""
    return len(_splits(env, cfg, body, states))


def _splits(env: Env, cfg: Cfg, body: set[int], states: dict[int, Parts],
            jumps: list[int] | None = None) -> list[int]:
    """``jumps``: the body's :func:`_inner_jumps`, if known."""
    out = []
    for i in _inner_jumps(cfg, body) if jumps is None else jumps:
        if any(len({t for t, _ in step(env, i, s, QUIET) if t in body}) == 2 for s in states.get(i, {}).values()):
            out.append(i)
    return out


def _inner_jumps(cfg: Cfg, body: set[int]) -> list[int]:
    """The two-way jumps of a loop body whose targets both stay in it, in order."""
    return [i for i in sorted(body) if len(cfg.succs[i]) == 2 and all(t in body for t in cfg.succs[i])]


def _packet_split(env: Env, idx: int, states: dict[int, Parts]) -> bool:
    """Whether the jump at ``idx`` compares a packet pointer with the packet's end (a bounds check:
    its paths differ in the proven packet range, one more thing that tells states apart)."""
    insn = env.insns[idx]
    for s in states.get(idx, {}).values():
        regs = (s.regs[insn.dst], s.regs[insn.src] if source(insn.opcode) == Source.X else None)
        if any(isinstance(v, PacketPtr) for v in regs) and any(isinstance(v, PacketEnd) for v in regs):
            return True
    return False


SATURATED = 1 << 32
"""A path-dependent number whose range is this wide no longer tells the kernel's states apart (a
state whose range includes another's prunes it), so it adds no dimension to the count of states."""


def record_ranges(history: dict[int, set[tuple[int, int]]], s: State | None, live: int) -> None:
    """Add the ranges of the non-constant numbers at a loop head (live registers, spilled scalars) in
    one iteration to ``history``: a path that skipped some iterations' work carries an earlier one."""
    if s is None:
        return
    for i, v in enumerate(s.regs):
        if live >> i & 1 and type(v) is ScalarValue:
            _record(history, i, v.value)
    for i, v in stk.spilled_values(s.stack):
        if type(v) is ScalarValue:
            _record(history, 100 + i, v.value)


def _record(history: dict[int, set[tuple[int, int]]], pos: int, x: Scalar) -> None:
    u = x.u64
    if x.const_value is None and u.hi - u.lo < SATURATED:
        history.setdefault(pos, set()).add((u.lo, u.hi))


def kernel_states_at(iteration: int, splits: int, values: tuple[int, ...] | None = None) -> int:
    """How many states the kernel may hold at a loop head in ``iteration`` (1-based), per entry state.

    The kernel follows each path separately and prunes a state only when an explored one at the same
    point includes it (its ranges contain the new ranges). Without pruning, ``splits`` two-way jumps
    per iteration give ``2**(splits*(k-1))`` paths by iteration ``k``. With it, the surviving states
    are told apart by what the paths did: ``values`` holds, for each number that grows along some
    paths (a sum, the proven packet range), how many different values it can have by now; the states
    are at most their product (``k**(2*splits)`` when not given). This is an estimate, not a bound:
    the kernel's count also depends on its precision tracking and liveness. Calibrated against this
    kernel (6.18, tests/verify/analysis/test_unsound_accepts.py): for the issue's payload-summing loop
    it is 1.5-2x the kernel's count at 16 to 48 iterations and refuses 64 as the kernel does; on the
    shapes tried (two splits, nested loops, map lookups, no split) every loop the kernel refuses is
    refused, and two it accepts at 385,000 and 117,000 instructions are refused too (false alarms).
    """
    k = iteration
    pruned = 1
    for n in (k,) * (2 * splits) if values is None else values:
        pruned *= n
    return min(1 << (splits * (k - 1)), pruned) if splits * (k - 1) < 62 else pruned


@dataclass(frozen=True)
class LoopVerdict:
    """What the termination pass found for one loop."""

    verdict: str
    """'bounded' | 'forever' | 'narrowing' (see ``NARROWING_ITERATIONS``) | 'budget' (our own unrolling budget) |
    'complex' (the kernel's)."""
    iterations: int
    processed: int
    kernel_estimate: int
    """Instructions the kernel is estimated to process for the loop (see :func:`kernel_states_at`)."""
    states: dict[int, list[State]] = field(default_factory=dict)
    """For a bounded loop: the states of every iteration at each watched instruction (see :func:`terminates`)."""
    exits: list[tuple[int, State]] | None = None
    """For a bounded loop, if asked for: the states leaving its body in every iteration, with their targets."""
    packet: bool = False
    """Whether a jump of its body that goes both ways is a packet bounds check (see :func:`entry_paths`)."""


def terminates(env: Env, cfg: Cfg, pre: dict[int, Parts], head: int, budget: int,
                part: Partitioner, kernel_budget: int = BPF_COMPLEXITY_LIMIT_INSNS, inner: int = 1,
                watch: frozenset[int] = frozenset(), want_exits: bool = False) -> LoopVerdict:
    """Unroll the loop at ``head`` one iteration at a time (see the module docstring); ``inner``: the
    iterations of the loops nested in it, multiplied (1 if none); ``watch``: instructions of the body
    whose states in every iteration a bounded verdict returns (see :func:`single_entry`); ``want_exits``: a
    bounded verdict also returns the states that leave the body.

    Stops early, with 'complex', as soon as the estimate of the kernel's work for the iterations so
    far passes ``kernel_budget``: such a loop cannot load, and unrolling it further (a
    ``range(5000)`` took minutes) would only confirm that.
    """
    body = cfg.loop_body(head)
    jumps = _inner_jumps(cfg, body)
    splits = 0
    history: dict[int, set[tuple[int, int]]] = {}
    current = loop_entry(env, cfg, pre, head, body, part)
    if head == 0:
        for s in pre.get(0, {}).values():
            part.put(current, head, s)
    processed = 0
    iterations = 0
    estimate = 0
    seen: dict[int, list[State]] = {i: [] for i in watch}
    exits: list[tuple[int, State]] | None = [] if want_exits else None
    packet = False
    relevant: int | None = None
    narrowing = 0
    while current:
        iterations += 1
        local: dict[int, Parts] = {head: current}
        done, back = propagate(env, cfg, local, [(cfg.order.get(head, head), head)], {}, body, stop=head,
                                part=part, exits=exits)
        processed += done
        for i, kept in seen.items():
            kept.extend(local.get(i, {}).values())
        split_at = _splits(env, cfg, body, local, jumps) if jumps else []
        splits = max(splits, len(split_at))
        nxt: Parts = {}
        for s in back:
            part.put(nxt, head, s)
        if jumps:  # (the ranges count only where a jump of the body may split the paths)
            record_ranges(history, joined(nxt), part.live[head])
        # ``done`` covers every entry state of this iteration once; the kernel repeats it per state.
        # With inner loops (``inner`` iterations in all per iteration of this one) we count as if the
        # nest were one loop of ``iterations * inner`` iterations: the kernel unrolls the inner loops
        # on each path too, each inner iteration splitting paths and adding values.
        # Each split of an iteration can give each growing number (and the proven packet range, at a
        # bounds check) one more value: a sum adds a byte or not at every check it follows.
        n_splits = len(split_at)
        n_packet = sum(_packet_split(env, i, local) for i in split_at)
        packet = packet or n_packet > 0
        for j in range(1, inner + 1):
            if not splits:  # one path: the kernel's work is ours (the common case, a counted loop)
                estimate += done
            else:
                flat = (iterations - 1) * inner + j
                values = tuple(min(flat, len(h) * inner) * max(n_splits, 1) for h in history.values())
                if n_packet:
                    values += (flat * n_packet,)
                estimate += done * kernel_states_at(flat, max(splits, 1), values)
            if estimate > kernel_budget:
                break
        if not nxt:
            return LoopVerdict("bounded", iterations, processed, estimate, seen, exits, packet)
        # Endless only if the next iteration repeats this one: one it covers only by narrowing it (a counter
        # that entered as a range, [2, 40], and leaves it as [2, 38]) is a step towards the end, and the
        # unrolling goes on, up to ``NARROWING_ITERATIONS`` such steps in a row (test_shrinking_loop_states.py)
        if _covered(nxt, current):
            if _covered(current, nxt):
                return LoopVerdict("forever", iterations, processed, estimate)
            narrowing += 1
            if narrowing > NARROWING_ITERATIONS:
                return LoopVerdict("narrowing", iterations, processed, estimate)
        else:
            narrowing = 0
        if iterations >= REPEAT_AFTER:
            if relevant is None:
                relevant = relevant_in(env, cfg)[head]
            if repeats(nxt, current, relevant):
                return LoopVerdict("forever", iterations, processed, estimate)
        if estimate > kernel_budget:
            return LoopVerdict("complex", iterations, processed, estimate, packet=packet)
        if processed > budget:
            return LoopVerdict("budget", iterations, processed, estimate)
        current = nxt
    return LoopVerdict("bounded", iterations, processed, estimate, seen, exits, packet)


Resolved = dict[int, tuple[frozenset[int], list[tuple[int, State]]]]
"""Bounded single-entry loops: head → (body, the states leaving the body in every iteration, with their targets)."""


def single_entry(cfg: Cfg, head: int, body: set[int]) -> bool:
    """Whether every way into the loop passes its head (no jump from outside into the body's middle):
    then the iterations :func:`terminates` unrolls from the head's entry states reach every state the body
    can be in, and a bounded loop's unrolled states are an invariant of its body, one per iteration, with
    no widening (see ``driver._recheck``). The program's first instruction counts as a way in."""
    return (head == 0 or 0 not in body) and all(p in body for n in body if n != head for p in cfg.preds[n])


def _covered(new: Parts, old: Parts) -> bool:
    """Whether every state of ``new`` is included in one of ``old``."""
    le = st.le
    for s in new.values():
        for c in old.values():
            if le(s, c):
                break
        else:
            return False
    return True


def loop_test(env: Env, cfg: Cfg, head: int) -> int:
    """The instruction that stands for the loop at ``head`` in messages: its exit test against a
    constant (``i <= 63``: the loop's own line, ``for i in range(64)``), else the head."""
    body = cfg.loop_body(head)
    exits = [i for i in sorted(body) if any(t not in body for t in cfg.succs[i]) and len(cfg.succs[i]) == 2]
    counted = [i for i in exits if source(env.insns[i].opcode) == Source.K]
    return (counted or [head])[-1]


def too_complex(estimate: int, iterations: int, head: int, done: bool, entries: int = 1) -> VerifierFinding:
    """The loop at ``head`` would make the kernel process more than its limit: ``done``, the estimate
    for all its ``iterations``; else the estimate passed the limit during iteration ``iterations`` and
    the unrolling stopped there (its count then says only how far past the limit the guess went, so
    the message does not give it); ``entries``: the paths entering the loop, each explored on its own."""
    limit = f"the kernel's limit of {BPF_COMPLEXITY_LIMIT_INSNS:,}"
    entered = f"it is entered by {entries} paths that prove different packet ranges, each explored on its own; "
    if done:
        how = f"its {iterations} iterations come to about {estimate:,} instructions to verify, above {limit}"
    else:
        first = "iteration" if iterations == 1 else f"{iterations} iterations"
        how = f"by our estimate its paths pass {limit} instructions to verify within its first {first}"
    if entries > 1:
        how = entered + how
    return VerifierFinding(
        Code.COMPLEXITY, head,
        f"the kernel verifies each path through this loop separately: {how} (it would refuse "
        f"with 'BPF program is too large'); lower the loop's bound (fewer iterations, or fewer branches in "
        "its body), or, in C, move the body into a bpf_loop() callback", ())


RESCUE_MARGIN = 3
"""A loop the closed form calls too complex is accepted when the simulated exploration
(:mod:`.exploration`) ends every path within ``limit / RESCUE_MARGIN`` instructions. The simulation
gives up after ``RESCUE_WORK`` steps, which binds first."""

RESCUE_WORK = BPF_COMPLEXITY_LIMIT_INSNS // RESCUE_MARGIN
"""Steps the rescuing simulation may take (a few seconds): as many as it may count and still accept (it
steps each instruction it counts), so the budget never refuses a loop the margin would accept. At 150,000
it refused generated seeds 972, 3361, 3386, 5403, 5415, xdp-filter's ``*_all`` at -O1 and (without loops,
:func:`loop_free`) xdp-trafficgen's ``xdp_handle_tcp_recv`` at -O2, which the kernel loads at 10,800 to
180,000 instructions, simulated at 160,000 to 333,000 (test_rescue_budget.py). The closed form is far
off for loops
with many branches that rejoin, or with inner loops (it counts each inner iteration as one of the
outer loop, each splitting paths as the whole outer body does): generated programs the kernel loads
at 40,000 to 105,000 instructions were estimated at 1.3 million to 98 million, and simulated at
104,000 to 128,000 (seeds 34, 37, 91, 236; test_loop_cost.py). On the generated programs whose
simulation passes 20,000 steps, its count is 0.55x (seed 5372: 451,064 against 769,336) to 14x the
kernel's, so one that ends within this budget leaves the kernel at about 610,000 instructions at most; the
simulation's lowest ratios (0.11x to 0.44x) all came on programs it counts below 8,000. Only shallow loops
get this budget: where a path has passed a loop head more than ``DEEP_PASSES`` times within
``DEEP_WORK`` steps, the simulation gives up there (the kernel's count of such a loop multiplies with each
iteration: ``range(5000)`` summing the payload is far past it by then; the seeds above at 5 to 9)."""

DEEP_WORK = 96_000
"""Steps after which the rescuing simulation gives up on a deep loop (see ``RESCUE_WORK``). At 60,000
(``EXPLORE_WORK``) it refused generated seeds 3431 (a 6 x 8 nest) and 3470 (35 iterations), simulated at
94,561 and 78,707, which the kernel loads at 130,025 and 27,841. Loops the kernel refuses cost up to
36,000 steps more (0.2 s): the payload sum's ``range(32)`` to ``range(5000)``; the last one's whole
analysis stays within 100,000 steps (test_unsound_accepts.py). Only loops whose closed-form unrolling stopped
early (its guess passed the limit before their last iteration, or ``UNROLL_BUDGET`` ran out) are cut off here:
one unrolled to its end has a known bound, and a deep cut-off there refused the payload sum's ``range(32)``
as compiled since 73fe524 (simulated at 107,526, the kernel loads it at 101,703), so it gets ``RESCUE_WORK``
(``range(48)``: 214,666 steps, 1.9 s CPU, counting the kernel's 228,786 processed instructions)."""

SHALLOW_ITERATIONS = 16
"""Iterations up to which a loop entered by several paths counts as shallow: its estimate is then the
simulated count, not the count times ``RESCUE_MARGIN`` (see :func:`check_loops`)."""

DEEP_PASSES = 128
"""Passes of one loop head on one path past which the rescuing simulation calls a loop the closed form gave up
on deep, and stops at ``DEEP_WORK`` steps (see :func:`deep_passes`). It was ``SHALLOW_ITERATIONS`` (16):
then every such loop of more than 16 iterations was refused once its simulation passed 96,000 steps, though
the simulation counts it exactly and the kernel loads it, up to 3x further (kernel 6.18, ``range(n)`` summing
the payload after an IPv4 header check: ``range(64)`` 149,111 and ``range(96)`` 314,789 instructions; with
a second sum, ``range(48)`` 223,622; tests/verify/analysis/test_complexity_margins.py). A path of the payload
sum passes its head ``n`` times, and the kernel refuses it from ``range(128)``: past 128 passes a loop with
paths to tell apart does not load, and the cut-off keeps its refusal quick (``range(5000)``). The price: a
loop of 17 to 128 iterations that the kernel refuses costs the whole ``RESCUE_WORK`` before it is refused
(``range(128)``: 2.6 s CPU, was 0.9 s). Only time depends on it, never a verdict the margin decides."""


CONFIRM_BELOW = 7_500
"""A closed-form estimate below this is checked by simulating the kernel's exploration (up to
``CONFIRM_WORK`` steps): the closed form misses paths that a precise number keeps apart, where the
kernel's count multiplies with every iteration (``if count == 3`` after a loop that counts on some
paths: the kernel keeps the count, so 2**n paths; test_loop_cost.py). Below it the simulation is
cheap; generated programs' loops with such estimates took 100 to 25,000 simulated steps."""
CONFIRM_ABOVE = BPF_COMPLEXITY_LIMIT_INSNS // 20
"""A closed-form estimate from this up to the kernel's limit is checked too, as a rescue is (``RESCUE_WORK``
steps, ``RESCUE_MARGIN``): the closed form counts one entry state per loop, and the payload sum of issue 13
as compiled after 90e9906 enters its loop from each header-parsing path: the kernel processes 47,021,
148,158 and over 1,000,000 instructions for ``range(20)``, ``range(24)``, ``range(28)`` where the closed
form says 29,085, 49,345 and (``range(32)``) 114,665. Below this the closed form stands (20 times under
the limit; the benchmark programs' loops estimated at 7,500-40,000 cost no simulation)."""
CONFIRM_WORK = 60_000
"""The simulation's count has been as low as 0.11x the kernel's (test_loop_cost.py): one that ends
within this many steps leaves the kernel below its limit by that margin."""


@dataclass(frozen=True)
class Deferred:
    """A simulation of the kernel's exploration left for later (see :func:`check_loops`)."""

    bound: int
    """The bound that was too high to stand for the kernel's work (:func:`path_bound`)."""
    run: Callable[[], tuple[list[VerifierFinding], int, int]]
    """The simulation: (findings, instructions it stepped, the estimate)."""


def check_loops(env: Env, cfg: Cfg, pre: dict[int, Parts], part: Partitioner, fixpoint_work: int,
                loop_heads: set[int] | None = None, watch: frozenset[int] = frozenset(),
                unrolled: dict[int, list[list[State]]] | None = None, resolved: Resolved | None = None,
                deferred: list[Deferred] | None = None,
                ) -> tuple[list[VerifierFinding], int, dict[int, int], int]:
    """The termination pass over every loop (or those at ``loop_heads``) from the fixpoint's states
    ``pre``: (findings, instructions simulated, iterations of each bounded loop by head, the estimate of
    the kernel's work including ``fixpoint_work`` for the rest of the program). For each instruction of
    ``watch`` in the body of a bounded loop with a single entry, ``unrolled`` gets one list per such loop:
    the instruction's states in every iteration of it. ``resolved``, if given, gets each bounded loop with a
    single entry: its head → (its body, the states leaving it in every iteration, with their targets).

    The closed-form estimate (:func:`kernel_states_at`) is quick but only a guess: where it calls a
    loop too complex, the kernel's own exploration is simulated (:func:`.exploration.explore`) and,
    if that ends well within the limit, the loop is accepted with the simulated count as the
    estimate; where it is small (``CONFIRM_BELOW``) the simulation must end within
    ``CONFIRM_WORK`` steps, else the loop is refused.

    ``deferred``, if given, gets the simulation of a program without loops whose paths are too many for
    :func:`path_bound` instead of it being run: the simulation costs about as much as the kernel's own work
    (0.1 to 2 s on the clang corpora), and it can only add a refusal, which a program refused for another
    reason does not need (see ``driver._analyse_both``)."""
    unfinished: list[tuple[int, int, frozenset[int]]] = []
    entered: set[int] = set()
    stopped: set[int] = set()
    findings, processed, loops, kernel_work = _closed_form(env, cfg, pre, part, fixpoint_work, loop_heads, watch,
                                                           unrolled, unfinished, resolved, entered, stopped)
    # Deep loops entered by several paths: their estimate is the simulated count times the margin (the
    # closed form's guess for them was the count of one entry path times the paths).
    many_entries = bool(entered)
    entry = joined(pre.get(0))
    if loop_heads is None and not cfg.heads and entry is not None:
        flat = {i: j for i, p in pre.items() if (j := joined(p)) is not None}
        if deferred is not None and (bound := path_bound(cfg)) > BPF_COMPLEXITY_LIMIT_INSNS:
            deferred.append(Deferred(bound, lambda: loop_free(env, cfg, entry, part, flat)))
            return findings, processed, loops, kernel_work
        found, work, estimate = loop_free(env, cfg, entry, part, flat)
        return findings + found, processed + work, loops, max(kernel_work, estimate)
    if loop_heads is not None or not cfg.heads or entry is None:
        return findings, processed, loops, kernel_work
    # A loop called endless skips the confirmation below but not the rescue: the driver checks it again with
    # partitions (which may show it bounded), and keeps this pass's refusals as too complex. Skipping the
    # rescue refused tests/differential/test_negative_payload_indexes.py's loops_over_positions once links
    # (values.ScalarValue.link) made its inner loop, unrolled from the fixpoint's widened counter, narrow
    # (verdict 'narrowing') rather than pass the estimate: the kernel loads it, simulated at 11,902.
    endless = any(f.is_error for f in findings if f.code != Code.COMPLEXITY)
    flat = {i: j for i, p in pre.items() if (j := joined(p)) is not None}
    if any(f.code == Code.COMPLEXITY for f in findings):
        # Deep loops get ``DEEP_WORK`` steps only where the closed form gave up before their last iteration
        # (its guess passed the limit early: ``range(5000)``); one it unrolled to the end has a known,
        # moderate bound and gets the whole budget (see ``DEEP_WORK``).
        ex = explore(env, cfg, entry, part.live, flat, work=RESCUE_WORK,
                     shallow=(DEEP_WORK, deep_passes(cfg, loops, stopped)) if stopped else None)
        processed += ex.steps
        if not ex.complete or ex.processed * RESCUE_MARGIN > BPF_COMPLEXITY_LIMIT_INSNS:
            return findings, processed, loops, kernel_work
        kept = [f for f in findings if f.code != Code.COMPLEXITY]
        if unrolled is not None:
            # Loops the simulation shows within the kernel's limit: unrolled now to their end (the closed
            # form stopped early), for their states at ``watch``.
            for head, inner, watched in unfinished:
                lv = terminates(env, cfg, pre, head, UNROLL_BUDGET, part, 1 << 62, inner, watched, resolved is not None)
                processed += lv.processed
                for i, states in lv.states.items():
                    unrolled.setdefault(i, []).append(states)
                if resolved is not None and lv.verdict == "bounded" and lv.exits is not None:
                    resolved[head] = (frozenset(cfg.loop_body(head)), lv.exits)
        rescued = ex.processed * (RESCUE_MARGIN if many_entries else 1)
        return kept, processed, {**ex.head_visits, **loops}, max(fixpoint_work, rescued)
    if endless:
        return findings, processed, loops, kernel_work
    small = kernel_work < CONFIRM_BELOW
    if not small and kernel_work < CONFIRM_ABOVE:
        return findings, processed, loops, kernel_work
    ex = explore(env, cfg, entry, part.live, flat, work=CONFIRM_WORK if small else RESCUE_WORK)
    processed += ex.steps
    if ex.complete and (small or ex.processed * RESCUE_MARGIN <= BPF_COMPLEXITY_LIMIT_INSNS):
        return findings, processed, loops, max(kernel_work, ex.processed)
    head = _blamed(cfg, ex.last, ex.head_visits)
    how = (f"comes to {ex.processed:,} instructions, too near" if ex.complete else
           f"passes {ex.processed - 1:,} instructions without ending (the kernel's limit is")
    return [*findings, VerifierFinding(
        Code.COMPLEXITY, loop_test(env, cfg, head),
        f"the kernel verifies each path through this loop separately, and here they multiply: a number "
        f"that differs between paths decides a jump, so it keeps them apart; its exploration, simulated, "
        f"{how} {BPF_COMPLEXITY_LIMIT_INSNS:,}{')' if not ex.complete else ' (its limit)'}; lower the loop's "
        "bound, or compute that number outside the loop, or, in C, move the body into a bpf_loop() callback",
        ())], processed, loops, max(kernel_work, ex.processed, BPF_COMPLEXITY_LIMIT_INSNS + 1)


def deep_passes(cfg: Cfg, loops: dict[int, int], stopped: set[int]) -> int:
    """Passes of a loop head on one path past which the rescuing simulation calls the loops deep (see
    ``DEEP_WORK``): ``DEEP_PASSES`` iterations of each loop the closed form gave up on (``stopped``),
    counted as the simulation counts them, at the head passed most. A path passes the head of a loop nested
    in another once per iteration of both: generated program 30107 (a ``while bounded(..., 7)`` whose body
    runs a ``range(8)`` loop) passes the inner head 56 times in 7 outer iterations, and the cut-off at 16
    refused it, simulated to 108,693 and loaded by the kernel at 54,698. So each stopped loop's passes are
    multiplied by the iterations of the bounded loops nested in it (``loops``: head -> iterations), along
    its deepest chain of them, and a bounded loop outside every stopped loop passes its head as often as its
    own iterations times those of the bounded loops around it."""
    def passes(j: int, within: set[int] | None) -> int:
        """The passes of ``j``'s head per pass of the loop whose body is ``within`` (all, if None)."""
        n = 1
        for k, iterations in loops.items():
            if j in cfg.loop_body(k) and (within is None or k in within):
                n *= iterations
        return n
    deep = DEEP_PASSES
    bodies = {h: cfg.loop_body(h) for h in stopped}
    for h, body in bodies.items():
        nested = [passes(j, body - {h}) for j in loops if j != h and j in body]
        deep = max(deep, DEEP_PASSES * max(nested, default=1))
    for j in loops:
        if not any(j in body for body in bodies.values()):
            deep = max(deep, passes(j, None))
    return deep


def loop_free(env: Env, cfg: Cfg, entry: State, part: Partitioner, pre: dict[int, State],
              ) -> tuple[list[VerifierFinding], int, int]:
    """The kernel's work for a program without loops: (findings, instructions we simulated, the estimate).

    :func:`path_bound` proves most programs small at no cost (it is a bound, not a guess). Where the paths
    are too many for it (sequences of checks, each two-way: 10**9 to 10**13 paths in xdp-filter and katran),
    the kernel's exploration with its state pruning is simulated (:func:`.exploration.explore`) and the
    program is accepted only when that ends within a third of the limit (``RESCUE_MARGIN``): an estimate,
    calibrated, not a bound. The fixpoint's own count, used before, was no bound at all: 375-495 for issue
    13's payload sum unrolled (``range(8)``, ``range(16)``), which the kernel processes 2,554-8,298 times."""
    bound = path_bound(cfg)
    if bound <= BPF_COMPLEXITY_LIMIT_INSNS:
        return [], 0, bound
    ex = explore(env, cfg, entry, part.live, pre, work=RESCUE_WORK)
    if ex.complete and ex.processed * RESCUE_MARGIN <= BPF_COMPLEXITY_LIMIT_INSNS:
        return [], ex.steps, ex.processed * RESCUE_MARGIN
    how = (f"comes to {ex.processed:,} instructions, too near the kernel's limit of {BPF_COMPLEXITY_LIMIT_INSNS:,}"
           if ex.complete is not None else f"did not end within {ex.steps:,} steps, so we cannot tell it stays "
           f"under the kernel's limit of {BPF_COMPLEXITY_LIMIT_INSNS:,}")
    if ex.complete is False:
        how = f"passes the kernel's limit of {BPF_COMPLEXITY_LIMIT_INSNS:,} instructions"
    return [VerifierFinding(
        Code.COMPLEXITY, max(ex.last, 0),
        f"the kernel verifies each path through the program's branches separately (more than "
        f"{BPF_COMPLEXITY_LIMIT_INSNS:,} instructions on all paths together, so that alone does not bound its "
        f"work); its exploration, simulated, {how} (it would refuse with 'BPF program is too large'); "
        "make fewer branches depend on numbers computed on earlier branches, or split the program", ())], \
        ex.steps, max(ex.processed * RESCUE_MARGIN, BPF_COMPLEXITY_LIMIT_INSNS + 1)


def _blamed(cfg: Cfg, last: int, visits: dict[int, int]) -> int:
    """The loop to name when the exploration stopped at ``last``: the outermost loop holding it,
    else the loop whose head it passed most."""
    holding = [h for h in cfg.heads if last in cfg.loop_body(h)]
    if holding:
        return max(holding, key=lambda h: (len(cfg.loop_body(h)), -h))
    return max(visits or dict.fromkeys(cfg.heads, 0), key=lambda h: (visits.get(h, 0), -h))


def _closed_form(env: Env, cfg: Cfg, pre: dict[int, Parts], part: Partitioner, fixpoint_work: int,
                 loop_heads: set[int] | None, watch: frozenset[int] = frozenset(),
                 unrolled: dict[int, list[list[State]]] | None = None,
                 unfinished: list[tuple[int, int, frozenset[int]]] | None = None, resolved: Resolved | None = None,
                 entered: set[int] | None = None, stopped: set[int] | None = None,
                 ) -> tuple[list[VerifierFinding], int, dict[int, int], int]:
    """:func:`check_loops` with the closed-form estimate only; ``unfinished`` gets the loops found too complex
    before their unrolling ended that have instructions of ``watch`` (head, inner iterations, those);
    ``entered``: the heads of the loops whose estimate counts several entry paths (:func:`entry_paths`);
    ``stopped``: those of the loops whose unrolling stopped before their last iteration (too complex early,
    or past our own budget)."""
    if unfinished is None:
        unfinished = []
    if entered is None:
        entered = set()
    if stopped is None:
        stopped = set()
    paths = entry_paths(cfg)
    loops: dict[int, int] = {}
    budget = UNROLL_BUDGET
    kernel_work = fixpoint_work
    findings: list[VerifierFinding] = []
    processed = 0
    # Inner loops first: an outer loop's estimate counts the iterations of the loops nested in it.
    for head in sorted(cfg.heads, key=lambda h: (len(cfg.loop_body(h)), h)):
        if head not in pre or (loop_heads is not None and head not in loop_heads):
            continue
        body = cfg.loop_body(head)
        inner = 1
        for h, n in loops.items():
            if h != head and h in body:
                inner *= n
        one_entry = single_entry(cfg, head, body)
        watched = watch & body if unrolled is not None and watch and one_entry else frozenset()
        lv = terminates(env, cfg, pre, head, budget, part, max(0, BPF_COMPLEXITY_LIMIT_INSNS - kernel_work),
                        inner, watched, resolved is not None and one_entry)
        if resolved is not None and lv.verdict == "bounded" and lv.exits is not None:
            resolved[head] = (frozenset(body), lv.exits)
        verdict, iters, work = lv.verdict, lv.iterations, lv.processed
        budget -= work
        processed += work
        # A loop with a packet bounds check in its body, entered by several paths (and not inside another
        # loop, whose estimate counts it): the kernel explores it once per entry path (see entry_paths).
        entries = paths[head] if lv.packet and not any(head in cfg.loop_body(h) for h in cfg.heads if h != head) else 1
        if entries > 1 and iters > SHALLOW_ITERATIONS:
            entered.add(head)
        kernel_work += lv.kernel_estimate * entries
        if unrolled is not None:
            for i, states in lv.states.items():
                unrolled.setdefault(i, []).append(states)
            if verdict == "complex" and (watched or (resolved is not None and one_entry)):
                unfinished.append((head, inner, watched))
        if verdict in ("complex", "budget"):
            stopped.add(head)
        if verdict == "bounded":
            loops[head] = iters
            if kernel_work > BPF_COMPLEXITY_LIMIT_INSNS:
                findings.append(too_complex(kernel_work, iters, loop_test(env, cfg, head), done=True, entries=entries))
        elif verdict == "complex":
            findings.append(too_complex(kernel_work, iters, loop_test(env, cfg, head), done=False, entries=entries))
        elif verdict == "forever":
            findings.append(VerifierFinding(
                Code.UNBOUNDED_LOOP, head,
                f"the loop starting here may never exit: iteration {iters + 1} would start from the state "
                f"iteration {iters} started from (in all that decides its jumps and accesses), so nothing bounds it",
                ()))
        elif verdict == "narrowing":
            findings.append(VerifierFinding(
                Code.UNBOUNDED_LOOP, head,
                f"could not show that the loop starting here exits: {iters} iterations in, each still starts "
                f"from numbers within those the one before started from, only narrower (a counter that does not "
                f"start from a constant here), so nothing bounds it; bound the loop by a constant", ()))
        else:
            findings.append(VerifierFinding(
                Code.COMPLEXITY, head,
                f"could not show that the loop starting here ends within {iters} iterations "
                f"({UNROLL_BUDGET} simulated instructions)", ()))
            budget = max(budget, 0)
    return findings, processed, loops, kernel_work
