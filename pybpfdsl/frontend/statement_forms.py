"""Which step each form of Python statement takes, written once for the type checker and the emitter.

The checker (`typecheck`) and the emitter (`emit`) walk a body's statements the same way: an `x = v`
stores a local, a Global's `.value`, a map entry, a payload byte or a header field; `x op= v` updates one
in place; a `case` matches integer constants; `assert`, `try`, `with`, nested `def`s and imports are
refused. Both passes inherit `StatementForms` and give the steps (`assign_local`, `if_`, `map_aug`, ...);
the match that chooses among them, and the words of each refusal, live here (the emitter's refusals are
compiler bugs: the checker ran first), as in `ExpressionForms`.
"""

from __future__ import annotations

import ast
from abc import abstractmethod
from dataclasses import replace
from typing import Any, Generic, TypeVar

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.expression_forms import ExpressionForms
from pybpfdsl.frontend.function_scope import InFunction
from pybpfdsl.frontend.resolve import annotation_type
from pybpfdsl.frontend.values import PacketVal, Scalar, StateVal
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.state import BpfMap, Global
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType

_Value = TypeVar("_Value")
_Scalar = TypeVar("_Scalar", bound="Scalar[Any]")
_Env = TypeVar("_Env", bound=dict[str, Any])


class StatementForms(InFunction[_Env], ExpressionForms[_Value, _Scalar], Generic[_Value, _Scalar, _Env]):
    """The dispatch over statement forms, over a pass's values (`_Value`), numbers (`_Scalar`) and locals
    (`_Env`)."""

    def statement(self, s: ast.stmt) -> None:
        """The step `s`'s form takes; a statement the DSL does not have is refused with what to write."""
        match s:
            case ast.Expr(value=ast.Constant(value=str())) | ast.Pass():
                return  # a docstring, or `pass`
            case ast.Expr(value=ast.Call(func=ast.Attribute(value=base, attr="write")) as call) \
                    if self.is_payload(base):
                self.payload_write(call)
            case ast.Expr(value=ast.Call() as call):
                self.expr(call)
            case ast.Expr():
                raise self.refusal(s, "this expression statement has no effect",
                                   "assign it to a variable or remove it")
            case ast.Return(value=value):
                self.return_(s, value)
            case ast.Assign(targets=targets, value=value):
                if len(targets) != 1:
                    raise self.refusal(s, "chained assignment `a = b = ...` is not supported",
                                       "assign each variable on its own line")
                self.assign(targets[0], value, None, s)
            case ast.AnnAssign(target=target, annotation=annotation, value=value):
                if value is None:
                    raise self.refusal(s, "a declaration needs a value", f"write `{ast.unparse(target)}: "
                                       f"{ast.unparse(annotation)} = 0`")
                if not isinstance(target, ast.Name):
                    raise self.refusal(s, "only local variables can be annotated")
                self.assign(target, value, annotation_type(self.current_source, annotation), s)
            case ast.AugAssign(target=target, op=op, value=value):
                self.aug_assign(target, op, value, s)
            case ast.If():
                self.if_(s)
            case ast.While():
                self.while_(s)
            case ast.For():
                self.for_(s)
            case ast.Break() | ast.Continue():
                self.jump(s)
            case ast.Match():
                self.match(s)
            case ast.Delete(targets=deleted):
                for deleted_target in deleted:
                    self.delete(deleted_target)
            case ast.Assert():
                raise self.refusal(s, "`assert` is not supported in a DSL function",
                                   "use `if not cond: return XDP_ABORTED`")
            case ast.Try() | ast.Raise():
                raise self.refusal(s, "exceptions are not supported in a DSL function",
                                   "return an action (XDP_ABORTED, XDP_DROP, ...) instead")
            case ast.With() | ast.AsyncWith():
                raise self.refusal(s, "`with` is not supported in a DSL function")
            case ast.FunctionDef() | ast.AsyncFunctionDef() | ast.ClassDef() | ast.Lambda():
                raise self.refusal(s, "functions and classes cannot be defined inside a DSL function",
                                   "define helpers at module level and mark them with @inline")
            case ast.Global() | ast.Nonlocal():
                raise self.refusal(s, f"`{type(s).__name__.lower()}` is not supported",
                                   "keep mutable state in a Global(...) object and write `g.value = ...`")
            case ast.Import() | ast.ImportFrom():
                raise self.refusal(s, "imports belong at module level, not inside a DSL function")
            case _:
                raise self.refusal(s, f"the `{type(s).__name__}` statement is not supported in a DSL function")

    def assign(self, target: ast.expr, value_node: ast.expr, annotated: ScalarType | None, s: ast.stmt) -> None:
        """`target = value` (`annotated`: the type a `target: T = value` declares)."""
        match target:
            case ast.Name(id=name):
                self.assign_local(name, value_node, annotated, s)
            case ast.Attribute(value=base, attr="value"):
                g = self.global_of(base, target)
                self.store_global(g, self.convert(self.scalar(value_node), g.type, value_node, implicit=True))
            case ast.Subscript(value=base) if self.is_payload(base):
                self.payload_store(target, value_node)
            case ast.Subscript(value=base, slice=index):
                self.map_assign(self.map_of(base), index, value_node)
            case ast.Attribute():
                self.field_assign(target, value_node)
            case ast.Tuple(elts=elts) | ast.List(elts=elts) if elts and all(isinstance(t, ast.Name) for t in elts):
                self.unpack_locals(target, value_node, s)
            case ast.Tuple() | ast.List():
                self.swap(target, value_node, s)
            case _:
                raise self.refusal(target, f"cannot assign to `{ast.unparse(target)}`")

    def unpack_locals(self, targets: ast.Tuple | ast.List, value_node: ast.expr, s: ast.stmt) -> None:
        """`a, b = x, y` between locals, with Python's meaning: every value is computed first, left to
        right, then each is assigned, left to right (so `a, b = b, a` swaps, and `a, a = 1, 2` leaves 2)."""
        if not isinstance(value_node, ast.Tuple | ast.List) or any(isinstance(v, ast.Starred)
                                                                   for v in value_node.elts):
            names = ", ".join(ast.unparse(t) for t in targets.elts)
            parts = ", ".join(f"{ast.unparse(value_node)}[{i}]" for i in range(len(targets.elts)))
            raise self.refusal(value_node, "unpacking assignment needs the values written out as a tuple",
                               f"write `{names} = {parts}`")
        if len(value_node.elts) != len(targets.elts):
            raise self.refusal(s, f"{len(targets.elts)} names but {len(value_node.elts)} values to unpack",
                               "give one value per name: `a, b = b, a`")
        values = [self.expr(v) for v in value_node.elts]
        for t, v_node, v in zip(targets.elts, value_node.elts, values):
            assert isinstance(t, ast.Name)
            self.assign_local(t.id, v_node, None, s, value=v)

    def assign_local(self, name: str, value_node: ast.expr, annotated: ScalarType | None, s: ast.stmt,
                     value: _Value | None = None) -> None:
        """`name = value` (or `name: T = value`): a local keeps the type it was declared with, a number
        that may be None keeps its number's type, and a local holds one kind of thing. `value`: the
        value of `value_node` when it was computed already (an unpacking assignment computes all first)."""
        var_types = self.scope.var_types
        if name not in var_types and name not in self.env:
            self.first_assignment(name, s)
        declared = var_types.get(name) if name in var_types or (name in self.env and not annotated) else None
        if annotated is not None:
            if name in var_types and var_types[name] != annotated:
                raise self.refusal(s, f"{name} was declared {var_types[name]} before; "
                                   f"it cannot become {annotated}", "use a new variable name")
            var_types[name] = declared = annotated
        if value is None:
            value = self.expr(value_node)
        if isinstance(value, PacketVal):
            raise self.refusal(value_node, "the packet cannot be copied into a variable", "use the parameter")
        held = self.env.get(name)
        held_number = self.optional_number(held)
        if declared is None and isinstance(value, Scalar) and held_number is not None:
            # A number that may be None has the number's type: `if b is None: b = 0` keeps b a u8, so the
            # paths join into one u8 (and pure Python converts the same way, by the variable's type).
            declared = var_types[name] = held_number.type
        if isinstance(value, Scalar) and (self.record_class(held) is not None or (
                self.passed_whole(held) and held_number is None)):
            raise self.refusal(s, f"{name} held {self.describe(held)}; it cannot now hold {self.describe(value)}",
                               "use a new variable name")
        optional = self.optional(value)
        number = self.optional_number(value)
        if declared is not None and optional is not None and number is not None:
            # A number that may be None, stored again (`b = pkt.payload[1]` after `if b is None: b = 0`):
            # it keeps the variable's type.
            self.env[name] = replace(optional, inner=self.typed_local(number, declared, value_node))
            return
        if declared is not None:
            # A typed local: its constant folds in its type, even if a literal of that type was assigned.
            self.env[name] = self.typed_local(self.as_scalar(value, value_node), declared, value_node)
            return
        if isinstance(value, Scalar):
            var_types[name] = value.type
            self.env[name] = self.materialized(replace(value, literal=False))
            return
        if self.record_class(value) is not None or self.passed_whole(value):
            old = self.env.get(name)
            if old is not None and type(old) is not type(value):
                raise self.refusal(s, f"{name} held {self.describe(old)}; it cannot now hold {self.describe(value)}",
                                   "use a new variable name")
            self.env[name] = value
            return
        if isinstance(value_node, ast.Constant) and value_node.value is None:
            raise self.refusal(value_node, "None cannot be stored in a variable",
                               f"give {name} a number (`{name} = 0`) and keep a flag beside it, or assign it only "
                               "where its value is known (inside `if tcp is not None:`, ...)")
        raise self.refusal(value_node, f"{self.describe(value)} cannot be stored in a variable")

    def optional_number(self, v: object) -> Scalar[Any] | None:
        """The number in `v` if it is a number that may be None."""
        optional = self.optional(v)
        return optional.inner if optional is not None and isinstance(optional.inner, Scalar) else None

    def aug_assign(self, target: ast.expr, op: ast.operator, value_node: ast.expr, s: ast.stmt) -> None:
        """`target op= value`: a local, a Global, a map entry or a header field, updated in place."""
        binop = self.binop_of(op, s)
        match target:
            case ast.Name(id=name):
                held = self.env.get(name)
                old = self.checked_number(held)
                if old is None:
                    raise self.undefined(target, name) if held is None else self.refusal(
                        target, f"`{fold.SYMBOL[binop]}=` needs a number, {name} is {self.describe(held)}",
                        f"check it first: `if {name} is None: {name} = 0`" if self.optional_number(held) is not None
                        else None)
                operand = self.scalar(value_node)
                self.refuse_float_into_int(operand, old.type, name, value_node)
                self.update_local(name, self.binary(binop, old, operand, s), old.type, s)
            case ast.Attribute(value=base, attr="value"):
                self.global_aug(self.global_of(base, target), binop, value_node, s)
            case ast.Subscript(value=base, slice=index):
                self.map_aug(self.map_of(base), index, binop, value_node, s)
            case ast.Attribute():
                self.field_aug(target, binop, value_node, s)
            case _:
                raise self.refusal(target, f"cannot update `{ast.unparse(target)}` in place")

    def global_of(self, base: ast.expr, target: ast.expr) -> Global:
        """The Global whose `.value` `target` (`base.value`) is."""
        obj = self.expr(base)
        if not isinstance(obj, StateVal) or not isinstance(obj.obj, Global):
            raise self.refusal(target, f"cannot assign to `{ast.unparse(target)}`")
        return obj.obj

    def refuse_float_into_int(self, operand: _Scalar, target: ScalarType, name: str, node: ast.expr) -> None:
        """`x += 0.5` on an integer target would truncate silently: the user says which conversion."""
        if operand.type.is_fixed and not target.is_fixed:
            raise self.refusal(node, f"adding a float to {name}, a {target}, would truncate silently",
                               f"convert explicitly (`{target}(...)`), or make {name} a float")

    def case_constants(self, p: ast.pattern) -> list[int] | None:
        """The constants a case matches; None for the wildcard `case _:`."""
        match p:
            case ast.MatchAs(pattern=None, name=None):
                return None
            case ast.MatchValue(value=v):
                c = self.scalar(v)
                if c.const is None or not isinstance(c.const, int):
                    raise self.refusal(p, "a case value must be an integer constant")
                return [c.const]
            case ast.MatchSingleton(value=v) if isinstance(v, bool):
                return [int(v)]
            case ast.MatchOr(patterns=ps):
                out: list[int] = []
                for q in ps:
                    alternative = self.case_constants(q)
                    if alternative is None:
                        raise self.refusal(q, "`_` cannot be part of an alternative")
                    out.extend(alternative)
                return out
        raise self.refusal(p, "only integer constants, `|` alternatives and `_` are supported as case patterns",
                           "write `case 80 | 443:` or `case _:`")

    # The steps each pass gives.
    @abstractmethod
    def is_payload(self, node: ast.expr) -> bool:
        """Whether `node` is the packet's payload (`pkt.payload`, or a local holding it)."""

    @abstractmethod
    def payload_write(self, call: ast.Call) -> None:
        """`pkt.payload.write(offset, record)`."""

    @abstractmethod
    def return_(self, s: ast.Return, value: ast.expr | None) -> None:
        """`return` from the program (an action) or from an @inline helper."""

    @abstractmethod
    def if_(self, s: ast.If) -> None:
        """`if ... elif ... else`."""

    @abstractmethod
    def while_(self, s: ast.While) -> None:
        """`while bounded(cond, n):`."""

    @abstractmethod
    def for_(self, s: ast.For) -> None:
        """`for x in range(...)` or over a constant tuple."""

    @abstractmethod
    def jump(self, s: ast.Break | ast.Continue) -> None:
        """`break` or `continue`."""

    @abstractmethod
    def match(self, s: ast.Match) -> None:
        """`match` over integer constants."""

    @abstractmethod
    def delete(self, t: ast.expr) -> None:
        """`del m[key]`."""

    @abstractmethod
    def first_assignment(self, name: str, s: ast.stmt) -> None:
        """`name = ...` at `s` is the first assignment of the local `name` in its function."""

    @abstractmethod
    def materialized(self, v: Scalar[Any]) -> object:
        """A number as a local holds it: in a register (the same constant, now one value)."""

    @abstractmethod
    def record_class(self, v: object) -> type[Struct] | None:
        """The Struct class of `v`, if it is a record."""

    @abstractmethod
    def passed_whole(self, v: object) -> bool:
        """Whether `v` is a header, the payload or an optional (a local may hold it as it is)."""

    @abstractmethod
    def store_global(self, g: Global, v: _Scalar) -> None:
        """`g.value = v`, `v` already of the Global's type."""

    @abstractmethod
    def payload_store(self, target: ast.Subscript, value_node: ast.expr) -> None:
        """`pkt.payload[i] = b`."""

    @abstractmethod
    def map_assign(self, m: BpfMap, index: ast.expr, value_node: ast.expr) -> None:
        """`m[index] = value`."""

    @abstractmethod
    def field_assign(self, target: ast.Attribute, value_node: ast.expr) -> None:
        """`hdr.field = value`."""

    @abstractmethod
    def swap(self, targets: ast.Tuple | ast.List, value: ast.expr, s: ast.stmt) -> None:
        """`a, b = b, a` of header fields."""

    @abstractmethod
    def undefined(self, node: ast.expr, name: str) -> Exception:
        """The refusal of a name that has no value here."""

    @abstractmethod
    def update_local(self, name: str, result: _Scalar | Scalar, t: ScalarType, s: ast.stmt) -> None:
        """`name op= v` computed as `result`: recorded under the statement, stored in the local's type `t`."""

    @abstractmethod
    def global_aug(self, g: Global, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        """`g.value op= v`."""

    @abstractmethod
    def map_aug(self, m: BpfMap, index: ast.expr, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        """`m[index] op= v`."""

    @abstractmethod
    def field_aug(self, target: ast.Attribute, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        """`hdr.field op= v`."""

    @abstractmethod
    def map_of(self, node: ast.expr) -> BpfMap:
        """The map `node` names (refused when it is not one)."""


__all__ = ["StatementForms"]
