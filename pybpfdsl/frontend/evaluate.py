"""Pure-Python mode: run an `@xdp` function from its Python AST, with exactly the DSL's semantics.

This is an execution independent of the IR: it walks the user's syntax tree, with the packet parsed by
`lang.packet.Packet`, state read and written through the state objects' `raw_*` methods, and helper
results taken from the current `HelperSource`. It has no type rules of its own. It reads the typed AST
the type checker built before any emission (`type_facts.TypedFunction`, from `lower.typecheck_function`;
a `Lowered` holds the same): the DSL type of each expression and of each `op=` statement, which
expressions were compile-time constants (and which of those were untyped), the types of locals, and the
helper parses to inline, per lowering context (the iterations of enclosing unrolled loops, because an
unrolled body is checked once per item). Where an operation has no node of its own (a comparison's
operands, `min`/`max` pairwise) it asks `fold`, the rules the checker asks.
Constants fold by `fold`, and the arithmetic is `lang.arith`/`lang.fixed`, so pure Python, the IR
interpreter and the kernel can be compared bit for bit.

Values while running: scalars are `values.Scalar[int]`, the emitter's scalar with the raw value in the
type's representation (a float is its Q32.32 integer, a bool 0 or 1) where the emitter has an SSA value;
header views, the payload and records are those of `lang.packet` and `lang.structs`; `None` is an absent
header, payload byte or map entry.

Evaluation order and helper calls follow the compiled code: subexpressions left to right, except where
the lowering orders them otherwise (the container of `in` before the item, record fields in declaration
order, helper arguments in parameter order, a `get` default after the lookup). Each `random()` (and
every other helper) is called exactly once per evaluation, as in the IR.

Per-CPU arrays: pure Python touches the copy selected by the map's `current_cpu` attribute and never
changes it (the IR interpreter does the same); `pybpfdsl.testing.on_cpu` sets both that attribute and
the CPU helper, so `cpu_id()` and the copy a program touches agree.

Long because it is one interpreter over the AST, with its own copies of the emitter's evaluation
order and helper inlining (statements, expressions, calls, state and packet access in one walk); to be
split by concept like the checker and the emitter.
"""

from __future__ import annotations

import ast
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from types import FunctionType, ModuleType
from typing import TypeAlias

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.lower import Lowered
from pybpfdsl.frontend.operators import BINARY_OPERATORS, COMPARISONS
from pybpfdsl.frontend.resolve import annotation_type, classify, eval_static, resolve_global, scalar_type
from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.type_facts import Ctx, TypedFunction
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang import arith, fixed
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.headers import MAX_PACKET_OFFSET
from pybpfdsl.lang.helpers import HelperSource, current_helpers
from pybpfdsl.lang.packet import HeaderView, Packet, Payload
from pybpfdsl.lang.state import BpfMap, Global, HashMap, LruHashMap, RawValue, RingBuf, StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import (
    BOOL,
    FLOAT,
    ScalarType,
    i64,
    u8,
    u32,
    u64,
)

__all__ = ["EvaluationError", "run_python"]

_BINOPS = BINARY_OPERATORS
_CMPOPS = COMPARISONS
_MAX_OFFSET = MAX_PACKET_OFFSET  # packet offsets beyond this are never in bounds (the IR's InBounds rule)
_U32_MASK = 0xFFFFFFFF
_U64_MASK = (1 << 64) - 1
_LOOP_LIMIT = 1 << 21  # a range loop the compiler accepted never runs this often; more means a bug


class EvaluationError(Exception):
    """Pure-Python mode met something the compiler would not have accepted, or lacks a decision the
    type checker should have recorded: a bug in the frontend or here, not in the user's program."""


@dataclass(frozen=True)
class _Callee:
    kind: str  # "builtin", "type", "struct", "inline"
    target: object


@dataclass(frozen=True)
class _Method:
    base: object
    attr: str


@dataclass(frozen=True)
class _Tuple:
    items: tuple[int | float | bool, ...]


@dataclass(frozen=True)
class _Text:
    text: str


Value: TypeAlias = (
    "Scalar[int] | HeaderView | Payload | Packet | Struct | StateObject | _Callee | _Method | _Tuple | _Text"
    " | ModuleType | None"
)


@dataclass
class _Frame:
    """One running function: the program or an inlined helper."""

    source: FunctionSource
    env: dict[str, Value]
    var_types: dict[str, ScalarType]
    helper: bool = False
    return_type: ScalarType | None = None


class _Signal:
    """How a statement list ended early."""


_BREAK = _Signal()
_CONTINUE = _Signal()


@dataclass
class _Return(_Signal):
    value: Value


