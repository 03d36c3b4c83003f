"""Emitting loops: `for` over a constant `range` (a real loop with the carried locals as block
parameters), `while bounded(cond, n)` (a real loop with a hidden counter), and `for` over a constant
tuple (unrolled: the body is emitted once per item, in its own lowering context).

Takes a loop statement; gives the header, body and latch blocks. Loops the kernel could never accept
(more iterations than its instruction budget allows) the type checker refuses, at once.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from pybpfdsl.frontend.emit.base import EmitterBase, LoopContext
from pybpfdsl.frontend.flow import Flow
from pybpfdsl.frontend.typecheck.statements import KERNEL_INSN_LIMIT, MAX_LOOP_ITERATIONS, MAX_UNROLL
from pybpfdsl.frontend.values import (
    Callee,
    ConstTuple,
    Scalar,
)
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import (
    BOOL,
    u32,
)

__all__ = ["KERNEL_INSN_LIMIT", "MAX_LOOP_ITERATIONS", "MAX_UNROLL", "LoopEmitter"]


class LoopEmitter(EmitterBase):
    """`for` over ranges and constant tuples, `while bounded(...)`."""

    def assigned_names(self, body: list[ast.stmt]) -> list[str]:
        names: list[str] = []
        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in names:
                    names.append(node.id)
        return names

    def lower_loop(self, node: ast.stmt, body: list[ast.stmt], setup: Callable[[], list[str]],
                   test: Callable[[], tuple[list[Flow], list[Flow]]], step: Callable[[], None]) -> None:
        """A real loop: header with the carried locals as parameters, body, latch that steps and jumps back."""
        hidden = setup()
        carried = [k for k in self.assigned_names(body) if k in self.env] + hidden
        for k in carried:
            v = self.env[k]
            if not isinstance(v, Scalar):
                raise self.unchecked(node)
            self.env[k] = self.materialize(v)
        header = self.b.new_block("loop")
        params = {k: self.new(self.env[k].type, k) for k in carried}  # type: ignore[union-attr]
        header.params.extend(params.values())
        self.b.terminate(n.Jump(n.Edge(header.name, tuple(self.scalar_value(self.env[k]) for k in carried)),  # type: ignore[arg-type]
                                line=self.line))
        self.b.set_block(header)
        header_env = dict(self.env)
        for k in carried:
            header_env[k] = Scalar(self.env[k].type, params[k])  # type: ignore[union-attr]
        self.env = header_env
        body_flows, exit_flows = test()
        ctx = LoopContext(carried, header.name)
        self.scope.loops.append(ctx)
        env = self.flow.merge(body_flows, self.line, "body")
        if env is not None:
            self.env = env
            self.body(body)
            if not self.b.terminated:
                assert self.b.current is not None
                ctx.continue_flows.append(Flow(self.b.current, self.env))
        self.scope.loops.pop()
        latch_env = self.flow.merge(ctx.continue_flows, self.line, "latch")
        if latch_env is not None:
            self.env = latch_env
            step()
            args = []
            for k in carried:
                end_value = self.env.get(k)
                if not isinstance(end_value, Scalar):
                    raise self.unchecked(node)
                args.append(self.scalar_value(end_value))
            self.b.terminate(n.Jump(n.Edge(header.name, tuple(args)), line=self.line))
        self.resume(exit_flows + ctx.break_flows, "endloop")

    def while_(self, s: ast.While) -> None:
        if s.orelse:
            raise self.unchecked(s)
        test = s.test
        counted = self.typed.while_bounds.get((self.ctx, s))  # `while i < C:`, its iterations counted
        bound = (test, counted) if counted is not None else self.while_bound(test)
        if bound is None:
            raise self.unchecked(s)
        cond_node, limit = bound
        counter = self.loop_counter("while", s)

        def setup() -> list[str]:
            self.env[counter] = Scalar(u32, self.const(u32, 0))
            return [counter]

        def check() -> tuple[list[Flow], list[Flow]]:
            c = self.env[counter]
            assert isinstance(c, Scalar) and c.value is not None
            within = self.b.emit(n.Compare(self.new(BOOL), CmpOp.LT, c.value, self.const(u32, limit), line=self.line))
            ok, out = self.flow.branch(within, self.env, self.line)
            self.b.set_block(ok.block)
            self.env = ok.env
            t, f = self.condition(cond_node)
            return t, [*f, out]

        def step() -> None:
            c = self.env[counter]
            assert isinstance(c, Scalar) and c.value is not None
            one = self.const(u32, 1)
            self.env[counter] = Scalar(u32, self.op(n.Binary, u32, BinOp.ADD, c.value, one))

        self.lower_loop(s, s.body, setup, check, step)
        self.env.pop(counter, None)

    def while_bound(self, test: ast.expr) -> tuple[ast.expr, int] | None:
        if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Name | ast.Attribute)):
            return None
        callee = self.lower_expr(test.func)
        if not (isinstance(callee, Callee) and callee.kind == "builtin" and callee.target == "bounded"):
            return None
        if len(test.args) != 2 or test.keywords:
            raise self.unchecked(test)
        limit = self.scalar(test.args[1])
        if limit.const is None or not isinstance(limit.const, int) or not 0 < limit.const <= 1 << 20:
            raise self.unchecked(test.args[1])
        return test.args[0], limit.const

    def for_(self, s: ast.For) -> None:
        if s.orelse:
            raise self.unchecked(s)
        if not isinstance(s.target, ast.Name):
            raise self.unchecked(s.target)
        var = s.target.id
        it = s.iter
        if isinstance(it, ast.Call) and isinstance(self.lower_expr(it.func), Callee) and \
                self.lower_expr(it.func) == Callee("builtin", "range"):
            self.lower_range_loop(s, var, it)
            return
        seq = self.lower_expr(it)
        if isinstance(seq, ConstTuple):
            self.lower_unrolled(s, var, seq)
            return
        raise self.unchecked(it)

    def lower_range_loop(self, s: ast.For, var: str, call: ast.Call) -> None:
        if call.keywords or not 1 <= len(call.args) <= 3:
            raise self.unchecked(call)
        bounds = [self.scalar(a) for a in call.args]
        for a, node in zip(bounds, call.args):
            if a.const is None or not isinstance(a.const, int):
                raise self.unchecked(node)
        values = [int(b.const) for b in bounds]  # type: ignore[arg-type]
        start, stop, step_by = (0, values[0], 1) if len(values) == 1 else (
            values[0], values[1], values[2] if len(values) == 3 else 1)
        if step_by == 0:
            raise self.unchecked(call)
        count = len(range(start, stop, step_by))
        if count > MAX_LOOP_ITERATIONS:
            raise self.unchecked(call)
        t = self.typed.var_types[self.scope.source.function][var]  # the loop variable's type, as checked
        last = start + (count - 1) * step_by if count else start
        if count and not all(t.min <= v <= t.max for v in (start, last, last + step_by)):
            # The counter is the loop variable: stepping past `last` must not wrap, or the loop never ends.
            raise self.unchecked(call)
        self.scope.var_types[var] = t
        counter = self.loop_counter("for", s)

        def setup() -> list[str]:
            self.env[counter] = Scalar(t, self.const(t, start))
            return [counter]

        def check() -> tuple[list[Flow], list[Flow]]:
            c = self.env[counter]
            assert isinstance(c, Scalar) and c.value is not None
            op = CmpOp.LE if step_by > 0 else CmpOp.GE
            more = self.b.emit(n.Compare(self.new(BOOL), op, c.value, self.const(t, last), line=self.line))
            if count == 0:
                more = self.const(BOOL, 0)
            body, out = self.flow.branch(more, self.env, self.line)
            body.env[var] = c
            return [body], [out]

        def step() -> None:
            c = self.env[counter]
            assert isinstance(c, Scalar) and c.value is not None
            inc = self.const(t, t.wrap(step_by))
            self.env[counter] = Scalar(t, self.b.emit(n.Binary(self.new(t), BinOp.ADD, c.value, inc, line=self.line)))

        self.lower_loop(s, s.body, setup, check, step)
        self.env.pop(counter, None)
        self.env.pop(var, None)

    def lower_unrolled(self, s: ast.For, var: str, seq: ConstTuple) -> None:
        if len(seq.items) > MAX_UNROLL:
            raise self.unchecked(s.iter)
        ctx = LoopContext([], None)
        self.scope.loops.append(ctx)
        outer = self.ctx
        for index, item in enumerate(seq.items):
            if self.b.terminated:
                break
            self.env[var] = self.const_scalar(item, s.iter)
            self.ctx = (*outer, (s, index))
            try:
                self.body(s.body)
            finally:
                self.ctx = outer
            if not self.b.terminated:
                assert self.b.current is not None
                ctx.continue_flows.append(Flow(self.b.current, self.env))
            self.resume(ctx.continue_flows, "next")
            ctx.continue_flows = []
        self.scope.loops.pop()
        if not self.b.terminated:
            assert self.b.current is not None
            ctx.break_flows.append(Flow(self.b.current, self.env))
        self.resume(ctx.break_flows, "endfor")
        self.env.pop(var, None)
