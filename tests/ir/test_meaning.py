"""An operation states its meaning once, in its class: a pure one `evaluate`s over `nodes.Values`, one with
effects `perform`s through its one `nodes.Effects` method, a terminator `transfer`s through its one
`nodes.Control` method; the IR interpreter, the LLVM lowering and the Z3 encoding implement those
protocols and run any instruction with `Instr.execute`. And a terminator's
operands include its own values, so the checker sees a branch condition or a returned value that is
never defined, or defined where it does not dominate the use."""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import pytest

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.check import check_program
from pybpfdsl.ir.rules import IRError
from pybpfdsl.ir.types import StructType
from pybpfdsl.lang.algebra import IntAlgebra
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import BOOL, i32, u32

EFFECTS = {name for name, _ in inspect.getmembers(n.Effects, inspect.isfunction) if not name.startswith("_")}


def test_every_operation_states_its_meaning_in_its_class() -> None:
    for cls in n.INSTRUCTIONS:
        if issubclass(cls, n.PureInstr):
            assert "evaluate" in vars(cls), f"{cls.__name__} has no evaluate"
        else:
            assert issubclass(cls, n.EffectInstr), f"{cls.__name__} is neither pure nor an effect"
            assert "perform" in vars(cls), f"{cls.__name__} has no perform"


def test_each_operation_with_effects_has_one_effects_method() -> None:
    effect_ops = [cls for cls in n.INSTRUCTIONS if issubclass(cls, n.EffectInstr)]
    assert len(EFFECTS) == len(effect_ops)
    for cls in effect_ops:
        called = [name for name in EFFECTS if f"effects.{name}(self" in inspect.getsource(cls.perform)]
        assert len(called) == 1, f"{cls.__name__}.perform calls {called}"


def test_each_terminator_has_one_control_method() -> None:
    control = {name for name, _ in inspect.getmembers(n.Control, inspect.isfunction) if not name.startswith("_")}
    assert len(control) == len(n.TERMINATORS)
    for cls in n.TERMINATORS:
        assert "transfer" in vars(cls), f"{cls.__name__} has no transfer"
        called = [name for name in control if f"control.{name}(self" in inspect.getsource(cls.transfer)]
        assert len(called) == 1, f"{cls.__name__}.transfer calls {called}"


def test_an_operation_without_its_meaning_cannot_be_made() -> None:
    class Unfinished(n.PureInstr):
        syntax = "unfinished"

    with pytest.raises(TypeError, match="abstract"):
        Unfinished()  # type: ignore[abstract]


class Scalars(IntAlgebra):
    """`nodes.Values` on Python ints only (no structs or references)."""

    def truth(self, bit: int) -> bool:
        return bit == 1

    def choose(self, cond: bool, if_true: int, if_false: int) -> int:
        return if_true if cond else if_false

    def make_struct(self, t: StructType, fields: Sequence[int]) -> int:
        raise NotImplementedError

    def extract_field(self, t: StructType, aggregate: int, index: int) -> int:
        raise NotImplementedError


def test_pure_operations_evaluate_over_the_algebra() -> None:
    """On Python ints (bit patterns): i32 arithmetic wraps, comparisons are signed by the operands' type
    and give the DSL's 1-bit bool, a select picks by it."""
    a, b, c, out, flag = (n.Value(k, t) for k, t in enumerate((i32, i32, i32, i32, BOOL)))
    values = {a: 0x7FFFFFFF, b: 1, c: 0x80000000, flag: 1}.__getitem__
    ops = Scalars()
    assert n.Binary(out=out, op=BinOp.ADD, lhs=a, rhs=b).evaluate(ops, values) == 0x80000000
    assert n.Compare(out=flag, op=CmpOp.LT, lhs=b, rhs=a).evaluate(ops, values) == 1
    assert n.Compare(out=flag, op=CmpOp.GT, lhs=c, rhs=a).evaluate(ops, values) == 0  # INT_MIN < INT_MAX
    assert n.Select(out=out, cond=flag, if_true=b, if_false=c).evaluate(ops, values) == 1


def _program(entry: n.Block, *more: n.Block) -> n.Program:
    return n.Program("p", "p.py", 1, [entry, *more])


def test_a_branch_on_an_undefined_condition_is_refused() -> None:
    cond = n.Value(0, BOOL)
    action = n.Value(1, u32)
    done = n.Block("done", instrs=[n.Const(out=action, value=2)], terminator=n.Return(value=action))
    entry = n.Block("entry", terminator=n.Branch(cond=cond, if_true=n.Edge("done"), if_false=n.Edge("done")))
    with pytest.raises(IRError, match=r"\^entry\[0\]: %0 is used but never defined"):
        check_program(_program(entry, done))


def test_a_returned_value_must_dominate_the_return() -> None:
    flag, action = n.Value(0, BOOL), n.Value(1, u32)
    entry = n.Block("entry", instrs=[n.Const(out=flag, value=1)],
                    terminator=n.Branch(cond=flag, if_true=n.Edge("set"), if_false=n.Edge("done")))
    set_ = n.Block("set", instrs=[n.Const(out=action, value=2)], terminator=n.Jump(to=n.Edge("done")))
    done = n.Block("done", terminator=n.Return(value=action))
    with pytest.raises(IRError, match=r"\^done\[0\]: %1 does not dominate its use"):
        check_program(_program(entry, set_, done))