# ---------------------------------------------------------------------------------------- scalars
# No type rules here: a result's type is the one the checker recorded for its node (`type_of`), or the
# one `fold` (the rules the emitter asks) gives; constants fold by `fold`; the arithmetic is `lang`'s.
def _raw(x: Scalar[int]) -> int:
    """A running scalar's raw value (pure Python computes every value, so it is always there)."""
    assert x.value is not None
    return x.value


def _refuse(message: str, hint: str | None = None) -> DslError:
    return DslError(f"pure-Python mode met a constant the compiler refuses: {message}")


def _folded(s: Scalar[object]) -> Scalar[int]:
    """A constant the type rules gave, with the raw value the code materializes for it."""
    return Scalar(s.type, fold.raw_constant(s), s.const, s.literal)


def const_num(value: int | float | bool) -> Scalar[int]:
    """A Python constant as the DSL types it (`fold.constant`: bool, the literal's integer type, or float)."""
    return _folded(fold.constant(value, _refuse))


def convert(x: Scalar[int], t: ScalarType) -> Scalar[int]:
    """Convert to `t` (an assignment, argument, or `T(x)`); constants by the compiler's constant rules."""
    if x.type == t:
        return x
    if x.const is not None and not fold.saturates_up(x, t):
        return _folded(fold.convert_constant(x, t, _refuse))
    return Scalar(t, arith.convert(_raw(x), x.type, t))


def binary_in(op: BinOp, t: ScalarType, a: Scalar[int], b: Scalar[int]) -> Scalar[int]:
    """`a op b` computed in type `t` (both operands converted to it, also a shift's count)."""
    return Scalar(t, arith.binary(op, t, _raw(convert(a, t)), _raw(convert(b, t))))


def compare(op: CmpOp, a: Scalar[int], b: Scalar[int]) -> bool:
    """`a op b` in the type `fold` compares them in; constants compare as the compiler folds them."""
    folded = fold.fold_compare(op, a, b, _refuse)
    if folded is not None:
        return bool(folded.const)
    t = fold.compare_type(a.type, b.type)
    return arith.compare(op, t, _raw(convert(a, t)), _raw(convert(b, t)))


def truth(x: Scalar[int]) -> bool:
    return compare(CmpOp.NE, x, const_num(0)) if not x.type.is_bool else _raw(x) != 0


