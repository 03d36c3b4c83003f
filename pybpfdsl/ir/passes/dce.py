"""Dead code: instructions whose result nobody reads and that change nothing, and block parameters that
are unused or receive one value from every edge.

An instruction is removable when its only effect is its result: pure operations, and reads of the
packet, the length, a bounds test, a null test, a map value or a global. A lookup stays (an LRU map
notes the access), and so do helper calls (each consumes the next result of its stream).
"""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg
from pybpfdsl.ir.passes.rewrite import copy_program, rename_all, resolve, uses

REMOVABLE: tuple[type[n.Instr], ...] = (
    n.PureInstr, n.PacketLen, n.InBounds, n.LoadPacket, n.IsNull, n.LoadValue, n.LoadGlobal)


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    _single_valued_params(out)
    changed = True
    while changed:
        count = uses(out)
        changed = _drop_instrs(out, count) | _drop_params(out, count)
    return out


def _drop_instrs(program: n.Program, count: dict[n.Value, int]) -> bool:
    changed = False
    for b in program.blocks:
        kept = [i for i in b.instrs
                if not (isinstance(i, REMOVABLE) and i.result is not None and count.get(i.result, 0) == 0)]
        changed |= len(kept) != len(b.instrs)
        b.instrs = kept
    return changed


def _drop_params(program: n.Program, count: dict[n.Value, int]) -> bool:
    """Remove the parameters nothing reads, and the arguments the edges pass them."""
    dead: dict[str, list[int]] = {}
    for b in program.blocks:
        if b is program.entry:
            continue
        idx = [k for k, p in enumerate(b.params) if count.get(p, 0) == 0]
        if idx:
            dead[b.name] = idx
    if not dead:
        return False
    for b in program.blocks:
        b.params = [p for k, p in enumerate(b.params) if k not in dead.get(b.name, ())]
        if b.terminator is not None:
            b.terminator = _without_args(b.terminator, dead)
    return True


def _without_args(term: n.Terminator, dead: dict[str, list[int]]) -> n.Terminator:
    def edge(e: n.Edge) -> n.Edge:
        gone = dead.get(e.target)
        return n.Edge(e.target, tuple(a for k, a in enumerate(e.args) if k not in gone)) if gone else e

    if isinstance(term, n.Jump):
        return n.Jump(to=edge(term.to), line=term.line)
    if isinstance(term, n.Branch):
        return n.Branch(cond=term.cond, if_true=edge(term.if_true), if_false=edge(term.if_false), line=term.line,
                        expect=term.expect)
    return term


def _single_valued_params(program: n.Program) -> None:
    """A parameter every edge passes one value to (or itself, around a loop) is that value. That value
    reaches the block's every predecessor, so it dominates the block too."""
    cfg = Cfg.of(program)
    names: dict[n.Value, n.Value] = {}
    changed = True
    while changed:
        changed = False
        incoming: dict[str, list[tuple[n.Value, ...]]] = {}
        for b in program.blocks:
            if b.name in cfg.preds and b.terminator is not None:
                for e in b.terminator.edges():
                    incoming.setdefault(e.target, []).append(e.args)
        for b in program.blocks:
            if b is program.entry or b.name not in cfg.preds:
                continue
            for k, p in enumerate(b.params):
                if p in names:
                    continue
                values = {resolve(args[k], names) for args in incoming.get(b.name, [])} - {p}
                if len(values) == 1:
                    names[p] = values.pop()
                    changed = True
    rename_all(program, names)
