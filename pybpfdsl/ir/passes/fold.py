"""Constant folding and propagation: operations on constants become constants, a select or a branch on
a constant picks its side, and a few identities (`x + 0`, `0 | x`, `x * 1`, a conversion to its own
type, a field of a record the program built) read their operand directly.

Folding computes with the IR's own meaning (`Instr.evaluate` over Python integers, the algebra the IR
interpreter runs), so a folded constant is exactly what the instruction would have computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import drop_unreachable
from pybpfdsl.ir.passes.rewrite import constant, copy_program, rename, rename_all
from pybpfdsl.ir.types import StructType
from pybpfdsl.lang.algebra import IntAlgebra
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.types import ScalarType

_FOLDABLE = (n.Binary, n.Compare, n.Convert, n.Reinterpret, n.FixedDivInt, n.IntQuotient)
_IDENTITY: dict[BinOp, int] = {BinOp.ADD: 0, BinOp.SUB: 0, BinOp.OR: 0, BinOp.XOR: 0, BinOp.SHL: 0,
                               BinOp.SHR: 0, BinOp.MUL: 1}
"""Right operands that leave the left one as it is (floats excepted for MUL: 1 is not the raw 1.0)."""


class _Concrete(IntAlgebra):
    """`nodes.Values` on bit patterns, for scalars only (folding never meets a struct)."""

    def truth(self, bit: Any) -> bool:
        return bool(bit)

    def choose(self, cond: bool, if_true: Any, if_false: Any) -> Any:
        return if_true if cond else if_false

    def make_struct(self, t: StructType, fields: Sequence[Any]) -> Any:
        raise TypeError("not folded")

    def extract_field(self, t: StructType, aggregate: Any, index: int) -> Any:
        raise TypeError("not folded")


_VALUES: n.Values[Any, bool] = _Concrete()


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    consts: dict[n.Value, int] = {}
    names: dict[n.Value, n.Value] = {}
    built = {i.out: i for b in out.blocks for i in b.instrs if isinstance(i, n.MakeStruct)}
    for b in out.blocks:  # block order is enough: a value read before its block is folded stays as it is
        instrs: list[n.Instr] = []
        for i in b.instrs:
            i = rename(i, names)
            if isinstance(i, n.ExtractField) and i.aggregate in built:
                # the field as the record was built with it (the definition dominates the extract)
                t = i.aggregate.type
                assert isinstance(t, StructType)
                names[i.out] = built[i.aggregate].fields[[f.name for f in t.cls.fields()].index(i.field_name)]
                continue
            folded = _fold(i, consts, names)
            if folded is not None:
                i = folded
            if isinstance(i, n.Const):
                consts[i.out] = i.value
            if i.result is None or i.result not in names:
                instrs.append(i)
        b.instrs = instrs
    rename_all(out, names)
    for b in out.blocks:
        b.terminator = _branch(b.terminator, consts)
    drop_unreachable(out)
    return out


def _fold(i: n.Instr, consts: dict[n.Value, int], names: dict[n.Value, n.Value]) -> n.Instr | None:
    """The constant `i` computes, or None; an identity or a decided select goes into `names` instead."""
    if isinstance(i, n.Select):
        if i.cond in consts:
            names[i.out] = i.if_true if consts[i.cond] else i.if_false
        elif i.if_true == i.if_false:
            names[i.out] = i.if_true
        return None
    if not isinstance(i, _FOLDABLE) or not isinstance(i.out.type, ScalarType):
        return None
    operands = i.operands()
    if all(v in consts for v in operands):
        try:
            pattern = i.evaluate(_VALUES, lambda v: consts[v] & ((1 << _bits(v)) - 1))
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        return n.Const(out=i.out, value=constant(i.out.type, pattern), line=i.line)
    if isinstance(i, n.Binary) and not i.out.type.is_fixed and i.op in _IDENTITY \
            and consts.get(i.rhs) == _IDENTITY[i.op]:
        names[i.out] = i.lhs
    elif isinstance(i, n.Binary) and i.op in (BinOp.ADD, BinOp.OR, BinOp.XOR) and consts.get(i.lhs) == 0:
        names[i.out] = i.rhs
    elif isinstance(i, n.Binary) and i.op is BinOp.AND and not i.out.type.is_fixed:
        ones = constant(i.out.type, -1)  # every bit set: the other operand as it is
        if consts.get(i.rhs) == ones:
            names[i.out] = i.lhs
        elif consts.get(i.lhs) == ones:
            names[i.out] = i.rhs
    elif isinstance(i, n.Convert) and i.value.type == i.out.type:
        names[i.out] = i.value
    return None


def _bits(v: n.Value) -> int:
    assert isinstance(v.type, ScalarType)
    return v.type.bits


def _branch(term: n.Terminator | None, consts: dict[n.Value, int]) -> n.Terminator | None:
    """A branch on a constant, or with both edges alike, as a jump."""
    if not isinstance(term, n.Branch):
        return term
    if term.cond in consts:
        return n.Jump(to=term.if_true if consts[term.cond] else term.if_false, line=term.line)
    if term.if_true == term.if_false:
        return n.Jump(to=term.if_true, line=term.line)
    return term
