"""Block layout: unreachable blocks go, a block entered by one jump joins its predecessor, and a jump to
a block with no instructions takes that block's terminator (its parameters replaced by the jump's
arguments), so a branch on a presence flag passed as a constant is decided on the edge that passes it.
A branch whose two sides come to the same (they change nothing and jump to one block with equal
arguments, as the leaves of a header parse do once its results are no longer read) is a jump.
"""

from __future__ import annotations

from collections.abc import Mapping

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, drop_unreachable
from pybpfdsl.ir.passes.dce import REMOVABLE
from pybpfdsl.ir.passes.rewrite import Fresh, copy_program, rename

MAX_ROUNDS = 1000


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    drop_unreachable(out)  # an unreachable block may jump to one a merge removes
    for _ in range(MAX_ROUNDS):
        if not (_thread(out) or _merge(out) or _same_way(out)):
            break
    drop_unreachable(out)
    return out


def _params(block: n.Block, args: tuple[n.Value, ...]) -> dict[n.Value, n.Value]:
    return dict(zip(block.params, args, strict=True))


def _read_elsewhere(program: n.Program) -> set[n.Value]:
    """Values some block reads outside its own terminator: a block's parameters read there are needed
    where the block dominates, so its terminator cannot move into its predecessors."""
    readers: dict[n.Value, set[str]] = {}  # by value, not block by block: linear in the program
    for b in program.blocks:
        for i in b.instrs:
            for v in i.operands():
                readers.setdefault(v, set()).add(b.name)
        if b.terminator is not None:
            for v in b.terminator.operands():
                readers.setdefault(v, set()).add(b.name)
    return {p for b in program.blocks for p in b.params if readers.get(p, set()) - {b.name}}


def _movable(target: n.Block, source: n.Block, outside: set[n.Value]) -> bool:
    """Whether `target`'s terminator may be copied into `source`: it has no instructions, is not a loop
    onto itself, and its parameters are read nowhere else."""
    return target is not source and not target.instrs and target.terminator is not None \
        and all(e.target != target.name for e in target.terminator.edges()) \
        and not any(p in outside for p in target.params)


def _thread(program: n.Program) -> bool:
    """Jumps to an instruction-less block take its terminator."""
    blocks = {b.name: b for b in program.blocks}
    outside = _read_elsewhere(program)
    changed = False
    for b in program.blocks:
        term = b.terminator
        if isinstance(term, n.Jump):
            target = blocks[term.to.target]
            if _decides(program, target, term.to) and _carry(program, target, outside):
                return True
            if _movable(target, b, outside) and target.terminator is not None:
                b.terminator = rename(target.terminator, _params(target, term.to.args))
                changed = True
        elif isinstance(term, n.Branch):
            edges = [_forward(blocks, b, e, outside) for e in (term.if_true, term.if_false)]
            if edges != [term.if_true, term.if_false]:
                b.terminator = n.Branch(cond=term.cond, if_true=edges[0], if_false=edges[1], line=term.line,
                                        expect=term.expect)
                changed = True
    if changed:
        drop_unreachable(program)
    return changed


def _decides(program: n.Program, target: n.Block, jump: n.Edge) -> bool:
    """Whether `jump` passes a constant to the parameter `target` (an instruction-less block) branches on."""
    term = target.terminator
    if target.instrs or not isinstance(term, n.Branch) or term.cond not in target.params:
        return False
    arg = jump.args[target.params.index(term.cond)]
    return any(isinstance(i, n.Const) and i.out == arg for b in program.blocks for i in b.instrs)


def _carry(program: n.Program, target: n.Block, outside: set[n.Value]) -> bool:
    """Pass `target`'s parameters that other blocks read on to the successors those blocks lie under, as
    parameters of their own, so `target`'s terminator can be copied into a predecessor. Possible when each
    such block is dominated by a successor that only `target` enters (a presence flag's branch, its
    header's offset read under the flag's true side). False when nothing is to carry or it is impossible."""
    escaping = [p for p in target.params if p in outside]
    if not escaping or target.terminator is None:
        return False
    cfg = Cfg.of(program)
    succs = {e.target for e in target.terminator.edges()}
    if target.name in succs or any(set(cfg.preds.get(x, ())) != {target.name} for x in succs):
        return False
    plan: dict[str, list[n.Value]] = {}
    for b in program.blocks:
        if b is target:
            continue
        read = {v for i in b.instrs for v in i.operands()}
        read |= set(b.terminator.operands()) if b.terminator is not None else set()
        wanted = [p for p in escaping if p in read]
        if not wanted:
            continue
        under = [x for x in succs if cfg.dominates(x, b.name)]
        if not under:
            return False
        plan.setdefault(under[0], [])
        plan[under[0]] += [p for p in wanted if p not in plan[under[0]]]
    fresh = Fresh(program)
    blocks = {b.name: b for b in program.blocks}
    for name, carried in plan.items():
        names = {p: fresh.value(p.type, p.hint) for p in carried}
        for b in program.blocks:
            if cfg.dominates(name, b.name):
                b.instrs = [rename(i, names) for i in b.instrs]
                if b.terminator is not None:
                    b.terminator = rename(b.terminator, names)
        blocks[name].params = blocks[name].params + [names[p] for p in carried]
        target.terminator = _extended(target.terminator, name, tuple(carried))
    return True


