"""The fixpoint engine: a work-set iteration to a post-fixpoint with widening at loop heads, then
narrowing.

* Work set ordered by reverse post-order, so a join point is processed after its forward predecessors
  (fewer re-visits, and widening only where a cycle forces it).
* Widening at loop heads only (the targets of DFS back edges: every cycle passes through one), after
  ``WIDEN_DELAY`` plain joins — small constant loops then never widen at all.
* Narrowing: descending passes that recompute every state from its predecessors and, at loop heads,
  narrow the old state by the new one. Starting from a post-fixpoint, each pass stays sound.

Loops' termination and the kernel's cost of them are in :mod:`.loops`; :mod:`.driver` runs both.
"""

from __future__ import annotations

import heapq

from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.cfg import Cfg
from pybpfdsl.verify.analysis.checks import QUIET, Sink, VerifierFinding
from pybpfdsl.verify.analysis.partitions import OVERFLOW, Partitioner, Parts
from pybpfdsl.verify.analysis.transfer import Env, step

__all__ = ["NARROW_PASSES", "WIDEN_DELAY", "WIDEN_LIMIT", "NotConverging", "loop_entry", "narrow", "propagate"]

WIDEN_DELAY = 3
WIDEN_LIMIT = 2_000
"""Passes through one partition at one loop head after which the analysis gives up: a sound widening settles
in a handful, so a point widened this often is chasing its own tail (a join that links packet pointers
under a fresh id makes each result differ from the last by a name), and the program is refused with a
finding rather than analysed forever. A step count, like every budget here, so the verdict is the same on
any machine."""


class NotConverging(Exception):
    """The fixpoint did not settle at instruction ``insn`` within WIDEN_LIMIT passes."""

    def __init__(self, insn: int) -> None:
        super().__init__(f"the analysis did not settle at instruction {insn}")
        self.insn = insn
NARROW_PASSES = 2
NARROW_ANY = True
"""Narrow a loop head's partition by its recomputed self whenever that one is below it."""


def propagate(env: Env, cfg: Cfg, pre: dict[int, Parts], work: list[tuple[int, int]],
               visits: dict[tuple[int, object], int], nodes: set[int] | None = None, stop: int | None = None,
               part: Partitioner | None = None,
               exits: list[tuple[int, State]] | None = None) -> tuple[int, list[State]]:
    """Work-set iteration from ``pre``/``work``; states reaching ``stop`` are returned, not propagated; states
    leaving ``nodes`` are added to ``exits`` (with the instruction they go to), if given."""
    sink = QUIET
    processed = 0
    assert part is not None
    part.learn(env.insns, cfg.succs, cfg.heads)
    # The partitions to re-run at each point, in the order they changed: a dict, not a set, because a
    # set of partition keys iterates in hash order, and keys hold None (whose hash is its address in
    # Python 3.11, different in every process), so the order, and with widening the result, varied.
    dirty: dict[int, dict[object, None]] = {}
    for _, i in work:
        dirty[i] = dict.fromkeys(pre[i])
    at_stop: list[State] = []
    n = len(env.insns)
    le = st.le
    heappop = heapq.heappop
    while work:
        _, idx = heappop(work)
        keys = dirty.pop(idx, None)
        parts_here = pre[idx]
        if OVERFLOW in parts_here:
            keys = {OVERFLOW: None}
        elif not keys:
            continue
        for key in list(keys):
            here = parts_here.get(key)
            if here is None:
                continue
            processed += 1
            for t, s in step(env, idx, here, sink):
                if t < 0 or t >= n:
                    continue
                if nodes is not None and t not in nodes:
                    if exits is not None:
                        exits.append((t, s))
                    continue
                if t == stop:
                    at_stop.append(s)
                    continue
                parts = pre.get(t)
                if parts is None:
                    parts = pre[t] = {}
                else:
                    covered = False
                    pkt_min = s.pkt_min  # (le's first test, written out: most partitions fail it)
                    for o in parts.values():
                        if pkt_min >= o.pkt_min and le(s, o):
                            covered = True
                            break
                    if covered:
                        continue
                was_collapsed = OVERFLOW in parts
                k = part.add(parts, t, s)
                collapsed_now = (k == OVERFLOW and not was_collapsed) or part.rekeyed
                part.rekeyed = False
                old = parts.get(k)
                vk = (t, k)
                count = visits[vk] = visits.get(vk, 0) + 1
                at_head = t in cfg.heads
                if at_head and count > WIDEN_LIMIT:
                    raise NotConverging(t)
                j = st.join(old, s, t)
                new = st.widen(old, j, env.thresholds, t) if at_head and count > WIDEN_DELAY else j
                assert new is not None
                if new == old and not collapsed_now:
                    continue
                parts[k] = new
                if t not in dirty:
                    dirty[t] = {}
                    heapq.heappush(work, (cfg.order.get(t, t), t))
                if collapsed_now:
                    dirty[t].clear()
                    dirty[t].update(dict.fromkeys(parts))
                dirty[t][k] = None
    return processed, at_stop


