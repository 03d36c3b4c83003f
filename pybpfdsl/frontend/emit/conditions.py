"""Emitting tests as control flow: `if` conditions, `and`/`or`/`not`, chained comparisons, `x if c else
y`, None tests that narrow a local (or a parsed header) on the path where it is present, and `in` over a
constant tuple.

Takes a test expression; gives the flows where it holds and where it does not (`flow.Flow`, each an
open block with its locals), or, for a value computed with branches, the joined value.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType

from pybpfdsl.frontend import likelihood
from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.flow import Flow
from pybpfdsl.frontend.operators import COMPARISONS
from pybpfdsl.frontend.type_facts import Key
from pybpfdsl.frontend.values import (
    DslValue,
    Scalar,
    StructVal,
)
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import (
    BOOL,
)

_CMPOPS = COMPARISONS
_PROFILED, _SPELLED = 1, 2
"""The strength of a branch hint: a profile's yields to the program's own `likely` / `unlikely`."""


class ConditionEmitter(EmitterBase):
    """Tests as jumps, None tests that narrow, values computed with branches."""

    expectations: Mapping[Key, n.Expect] = MappingProxyType({})
    """Hints from a profile of pure-Python runs (`likelihood.BranchProfile`), by typed-AST key."""

    def condition(self, node: ast.expr) -> tuple[list[Flow], list[Flow]]:
        """Lower a test as jumps: the flows where it holds and where it does not, with locals narrowed.
        A test written `likely(c)` / `unlikely(c)`, or one a profile hints, marks its branches."""
        hinted = likelihood.spelled(node, self.scope.source.function)
        start, entry = len(self.b.blocks), self.b.current
        expect: n.Expect | None
        if hinted is not None:
            expect, call = hinted
            rank = _SPELLED
            t, f = self.condition(call.args[0])
        else:
            expect, rank = self.expectations.get((self.ctx, node)), _PROFILED
            t, f = self.plain_condition(node)
        if expect is not None:
            self.mark_rare(f if expect is n.Expect.LIKELY else t, start, entry, rank)
        return t, f

    def mark_rare(self, rare: list[Flow], start: int, entry: n.Block | None, rank: int) -> None:
        """Hint the branches of the test just lowered whose edge leads straight to one of the `rare`
        flows: that edge is the unusual one. The test's branches end `entry` (the block open when it
        began) or a block made since (`start`: the count of blocks then); a rare flow that is not a
        block made since is the test's own start, reached by no branch of it. A hint is kept against a
        weaker one: the user's `likely` against a profile's, the innermost against an enclosing one."""
        made = self.b.blocks[start:]
        targets = {flow.block.name for flow in rare} & {b.name for b in made}
        if not targets:
            return
        for block in ([entry] if entry is not None else []) + made:
            term = block.terminator
            if not isinstance(term, n.Branch) or self.hint_ranks.get(block.name, 0) >= rank:
                continue
            to_true, to_false = term.if_true.target in targets, term.if_false.target in targets
            if to_true != to_false:
                block.terminator = replace(term, expect=n.Expect.UNLIKELY if to_true else n.Expect.LIKELY)
                self.hint_ranks[block.name] = rank

    def plain_condition(self, node: ast.expr) -> tuple[list[Flow], list[Flow]]:
        self.set_line_expr(node)
        return super().plain_condition(node)

    def branchy_value(self, node: ast.expr) -> DslValue:
        """A value computed with control flow: and/or/not, chained comparisons, `a if c else b`."""
        if isinstance(node, ast.IfExp):
            t_flows, f_flows = self.condition(node.test)
            results: list[tuple[Flow, DslValue]] = []
            for flows, arm in ((t_flows, node.body), (f_flows, node.orelse)):
                env = self.flow.merge(flows, self.line, "arm")
                if env is None:
                    continue
                self.env = env
                v = self.lower_expr(arm)
                assert self.b.current is not None
                results.append((Flow(self.b.current, self.env), v))
            return self.join_values(results, node)
        if isinstance(node, ast.Compare) and len(node.ops) > 1:
            t_flows, f_flows = self.chained_condition(node)
        else:
            t_flows, f_flows = self.condition(node)
        results = []
        for flows, truth in ((t_flows, 1), (f_flows, 0)):
            env = self.flow.merge(flows, self.line, "bool")
            if env is None:
                continue
            self.env = env
            assert self.b.current is not None
            results.append((Flow(self.b.current, self.env), Scalar(BOOL, const=truth)))
        return self.join_values(results, node)

    def chained_condition(self, node: ast.Compare) -> tuple[list[Flow], list[Flow]]:
        left = self.materialize(self.scalar(node.left))
        assert isinstance(left, Scalar)
        false_flows: list[Flow] = []
        true_flows: list[Flow] = []
        for index, (op, right_node) in enumerate(zip(node.ops, node.comparators)):
            if type(op) not in _CMPOPS:
                raise self.unchecked(node)
            right = self.materialize(self.scalar(right_node))
            assert isinstance(right, Scalar)
            c = self.compare(_CMPOPS[type(op)], left, right, node)
            t, f = self.flow.branch(self.scalar_value(c), self.env, self.line)
            false_flows.append(f)
            if index == len(node.ops) - 1:
                true_flows = [t]
            else:
                self.b.set_block(t.block)
                self.env = t.env
            left = right
        return true_flows, false_flows

    def join_values(self, results: list[tuple[Flow, DslValue]], node: ast.expr) -> DslValue:
        # A number checked not None is a number (`x if c else b` after `if b is None: return ...`).
        results = [(f, self.checked_number(v) or v) for f, v in results]
        if not results:
            self.b.set_block(None)
            return Scalar(BOOL, const=0)
        if len(results) == 1:
            self.b.set_block(results[0][0].block)
            self.env = results[0][0].env
            return results[0][1]
        values = [v for _, v in results]
        if all(isinstance(v, Scalar) for v in values):
            t = self.result_type(node)
            flows = []
            for flow, v in results:
                self.b.set_block(flow.block)
                assert isinstance(v, Scalar)
                cv = self.convert(v, t, node)
                flow.env = dict(flow.env)
                flow.env["$value"] = Scalar(t, self.scalar_value(cv))
                flows.append(flow)
            env = self.flow.merge(flows, self.line, "value")
            assert env is not None
            result = env.pop("$value")
            self.env = env
            return result
        if all(isinstance(v, StructVal) and v.cls is values[0].cls for v in values):  # type: ignore[union-attr]
            flows = []
            for flow, v in results:
                assert isinstance(v, StructVal)
                flow.env = dict(flow.env)
                flow.env["$value"] = v
                flows.append(flow)
            env = self.flow.merge(flows, self.line, "value")
            assert env is not None
            out = env.pop("$value")
            self.env = env
            return out
        raise self.unchecked(node)

    def logical_not(self, v: Scalar, node: ast.AST) -> Scalar:
        if v.const is not None:
            return Scalar(BOOL, const=int(not v.const))
        return Scalar(BOOL, self.op(n.Binary, BOOL, BinOp.XOR, self.scalar_value(v), self.const(BOOL, 1)))

    def membership(self, v: Scalar, constants: list[int], node: ast.AST) -> Scalar:
        result: Scalar | None = None
        for c in constants:
            eq = self.compare(CmpOp.EQ, v, self.const_scalar(c, node), node)
            if result is None:
                result = eq
            elif result.const is not None or eq.const is not None:
                result = eq if result.const == 0 else result if eq.const == 0 else Scalar(BOOL, const=1)
            else:
                result = Scalar(BOOL, self.b.emit(n.Binary(self.new(BOOL), BinOp.OR, self.scalar_value(result),
                                                           self.scalar_value(eq), line=self.line)))
        return result if result is not None else Scalar(BOOL, const=0)