# ---------------------------------------------------------------------------------------- the evaluator
class _Evaluator:
    def __init__(self, typed: TypedFunction, packet: Packet, state: Mapping[str, StateObject] | None) -> None:
        self.lw = typed
        self.pkt = packet
        self.state = dict(state or {})
        self.helpers: HelperSource = current_helpers()
        self.ctx: Ctx = ()

    # --- recorded decisions
    def key(self, node: ast.AST) -> tuple[Ctx, ast.AST]:
        return (self.ctx, node)

    def type_of(self, node: ast.AST) -> ScalarType:
        try:
            return self.lw.facts.types[(self.ctx, node)]
        except KeyError:
            raise EvaluationError(f"no type recorded for `{_text(node)}` (line {_line(node)})") from None

    def const_of(self, node: ast.AST) -> int | float:
        try:
            return self.lw.facts.consts[(self.ctx, node)]
        except KeyError:
            raise EvaluationError(f"`{_text(node)}` (line {_line(node)}) was not a constant") from None

    # --- entry
    def run(self) -> int:
        source = self.lw.source
        tree = source.tree
        frame = _Frame(source, {tree.args.args[0].arg: self.pkt}, self.lw.facts.var_types.get(source.function, {}))
        signal = self.body(tree.body, frame)
        if not isinstance(signal, _Return) or not isinstance(signal.value, Scalar):
            raise EvaluationError(f"{tree.name} ended without returning an action")
        return _raw(signal.value) & _U32_MASK

    # --- statements
    def body(self, stmts: list[ast.stmt], fr: _Frame) -> _Signal | None:
        for s in stmts:
            signal = self.stmt(s, fr)
            if signal is not None:
                return signal
        return None

    def stmt(self, s: ast.stmt, fr: _Frame) -> _Signal | None:
        match s:
            case ast.Expr(value=ast.Constant(value=str())) | ast.Pass():
                return None
            case ast.Expr(value=value):
                self.expr(value, fr)
            case ast.Return(value=value):
                return self.return_(value, fr)
            case ast.Assign(targets=[target], value=value):
                self.assign(target, value, None, fr)
            case ast.AnnAssign(target=target, annotation=annotation, value=value) if value is not None:
                self.assign(target, value, annotation_type(fr.source, annotation), fr)
            case ast.AugAssign(target=target, op=op, value=value):
                self.aug_assign(s, target, _BINOPS[type(op)], value, fr)
            case ast.If(test=test, body=then, orelse=orelse):
                return self.body(then if self.condition(test, fr) else orelse, fr)
            case ast.While():
                return self.while_(s, fr)
            case ast.For():
                return self.for_(s, fr)
            case ast.Break():
                return _BREAK
            case ast.Continue():
                return _CONTINUE
            case ast.Match():
                return self.match(s, fr)
            case ast.Delete(targets=targets):
                for t in targets:
                    if not isinstance(t, ast.Subscript):
                        raise EvaluationError(f"cannot delete `{_text(t)}`")
                    m = self.map_of(t.value, fr)
                    m.raw_delete(self.map_key(m, t.slice, fr))
            case _:
                raise EvaluationError(f"unsupported statement `{_text(s)}` (line {_line(s)})")
        return None

    def return_(self, value: ast.expr | None, fr: _Frame) -> _Return:
        if fr.helper:
            if fr.return_type is None:
                return _Return(None)
            assert value is not None
            return _Return(convert(self.scalar(value, fr), fr.return_type))
        assert value is not None
        return _Return(convert(self.scalar(value, fr), u32))

    def assign(self, target: ast.expr, value_node: ast.expr, annotated: ScalarType | None, fr: _Frame) -> None:
        match target:
            case ast.Name(id=name):
                value = self.expr(value_node, fr)
                declared = annotated or fr.var_types.get(name)
                if declared is not None and isinstance(value, Scalar):
                    value = convert(value, declared)
                fr.env[name] = value
            case ast.Attribute(value=base, attr="value"):
                g = self.expr(base, fr)
                if not isinstance(g, Global):
                    raise EvaluationError(f"`{_text(base)}` is not a Global")
                g.raw_set(_raw(convert(self.scalar(value_node, fr), g.type)))
            case ast.Subscript(value=base, slice=index):
                m = self.map_of(base, fr)
                key = self.map_key(m, index, fr)
                m.raw_update(key, self.map_value(m, value_node, fr))  # a full map drops the update
            case _:
                raise EvaluationError(f"cannot assign to `{_text(target)}`")

    def aug_assign(self, s: ast.AugAssign, target: ast.expr, op: BinOp, value_node: ast.expr, fr: _Frame) -> None:
        match target:
            case ast.Name(id=name):
                old = fr.env.get(name)
                if not isinstance(old, Scalar):
                    raise EvaluationError(f"{name} is not a number")
                operand = self.scalar(value_node, fr)
                key = self.key(s)
                t = self.type_of(s)
                if key in self.lw.facts.consts:
                    result = _folded(Scalar(t, const=self.lw.facts.consts[key]))
                else:
                    result = binary_in(op, t, old, operand)
                fr.env[name] = convert(result, old.type)
            case ast.Attribute(value=base, attr="value"):
                g = self.expr(base, fr)
                if not isinstance(g, Global):
                    raise EvaluationError(f"`{_text(base)}` is not a Global")
                operand = self.scalar(value_node, fr)
                if self.key(s) in self.lw.facts.atomic_adds:
                    delta = _raw(convert(operand, g.type))  # an atomic add of the (negated) operand
                    g.raw_set(g.raw_get() + (-delta if op is BinOp.SUB else delta))
                    return
                old = Scalar(g.type, g.raw_get())
                g.raw_set(_raw(convert(binary_in(op, self.type_of(s), old, operand), g.type)))
            case ast.Subscript(value=base, slice=index):
                self.map_aug(s, self.map_of(base, fr), index, op, value_node, fr)
            case _:
                raise EvaluationError(f"cannot update `{_text(target)}`")

    def map_aug(self, s: ast.AugAssign, m: BpfMap, index: ast.expr, op: BinOp, value_node: ast.expr,
                fr: _Frame) -> None:
        """`m[k] op= n`: an atomic add, or the operation in the type recorded for the statement, as the
        emitter chose."""
        vt = m.value_type
        if not isinstance(vt, ScalarType):
            raise EvaluationError(f"the values of {m.name} are records")
        key = self.map_key(m, index, fr)
        operand = self.scalar(value_node, fr)
        raw = m.raw_lookup(key)
        if raw is not None:
            assert isinstance(raw, int)
            if self.key(s) in self.lw.facts.atomic_adds:
                new = vt.wrap(raw + _raw(convert(operand, vt)))
            else:
                new = _raw(convert(binary_in(op, self.type_of(s), Scalar(vt, raw), operand), vt))
            m.raw_update(key, new)
        elif isinstance(m, HashMap | LruHashMap):
            zero = Scalar(vt, 0, 0.0 if vt.is_fixed else 0)
            m.raw_update(key, _raw(convert(binary_in(op, self.type_of(s), zero, operand), vt)))

    def while_(self, s: ast.While, fr: _Frame) -> _Signal | None:
        test = s.test
        if not (isinstance(test, ast.Call) and len(test.args) == 2):
            raise EvaluationError("a while loop without bounded(cond, N)")
        limit = self.const_of(test.args[1])
        for _ in range(int(limit)):
            if not self.condition(test.args[0], fr):
                break
            signal = self.body(s.body, fr)
            if signal is _BREAK:
                break
            if isinstance(signal, _Return):
                return signal
        return None

    def for_(self, s: ast.For, fr: _Frame) -> _Signal | None:
        if not isinstance(s.target, ast.Name):
            raise EvaluationError("the loop variable must be a name")
        var = s.target.id
        it = s.iter
        if isinstance(it, ast.Call) and self.expr(it.func, fr) == _Callee("builtin", "range"):
            return self.range_loop(s, var, it, fr)
        seq = self.expr(it, fr)
        if not isinstance(seq, _Tuple):
            raise EvaluationError(f"cannot loop over `{_text(it)}`")
        outer = self.ctx
        try:
            for index, item in enumerate(seq.items):
                self.ctx = (*outer, (s, index))
                fr.env[var] = const_num(item)
                signal = self.body(s.body, fr)
                if signal is _BREAK:
                    break
                if isinstance(signal, _Return):
                    return signal
        finally:
            self.ctx = outer
        fr.env.pop(var, None)
        return None

    def range_loop(self, s: ast.For, var: str, call: ast.Call, fr: _Frame) -> _Signal | None:
        values = [int(self.const_of(a)) for a in call.args]
        start, stop, step = (0, values[0], 1) if len(values) == 1 else (
            values[0], values[1], values[2] if len(values) == 3 else 1)
        count = len(range(start, stop, step))
        t = fr.var_types[var]
        if count == 0:
            return None
        last = start + (count - 1) * step
        op = CmpOp.LE if step > 0 else CmpOp.GE
        counter = start  # the compiled loop's counter, compared with `last` as it is
        iterations = 0
        while arith.compare(op, t, counter, last):
            iterations += 1
            if iterations > _LOOP_LIMIT:
                raise EvaluationError(f"the loop at line {_line(s)} does not terminate")
            fr.env[var] = Scalar(t, counter)
            signal = self.body(s.body, fr)
            if signal is _BREAK:
                break
            if isinstance(signal, _Return):
                return signal
            counter = arith.binary(BinOp.ADD, t, counter, t.wrap(step))
        fr.env.pop(var, None)
        return None

    def match(self, s: ast.Match, fr: _Frame) -> _Signal | None:
        subject = self.scalar(s.subject, fr)
        for case in s.cases:
            constants = self.case_constants(case.pattern)
            matched = constants is None or any(compare(CmpOp.EQ, subject, const_num(c)) for c in constants)
            if matched and case.guard is not None:
                matched = self.condition(case.guard, fr)
            if matched:
                return self.body(case.body, fr)
        return None

    def case_constants(self, p: ast.pattern) -> list[int] | None:
        match p:
            case ast.MatchAs(pattern=None, name=None):
                return None
            case ast.MatchValue(value=v):
                return [int(self.const_of(v))]
            case ast.MatchSingleton(value=v) if isinstance(v, bool):
                return [int(v)]
            case ast.MatchOr(patterns=ps):
                out: list[int] = []
                for q in ps:
                    c = self.case_constants(q)
                    if c is None:
                        raise EvaluationError("`_` inside an alternative")
                    out.extend(c)
                return out
        raise EvaluationError(f"unsupported case pattern at line {_line(p)}")

    # --- conditions
    def condition(self, node: ast.expr, fr: _Frame) -> bool:
        """Whether a test holds, with the short-circuits of the compiled jumps."""
        match node:
            case ast.BoolOp(op=ast.And(), values=values):
                return all(self.condition(v, fr) for v in values)
            case ast.BoolOp(op=ast.Or(), values=values):
                return any(self.condition(v, fr) for v in values)
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not self.condition(operand, fr)
            case ast.Compare(left=left, ops=[ast.Is() | ast.IsNot() as op], comparators=[ast.Constant(value=None)]):
                return (self.expr(left, fr) is None) == isinstance(op, ast.Is)
        value = self.expr(node, fr)
        if value is None:
            return False  # an absent header (`if pkt.tcp:`)
        if isinstance(value, HeaderView):
            return True
        if isinstance(value, Scalar):
            return truth(value)
        raise EvaluationError(f"`{_text(node)}` cannot be used as a condition")

    # --- expressions
    def scalar(self, node: ast.expr, fr: _Frame) -> Scalar[int]:
        v = self.expr(node, fr)
        if not isinstance(v, Scalar):
            raise EvaluationError(f"`{_text(node)}` (line {_line(node)}) is not a number here: {v!r}")
        return v

    def expr(self, node: ast.expr, fr: _Frame) -> Value:
        key = (self.ctx, node)
        consts = self.lw.facts.consts
        if key in consts and self.foldable(node, fr):
            return _folded(Scalar(self.lw.facts.types[key], const=consts[key], literal=key in self.lw.facts.literals))
        v = self.expr_inner(node, fr)
        if isinstance(v, Scalar) and key in self.lw.facts.types:
            v = Scalar(v.type, v.value, consts.get(key), key in self.lw.facts.literals)
        return v

    def foldable(self, node: ast.expr, fr: _Frame) -> bool:
        """Whether a node recorded as constant can take its constant without being evaluated: not when
        its subexpressions ran code that the constant result does not show (`f() or True`)."""
        match node:
            case ast.BoolOp() | ast.IfExp() | ast.UnaryOp(op=ast.Not()):
                return False
            case ast.Compare(ops=ops):
                return len(ops) == 1 and not isinstance(ops[0], ast.Is | ast.IsNot)
            case ast.Call(func=func):
                callee = self.expr(func, fr)
                return isinstance(callee, _Callee) and callee.kind in ("builtin", "type")
        return True

    def expr_inner(self, node: ast.expr, fr: _Frame) -> Value:
        match node:
            case ast.Constant(value=value):
                if value is None:
                    return None
                if isinstance(value, str):
                    return _Text(value)
                if isinstance(value, int | float):
                    return const_num(value)
            case ast.Name(id=name):
                if name in fr.env:
                    return fr.env[name]
                return self.from_python(resolve_global(fr.source.function, name, lambda m: DslError(m)))
            case ast.Attribute():
                return self.attribute(node, fr)
            case ast.BinOp(left=left, op=ast.Div(), right=right):
                return self.true_divide(self.scalar(left, fr), self.scalar(right, fr))
            case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINOPS:
                a, b = self.scalar(left, fr), self.scalar(right, fr)
                return binary_in(_BINOPS[type(op)], self.type_of(node), a, b)
            case ast.UnaryOp(op=ast.Not()):
                return Scalar(BOOL, int(self.condition(node, fr)))
            case ast.UnaryOp(op=ast.UAdd(), operand=operand):
                return self.scalar(operand, fr)
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                v, t = self.scalar(operand, fr), self.type_of(node)
                return Scalar(t, arith.negate(t, _raw(convert(v, t))))
            case ast.UnaryOp(op=ast.Invert(), operand=operand):
                v, t = self.scalar(operand, fr), self.type_of(node)
                return Scalar(t, arith.binary(BinOp.XOR, t, _raw(convert(v, t)), t.wrap(-1)))
            case ast.Compare():
                return self.comparison(node, fr)
            case ast.BoolOp():
                return Scalar(BOOL, int(self.condition(node, fr)))
            case ast.IfExp(test=test, body=then, orelse=orelse):
                arm = self.expr(then if self.condition(test, fr) else orelse, fr)
                return convert(arm, self.type_of(node)) if isinstance(arm, Scalar) else arm
            case ast.Call():
                return self.call(node, fr)
            case ast.Subscript(value=base, slice=index):
                return self.subscript(node, base, index, fr)
            case ast.Tuple(elts=elts):
                return _Tuple(tuple(self.const_of(e) for e in elts))
        raise EvaluationError(f"unsupported expression `{_text(node)}` (line {_line(node)})")

    def from_python(self, value: object) -> Value:
        kind, value = classify(value)
        match kind:
            case "state":
                assert isinstance(value, StateObject)
                return self.state.get(value.name, value) if value.name is not None else value
            case "constant":
                assert isinstance(value, int | float)
                return const_num(value)
            case "tuple":
                assert isinstance(value, tuple)
                return _Tuple(value)
            case "module":
                assert isinstance(value, ModuleType)
                return value
            case "string":
                assert isinstance(value, str)
                return _Text(value)
            case "builtin" | "type" | "struct" | "inline":
                return _Callee(kind, value)
        raise EvaluationError(f"{value!r} cannot be used in a DSL function")

    def attribute(self, node: ast.Attribute, fr: _Frame) -> Value:
        base = self.expr(node.value, fr)
        attr = node.attr
        match base:
            case Packet():
                if attr == "len":
                    return Scalar(self.type_of(node), base.len)
                if attr in ("eth", "ipv4", "ipv6", "tcp", "udp"):
                    header: HeaderView | None = getattr(base, attr)
                    return header
                if attr == "payload":
                    return base.payload
            case HeaderView() | Struct():
                return Scalar(self.type_of(node), int(getattr(base, attr)))
            case Global() if attr == "value":
                return Scalar(base.type, base.raw_get())
            case ModuleType():
                return self.from_python(getattr(base, attr))
            case _Callee() | StateObject() | Payload():
                return _Method(base, attr)
        raise EvaluationError(f"`{_text(node)}`: {base!r} has no attribute {attr}")

    def true_divide(self, a: Scalar[int], b: Scalar[int]) -> Scalar[int]:
        whole = fold.integral_divisor(a, b)
        if whole is not None:  # `elapsed / 1e9`: an exact integer quotient (see fold.integral_divisor)
            b = Scalar(i64, whole, whole)
        if b.type.is_fixed:
            if b.const is None:
                raise EvaluationError("division by a float computed at run time")
            reciprocal = 1.0 / float(b.const)  # multiply by the constant reciprocal, rounded to nearest
            return binary_in(BinOp.MUL, FLOAT, a, Scalar(FLOAT, fixed.from_float(reciprocal), reciprocal))
        if not a.type.is_fixed:  # integer over integer: see lang.fixed.quotient
            return Scalar(FLOAT, fixed.quotient(_raw(convert(a, i64)), _raw(convert(b, i64))))
        return Scalar(FLOAT, fixed.div_int(_raw(a), _raw(convert(b, i64))))

    def comparison(self, node: ast.Compare, fr: _Frame) -> Scalar[int]:
        ops, rights = node.ops, node.comparators
        if len(ops) == 1 and isinstance(ops[0], ast.In | ast.NotIn):
            found = self.contains(node.left, rights[0], fr)
            return Scalar(BOOL, int(found != isinstance(ops[0], ast.NotIn)))
        if len(ops) == 1 and isinstance(ops[0], ast.Is | ast.IsNot):
            return Scalar(BOOL, int(self.condition(node, fr)))
        if len(ops) > 1:
            left = self.scalar(node.left, fr)
            for cmp, right_node in zip(ops, rights, strict=True):
                right = self.scalar(right_node, fr)
                if not compare(_CMPOPS[type(cmp)], left, right):
                    return Scalar(BOOL, 0)
                left = right
            return Scalar(BOOL, 1)
        left = self.scalar(node.left, fr)
        right = self.scalar(rights[0], fr)
        op = _CMPOPS[type(ops[0])]
        if self.key(node) in self.lw.facts.random_thresholds:
            # `random() < p`: the raw 32 random bits against ceil(p·2**32), exactly, as the emitter chose.
            assert right.const is not None
            threshold = Scalar(FLOAT, fold.random_threshold(float(right.const)))
            return Scalar(BOOL, int(compare(op, left, threshold)))
        return Scalar(BOOL, int(compare(op, left, right)))

    def contains(self, item_node: ast.expr, container_node: ast.expr, fr: _Frame) -> bool:
        container = self.expr(container_node, fr)  # the container is lowered first
        if isinstance(container, _Tuple):
            item = self.scalar(item_node, fr)
            return any(compare(CmpOp.EQ, item, const_num(int(x))) for x in container.items)
        if isinstance(container, BpfMap):
            return container.raw_lookup(self.map_key(container, item_node, fr)) is not None
        raise EvaluationError(f"`in` over {container!r}")

    # --- calls
    def call(self, node: ast.Call, fr: _Frame) -> Value:
        callee = self.expr(node.func, fr)
        match callee:
            case _Callee(kind="builtin", target=str() as name):
                return self.builtin(node, name, fr)
            case _Callee(kind="type", target=target):
                return self.type_call(node, target, fr)
            case _Callee(kind="struct", target=type() as cls) if issubclass(cls, Struct):
                return self.struct_call(node, cls, fr)
            case _Callee(kind="inline", target=FunctionType() as fn):
                return self.inline_call(node, fn, fr)
            case _Method(base=BpfMap() as m, attr="get"):
                return self.map_get(node, m, fr)
            case _Method(base=Payload() as payload, attr="read"):
                return self.payload_read(node, payload, fr)
            case _Method(base=RingBuf() as rb, attr="output"):
                record = self.expr(node.args[0], fr)  # the frontend checked: one record of rb's type
                assert isinstance(record, Struct)
                return Scalar(BOOL, int(rb.raw_output(record)))
        raise EvaluationError(f"cannot call `{_text(node.func)}`")

    def builtin(self, node: ast.Call, name: str, fr: _Frame) -> Value:
        h = self.helpers
        match name:
            case "random":
                # 32 random bits read as Q32.32 (the recorded float type): exactly r / 2**32.
                return Scalar(self.type_of(node), h.prandom_u32() & _U32_MASK)
            case "randint":
                lo, hi = self.scalar(node.args[0], fr), self.scalar(node.args[1], fr)
                lo64, hi64 = _raw(convert(lo, u64)), _raw(convert(hi, u64))
                span = u64.wrap(u64.wrap(hi64 - lo64) + 1)
                r = h.prandom_u32() & _U32_MASK
                total = u64.wrap(lo64 + (u64.wrap(r * span) >> 32))
                return convert(Scalar(u64, total), self.type_of(node))
            case "prandom_u32":
                return Scalar(self.type_of(node), h.prandom_u32() & _U32_MASK)
            case "now_ns":
                return Scalar(self.type_of(node), h.ktime_get_ns() & _U64_MASK)
            case "cpu_id":
                return Scalar(self.type_of(node), h.cpu_id() & _U32_MASK)
            case "ip":
                text = self.expr(node.args[0], fr)
                assert isinstance(text, _Text)
                return Scalar(u32, int(ipaddress.IPv4Address(text.text)))
            case "min" | "max":
                values = [self.scalar(a, fr) for a in node.args]
                best = values[0]
                for v in values[1:]:
                    t = fold.compare_type(best.type, v.type)
                    a, b = convert(best, t), convert(v, t)
                    take_b = compare(CmpOp.LT if name == "min" else CmpOp.GT, b, a)
                    best = Scalar(t, _raw(b) if take_b else _raw(a))
                return best
            case "abs":
                v = self.scalar(node.args[0], fr)
                t = self.type_of(node)
                v = convert(v, t)
                if not t.signed:
                    return v
                negative = compare(CmpOp.LT, v, Scalar(t, 0, 0.0 if t.is_fixed else 0))
                return Scalar(t, arith.negate(t, _raw(v)) if negative else _raw(v))
        raise EvaluationError(f"{name}() cannot be called here")

    def type_call(self, node: ast.Call, target: object, fr: _Frame) -> Scalar[int]:
        t = scalar_type(target)
        if t is None:
            raise EvaluationError(f"{target!r} is not a DSL type")
        v = self.scalar(node.args[0], fr)
        if t is BOOL:
            return Scalar(BOOL, int(truth(v)))
        return convert(v, t)

    def struct_call(self, node: ast.Call, cls: type[Struct], fr: _Frame) -> Struct:
        fields = cls.fields()
        given: dict[str, ast.expr] = {f.name: a for f, a in zip(fields, node.args, strict=False)}
        for k in node.keywords:
            assert k.arg is not None
            given[k.arg] = k.value
        values = []
        for f in fields:  # evaluated in declaration order, as the compiler does
            values.append(_raw(convert(self.scalar(given[f.name], fr), f.type)) if f.name in given else 0)
        return cls(*values)

    def inline_call(self, node: ast.Call, fn: FunctionType, fr: _Frame) -> Value:
        try:
            source = self.lw.facts.inline_sources[(self.ctx, node)]
        except KeyError:
            raise EvaluationError(f"no helper source recorded for the call at line {_line(node)}") from None
        tree = source.tree
        params = tree.args.args
        arg_nodes: dict[str, ast.expr] = {p.arg: a for p, a in zip(params, node.args, strict=False)}
        for k in node.keywords:
            assert k.arg is not None
            arg_nodes[k.arg] = k.value
        var_types = self.lw.facts.var_types.get(fn, {})
        env: dict[str, Value] = {}
        for p in params:  # in parameter order
            value = self.expr(arg_nodes[p.arg], fr)
            env[p.arg] = self.bind_param(p, value, arg_nodes[p.arg], source)
        ret = tree.returns
        return_type = None if ret is None or (isinstance(ret, ast.Constant) and ret.value is None) else \
            annotation_type(source, ret)
        callee = _Frame(source, env, var_types, helper=True, return_type=return_type)
        signal = self.body(tree.body, callee)
        if isinstance(signal, _Return):
            return signal.value
        return None

    def bind_param(self, p: ast.arg, value: Value, node: ast.expr, source: FunctionSource) -> Value:
        assert p.annotation is not None
        ann = eval_static(source, p.annotation)
        if ann is Packet or (isinstance(ann, type) and issubclass(ann, Struct)):
            return value
        was_optional = isinstance(value, Scalar) and self.key(node) not in self.lw.facts.types
        if (value is None or isinstance(value, HeaderView | Payload) or was_optional) \
                and not isinstance(ann, ScalarType):
            return value  # a header, the payload or an optional value passes as it is
        t = scalar_type(ann)
        if t is None or not isinstance(value, Scalar):
            raise EvaluationError(f"cannot bind parameter {p.arg} to {value!r}")
        return convert(value, t)

    # --- maps and the payload
    def map_of(self, node: ast.expr, fr: _Frame) -> BpfMap:
        m = self.expr(node, fr)
        if not isinstance(m, BpfMap):
            raise EvaluationError(f"`{_text(node)}` is not a map")
        return m

    def map_key(self, m: BpfMap, node: ast.expr, fr: _Frame) -> RawValue:
        return self.map_item(m.key_type, node, fr)

    def map_value(self, m: BpfMap, node: ast.expr, fr: _Frame) -> RawValue:
        return self.map_item(m.value_type, node, fr)

    def map_item(self, t: ScalarType | type[Struct], node: ast.expr, fr: _Frame) -> RawValue:
        """A key or value converted to the map's declared type."""
        v = self.expr(node, fr)
        if isinstance(t, ScalarType):
            if not isinstance(v, Scalar):
                raise EvaluationError(f"`{_text(node)}` is not a number")
            return _raw(convert(v, t))
        if not isinstance(v, Struct):
            raise EvaluationError(f"`{_text(node)}` is not a record")
        return v

    def wrap_value(self, m: BpfMap, raw: RawValue) -> Scalar[int] | Struct:
        vt = m.value_type
        if isinstance(vt, ScalarType):
            assert isinstance(raw, int)
            return Scalar(vt, raw)
        assert isinstance(raw, Struct)
        return raw

    def map_get(self, node: ast.Call, m: BpfMap, fr: _Frame) -> Value:
        raw = m.raw_lookup(self.map_key(m, node.args[0], fr))
        if len(node.args) == 1:
            return None if raw is None else self.wrap_value(m, raw)
        vt = m.value_type
        default = self.map_item(vt, node.args[1], fr)  # evaluated after the lookup
        return self.wrap_value(m, raw if raw is not None else default)

    def subscript(self, node: ast.Subscript, base_node: ast.expr, index: ast.expr, fr: _Frame) -> Value:
        base = self.expr(base_node, fr)
        if isinstance(base, BpfMap):
            if isinstance(base, HashMap | LruHashMap):
                raise EvaluationError("m[key] on a hash map")
            raw = base.raw_lookup(self.map_key(base, index, fr))
            if raw is None:
                vt = base.value_type
                raw = 0 if isinstance(vt, ScalarType) else vt()
            return self.wrap_value(base, raw)
        if isinstance(base, Payload):
            offset = self.payload_offset(base, index, 1, fr)
            byte = None if offset is None else base[offset]
            return None if byte is None else Scalar(u8, byte)
        if isinstance(base, _Tuple):
            return const_num(base.items[int(self.const_of(index))])
        raise EvaluationError(f"`{_text(node)}` cannot be indexed")

    def payload_offset(self, payload: Payload, index_node: ast.expr, width: int, fr: _Frame) -> int | None:
        """The payload position an index denotes, or None when the compiled bounds checks fail."""
        index = self.scalar(index_node, fr)
        if index.const is not None and int(index.const) < 0:
            return None
        idx = _raw(convert(index, u64))
        if idx > _MAX_OFFSET:
            return None
        start = payload.offset + idx
        if start > _MAX_OFFSET or start + width > self.pkt.len:
            return None
        return idx

    def payload_read(self, node: ast.Call, payload: Payload, fr: _Frame) -> Struct | None:
        cls = self.expr(node.args[0], fr)
        if not (isinstance(cls, _Callee) and isinstance(cls.target, type) and issubclass(cls.target, Struct)):
            raise EvaluationError("read() needs a Struct class")
        record_cls: type[Struct] = cls.target
        offset = self.payload_offset(payload, node.args[1], record_cls.size(), fr)
        return None if offset is None else payload.read(record_cls, offset)


def _text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - only for messages
        return type(node).__name__


def _line(node: ast.AST) -> int:
    return getattr(node, "lineno", 0)


def run_python(program: TypedFunction | Lowered, packet: bytes | bytearray | memoryview | Packet,
               state: Mapping[str, StateObject] | None = None) -> int:
    """Run a type-checked program (`lower.typecheck_function`; or a lowered one, which holds the same
    typed AST), in pure Python, on `packet`; returns the XDP action (a u32).

    State is read and written through the program's state objects (their raw views); `state` replaces
    some of them by name (tests run the same program against copies). Helper results come from the
    current `HelperSource` (`pybpfdsl.lang.helpers.use_helpers`, `pybpfdsl.testing`).
    """
    pkt = packet if isinstance(packet, Packet) else Packet(packet)
    typed = program if isinstance(program, TypedFunction) else TypedFunction(program.source, program.facts)
    return _Evaluator(typed, pkt, state).run()
