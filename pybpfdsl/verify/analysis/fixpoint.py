"""The analysis engine: the CFG, a work-set iteration to a post-fixpoint with widening at loop heads,
then narrowing, then a loop-termination pass.

* Work set ordered by reverse post-order, so a join point is processed after its forward predecessors
  (fewer re-visits, and widening only where a cycle forces it).
* Widening at loop heads only (the targets of DFS back edges: every cycle passes through one), after
  ``WIDEN_DELAY`` plain joins — small constant loops then never widen at all.
* Narrowing: descending passes that recompute every state from its predecessors and, at loop heads,
  narrow the old state by the new one. Starting from a post-fixpoint, each pass stays sound.
* Termination: widening proves nothing about how often a loop runs, and the kernel only accepts loops
  it can simulate to the end. So each loop is unrolled abstractly from its entry state, one iteration
  at a time with no join across iterations, until the back edges become infeasible (bounded) or an
  iteration no longer changes the state (it may run forever) or the work exceeds the budget.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from pybpfdsl.bpf.opcode import Kind, Source, source
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis import state as st
from pybpfdsl.verify.analysis.checks import BPF_COMPLEXITY_LIMIT_INSNS, Code, Sink, VerifierFinding
from pybpfdsl.verify.analysis.liveness import live_in
from pybpfdsl.verify.analysis.state import State
from pybpfdsl.verify.analysis.transfer import Env, step
from pybpfdsl.verify.analysis.values import PacketEnd, PacketPtr, ScalarValue

__all__ = ["MAX_PARTS", "Analysis", "Cfg", "LoopVerdict", "analyse", "build_cfg", "kernel_states_at", "partition_key",
           "path_splits"]

WIDEN_DELAY = 3
NARROW_PASSES = 2
MAX_PARTS = 8
PARTITION_CONSTANTS = True
"""Also keep apart states whose live registers hold different constants (``off = is_ip ? 14 : 0``):
the kernel follows each such path with the constant known."""
NARROW_ANY = True
"""Partitions kept per program point before further states are joined into one (see :func:`partition_key`)."""
UNROLL_BUDGET = 300_000
"""Instructions the termination pass may simulate per program before it calls a loop too complex."""


@dataclass
class Cfg:
    succs: list[list[int]]
    preds: list[list[int]]
    rpo: list[int]
    order: dict[int, int]
    back_edges: set[tuple[int, int]]
    heads: set[int]
    findings: list[VerifierFinding] = field(default_factory=list)

    def loop_body(self, head: int) -> set[int]:
        """The natural loop of ``head``: nodes reaching one of its back-edge sources without passing it."""
        body = {head}
        work = [s for s, t in self.back_edges if t == head]
        while work:
            n = work.pop()
            if n in body:
                continue
            body.add(n)
            work.extend(self.preds[n])
        return body


def _static_succs(env: Env, idx: int) -> list[int]:
    insn = env.insns[idx]
    kind = env.kinds[idx]
    if kind == Kind.EXIT:
        back = env.return_to.get(idx)
        return [] if back is None else [back]
    if kind == Kind.INVALID:
        return []
    if kind == Kind.CALL and insn.is_pseudo_call and idx not in env.global_calls:
        entry = env.call_entry.get(idx)
        return [] if entry is None else [entry]
    if kind == Kind.CALL and idx in env.call_entry:  # bpf_loop: after the call, or into its callback
        return [idx + 1, env.call_entry[idx]]
    if kind in (Kind.JA, Kind.GOTOL):
        return [env.target(idx, insn)]
    if kind in (Kind.JCOND, Kind.MAY_GOTO):
        return [idx + 1, env.target(idx, insn)]
    return [idx + 1]


def build_cfg(env: Env) -> Cfg:
    n = len(env.insns)
    findings: list[VerifierFinding] = []
    succs: list[list[int]] = []
    for i in range(n):
        out = []
        for t in _static_succs(env, i):
            if 0 <= t < n:
                out.append(t)
            elif t == n and env.insns[i].kind not in (Kind.JA, Kind.GOTOL, Kind.JCOND, Kind.MAY_GOTO):
                findings.append(VerifierFinding(Code.INVALID_INSN, i, "execution falls off the end of the program"))
            else:
                findings.append(VerifierFinding(Code.INVALID_INSN, i, "jump target outside the program"))
        succs.append(out)
    preds: list[list[int]] = [[] for _ in range(n)]
    for i, out in enumerate(succs):
        for t in out:
            preds[t].append(i)
    # Iterative DFS: post-order for RPO, grey set for back edges.
    post: list[int] = []
    colour = [0] * n  # 0 white, 1 grey, 2 black
    back: set[tuple[int, int]] = set()
    if n:
        stack: list[tuple[int, int]] = [(0, 0)]
        colour[0] = 1
        while stack:
            node, k = stack[-1]
            if k < len(succs[node]):
                stack[-1] = (node, k + 1)
                t = succs[node][k]
                if colour[t] == 0:
                    colour[t] = 1
                    stack.append((t, 0))
                elif colour[t] == 1:
                    back.add((node, t))
            else:
                colour[node] = 2
                post.append(node)
                stack.pop()
    rpo = post[::-1]
    for i in range(n):
        if colour[i] == 0:
            findings.append(VerifierFinding(Code.UNREACHABLE, i, "unreachable instruction (the kernel rejects it)"))
    return Cfg(succs, preds, rpo, {v: k for k, v in enumerate(rpo)}, back, {t for _, t in back}, findings)


Parts = dict[object, State]
"""The states at one program point, by partition key (see :func:`partition_key`); their union is the invariant."""

OVERFLOW = ("overflow",)
"""The key of the partition that takes every state once a point has ``MAX_PARTS`` partitions."""


def partition_key(s: State, live: int = (1 << 11) - 1) -> object:
    """The packet facts of a state: states that differ in them are kept apart (up to ``MAX_PARTS``).

    The kernel explores paths one by one, so after ``if (a) check 34 bytes else check 38 bytes`` each
    path keeps its own proven length (and its pointers their constant offsets); a join keeps only the
    smaller. Keeping one state per distinct (proven length, packet-pointer shape of the live registers
    and the spills, proven ranges of the ids they use) — a bounded trace partitioning — gives back that
    precision where packet code needs it, and only there: states with equal packet facts are joined.
    """
    shape: list[tuple[int, object, object, int]] = []
    consts: list[tuple[int, int]] = []
    for i, v in enumerate(s.regs):
        if not live >> i & 1:
            continue
        if isinstance(v, PacketPtr):
            shape.append((i, v.off.const_value, v.pid, v.delta))
        elif PARTITION_CONSTANTS and isinstance(v, ScalarValue) and (c := v.value.const_value) is not None:
            consts.append((i, c))
    for i, v in stk.spilled_values(s.stack):
        if isinstance(v, PacketPtr):
            shape.append((100 + i, v.off.const_value, v.pid, v.delta))
    used = {pid for _, _, pid, _ in shape}
    return (s.pkt_min, tuple(r for r in s.ranges if r[0] in used), tuple(shape), tuple(consts))


def joined(parts: Parts | None) -> State | None:
    out: State | None = None
    for s in (parts or {}).values():
        out = st.join(out, s)
    return out


@dataclass
class Partitioner:
    """Where a state goes among the partitions of a point (``max_parts`` 1: no partitioning)."""

    max_parts: int
    live: list[int]

    def add(self, parts: Parts, t: int, s: State) -> object:
        """The key ``s`` goes to in ``parts`` at point ``t``: its own while the point has room, else the
        point collapses: every partition is joined into one (under ``OVERFLOW``) that takes every later
        state. (Merging a state into the nearest partition instead kept more paths apart,
        but its partitions drift from their keys and re-widen one another: mutants of the loops example
        and the issue's 64-iteration loop ran for many minutes. Kept collapsing until that converges.)"""
        if OVERFLOW in parts:
            return OVERFLOW
        key = partition_key(s, self.live[t]) if self.max_parts > 1 else OVERFLOW
        if key in parts or len(parts) < self.max_parts:
            return key
        merged = joined(parts)
        parts.clear()
        assert merged is not None
        parts[OVERFLOW] = merged
        return OVERFLOW

    def put(self, parts: Parts, t: int, s: State) -> None:
        """Add ``s`` to ``parts`` by joining it into its partition."""
        k = self.add(parts, t, s)
        old = parts.get(k)
        new = s if old is None else st.join(old, s, t)
        assert new is not None
        parts[k] = new


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


def _propagate(env: Env, cfg: Cfg, pre: dict[int, Parts], work: list[tuple[int, int]],
               visits: dict[tuple[int, object], int], nodes: set[int] | None = None, stop: int | None = None,
               part: Partitioner | None = None) -> tuple[int, list[State]]:
    """Work-set iteration from ``pre``/``work``; states reaching ``stop`` are returned, not propagated."""
    sink = Sink()
    processed = 0
    assert part is not None
    dirty: dict[int, set[object]] = {}
    for _, i in work:
        dirty[i] = set(pre[i])
    at_stop: list[State] = []
    n = len(env.insns)
    while work:
        _, idx = heapq.heappop(work)
        keys = dirty.pop(idx, set())
        parts_here = pre[idx]
        if OVERFLOW in parts_here:
            keys = {OVERFLOW}
        for key in list(keys):
            here = parts_here.get(key)
            if here is None:
                continue
            processed += 1
            for t, s in step(env, idx, here, sink):
                if t < 0 or t >= n or (nodes is not None and t not in nodes):
                    continue
                if t == stop:
                    at_stop.append(s)
                    continue
                parts = pre.setdefault(t, {})
                if any(st.le(s, o) for o in parts.values()):
                    continue
                was_collapsed = OVERFLOW in parts
                k = part.add(parts, t, s)
                collapsed_now = k == OVERFLOW and not was_collapsed
                old = parts.get(k)
                vk = (t, k)
                visits[vk] = visits.get(vk, 0) + 1
                j = st.join(old, s, t)
                new = st.widen(old, j, env.thresholds, t) if t in cfg.heads and visits[vk] > WIDEN_DELAY else j
                assert new is not None
                if new == old and not collapsed_now:
                    continue
                parts[k] = new
                if t not in dirty:
                    dirty[t] = set()
                    heapq.heappush(work, (cfg.order.get(t, t), t))
                if collapsed_now:
                    dirty[t].clear()
                dirty[t].add(k)
    return processed, at_stop


def _narrow(env: Env, cfg: Cfg, pre: dict[int, Parts], entry: State, part: Partitioner) -> int:
    """Descending passes in reverse post-order (Gauss-Seidel: a state is recomputed from the states its
    forward predecessors got earlier in the same pass; back edges use the previous pass's states).

    Every state of a pass is computed by sound transfer functions from states that over-approximate the
    reachable ones, so it does too; a fixed number of passes needs no narrowing operator to stop. At loop
    heads a partition is narrowed by its recomputed self when that one is below it (precision only).
    """
    sink = Sink()
    processed = 0
    back_into: dict[int, list[int]] = {}
    for src, head in cfg.back_edges:
        back_into.setdefault(head, []).append(src)
    n = len(env.insns)
    for _ in range(NARROW_PASSES):
        old = {i: dict(p) for i, p in pre.items()}
        acc: dict[int, Parts] = {0: {}}
        part.put(acc[0], 0, entry)
        new_pre: dict[int, Parts] = {}

        for idx in cfg.rpo:
            if idx in cfg.heads:
                for src in back_into.get(idx, []):
                    for s_src in old.get(src, {}).values():
                        processed += 1
                        for t, out in step(env, src, s_src, sink):
                            if t == idx:
                                part.put(acc.setdefault(idx, {}), idx, out)
                incoming = acc.get(idx, {})
                prev = old.get(idx, {})
                for k, s in list(incoming.items()):
                    o = prev.get(k)
                    if o is not None and NARROW_ANY and st.le(s, o):
                        nar = st.narrow(o, s)
                        assert nar is not None
                        incoming[k] = nar
            incoming = acc.get(idx, {})
            if not incoming:
                continue
            new_pre[idx] = incoming
            for s in list(incoming.values()):
                processed += 1
                for t, out in step(env, idx, s, sink):
                    if 0 <= t < n and (idx, t) not in cfg.back_edges:
                        part.put(acc.setdefault(t, {}), t, out)
        pre.clear()
        pre.update(new_pre)
    return processed


def _loop_entry(env: Env, cfg: Cfg, pre: dict[int, Parts], head: int, body: set[int],
                part: Partitioner) -> Parts:
    sink = Sink()
    entry: Parts = {}
    for p in cfg.preds[head]:
        if p in body or p not in pre:
            continue
        for s_p in pre[p].values():
            for t, s in step(env, p, s_p, sink):
                if t == head:
                    part.put(entry, head, s)
    return entry


def path_splits(env: Env, cfg: Cfg, body: set[int], states: dict[int, Parts]) -> int:
    """Conditional jumps of a loop body that go both ways, staying in the loop, from the ``states`` of
    one iteration: each sends the kernel's per-path exploration two ways. (A jump on the loop counter
    goes one way in each iteration, and one that leaves the loop adds no state at its head.)"""
    return len(_splits(env, cfg, body, states))


def _splits(env: Env, cfg: Cfg, body: set[int], states: dict[int, Parts]) -> list[int]:
    sink = Sink()
    out = []
    for i in sorted(body):
        if len(cfg.succs[i]) != 2 or not all(t in body for t in cfg.succs[i]):
            continue
        if any(len({t for t, _ in step(env, i, s, sink) if t in body}) == 2 for s in states.get(i, {}).values()):
            out.append(i)
    return out


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


def _scalars_at_head(s: State, live: int) -> dict[int, ScalarValue]:
    out: dict[int, ScalarValue] = {i: v for i, v in enumerate(s.regs) if live >> i & 1 and isinstance(v, ScalarValue)}
    for i, v in stk.spilled_values(s.stack):
        if isinstance(v, ScalarValue):
            out[100 + i] = v
    return out


def record_ranges(history: dict[int, set[tuple[int, int]]], s: State | None, live: int) -> None:
    """Add the ranges of the non-constant numbers at a loop head (live registers, spilled scalars) in
    one iteration to ``history``: a path that skipped some iterations' work carries an earlier one."""
    if s is None:
        return
    for pos, v in _scalars_at_head(s, live).items():
        if v.value.const_value is None and v.value.u64.hi - v.value.u64.lo < SATURATED:
            history.setdefault(pos, set()).add((v.value.u64.lo, v.value.u64.hi))


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
    """'bounded' | 'forever' | 'budget' (our own unrolling budget) | 'complex' (the kernel's)."""
    iterations: int
    processed: int
    kernel_estimate: int
    """Instructions the kernel is estimated to process for the loop (see :func:`kernel_states_at`)."""


def _terminates(env: Env, cfg: Cfg, pre: dict[int, Parts], head: int, budget: int,
                part: Partitioner, kernel_budget: int = BPF_COMPLEXITY_LIMIT_INSNS, inner: int = 1) -> LoopVerdict:
    """Unroll the loop at ``head`` one iteration at a time (see the module docstring); ``inner``: the
    iterations of the loops nested in it, multiplied (1 if none).

    Stops early, with 'complex', as soon as the estimate of the kernel's work for the iterations so
    far passes ``kernel_budget``: such a loop cannot load, and unrolling it further (a
    ``range(5000)`` took minutes) would only confirm that.
    """
    body = cfg.loop_body(head)
    splits = 0
    history: dict[int, set[tuple[int, int]]] = {}
    current = _loop_entry(env, cfg, pre, head, body, part)
    if head == 0:
        for s in pre.get(0, {}).values():
            part.put(current, head, s)
    processed = 0
    iterations = 0
    estimate = 0
    while current:
        iterations += 1
        local: dict[int, Parts] = {head: current}
        done, back = _propagate(env, cfg, local, [(cfg.order.get(head, head), head)], {}, body, stop=head,
                                part=part)
        processed += done
        split_at = _splits(env, cfg, body, local)
        splits = max(splits, len(split_at))
        nxt: Parts = {}
        for s in back:
            part.put(nxt, head, s)
        record_ranges(history, joined(nxt), part.live[head])
        # ``done`` covers every entry state of this iteration once; the kernel repeats it per state.
        # With inner loops (``inner`` iterations in all per iteration of this one) we count as if the
        # nest were one loop of ``iterations * inner`` iterations: the kernel unrolls the inner loops
        # on each path too, each inner iteration splitting paths and adding values.
        # Each split of an iteration can give each growing number (and the proven packet range, at a
        # bounds check) one more value: a sum adds a byte or not at every check it follows.
        n_splits = len(split_at)
        n_packet = sum(_packet_split(env, i, local) for i in split_at)
        for j in range(1, inner + 1):
            flat = (iterations - 1) * inner + j
            values = tuple(min(flat, len(h) * inner) * max(n_splits, 1) for h in history.values())
            if n_packet:
                values += (flat * n_packet,)
            estimate += done * (kernel_states_at(flat, max(splits, 1), values) if splits else 1)
            if estimate > kernel_budget:
                break
        if not nxt:
            return LoopVerdict("bounded", iterations, processed, estimate)
        if all(any(st.le(s, c) for c in current.values()) for s in nxt.values()):
            return LoopVerdict("forever", iterations, processed, estimate)
        if estimate > kernel_budget:
            return LoopVerdict("complex", iterations, processed, estimate)
        if processed > budget:
            return LoopVerdict("budget", iterations, processed, estimate)
        current = nxt
    return LoopVerdict("bounded", iterations, processed, estimate)


def analyse(env: Env, entry: State | None = None, max_parts: int = MAX_PARTS) -> Analysis:
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
    base = _analyse(env, entry, 1)
    if max_parts <= 1 or not any(f.is_error for f in base.findings):
        return base
    # Loops: re-run the termination pass only where the plain analysis called a loop unbounded (a quick
    # verdict); one it proved bounded needs no second proof, and one that exhausted the unrolling budget
    # keeps its finding rather than spend the budget again.
    recheck = {f.insn for f in base.findings if f.code == Code.UNBOUNDED_LOOP}
    fine = _analyse(env, entry, max_parts, recheck)
    fine.findings += [f for f in base.findings if f.code == Code.COMPLEXITY and f.insn >= 0]
    flagged_by_base = {f.insn for f in base.findings if f.is_error}
    fine.findings = [f for f in fine.findings if not f.is_error or f.insn in flagged_by_base]
    fine.processed += base.processed
    fine.kernel_estimate = max(fine.kernel_estimate, base.kernel_estimate)
    return fine


def loop_test(env: Env, cfg: Cfg, head: int) -> int:
    """The instruction that stands for the loop at ``head`` in messages: its exit test against a
    constant (``i <= 63``: the loop's own line, ``for i in range(64)``), else the head."""
    body = cfg.loop_body(head)
    exits = [i for i in sorted(body) if any(t not in body for t in cfg.succs[i]) and len(cfg.succs[i]) == 2]
    counted = [i for i in exits if source(env.insns[i].opcode) == Source.K]
    return (counted or [head])[-1]


def _too_complex(estimate: int, iterations: int, head: int, done: bool) -> VerifierFinding:
    """The loop at ``head`` would make the kernel process more than its limit."""
    how = (f"its {iterations} iterations" if done else
           f"its first {iterations} iterations alone (under the limit: about {iterations - 1})")
    return VerifierFinding(
        Code.COMPLEXITY, head,
        f"the kernel verifies each path through this loop separately: {how} come to about {estimate:,} "
        f"instructions to verify, above the kernel's limit of {BPF_COMPLEXITY_LIMIT_INSNS:,} (it would refuse "
        f"with 'BPF program is too large'); lower the loop's bound (fewer iterations, or fewer branches in "
        "its body), or, in C, move the body into a bpf_loop() callback", ())


def _analyse(env: Env, entry: State | None, max_parts: int, loop_heads: set[int] | None = None) -> Analysis:
    cfg = build_cfg(env)
    findings = list(cfg.findings)
    start = entry or st.entry_state()
    pre: dict[int, Parts] = {}
    part = Partitioner(max_parts, live_in(env.insns, cfg.succs))
    processed = 0
    if env.insns:
        pre[0] = {}
        part.put(pre[0], 0, start)
        done, _ = _propagate(env, cfg, pre, [(0, 0)], {}, part=part)
        processed += done
        processed += _narrow(env, cfg, pre, start, part)
    loops: dict[int, int] = {}
    budget = UNROLL_BUDGET
    kernel_work = processed
    # Inner loops first: an outer loop's estimate counts the iterations of the loops nested in it.
    for head in sorted(cfg.heads, key=lambda h: (len(cfg.loop_body(h)), h)):
        if head not in pre or (loop_heads is not None and head not in loop_heads):
            continue
        body = cfg.loop_body(head)
        inner = 1
        for h, n in loops.items():
            if h != head and h in body:
                inner *= n
        lv = _terminates(env, cfg, pre, head, budget, part, max(0, BPF_COMPLEXITY_LIMIT_INSNS - kernel_work),
                         inner)
        verdict, iters, work = lv.verdict, lv.iterations, lv.processed
        budget -= work
        processed += work
        kernel_work += lv.kernel_estimate
        if verdict == "bounded":
            loops[head] = iters
            if kernel_work > BPF_COMPLEXITY_LIMIT_INSNS:
                findings.append(_too_complex(kernel_work, iters, loop_test(env, cfg, head), done=True))
        elif verdict == "complex":
            findings.append(_too_complex(kernel_work, iters, loop_test(env, cfg, head), done=False))
        elif verdict == "forever":
            findings.append(VerifierFinding(
                Code.UNBOUNDED_LOOP, head,
                f"the loop starting here may never exit: iteration {iters} starts from a state an earlier "
                "iteration already covered, so nothing bounds it", ()))
        else:
            findings.append(VerifierFinding(
                Code.COMPLEXITY, head,
                f"could not show that the loop starting here ends within {iters} iterations "
                f"({UNROLL_BUDGET} simulated instructions)", ()))
            budget = max(budget, 0)
    sink = Sink(active=True)
    seen: set[tuple[Code, int]] = set()
    for idx in sorted(pre):
        for s in pre[idx].values():
            before = len(sink.findings)
            step(env, idx, s, sink)
            fresh = sink.findings[before:]
            del sink.findings[before:]
            for f in fresh:
                if (f.code, f.insn) not in seen:
                    seen.add((f.code, f.insn))
                    sink.findings.append(f)
    findings.extend(sink.findings)
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
                    kernel_work)
