"""Well-formedness of IR programs: structure, SSA dominance and the type rules of each instruction.

A frontend or pass that produces malformed IR has a bug; `check_program` finds it before the backend or
an interpreter gives a confusing answer. Each instruction's type rule is its class's `check` method
(`nodes`); this module walks the blocks and asks it.
"""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.rules import IRError, ProgramRules

__all__ = ["IRError", "check_program"]


def _dominators(p: n.Program) -> dict[str, set[str]]:
    names = [b.name for b in p.blocks]
    preds: dict[str, set[str]] = {name: set() for name in names}
    for b in p.blocks:
        if b.terminator is not None:
            for e in b.terminator.edges():
                preds[e.target].add(b.name)
    everything = set(names)
    dom = {name: set(everything) for name in names}
    dom[names[0]] = {names[0]}
    changed = True
    while changed:
        changed = False
        for name in names[1:]:
            incoming = [dom[q] for q in preds[name]]
            new = set.intersection(*incoming) | {name} if incoming else {name}
            if new != dom[name]:
                dom[name] = new
                changed = True
    return dom


def _expect(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise IRError(f"{where}: {message}")


def check_program(p: n.Program) -> None:
    """Raise IRError at the first broken rule."""
    _expect(bool(p.blocks), p.name, "no blocks")
    names = [b.name for b in p.blocks]
    _expect(len(set(names)) == len(names), p.name, "duplicate block names")
    _expect(not p.entry.params, p.entry.name, "the entry block takes no parameters")
    by_name = {b.name: b for b in p.blocks}
    defined_in: dict[n.Value, str] = {}
    for b in p.blocks:
        _expect(b.terminator is not None, b.name, "block has no terminator")
        for v in b.params:
            _expect(v not in defined_in, b.name, f"{v} defined twice")
            defined_in[v] = b.name
        for i in b.instrs:
            r = i.result
            if r is not None:
                _expect(r not in defined_in, b.name, f"{r} defined twice")
                defined_in[r] = b.name
    dom = _dominators(p)
    for b in p.blocks:
        seen_here: set[n.Value] = set(b.params)
        body: list[n.Instr | n.Terminator] = [*b.instrs]
        assert b.terminator is not None
        body.append(b.terminator)
        for index, item in enumerate(body):
            where = f"^{b.name}[{index}]"
            for v in item.operands():
                _expect(v in defined_in, where, f"{v} is used but never defined")
                home = defined_in[v]
                ok = v in seen_here if home == b.name else home in dom[b.name]
                _expect(ok, where, f"{v} does not dominate its use")
            if isinstance(item, n.Instr):
                item.check(ProgramRules(p, where))
                if item.result is not None:
                    seen_here.add(item.result)
        term = b.terminator
        where = f"^{b.name}: terminator"
        for e in term.edges():
            _expect(e.target in by_name, where, f"jump to unknown block {e.target}")
            target = by_name[e.target]
            _expect(len(e.args) == len(target.params), where, f"{e.target} takes {len(target.params)} arguments")
            for a, param in zip(e.args, target.params):
                _expect(a.type == param.type, where, f"argument {a}: {a.type} for {param}: {param.type}")
        term.check(ProgramRules(p, where))