def narrow(env: Env, cfg: Cfg, pre: dict[int, Parts], entry: State, part: Partitioner,
           found: dict[int, list[VerifierFinding]] | None = None) -> int:
    """Descending passes in reverse post-order (Gauss-Seidel: a state is recomputed from the states its
    forward predecessors got earlier in the same pass; back edges use the previous pass's states).

    Every state of a pass is computed by sound transfer functions from states that over-approximate the
    reachable ones, so it does too; a fixed number of passes needs no narrowing operator to stop. At loop
    heads a partition is narrowed by its recomputed self when that one is below it (precision only).

    ``found``, if given, gets for each point the findings of its final states stepped in order: what a walk
    over the final ``pre`` with the checks on finds, which the last pass steps anyway (those very states:
    a pass steps each point's states once all their forward predecessors are done, and only a back edge,
    read in the next pass, adds to a point stepped before). A pass may turn out to be the last only after
    it ran (see below), so each pass collects them.
    """
    sink = QUIET
    processed = 0
    back_into: dict[int, list[int]] = {}
    for src, head in cfg.back_edges:
        back_into.setdefault(head, []).append(src)
    n = len(env.insns)
    last = 0
    before: dict[str, object] = {}
    last_found: dict[int, list[VerifierFinding]] = {}
    for done in range(NARROW_PASSES):
        if done and not cfg.heads and vars(part) == before:
            # Without back edges a pass reads nothing of the one before it (only loop heads do), so with
            # the partitioner as it was, every further pass would repeat the last one exactly: its work
            # is counted (the kernel's estimate adds it up), not done again.
            processed += (NARROW_PASSES - done) * (processed - last)
            break
        before = _snapshot(part)
        last = processed
        checked = Sink(active=found is not None)
        pass_found: dict[int, list[VerifierFinding]] = {}
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
                for t, out in step(env, idx, s, checked if found is not None else sink):
                    if 0 <= t < n and (idx, t) not in cfg.back_edges:
                        part.put(acc.setdefault(t, {}), t, out)
            if checked.findings:
                pass_found[idx] = checked.findings
                checked.findings = []
        pre.clear()
        pre.update(new_pre)
        last_found = pass_found
    if found is not None:
        found.update(last_found)
    return processed


def _snapshot(part: Partitioner) -> dict[str, object]:
    """``vars(part)`` as it is now: its lists and dicts copied (their items are numbers and keys, so a
    shallow copy is a deep one, at a fraction of ``copy.deepcopy``'s cost)."""
    return {k: dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v
            for k, v in vars(part).items()}


def loop_entry(env: Env, cfg: Cfg, pre: dict[int, Parts], head: int, body: set[int],
                part: Partitioner) -> Parts:
    sink = QUIET
    entry: Parts = {}
    for p in cfg.preds[head]:
        if p in body or p not in pre:
            continue
        for s_p in pre[p].values():
            for t, s in step(env, p, s_p, sink):
                if t == head:
                    part.put(entry, head, s)
    return entry
