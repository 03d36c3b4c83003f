"""Which step each form of Python expression takes, written once for the type checker and the emitter.

The checker (`typecheck`) and the emitter (`emit`) walk the same AST the same way: a name is looked up,
`a / b` is a true division, `a ** b` a power, a tuple must be constant, an f-string is refused. Both
passes inherit `ExpressionForms` and give the steps (`lookup_name`, `binary`, `call`, ...); the match
that chooses among them, and the words of each refusal, live here. Where the checker refuses a program
with the user's message, the emitter's `refusal` is a compiler bug: the checker runs first.
"""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod
from dataclasses import replace
from types import FunctionType
from typing import Any, Generic, TypeVar, cast

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.condition_forms import Narrowable
from pybpfdsl.frontend.fold import Complaint
from pybpfdsl.frontend.operators import BINARY_OPERATORS, OPERATOR_SYMBOLS
from pybpfdsl.frontend.resolve import classify, register_state, scalar_type
from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.values import Callee, ConstTuple, ModuleVal, NoneVal, Scalar, StateVal, StringVal, describe
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.state import StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, literal_type

_Value = TypeVar("_Value")
_Scalar = TypeVar("_Scalar", bound="Scalar[Any]")

_COLLECTIONS: dict[type[ast.expr], str] = {
    ast.List: "lists", ast.Dict: "dicts", ast.Set: "sets", ast.ListComp: "list comprehensions",
    ast.DictComp: "dict comprehensions", ast.SetComp: "set comprehensions", ast.GeneratorExp: "generators"}
"""How the user calls the collections the DSL does not have (not the AST's class names)."""


