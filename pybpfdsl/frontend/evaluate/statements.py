"""Pure-Python mode's statements: assignments (locals converted to their declared types, Globals, map
entries), `op=` in the type the typed AST gives (or as an atomic add where the checker decided one),
`if`, `while bounded`, `for` over a range (counting as the compiled loop does) or a constant tuple (in
each item's lowering context), `match`, `break`, `continue`, `return`."""

from __future__ import annotations

import ast

from pybpfdsl.frontend.evaluate.packet_writes import PacketWriteEvaluator
from pybpfdsl.frontend.evaluate.running import (
    BREAK,
    CONTINUE,
    Callee,
    EvaluationError,
    Frame,
    Return,
    Signal,
    TupleValue,
    Value,
    binary_in,
    compare,
    const_num,
    convert,
    folded,
    line_of,
    raw_of,
    source_text,
)
from pybpfdsl.frontend.operators import BINARY_OPERATORS
from pybpfdsl.frontend.resolve import annotation_type
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang import arith
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.packet import Payload
from pybpfdsl.lang.state import BpfMap, Global, HashMap, LruHashMap
from pybpfdsl.lang.types import ScalarType, u32

_BINOPS = BINARY_OPERATORS
_U32_MASK = 0xFFFFFFFF
_LOOP_LIMIT = 1 << 21  # a range loop the compiler accepted never runs this often; more means a bug


