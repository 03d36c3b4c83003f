"""Block layout: unreachable blocks go, a block entered by one jump joins its predecessor, and a jump to
a block with no instructions takes that block's terminator (its parameters replaced by the jump's
arguments), so a branch on a presence flag passed as a constant is decided on the edge that passes it.
"""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, drop_unreachable
from pybpfdsl.ir.passes.rewrite import copy_program, rename

MAX_ROUNDS = 1000


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    drop_unreachable(out)  # an unreachable block may jump to one a merge removes
    for _ in range(MAX_ROUNDS):
        if not (_thread(out) or _merge(out)):
            break
    drop_unreachable(out)
    return out


def _params(block: n.Block, args: tuple[n.Value, ...]) -> dict[n.Value, n.Value]:
    return dict(zip(block.params, args, strict=True))


def _read_elsewhere(program: n.Program) -> set[n.Value]:
    """Values some block reads outside its own terminator: a block's parameters read there are needed
    where the block dominates, so its terminator cannot move into its predecessors."""
    read: dict[str, set[n.Value]] = {}
    for b in program.blocks:
        for i in b.instrs:
            read.setdefault(b.name, set()).update(i.operands())
        if b.terminator is not None:
            read.setdefault(b.name, set()).update(b.terminator.operands())
    outside: set[n.Value] = set()
    for b in program.blocks:
        for name, values in read.items():
            if name != b.name:
                outside.update(v for v in b.params if v in values)
    return outside


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
            if _movable(target, b, outside) and target.terminator is not None:
                b.terminator = rename(target.terminator, _params(target, term.to.args))
                changed = True
        elif isinstance(term, n.Branch):
            edges = [_forward(blocks, b, e, outside) for e in (term.if_true, term.if_false)]
            if edges != [term.if_true, term.if_false]:
                b.terminator = n.Branch(cond=term.cond, if_true=edges[0], if_false=edges[1], line=term.line)
                changed = True
    if changed:
        drop_unreachable(program)
    return changed


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