class ExpressionForms(ABC, Generic[_Value, _Scalar]):
    """The dispatch over expression forms; `_Value` is what a pass makes of an expression (the checker's
    kind, the emitter's value), `_Scalar` its numbers."""

    state: dict[str, StateObject]
    """The state objects the function uses, by name (`resolve.register_state`)."""

    def expression_form(self, node: ast.expr) -> _Value | _Scalar | Scalar | NoneVal | StringVal | ConstTuple:
        """The step `node`'s form takes (without recording it: the caller records)."""
        match node:
            case ast.Constant(value=value):
                if value is None:
                    return NoneVal()
                if isinstance(value, str):
                    return StringVal(value)
                return self.const_scalar(value, node)
            case ast.Name(id=name):
                return self.lookup_name(node, name)
            case ast.Attribute():
                return self.attribute(node)
            case ast.BinOp(left=left, op=op, right=right):
                if isinstance(op, ast.Div):
                    return self.true_divide(self.scalar(left), self.scalar(right), node)
                if isinstance(op, ast.Pow):
                    return self.power(node)
                return self.binary(self.binop_of(op, node), self.scalar(left), self.scalar(right), node)
            case ast.UnaryOp(op=op, operand=operand):
                return self.unary(op, operand, node)
            case ast.Compare():
                return self.comparison(node)
            case ast.BoolOp() | ast.IfExp():
                return self.branchy_value(node)
            case ast.Call():
                return self.call(node)
            case ast.Subscript(value=base, slice=index):
                return self.subscript(node, base, index)
            case ast.Tuple(elts=elts):
                consts = [self.scalar(e).const for e in elts]
                if all(c is not None for c in consts):
                    return ConstTuple(tuple(c for c in consts if c is not None))
                raise self.refusal(node, "tuples must be constant", "tuples of runtime values are not supported")
            case ast.JoinedStr():
                raise self.refusal(
                    node, "f-strings are not supported in a DSL function",
                    "give print the parts: `print(\"len\", pkt.len)` prints a constant string and a number")
            case ast.List() | ast.Dict() | ast.Set() | ast.ListComp() | ast.DictComp() | ast.SetComp() | \
                    ast.GeneratorExp():
                raise self.refusal(node, f"{_COLLECTIONS[type(node)]} are not supported in a DSL function",
                                   "use a map (HashMap, Array) for collections, or a constant tuple")
            case ast.Lambda():
                raise self.refusal(node, "lambda is not supported", "define an @inline helper at module level")
            case ast.NamedExpr():
                raise self.refusal(node, "the walrus operator `:=` is not supported", "assign on its own line")
            case ast.Await() | ast.Yield() | ast.YieldFrom():
                raise self.refusal(node, "generators and coroutines are not supported")
        raise self.refusal(node, f"`{ast.unparse(node)}` is not supported in a DSL function")

    def from_python(self, value: object, name: str,
                    node: ast.expr) -> Scalar | StateVal | ConstTuple | ModuleVal | StringVal | Callee:
        """What a module-level Python object `name` denotes in a DSL function."""
        kind, value = classify(value)
        match kind:
            case "state":
                assert isinstance(value, StateObject)
                return StateVal(register_state(self.state, value, name, self.current_source, node))
            case "constant":
                return self.const_scalar(value, node)
            case "tuple":
                assert isinstance(value, tuple)
                for item in value:
                    if not isinstance(item, int | float | bool):
                        raise self.refusal(node, f"{name} is a tuple with non-numeric items",
                                           "constant tuples may hold only ints, floats and bools")
                return ConstTuple(value)
            case "module":
                return ModuleVal(value)  # type: ignore[arg-type]
            case "string":
                assert isinstance(value, str)
                return StringVal(value)
            case "builtin" | "type" | "struct" | "inline":
                return Callee(kind, value)
            case "program":
                raise self.refusal(node, f"{name} is an @xdp program; programs cannot call each other",
                                   "move the shared code into an @inline helper")
        raise self.unusable(node, name, value)

    def call(self, node: ast.Call) -> _Value | _Scalar | Scalar | NoneVal:
        """A call: of a built-in, a type (a conversion), a record, an @inline helper or a method."""
        callee = self.expr(node.func)
        if not isinstance(callee, Callee):
            raise self.refusal(node, f"{self.describe(callee)} is not callable")
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise self.refusal(node, "`*args` and `**kwargs` are not supported in calls")
        match callee.kind:
            case "builtin":
                return self.builtin(node, str(callee.target))
            case "type":
                return self.type_call(node, callee.target)
            case "struct":
                assert isinstance(callee.target, type)
                return self.struct_call(node, callee.target)
            case "inline":
                assert isinstance(callee.target, FunctionType)
                return self.inline_call(node, callee.target)
            case "method":
                base, attr = cast(tuple[_Value, str], callee.target)
                return self.method_call(node, base, attr)
        raise self.refusal(node, f"cannot call {self.describe(callee)}")

    def binop_of(self, op: ast.operator, node: ast.AST) -> BinOp:
        """The DSL's operation for a Python operator (also of an `op=` statement)."""
        if type(op) in BINARY_OPERATORS:
            return BINARY_OPERATORS[type(op)]
        if isinstance(op, ast.Div):
            raise self.refusal(node, "`/=` is not supported",
                               "`x //= y` divides integers; for a float, write `x = x / y` (`/` always gives a float)")
        if isinstance(op, ast.Pow):
            raise self.refusal(node, "`**=` is not supported",
                               "`**` works only on constants; multiply explicitly: `x *= x`")
        symbol = OPERATOR_SYMBOLS.get(type(op), type(op).__name__)
        written = f"{symbol}=" if isinstance(node, ast.AugAssign) else symbol
        raise self.refusal(node, f"`{written}` is not an operator of the DSL",
                           "the DSL's operators are + - * / // % & | ^ << >> (and ** on constants)")

    def binary(self, op: BinOp, a: _Scalar | Scalar, b: _Scalar | Scalar, node: ast.AST) -> _Scalar | Scalar:
        """`a op b`: folded where `fold` can, else computed in the operation's type."""
        if a.type.is_fixed or b.type.is_fixed:
            return self.float_binary(op, a, b, node)
        folded = fold.fold_untyped_binary(op, a, b, self.complaint(node))
        if folded is not None:
            return folded
        t = self.binary_result_type(op, a, b, node)
        ca, cb = self.convert(a, t, node), self.convert(b, t, node)
        folded = fold.fold_typed_binary(op, t, ca, cb)
        return folded if folded is not None else self.computed_binary(op, t, ca, cb)

    def float_binary(self, op: BinOp, a: _Scalar | Scalar, b: _Scalar | Scalar, node: ast.AST) -> _Scalar | Scalar:
        """`a op b` on floats (Q32.32): folded where `fold` can, else computed."""
        fold.check_float_operator(op, self.complaint(node))
        folded = fold.fold_untyped_float(op, a, b, self.complaint(node))
        if folded is not None:
            return folded
        ca, cb = self.convert(a, FLOAT, node), self.convert(b, FLOAT, node)
        folded = fold.fold_typed_float(op, ca, cb, self.complaint(node))
        return folded if folded is not None else self.computed_binary(op, FLOAT, ca, cb)

    def power(self, node: ast.BinOp) -> Scalar:
        """`a ** b`: constants only (folded)."""
        a, b = self.scalar(node.left), self.scalar(node.right)
        return fold.fold_power(a, b, self.complaint(node))

    def negate(self, v: _Scalar, node: ast.AST) -> _Scalar | Scalar:
        """`-v`: an untyped constant exactly, else `0 - v` in the type unary minus computes in."""
        if v.const is not None and fold.untyped(v):
            return self.const_scalar(-v.const, node)
        t = self.unary_result_type(v, node)
        cv = self.convert(v, t, node)
        zero = Scalar(t, const=0.0 if t.is_fixed else 0)
        if t.is_fixed:
            return self.float_binary(BinOp.SUB, zero, cv, node)
        return self.binary(BinOp.SUB, zero, cv, node)

    def unary(self, op: ast.unaryop, operand: ast.expr, node: ast.expr) -> _Value | _Scalar | Scalar:
        """`not a` (a branchy value), `+a`, `-a`, `~a` (integers only: `v ^ -1`)."""
        if isinstance(op, ast.Not):
            return self.branchy_value(node)
        v = self.scalar(operand)
        if isinstance(op, ast.UAdd):
            return v
        if isinstance(op, ast.USub):
            return self.negate(v, node)
        if v.type.is_fixed:
            raise self.refusal(node, "`~` is not defined on floats")
        if v.const is not None and fold.untyped(v):
            return self.const_scalar(~int(v.const), node)
        t = self.unary_result_type(v, node)
        return self.binary(BinOp.XOR, self.convert(v, t, node), Scalar(t, const=t.wrap(-1)), node)

    def type_call(self, node: ast.Call, target: object) -> _Scalar | Scalar:
        """`u32(x)`, `bool(x)`, `float(x)`: an explicit conversion."""
        if len(node.args) != 1 or node.keywords:
            raise self.refusal(node, "a type conversion takes exactly one argument")
        t = scalar_type(target)
        if target is int:
            raise self.refusal(node, "`int(...)` has no fixed width in the DSL", "write u32(x), i64(x), ...")
        assert t is not None
        v = self.expr(node.args[0])
        if t is BOOL and not isinstance(v, Scalar):
            return self.truth(v, node.args[0])
        s = self.as_scalar(v, node.args[0])
        if t is BOOL:
            return self.truth(s, node.args[0])
        # An explicit conversion gives a typed value, even of a literal that already had this type.
        return replace(self.convert(s, t, node), literal=False)

    def struct_arguments(self, node: ast.Call, cls: type[Struct]) -> dict[str, ast.expr]:
        """The expression a record's constructor call gives each field it names (the rest are zero)."""
        fields = cls.fields()
        given: dict[str, ast.expr] = {}
        if len(node.args) > len(fields):
            raise self.refusal(node, f"{cls.__name__} has {len(fields)} fields, {len(node.args)} values given")
        for f, a in zip(fields, node.args):
            given[f.name] = a
        for k in node.keywords:
            assert k.arg is not None
            if k.arg not in {f.name for f in fields}:
                raise self.refusal(k.value, f"{cls.__name__} has no field `{k.arg}`",
                                   "fields: " + ", ".join(f.name for f in fields))
            if k.arg in given:
                raise self.refusal(k.value, f"field `{k.arg}` given twice")
            given[k.arg] = k.value
        return given

    def err(self, node: ast.AST, message: str, hint: str | None = None) -> DslError:
        """The user's error at `node`, naming the file and line."""
        return self.current_source.error(node, message, hint)

    def complaint(self, node: ast.AST) -> Complaint:
        """Errors at `node`, for the type rules (`fold`)."""
        def complain(message: str, hint: str | None = None) -> DslError:
            return self.err(node, message, hint)
        return complain

    def min_max(self, node: ast.Call, name: str) -> _Scalar | Scalar:
        """`min(a, b, ...)` / `max(...)`: folded where constant, else each next value compared with the
        best so far in their comparison type, and the better one selected."""
        if len(node.args) < 2 or node.keywords:
            raise self.refusal(node, f"{name}() takes two or more numbers")
        values = [self.scalar(a) for a in node.args]
        folded = fold.fold_min_max(name, values, self.complaint(node))
        if folded is not None:
            return folded
        best: _Scalar | Scalar = values[0]
        for v in values[1:]:
            t = fold.compare_type(best.type, v.type)
            a, b = self.convert(best, t, node), self.convert(v, t, node)
            take_b = self.compare(CmpOp.LT if name == "min" else CmpOp.GT, b, a, node)
            best = self.select(t, take_b, b, a)
        return best

    def absolute(self, node: ast.Call) -> _Scalar | Scalar:
        """`abs(v)`: folded where constant, else `-v` selected where `v < 0` (a signed type's)."""
        if len(node.args) != 1 or node.keywords:
            raise self.refusal(node, "abs() takes one number")
        v = self.scalar(node.args[0])
        folded = fold.fold_abs(v, self.complaint(node))
        if folded is not None:
            return folded
        t = self.unary_result_type(v, node)
        v = self.convert(v, t, node)
        if not t.signed:
            return v
        negative = self.compare(CmpOp.LT, v, Scalar(t, const=0.0 if t.is_fixed else 0), node)
        return self.select(t, negative, self.negate(v, node), v)

    def optional_numbers(self, op: CmpOp, a: _Value, b: _Value,
                         node: ast.Compare) -> tuple[tuple[bool, bool], _Scalar] | None:
        """For `x == y` / `x != y`: which sides are numbers that may be None here (not narrowed by a check)
        and the comparison of the numbers they hold; None when neither side may be None (an ordinary
        comparison). Both passes give it Python's meaning (None equals only None) from here: the checker
        its kind, the emitter the value from the presence bits."""
        sides = ((a, node.left), (b, node.comparators[0]))
        held = [self.optional(v) for v, _ in sides]
        optional = tuple(h is not None and not h.narrowed and isinstance(h.inner, Scalar) for h in held)
        if not any(optional):
            return None
        inner = [cast(_Scalar, h.inner) if h is not None and isinstance(h.inner, Scalar) else self.as_scalar(v, side)
                 for h, (v, side) in zip(held, sides)]
        return (optional[0], optional[1]), self.compare(op, inner[0], inner[1], node)

    @staticmethod
    def decided_whatever_none(op: CmpOp, optional: tuple[bool, bool], numbers: Scalar[Any]) -> bool:
        """Whether the numbers' comparison is the answer whether or not the one optional side is None:
        `u8_byte == 300` is False and `!=` True either way (not so with two optional sides: both None
        are equal)."""
        return not all(optional) and numbers.const is not None and bool(numbers.const) == (op is CmpOp.NE)

    def checked_number(self, v: object) -> Scalar[Any] | None:
        """`v` if it is a number, the number in it if it is an optional a check proved present (`if b is
        not None:`); None for anything else."""
        optional = self.optional(v)
        if optional is not None:
            return optional.inner if optional.narrowed and isinstance(optional.inner, Scalar) else None
        return v if isinstance(v, Scalar) else None

    def truth(self, v: _Value | _Scalar, node: ast.expr) -> _Scalar | Scalar:
        """The truth of a value as a bool scalar: a number (or one checked not None) against 0."""
        number = self.checked_number(v)
        if number is not None:
            if number.type.is_bool:
                return number
            return self.compare(CmpOp.NE, number, Scalar(literal_type(0), const=0), node)
        if self.optional(v) is not None:
            x = ast.unparse(node)
            raise self.refusal(node, f"the truth of {self.describe(v)} is ambiguous",
                               f"write `{x} is not None and {x} != 0` (Python's `if {x}:`: None and 0 are false), "
                               f"or `{x} is not None`")
        raise self.refusal(node, f"{self.describe(v)} cannot be used as a condition")

    def describe(self, v: object) -> str:
        """A short phrase for a value in a refusal (the checker phrases its own kinds too)."""
        return describe(v)

    def const_scalar(self, value: object, node: ast.AST) -> Scalar:
        """The scalar of a Python constant (bool, int, float)."""
        return fold.constant(value, self.complaint(node))

    # The steps each pass gives.
    @abstractmethod
    def refusal(self, node: ast.AST, message: str, hint: str | None = None) -> Exception:
        """What a program this pass cannot take raises: the user's error, or (after the checker) a bug."""

    @abstractmethod
    def unusable(self, node: ast.expr, name: str, value: object) -> Exception:
        """The refusal of a Python object a DSL function cannot use."""

    @property
    @abstractmethod
    def current_source(self) -> FunctionSource:
        """The function being walked: the program or an inlined helper."""

    @abstractmethod
    def builtin(self, node: ast.Call, name: str) -> _Value | _Scalar | Scalar | NoneVal:
        """A call of a DSL built-in (`print`, `min`, `now_ns`, ...)."""

    @abstractmethod
    def struct_call(self, node: ast.Call, cls: type[Struct]) -> _Value:
        """A record's constructor."""

    @abstractmethod
    def inline_call(self, node: ast.Call, fn: FunctionType) -> _Value | _Scalar | Scalar | NoneVal:
        """A call of an @inline helper."""

    @abstractmethod
    def method_call(self, node: ast.Call, base: _Value, attr: str) -> _Value | _Scalar:
        """`base.attr(...)`: a map's, the packet's, a header's method."""

    @abstractmethod
    def expr(self, node: ast.expr) -> _Value:
        """An expression's value, recorded in (or checked against) the typed AST."""

    @abstractmethod
    def as_scalar(self, v: _Value, node: ast.expr) -> _Scalar:
        """The scalar a value is; refused when it is not a number here."""


    @abstractmethod
    def select(self, t: ScalarType, cond: _Scalar, if_true: _Scalar | Scalar, if_false: _Scalar | Scalar) -> _Scalar:
        """`if_true if cond else if_false`, both of type `t`, chosen at run time."""

    @abstractmethod
    def optional(self, v: object) -> Narrowable | None:
        """`v` if it may be None."""

    @abstractmethod
    def compare(self, op: CmpOp, a: _Scalar | Scalar, b: _Scalar | Scalar, node: ast.AST) -> _Scalar:
        """`a op b` for a comparison: folded, or computed in the common type."""

    @abstractmethod
    def convert(self, v: _Scalar | Scalar, t: ScalarType, node: ast.AST, implicit: bool = False) -> _Scalar:
        """`v` in type `t` (implicit conversions refuse to lose information silently)."""

    @abstractmethod
    def typed_local(self, v: _Scalar | Scalar, t: ScalarType, node: ast.AST) -> _Scalar:
        """`v` converted to `t` as an assignment converts it, kept in a register as a typed value (not a
        literal): what a local declared `t` holds."""

    @abstractmethod
    def scalar(self, node: ast.expr) -> _Scalar:
        """An expression that must be a number."""

    @abstractmethod
    def lookup_name(self, node: ast.expr, name: str) -> _Value:
        """A name: a local, a module-level constant, state object or callee."""

    @abstractmethod
    def attribute(self, node: ast.Attribute) -> _Value:
        """`a.b`: a header, a field, a record's field, a Global."""

    @abstractmethod
    def binary_result_type(self, op: BinOp, a: _Scalar | Scalar, b: _Scalar | Scalar, node: ast.AST) -> ScalarType:
        """The type `a op b` computes in (the checker decides it; the emitter reads the typed AST)."""

    @abstractmethod
    def computed_binary(self, op: BinOp, t: ScalarType, a: _Scalar, b: _Scalar) -> _Scalar:
        """`a op b` in type `t`, both already of `t`, computed at run time."""

    @abstractmethod
    def unary_result_type(self, v: _Scalar, node: ast.AST) -> ScalarType:
        """The type `-v` and `~v` compute in (the checker decides it; the emitter reads the typed AST)."""

    @abstractmethod
    def true_divide(self, a: _Scalar, b: _Scalar, node: ast.AST) -> _Scalar:
        """`a / b`."""

    @abstractmethod
    def comparison(self, node: ast.Compare) -> _Value:
        """`a < b`, `a in b`, ..."""

    @abstractmethod
    def branchy_value(self, node: ast.expr) -> _Value:
        """A value computed with control flow: and/or, `a if c else b`."""

    @abstractmethod
    def subscript(self, node: ast.Subscript, base_node: ast.expr, index: ast.expr) -> _Value:
        """`a[i]`: a map, the payload's bytes, a constant tuple."""


__all__ = ["ExpressionForms"]
