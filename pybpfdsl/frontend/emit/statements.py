"""Emitting statements: assignments (locals, globals, map entries), returns, `if`, `match`, `break`,
and `continue` (the statements the DSL does not have are the type checker's to refuse).

Takes the AST of a function body the type checker accepted, with names resolved on demand (`resolve`)
and every expression folded as it is met (`arithmetic`, `expressions`) and checked against the typed
AST; gives the body's IR blocks. Locals live in the
flow environment (`flow.Env`); a typed local keeps its declared type across assignments. Loops are in
`loops`.
"""

from __future__ import annotations

import ast

from pybpfdsl.frontend.emit import packet_writes
from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.flow import Env, Flow
from pybpfdsl.frontend.inline_forms import InlineForms
from pybpfdsl.frontend.values import (
    DslValue,
    LocalValue,
    OptionalVal,
    PayloadVal,
    Scalar,
)
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.state import BpfMap, Global
from pybpfdsl.lang.types import (
    BOOL,
    ScalarType,
    i64,
    u32,
)


class StatementEmitter(EmitterBase, InlineForms[DslValue, Scalar, Env]):
    """Statements, assignments, `if`, `match`, `break`/`continue`."""

    def body(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            if self.b.terminated:
                return  # code after return/break/continue never runs; Python allows it, so do we
            self.set_line(stmt)
            self.statement(stmt)

    def return_(self, s: ast.Return, value: ast.expr | None) -> None:
        if self.scope.returns is not None:  # inside an inline helper
            ret_type = self.scope.return_type
            env: Env = {}
            if ret_type is not None:
                if value is None:
                    raise self.unchecked(s)
                result = self.convert(self.scalar(value), ret_type, value, implicit=True)
                env["$ret"] = Scalar(ret_type, self.scalar_value(result))
            elif value is not None:
                raise self.unchecked(s)
            assert self.b.current is not None
            self.scope.returns.append(Flow(self.b.current, env))
            self.b.set_block(None)
            return
        if value is None:
            raise self.unchecked(s)
        v = self.scalar(value)
        if not v.type.is_int:
            raise self.unchecked(value)
        if v.const is not None and not 0 <= int(v.const) <= 4:
            raise self.unchecked(value)
        action = self.convert(v, u32, value)
        self.b.terminate(n.Return(self.scalar_value(action), line=self.line))

    # --- assignments: the steps `StatementForms` takes
    def is_payload(self, node: ast.expr) -> bool:
        return isinstance(self.lower_expr(node), PayloadVal)

    def payload_write(self, call: ast.Call) -> None:
        packet_writes.payload_write(self, call)

    def payload_store(self, target: ast.Subscript, value_node: ast.expr) -> None:
        packet_writes.payload_store(self, target, value_node)

    def field_assign(self, target: ast.Attribute, value_node: ast.expr) -> None:
        packet_writes.field_assign(self, target, value_node)

    def field_aug(self, target: ast.Attribute, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        packet_writes.field_aug(self, target, op, value_node, s)

    def swap(self, targets: ast.Tuple | ast.List, value: ast.expr, s: ast.stmt) -> None:
        packet_writes.swap(self, targets, value)

    def store_global(self, g: Global, v: Scalar) -> None:
        assert g.name is not None
        self.b.append(n.StoreGlobal(g.name, self.scalar_value(v), line=self.line))

    def map_assign(self, m: BpfMap, index: ast.expr, value_node: ast.expr) -> None:
        key = self.map_key(m, index)
        val = self.map_value(m, value_node)
        assert m.name is not None
        self.b.emit(n.MapUpdate(self.new(i64), m.name, key, val, line=self.line))

    def first_assignment(self, name: str, s: ast.stmt) -> None:
        return  # the checker warned where it hides state

    def materialized(self, v: Scalar) -> LocalValue:
        return self.materialize(v)

    def undefined(self, node: ast.expr, name: str) -> AssertionError:
        return self.unchecked(node)

    def update_local(self, name: str, result: Scalar, t: ScalarType, s: ast.stmt) -> None:
        self.record(s, result)
        self.env[name] = self.materialize(self.convert(result, t, s))

    def if_(self, s: ast.If) -> None:
        true_flows, false_flows = self.condition(s.test)
        exits: list[Flow] = []
        for flows, body in ((true_flows, s.body), (false_flows, s.orelse)):
            env = self.flow.merge(flows, self.line, "if")
            if env is None:
                continue
            self.env = env
            self.body(body)
            if not self.b.terminated:
                assert self.b.current is not None
                exits.append(Flow(self.b.current, self.env))
        self.resume(exits, "endif")

    def resume(self, flows: list[Flow], hint: str) -> None:
        env = self.flow.merge(flows, self.line, hint)
        self.env = env if env is not None else {}

    def jump(self, s: ast.Break | ast.Continue) -> None:
        if isinstance(s, ast.Break):
            self.lower_break(s)
        else:
            self.lower_continue(s)

    def lower_break(self, s: ast.stmt) -> None:
        if not self.scope.loops:
            raise self.unchecked(s)
        assert self.b.current is not None
        self.scope.loops[-1].break_flows.append(Flow(self.b.current, self.env))
        self.b.set_block(None)

    def lower_continue(self, s: ast.stmt) -> None:
        if not self.scope.loops:
            raise self.unchecked(s)
        assert self.b.current is not None
        self.scope.loops[-1].continue_flows.append(Flow(self.b.current, self.env))
        self.b.set_block(None)

    def match(self, s: ast.Match) -> None:
        held = self.lower_expr(s.subject)
        present: n.Value | None = None  # a number that may be None matches a constant only where present
        if isinstance(held, OptionalVal) and not held.narrowed and isinstance(held.inner, Scalar):
            present, subject = held.present, held.inner
        else:
            subject = self.as_scalar(held, s.subject)
        if not (subject.type.is_int or subject.type.is_bool):
            raise self.unchecked(s.subject)
        subject = self.materialize(subject)  # type: ignore[assignment]
        exits: list[Flow] = []
        for case in s.cases:
            if self.b.terminated:
                break
            self.set_line(case.pattern)
            constants = self.case_constants(case.pattern)
            if constants is None:
                true_flows: list[Flow] = [Flow(self.b.current, self.env)]  # type: ignore[arg-type]
                false_flows: list[Flow] = []
                self.b.set_block(None)
            else:
                assert isinstance(subject, Scalar)
                cond = self.membership(subject, constants, case.pattern)
                if present is not None:
                    cond = Scalar(BOOL, self.op(n.Binary, BOOL, BinOp.AND, present, self.scalar_value(cond)))
                t, f = self.flow.branch(self.scalar_value(cond), self.env, self.line)
                true_flows, false_flows = [t], [f]
            if case.guard is not None:
                env = self.flow.merge(true_flows, self.line, "case")
                assert env is not None
                self.env = env
                gt, gf = self.condition(case.guard)
                true_flows, false_flows = gt, false_flows + gf
            env = self.flow.merge(true_flows, self.line, "case")
            if env is not None:
                self.env = env
                self.body(case.body)
                if not self.b.terminated:
                    assert self.b.current is not None
                    exits.append(Flow(self.b.current, self.env))
            env = self.flow.merge(false_flows, self.line, "nextcase")
            if env is not None:
                self.env = env
        if not self.b.terminated:
            assert self.b.current is not None
            exits.append(Flow(self.b.current, self.env))
        self.resume(exits, "endmatch")
