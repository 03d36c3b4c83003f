"""Checking tests: `if` conditions, `and`/`or`/`not`, chained comparisons, `x if c else y`, and None
tests that narrow a local (or a parsed header) on the path where it is present.

Takes a test expression; gives the locals where it holds and where it does not (a list of paths each,
empty where no path goes: a constant test), or, for a value computed with branches, the joined value.
The same paths as `emit.conditions`, so the same code is checked as will be emitted.
"""

from __future__ import annotations

import ast

from pybpfdsl.frontend import fold, likelihood
from pybpfdsl.frontend.operators import COMPARISONS
from pybpfdsl.frontend.typecheck.arithmetic import computed
from pybpfdsl.frontend.typecheck.expressions import ExpressionChecker
from pybpfdsl.frontend.typecheck.kinds import Env, Kind, Record, join, materialize
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang.types import BOOL

Paths = tuple[list[Env], list[Env]]


class ConditionChecker(ExpressionChecker):
    """Tests, None tests that narrow, values computed with branches."""

    def condition(self, node: ast.expr) -> Paths:
        hinted = likelihood.spelled(node, self.scope.source.function)
        if hinted is not None:
            _, call = hinted
            if len(call.args) != 1 or call.keywords or isinstance(call.args[0], ast.Starred):
                name = ast.unparse(call.func)
                raise self.err(call, f"{name}() takes one condition", f"write `if {name}(condition):`")
            return self.condition(call.args[0])
        return self.plain_condition(node)

    def branchy_value(self, node: ast.expr) -> Kind:
        results: list[tuple[Env, Kind]] = []
        if isinstance(node, ast.IfExp):
            t_envs, f_envs = self.condition(node.test)
            for envs, arm in ((t_envs, node.body), (f_envs, node.orelse)):
                if not self.enter(envs):
                    continue
                v = self.expr(arm)
                results.append((self.env, v))
            return self.join_values(results, node)
        if isinstance(node, ast.Compare) and len(node.ops) > 1:
            t_envs, f_envs = self.chained_condition(node)
        else:
            t_envs, f_envs = self.condition(node)
        if isinstance(node, ast.BoolOp):
            self.refuse_number_operands(node)
        for envs, truth in ((t_envs, 1), (f_envs, 0)):
            if not self.enter(envs):
                continue
            results.append((self.env, Scalar(BOOL, const=truth)))
        return self.join_values(results, node)

    def refuse_number_operands(self, node: ast.BoolOp) -> None:
        """`x = n or 5` as a value: Python gives `n` or `5` (the operand that decided), the DSL a bool, so a
        number operand is refused rather than given another meaning. (As a test, `if n or m:`, both agree.)"""
        word = "or" if isinstance(node.op, ast.Or) else "and"
        for operand in node.values:
            t = self.facts.facts.types.get((self.ctx, operand))
            if t is None or t == BOOL or isinstance(operand, ast.BoolOp | ast.Compare | ast.UnaryOp):
                continue
            text, first = _grouped(operand), _grouped(node.values[0])
            rest = ast.unparse(ast.BoolOp(op=node.op, values=node.values[1:])) if len(node.values) > 2 \
                else ast.unparse(node.values[-1])
            python = f"{first} if {first} else {rest}" if word == "or" else f"{rest} if {first} else {first}"
            raise self.err(operand, f"`{text}` is a {t}: as a value, `{word}` gives a bool in the DSL, but in Python "
                           f"`{ast.unparse(node)}` is one of its operands",
                           f"for Python's value write `{python}`; for a bool, compare: `{text} != 0`")

    def chained_condition(self, node: ast.Compare) -> Paths:
        left = materialize(self.scalar(node.left))
        assert isinstance(left, Scalar)
        false_envs: list[Env] = []
        true_envs: list[Env] = []
        for index, (op, right_node) in enumerate(zip(node.ops, node.comparators)):
            if type(op) not in COMPARISONS:
                raise self.err(node, "only <, <=, >, >=, ==, != can be chained")
            right = materialize(self.scalar(right_node))
            assert isinstance(right, Scalar)
            self.compare(COMPARISONS[type(op)], left, right, node)
            false_envs.append(dict(self.env))
            if index == len(node.ops) - 1:
                true_envs = [dict(self.env)]
            else:
                self.env = dict(self.env)
            left = right
        return true_envs, false_envs

    def join_values(self, results: list[tuple[Env, Kind]], node: ast.expr) -> Kind:
        # A number checked not None is a number (`x if c else b` after `if b is None: return ...`).
        results = [(e, self.checked_number(v) or v) for e, v in results]
        if not results:
            self.reachable = False
            return Scalar(BOOL, const=0)
        if len(results) == 1:
            self.reachable = True
            self.env = results[0][0]
            return results[0][1]
        values = [v for _, v in results]
        envs = [dict(e) for e, _ in results]
        if all(isinstance(v, Scalar) for v in values):
            t = fold.join_type([v.type for v in values if isinstance(v, Scalar)])
            for v in values:
                assert isinstance(v, Scalar)
                self.convert(v, t, node)
            self.resume(envs)
            return computed(t)
        first = values[0]
        if isinstance(first, Record) and all(isinstance(v, Record) and v.cls is first.cls for v in values):
            self.resume(envs)
            return first
        raise self.err(node, "both branches of this expression must give numbers (or the same record type)")


def _grouped(node: ast.expr) -> str:
    """`node` as source, in parentheses where an operator around it would bind first."""
    text = ast.unparse(node)
    simple = ast.Name | ast.Attribute | ast.Call | ast.Subscript | ast.Constant | ast.BinOp | ast.UnaryOp | ast.Compare
    return text if isinstance(node, simple) else f"({text})"


__all__ = ["ConditionChecker", "Paths", "join"]
