"""Block layout from likelihood hints: the usual successor of a branch falls through, the rare one is
placed out of line.

An IR branch may say which way it usually goes (`nodes.Expect`: from `likely(c)` / `unlikely(c)` in the
source, or from a profile of pure-Python runs). The hint reaches the bytecode in two ways:

- the order of the LLVM blocks. The lowering emits blocks in a reverse postorder of a depth-first walk
  (`lower._reverse_postorder`), and a block's last-visited successor comes right after it. The walk
  visits a hinted branch's cold successor first and its hot successor last, so the hot successor
  follows the branch and what only the cold successor reaches is placed after everything the hot one
  reaches: at the end of the function. This is what decides the layout on BPF: LLVM's block placement
  cannot move a block across a conditional jump it cannot analyse (`BPFInstrInfo::analyzeBranch` gives
  up on every conditional jump), so the bytecode keeps the order the IR had, and instruction selection
  makes the next block the fall-through.
- branch weights on the conditional branch (what clang gives `__builtin_expect`), so that LLVM's own
  passes (if-conversion, tail duplication, spill placement) favour the hot path too.

The common path then runs without a taken `goto` between its blocks. Unhinted branches keep the walk's
order (the true edge first), so programs without hints compile as before. A hint changes no execution's
meaning: the IR interpreter and the equivalence proof ignore it, and the bytecode is proven against the
same IR.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from llvmlite import ir

from pybpfdsl.ir.nodes import Block, Branch, Edge, Expect, Program, Terminator

__all__ = ["COLD_WEIGHT", "HOT_WEIGHT", "LayoutError", "branch_weights", "cold_edge", "layout", "visit_order", "weigh"]

HOT_WEIGHT = 2000
"""The weight of the expected successor: LLVM's `LikelyBranchWeight`, what `__builtin_expect` gives."""
COLD_WEIGHT = 1
"""The weight of the other successor: LLVM's `UnlikelyBranchWeight`."""


class LayoutError(ValueError):
    """A block without a terminator, or an edge to a block the program does not have."""


def cold_edge(term: Terminator) -> Edge | None:
    """The edge a hinted branch rarely takes (None for any other terminator)."""
    if isinstance(term, Branch) and term.expect is not None and term.if_true.target != term.if_false.target:
        return term.if_false if term.expect is Expect.LIKELY else term.if_true
    return None


def visit_order(term: Terminator) -> tuple[Edge, ...]:
    """The edges of `term` in the order the layout walk visits them: a hinted branch's cold edge first,
    so that its hot successor is the last visited, placed right after the branch."""
    cold = cold_edge(term)
    if cold is None:
        return term.edges()
    return (cold, *(e for e in term.edges() if e is not cold))


def layout(program: Program) -> list[Block]:
    """The reachable blocks in the order the backend emits them: first the blocks reachable without
    taking a cold edge, in a reverse postorder of the graph without cold edges; then the blocks only a
    cold edge leads to, in a reverse postorder of the whole graph. Each block comes after all of its
    dominators (a block reachable without cold edges has only such blocks as dominators), and without
    hints this is the plain reverse postorder, visiting edges in order."""
    blocks = {b.name: b for b in program.blocks}

    def successors(b: Block, skip_cold: bool) -> Iterator[Block]:
        if b.terminator is None:
            raise LayoutError(f"^{b.name} has no terminator")
        cold = cold_edge(b.terminator) if skip_cold else None
        for e in visit_order(b.terminator):
            if e is cold:
                continue
            if e.target not in blocks:
                raise LayoutError(f"^{b.name} jumps to unknown block ^{e.target}")
            yield blocks[e.target]

    hot = _reverse_postorder(program.entry, lambda b: successors(b, skip_cold=True))
    placed = {b.name for b in hot}
    every = _reverse_postorder(program.entry, lambda b: successors(b, skip_cold=False))
    return hot + [b for b in every if b.name not in placed]


def _reverse_postorder(entry: Block, successors: Callable[[Block], Iterator[Block]]) -> list[Block]:
    order: list[Block] = []
    seen = {entry.name}
    # Iterative DFS (programs may be long chains of blocks; avoid Python's recursion limit).
    stack: list[tuple[Block, Iterator[Block]]] = [(entry, successors(entry))]
    while stack:
        block, it = stack[-1]
        for succ in it:
            if succ.name not in seen:
                seen.add(succ.name)
                stack.append((succ, successors(succ)))
                break
        else:
            stack.pop()
            order.append(block)
    order.reverse()
    return order


def branch_weights(expect: Expect) -> tuple[int, int]:
    """The (true, false) successor weights of a branch expected to go `expect`'s way."""
    return (HOT_WEIGHT, COLD_WEIGHT) if expect is Expect.LIKELY else (COLD_WEIGHT, HOT_WEIGHT)


def weigh(branch: ir.ConditionalBranch, expect: Expect | None) -> None:
    """Put a hinted branch's weights on its LLVM conditional branch (an unhinted one is left to LLVM)."""
    if expect is not None:
        branch.set_weights(list(branch_weights(expect)))
