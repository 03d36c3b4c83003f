"""The control-flow graph of an IR program: successors, predecessors, reverse postorder, dominators.

Shared by the passes and by the backend (which finds there the bounds checks that dominate a packet
load). Dominators are computed with Cooper, Harvey and Kennedy's iterative algorithm over the reverse
postorder; unreachable blocks have none.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pybpfdsl.ir import nodes as n
from pybpfdsl.lang.arith import BinOp


def successors(block: n.Block) -> tuple[str, ...]:
    return tuple(e.target for e in block.terminator.edges()) if block.terminator is not None else ()


def reverse_postorder(program: n.Program) -> list[str]:
    """Names of the reachable blocks, each after its dominators (iterative: programs may be long chains)."""
    blocks = {b.name: b for b in program.blocks}
    order: list[str] = []
    seen = {program.entry.name}
    stack: list[tuple[str, Iterator[str]]] = [(program.entry.name, iter(successors(program.entry)))]
    while stack:
        name, it = stack[-1]
        for succ in it:
            if succ not in seen and succ in blocks:
                seen.add(succ)
                stack.append((succ, iter(successors(blocks[succ]))))
                break
        else:
            stack.pop()
            order.append(name)
    order.reverse()
    return order


@dataclass(frozen=True)
class Cfg:
    """One snapshot of a program's control flow (recompute after a pass changes it)."""

    order: tuple[str, ...]
    preds: dict[str, tuple[str, ...]]
    """Predecessor blocks, once per edge (a branch with both edges to one block counts twice)."""
    idom: dict[str, str]
    """Immediate dominator of each reachable block but the entry."""

    @staticmethod
    def of(program: n.Program) -> Cfg:
        order = reverse_postorder(program)
        reachable = set(order)
        preds: dict[str, list[str]] = {name: [] for name in order}
        for b in program.blocks:
            if b.name in reachable:
                for s in successors(b):
                    preds[s].append(b.name)
        index = {name: i for i, name in enumerate(order)}
        idom: dict[str, str] = {order[0]: order[0]} if order else {}
        changed = True
        while changed:
            changed = False
            for name in order[1:]:
                done = [p for p in preds[name] if p in idom]
                new = done[0]
                for p in done[1:]:
                    x, y = p, new
                    while x != y:
                        while index[x] > index[y]:
                            x = idom[x]
                        while index[y] > index[x]:
                            y = idom[y]
                    new = x
                if idom.get(name) != new:
                    idom[name] = new
                    changed = True
        if order:
            del idom[order[0]]
        return Cfg(tuple(order), {k: tuple(v) for k, v in preds.items()}, idom)

    def dominators(self, name: str) -> Iterator[str]:
        """`name` and the blocks that dominate it, nearest first."""
        yield name
        while name in self.idom:
            name = self.idom[name]
            yield name

    def dominates(self, a: str, b: str) -> bool:
        return any(d == a for d in self.dominators(b))

    def only_edge_from(self, target: str, source: str) -> bool:
        """Whether the one way into `target` is a single edge from `source` (so what `source`'s branch
        learnt on that edge holds throughout the blocks `target` dominates)."""
        return self.preds.get(target) == (source,)


def definitions(program: n.Program) -> dict[n.Value, n.Instr]:
    """The instruction defining each value (block parameters have none)."""
    return {i.result: i for b in program.blocks for i in b.instrs if i.result is not None}


def constant_offset(value: n.Value, defs: dict[n.Value, n.Instr]) -> tuple[n.Value | None, int]:
    """`value` as (base, k) with value = base + k (u64, k a constant); base None when it is the constant k."""
    k = 0
    while True:
        d = defs.get(value)
        if isinstance(d, n.Const):
            return None, (k + d.value) % (1 << 64)
        if isinstance(d, n.Binary) and d.op is BinOp.ADD:
            left, right = defs.get(d.lhs), defs.get(d.rhs)
            if isinstance(right, n.Const):
                k, value = k + right.value, d.lhs
                continue
            if isinstance(left, n.Const):
                k, value = k + left.value, d.rhs
                continue
        return value, k % (1 << 64)


def drop_unreachable(program: n.Program) -> None:
    """Remove the blocks no path reaches (in place): a decided branch may leave some, and the checker
    refuses their uses of values that no longer dominate them."""
    reachable = set(reverse_postorder(program))
    program.blocks = [b for b in program.blocks if b.name in reachable]
