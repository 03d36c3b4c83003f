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

from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.verify.analysis import state as st
from pybpfdsl.verify.analysis.checks import BPF_COMPLEXITY_LIMIT_INSNS, Code, Sink, VerifierFinding
from pybpfdsl.verify.analysis.state import State
from pybpfdsl.verify.analysis.transfer import Env, step

__all__ = ["Analysis", "Cfg", "analyse", "build_cfg"]

WIDEN_DELAY = 3
NARROW_PASSES = 2
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
    kind = insn.kind
    if kind == Kind.EXIT or kind == Kind.INVALID:
        return []
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


@dataclass
class Analysis:
    env: Env
    cfg: Cfg
    pre: dict[int, State]
    """The invariant before each abstractly reachable instruction."""
    findings: list[VerifierFinding]
    processed: int
    """Instructions simulated (fixpoint + narrowing + loop unrolling): our analogue of the kernel's count."""
    loop_iterations: dict[int, int]
    """Loop head → iterations the termination pass needed (bounded loops only)."""


def _propagate(env: Env, cfg: Cfg, pre: dict[int, State], work: list[tuple[int, int]], visits: dict[int, int],
               nodes: set[int] | None = None, stop: int | None = None) -> tuple[int, list[State]]:
    """Work-set iteration from ``pre``/``work``; states reaching ``stop`` are returned, not propagated."""
    sink = Sink()
    processed = 0
    queued = {i for _, i in work}
    at_stop: list[State] = []
    while work:
        _, idx = heapq.heappop(work)
        queued.discard(idx)
        processed += 1
        for t, s in step(env, idx, pre[idx], sink):
            if t < 0 or t >= len(env.insns) or (nodes is not None and t not in nodes):
                continue
            if t == stop:
                at_stop.append(s)
                continue
            old = pre.get(t)
            if old is not None and st.le(s, old):
                continue
            visits[t] = visits.get(t, 0) + 1
            joined = st.join(old, s)
            new = st.widen(old, joined, env.thresholds) if t in cfg.heads and visits[t] > WIDEN_DELAY else joined
            assert new is not None
            if new == old:
                continue
            pre[t] = new
            if t not in queued:
                queued.add(t)
                heapq.heappush(work, (cfg.order.get(t, t), t))
    return processed, at_stop


def _narrow(env: Env, cfg: Cfg, pre: dict[int, State], entry: State) -> int:
    """Descending passes in reverse post-order (Gauss-Seidel: a state is recomputed from the states its
    forward predecessors got earlier in the same pass; back edges use the previous pass's states)."""
    sink = Sink()
    processed = 0
    back_into: dict[int, list[int]] = {}
    for src, head in cfg.back_edges:
        back_into.setdefault(head, []).append(src)
    for _ in range(NARROW_PASSES):
        old = dict(pre)
        acc: dict[int, State | None] = {0: entry}
        new_pre: dict[int, State] = {}
        for idx in cfg.rpo:
            incoming = acc.get(idx)
            if idx in cfg.heads:
                for src in back_into.get(idx, []):
                    if src in old:
                        processed += 1
                        for t, out in step(env, src, old[src], sink):
                            if t == idx:
                                incoming = st.join(incoming, out)
                incoming = st.narrow(old.get(idx), incoming)
            if incoming is None:
                continue
            new_pre[idx] = incoming
            processed += 1
            for t, out in step(env, idx, incoming, sink):
                if 0 <= t < len(env.insns) and (idx, t) not in cfg.back_edges:
                    acc[t] = st.join(acc.get(t), out)
        pre.clear()
        pre.update(new_pre)
    return processed


def _loop_entry(env: Env, cfg: Cfg, pre: dict[int, State], head: int, body: set[int]) -> State | None:
    sink = Sink()
    entry: State | None = None
    for p in cfg.preds[head]:
        if p in body or p not in pre:
            continue
        for t, s in step(env, p, pre[p], sink):
            if t == head:
                entry = st.join(entry, s)
    return entry


def _terminates(env: Env, cfg: Cfg, pre: dict[int, State], head: int, budget: int) -> tuple[str, int, int]:
    """('bounded' | 'forever' | 'budget', iterations, processed) for the loop at ``head``."""
    body = cfg.loop_body(head)
    current = _loop_entry(env, cfg, pre, head, body)
    if head == 0:
        current = st.join(current, pre.get(0))
    processed = 0
    iterations = 0
    while current is not None:
        iterations += 1
        local: dict[int, State] = {head: current}
        done, back = _propagate(env, cfg, local, [(cfg.order.get(head, head), head)], {}, body, stop=head)
        processed += done
        nxt: State | None = None
        for s in back:
            nxt = st.join(nxt, s)
        if nxt is None:
            return "bounded", iterations, processed
        if st.le(nxt, current):
            return "forever", iterations, processed
        if processed > budget:
            return "budget", iterations, processed
        current = nxt
    return "bounded", iterations, processed


def analyse(env: Env, entry: State | None = None) -> Analysis:
    cfg = build_cfg(env)
    findings = list(cfg.findings)
    start = entry or st.entry_state()
    pre: dict[int, State] = {}
    processed = 0
    if env.insns:
        pre[0] = start
        done, _ = _propagate(env, cfg, pre, [(0, 0)], {})
        processed += done
        processed += _narrow(env, cfg, pre, start)
    loops: dict[int, int] = {}
    budget = UNROLL_BUDGET
    for head in sorted(cfg.heads):
        if head not in pre:
            continue
        verdict, iters, work = _terminates(env, cfg, pre, head, budget)
        budget -= work
        processed += work
        if verdict == "bounded":
            loops[head] = iters
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
    for idx in sorted(pre):
        step(env, idx, pre[idx], sink)
    findings.extend(sink.findings)
    if processed > BPF_COMPLEXITY_LIMIT_INSNS:
        findings.append(VerifierFinding(
            Code.COMPLEXITY, -1, f"about {processed} instructions to verify, above the kernel's limit of "
            f"{BPF_COMPLEXITY_LIMIT_INSNS}"))
    return Analysis(env, cfg, pre, findings, processed, loops)