class StatementEvaluator(PacketWriteEvaluator):
    """Statements, assignments, `op=`, loops, `match`."""

    # --- entry
    def run(self) -> int:
        source = self.lw.source
        tree = source.tree
        frame = Frame(source, {tree.args.args[0].arg: self.pkt}, self.lw.facts.var_types.get(source.function, {}))
        signal = self.body(tree.body, frame)
        if not isinstance(signal, Return) or not isinstance(signal.value, Scalar):
            raise EvaluationError(f"{tree.name} ended without returning an action")
        return raw_of(signal.value) & _U32_MASK

    # --- statements
    def body(self, stmts: list[ast.stmt], fr: Frame) -> Signal | None:
        for s in stmts:
            signal = self.stmt(s, fr)
            if signal is not None:
                return signal
        return None

    def stmt(self, s: ast.stmt, fr: Frame) -> Signal | None:
        match s:
            case ast.Expr(value=ast.Constant(value=str())) | ast.Pass():
                return None
            case ast.Expr(value=ast.Call(func=ast.Attribute(value=base, attr="write")) as call) \
                    if isinstance(self.expr(base, fr), Payload):
                self.payload_write(call, fr)
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
                return BREAK
            case ast.Continue():
                return CONTINUE
            case ast.Match():
                return self.match(s, fr)
            case ast.Delete(targets=targets):
                for t in targets:
                    if not isinstance(t, ast.Subscript):
                        raise EvaluationError(f"cannot delete `{source_text(t)}`")
                    m = self.map_of(t.value, fr)
                    m.raw_delete(self.map_key(m, t.slice, fr))
            case _:
                raise EvaluationError(f"unsupported statement `{source_text(s)}` (line {line_of(s)})")
        return None

    def return_(self, value: ast.expr | None, fr: Frame) -> Return:
        if fr.helper:
            if fr.return_type is None:
                return Return(None)
            assert value is not None
            return Return(convert(self.scalar(value, fr), fr.return_type))
        assert value is not None
        return Return(convert(self.scalar(value, fr), u32))

    def assign(self, target: ast.expr, value_node: ast.expr, annotated: ScalarType | None, fr: Frame) -> None:
        match target:
            case ast.Name(id=name):
                self.store_local(name, self.expr(value_node, fr), annotated, fr)
            case ast.Tuple(elts=elts) | ast.List(elts=elts) if elts and all(isinstance(t, ast.Name) for t in elts):
                if not isinstance(value_node, ast.Tuple | ast.List):
                    raise EvaluationError("unpacking needs a tuple of values")
                values = [self.expr(v, fr) for v in value_node.elts]  # every value first, then the names
                for t, v in zip(elts, values, strict=True):
                    assert isinstance(t, ast.Name)
                    self.store_local(t.id, v, None, fr)
            case ast.Attribute(value=base, attr="value"):
                g = self.expr(base, fr)
                if not isinstance(g, Global):
                    raise EvaluationError(f"`{source_text(base)}` is not a Global")
                g.raw_set(raw_of(convert(self.scalar(value_node, fr), g.type)))
            case ast.Subscript(value=base) if isinstance(self.expr(base, fr), Payload):
                self.payload_store(target, value_node, fr)
            case ast.Subscript(value=base, slice=index):
                m = self.map_of(base, fr)
                key = self.map_key(m, index, fr)
                m.raw_update(key, self.map_value(m, value_node, fr))  # a full map drops the update
            case ast.Attribute():
                self.field_assign(target, value_node, fr)
            case ast.Tuple() | ast.List():
                self.swap(target, value_node, fr)
            case _:
                raise EvaluationError(f"cannot assign to `{source_text(target)}`")

    def store_local(self, name: str, value: Value, annotated: ScalarType | None, fr: Frame) -> None:
        """`name = value`, a number converted to the local's type."""
        declared = annotated or fr.var_types.get(name)
        if declared is not None and isinstance(value, Scalar):
            value = convert(value, declared)
        fr.env[name] = value

    def aug_assign(self, s: ast.AugAssign, target: ast.expr, op: BinOp, value_node: ast.expr, fr: Frame) -> None:
        match target:
            case ast.Name(id=name):
                old = fr.env.get(name)
                if not isinstance(old, Scalar):
                    raise EvaluationError(f"{name} is not a number")
                operand = self.scalar(value_node, fr)
                key = self.key(s)
                t = self.type_of(s)
                if key in self.lw.facts.consts:
                    result = folded(Scalar(t, const=self.lw.facts.consts[key]))
                else:
                    result = binary_in(op, t, old, operand)
                fr.env[name] = convert(result, old.type)
            case ast.Attribute(value=base, attr="value"):
                g = self.expr(base, fr)
                if not isinstance(g, Global):
                    raise EvaluationError(f"`{source_text(base)}` is not a Global")
                operand = self.scalar(value_node, fr)
                if self.key(s) in self.lw.facts.atomic_adds:
                    delta = raw_of(convert(operand, g.type))  # an atomic add of the (negated) operand
                    g.raw_set(g.raw_get() + (-delta if op is BinOp.SUB else delta))
                    return
                old = Scalar(g.type, g.raw_get())
                g.raw_set(raw_of(convert(binary_in(op, self.type_of(s), old, operand), g.type)))
            case ast.Subscript(value=base, slice=index):
                self.map_aug(s, self.map_of(base, fr), index, op, value_node, fr)
            case ast.Attribute():
                self.field_aug(s, target, op, value_node, fr)
            case _:
                raise EvaluationError(f"cannot update `{source_text(target)}`")

    def map_aug(self, s: ast.AugAssign, m: BpfMap, index: ast.expr, op: BinOp, value_node: ast.expr,
                fr: Frame) -> None:
        """`m[k] op= n`: an atomic add, or the operation in the type the typed AST gives the statement, as
        the checker decided."""
        vt = m.value_type
        if not isinstance(vt, ScalarType):
            raise EvaluationError(f"the values of {m.name} are records")
        key = self.map_key(m, index, fr)
        operand = self.scalar(value_node, fr)
        raw = m.raw_lookup(key)
        if raw is not None:
            assert isinstance(raw, int)
            if self.key(s) in self.lw.facts.atomic_adds:
                new = vt.wrap(raw + raw_of(convert(operand, vt)))
            else:
                new = raw_of(convert(binary_in(op, self.type_of(s), Scalar(vt, raw), operand), vt))
            m.raw_update(key, new)
        elif isinstance(m, HashMap | LruHashMap):
            zero = Scalar(vt, 0, 0.0 if vt.is_fixed else 0)
            m.raw_update(key, raw_of(convert(binary_in(op, self.type_of(s), zero, operand), vt)))

    def while_(self, s: ast.While, fr: Frame) -> Signal | None:
        test = s.test
        counted = self.lw.facts.while_bounds.get(self.key(s))  # `while i < C:`, its iterations counted
        if counted is not None:
            cond, limit = test, counted
        elif isinstance(test, ast.Call) and len(test.args) == 2:
            cond, limit = test.args[0], int(self.const_of(test.args[1]))
        else:
            raise EvaluationError("a while loop without bounded(cond, N)")
        for _ in range(limit):
            if not self.condition(cond, fr):
                break
            signal = self.body(s.body, fr)
            if signal is BREAK:
                break
            if isinstance(signal, Return):
                return signal
        return None

    def for_(self, s: ast.For, fr: Frame) -> Signal | None:
        if not isinstance(s.target, ast.Name):
            raise EvaluationError("the loop variable must be a name")
        var = s.target.id
        it = s.iter
        if isinstance(it, ast.Call) and self.expr(it.func, fr) == Callee("builtin", "range"):
            return self.range_loop(s, var, it, fr)
        seq = self.expr(it, fr)
        if not isinstance(seq, TupleValue):
            raise EvaluationError(f"cannot loop over `{source_text(it)}`")
        outer = self.ctx
        try:
            for index, item in enumerate(seq.items):
                self.ctx = (*outer, (s, index))
                fr.env[var] = const_num(item)
                signal = self.body(s.body, fr)
                if signal is BREAK:
                    break
                if isinstance(signal, Return):
                    return signal
        finally:
            self.ctx = outer
        fr.env.pop(var, None)
        return None

    def range_loop(self, s: ast.For, var: str, call: ast.Call, fr: Frame) -> Signal | None:
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
                raise EvaluationError(f"the loop at line {line_of(s)} does not terminate")
            fr.env[var] = Scalar(t, counter)
            signal = self.body(s.body, fr)
            if signal is BREAK:
                break
            if isinstance(signal, Return):
                return signal
            counter = arith.binary(BinOp.ADD, t, counter, t.wrap(step))
        fr.env.pop(var, None)
        return None

    def match(self, s: ast.Match, fr: Frame) -> Signal | None:
        held = self.expr(s.subject, fr)
        subject = None if held is None else self.scalar(s.subject, fr) if not isinstance(held, Scalar) else held
        for case in s.cases:
            constants = self.case_constants(case.pattern)
            matched = constants is None or (subject is not None and any(
                compare(CmpOp.EQ, subject, const_num(c)) for c in constants))  # None equals no constant
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
        raise EvaluationError(f"unsupported case pattern at line {line_of(p)}")

