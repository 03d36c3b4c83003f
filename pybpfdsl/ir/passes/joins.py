"""Selects at a join decided edge by edge: `select %found, %value, %default` in a block whose parameter
`%found` every edge passes as a constant picks, on each edge, one value; when that is on every edge what
the edge passes to one parameter (`%value`), the select is that parameter. A map lookup's `get(key,
default)` is this shape: the miss edge passes the default both as the value and to the select.
"""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, definitions
from pybpfdsl.ir.passes.rewrite import copy_program, rename_all


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    consts = {v: i.value for v, i in definitions(out).items() if isinstance(i, n.Const)}
    incoming: dict[str, list[n.Edge]] = {}
    reachable = set(Cfg.of(out).order)
    for b in out.blocks:
        if b.name in reachable and b.terminator is not None:
            for e in b.terminator.edges():
                incoming.setdefault(e.target, []).append(e)
    names: dict[n.Value, n.Value] = {}
    for b in out.blocks:
        edges = incoming.get(b.name, [])
        if not edges or b is out.entry:
            continue
        kept: list[n.Instr] = []
        for i in b.instrs:
            same = _decided_param(i, b, edges, consts) if isinstance(i, n.Select) else None
            if isinstance(i, n.Select) and same is not None:
                names[i.out] = same
                continue
            kept.append(i)
        b.instrs = kept
    rename_all(out, names)
    return out


def _decided_param(i: n.Select, b: n.Block, edges: list[n.Edge], consts: dict[n.Value, int]) -> n.Value | None:
    """The parameter of `b` the select equals on every edge into `b`, if there is one."""
    if i.cond not in b.params:
        return None
    position = {p: k for k, p in enumerate(b.params)}
    picked: list[n.Value] = []
    for e in edges:
        cond = e.args[position[i.cond]]
        if cond not in consts:
            return None
        chosen = i.if_true if consts[cond] else i.if_false
        picked.append(e.args[position[chosen]] if chosen in position else chosen)
    for p in b.params:
        if all(e.args[position[p]] == v for e, v in zip(edges, picked, strict=True)):
            return p
    return None