def _extended(term: n.Terminator, target: str, extra: tuple[n.Value, ...]) -> n.Terminator:
    """`term` with `extra` appended to the arguments of its edges to `target`."""
    def edge(e: n.Edge) -> n.Edge:
        return n.Edge(e.target, e.args + extra) if e.target == target else e

    if isinstance(term, n.Jump):
        return n.Jump(to=edge(term.to), line=term.line)
    if isinstance(term, n.Branch):
        return n.Branch(cond=term.cond, if_true=edge(term.if_true), if_false=edge(term.if_false), line=term.line,
                        expect=term.expect)
    return term


def _forward(blocks: dict[str, n.Block], source: n.Block, e: n.Edge, outside: set[n.Value]) -> n.Edge:
    """A branch edge to an instruction-less block that only jumps on goes straight to that jump's target."""
    target = blocks[e.target]
    term = target.terminator
    if not isinstance(term, n.Jump) or not _movable(target, source, outside):
        return e
    forwarded = rename(term, _params(target, e.args))
    assert isinstance(forwarded, n.Jump)
    return forwarded.to


def _merge(program: n.Program) -> bool:
    """A block whose only entry is a jump from its one predecessor joins that predecessor."""
    cfg = Cfg.of(program)
    blocks = {b.name: b for b in program.blocks}
    for b in program.blocks:
        term = b.terminator
        if not isinstance(term, n.Jump) or term.to.target == program.entry.name:
            continue
        target = blocks[term.to.target]
        if target is b or cfg.preds.get(target.name) != (b.name,):
            continue
        names = _params(target, term.to.args)
        b.instrs = b.instrs + [rename(i, names) for i in target.instrs]
        b.terminator = None if target.terminator is None else rename(target.terminator, names)
        program.blocks = [x for x in program.blocks if x is not target]
        _rename_everywhere(program, names)
        return True
    return False


def _rename_everywhere(program: n.Program, names: dict[n.Value, n.Value]) -> None:
    """Uses of the merged block's parameters elsewhere (in blocks it dominated) read the arguments."""
    for b in program.blocks:
        b.instrs = [rename(i, names) for i in b.instrs]
        if b.terminator is not None:
            b.terminator = rename(b.terminator, names)


def _same_way(program: n.Program) -> bool:
    """A branch whose two edges come to the same jump (`_outcome`) jumps on one of them: the one whose
    block computes only pure values (no packet read that only the branch made safe)."""
    blocks = {b.name: b for b in program.blocks}
    consts = {i.out: (i.out.type, i.value) for b in program.blocks for i in b.instrs if isinstance(i, n.Const)}
    for b in program.blocks:
        term = b.terminator
        if not isinstance(term, n.Branch) or term.if_true == term.if_false:
            continue
        outcomes = [_outcome(blocks, e, consts) for e in (term.if_true, term.if_false)]
        if outcomes[0] is None or outcomes[0] != outcomes[1]:
            continue
        for e in (term.if_true, term.if_false):
            target = blocks[e.target]
            if e.args or target is b or all(isinstance(i, n.PureInstr) for i in target.instrs):
                b.terminator = n.Jump(to=e, line=term.line)
                drop_unreachable(program)
                return True
    return False


def _outcome(blocks: dict[str, n.Block], e: n.Edge, consts: Mapping[n.Value, object]
             ) -> tuple[object, ...] | None:
    """Where following `e` leads and with what, constants by value: the edge itself when it passes
    arguments, else its block's jump when the block has no parameters and changes nothing; None otherwise."""
    jump = e
    if not e.args:
        target = blocks[e.target]
        term = target.terminator
        if target.params or not isinstance(term, n.Jump) or term.to.target == target.name \
                or not all(isinstance(i, REMOVABLE) for i in target.instrs):
            return None
        inside = {i.result for i in target.instrs if i.result is not None}
        if any(a in inside and a not in consts for a in term.to.args):
            return None
        jump = term.to
    return (jump.target, *(consts.get(a, a) for a in jump.args))
