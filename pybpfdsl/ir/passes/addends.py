"""A constant added on every edge into a join, added once after it: the join's parameter `%p` whose edges
each pass `x_i + c` (one constant c) or a constant `k_i` becomes `%q + c`, with `%q` passed `x_i` or
`k_i - c`.

The L4 offset is this shape: IPv4 passes `14 + ihl * 4`, IPv6 the constant 54. After the pass the join
reads `%q + 14`, which the backend checks and reads as a pointer to `data + %q` at constant offsets (the
14 lands in the instructions' offset fields), and the IPv4 path no longer adds 14 (one instruction).
"""

from __future__ import annotations

from dataclasses import replace

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, definitions
from pybpfdsl.ir.passes.rewrite import Fresh, copy_program
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.types import ScalarType


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    defs = definitions(out)
    consts = {v: i.value for v, i in defs.items() if isinstance(i, n.Const)}
    reachable = set(Cfg.of(out).order)
    preds: dict[str, list[n.Block]] = {}
    for b in out.blocks:
        if b.name in reachable and b.terminator is not None:
            for e in b.terminator.edges():
                preds.setdefault(e.target, []).append(b)
    fresh = Fresh(out)
    for b in out.blocks:
        if b is out.entry or b.name not in reachable or not preds.get(b.name):
            continue
        if any(not isinstance(p.terminator, (n.Jump, n.Branch))
               or sum(e.target == b.name for e in p.terminator.edges()) != 1 for p in preds[b.name]):
            continue  # a block reaching b on two edges, or by another terminator: left alone
        for index in range(len(b.params)):
            addend = _common_addend(index, b, preds[b.name], defs, consts)
            if addend is not None:
                _sink(b, index, addend, preds[b.name], defs, consts, fresh)
    return out


def _integer(v: n.Value) -> ScalarType | None:
    t = v.type
    return t if isinstance(t, ScalarType) and not t.is_fixed and not t.is_bool else None


def _edge(pred: n.Block, target: str) -> n.Edge:
    assert pred.terminator is not None
    return next(e for e in pred.terminator.edges() if e.target == target)


def _added(v: n.Value, defs: dict[n.Value, n.Instr], consts: dict[n.Value, int]) -> tuple[n.Value, int] | None:
    """(x, c) when `v` is `x + c` for a constant c."""
    i = defs.get(v)
    if not isinstance(i, n.Binary) or i.op is not BinOp.ADD:
        return None
    if i.rhs in consts and i.lhs not in consts:
        return i.lhs, consts[i.rhs]
    if i.lhs in consts and i.rhs not in consts:
        return i.rhs, consts[i.lhs]
    return None


def _common_addend(index: int, b: n.Block, preds: list[n.Block], defs: dict[n.Value, n.Instr],
                   consts: dict[n.Value, int]) -> int | None:
    """The constant c every edge's argument for parameter `index` adds (a constant argument k counts when
    k - c is a value of the type), when at least one edge passes a sum."""
    t = _integer(b.params[index])
    if t is None:
        return None
    args = [_edge(p, b.name).args[index] for p in preds]
    if any(i.result in args for i in b.instrs):
        return None  # a loop's own sum (this pass's, a round ago): moving it again would never end
    sums = [s for s in (_added(a, defs, consts) for a in args) if s is not None]
    addends = {c for _, c in sums}
    if not sums or len(addends) != 1:
        return None
    c = addends.pop()
    if c == 0:
        return None
    for a in args:
        if _added(a, defs, consts) is None and (a not in consts or not t.min <= consts[a] - c <= t.max):
            return None
    return c


def _sink(b: n.Block, index: int, c: int, preds: list[n.Block], defs: dict[n.Value, n.Instr],
          consts: dict[n.Value, int], fresh: Fresh) -> None:
    p = b.params[index]
    q = fresh.value(p.type, p.hint)
    for pred in preds:
        edge = _edge(pred, b.name)
        arg = edge.args[index]
        added = _added(arg, defs, consts)
        if added is not None:
            new_arg = added[0]
        else:
            new_arg = fresh.value(arg.type)
            pred.instrs.append(n.Const(out=new_arg, value=consts[arg] - c, line=pred.terminator.line
                                       if pred.terminator is not None else 0))
        args = (*edge.args[:index], new_arg, *edge.args[index + 1:])
        pred.terminator = _with_edge(pred.terminator, b.name, n.Edge(b.name, args))
    k = fresh.value(p.type)
    line = b.instrs[0].line if b.instrs else 0
    b.params = [*b.params[:index], q, *b.params[index + 1:]]
    b.instrs = [n.Const(out=k, value=c, line=line), n.Binary(out=p, op=BinOp.ADD, lhs=q, rhs=k, line=line),
                *b.instrs]


def _with_edge(term: n.Terminator | None, target: str, edge: n.Edge) -> n.Terminator:
    if isinstance(term, n.Jump):
        return replace(term, to=edge)
    if isinstance(term, n.Branch):
        if term.if_true.target == target:
            return replace(term, if_true=edge)
        return replace(term, if_false=edge)
    raise AssertionError(f"no edge to {target} in {term}")
