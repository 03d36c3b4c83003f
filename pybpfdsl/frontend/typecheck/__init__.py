"""Stage 2 of the frontend, type-check and fold: the typed, folded AST of an `@xdp` function.

Takes the function (its names resolved by `resolve` as they are met); gives `TypeFacts`, the typed AST:
the DSL type of each expression per lowering context, its constant where it is the same every time,
which constants are untyped, the locals' declared types, the parse of each @inline call's helper, the
comparisons `random() < p` made on the raw bits, the types `op=` statements compute in and the ones
that are atomic adds. No IR. Refuses an ill-typed program with the `DslError` the emitter would give.

Flow-sensitive as Python is (see `base`): locals joined where paths meet, constants kept only where one
value reaches, `x is None` narrowing, unrolled loops per item, @inline helpers per call site. The type
rules themselves are `fold`'s (and `lang`'s below it). The emitter (`emit/`) and pure-Python mode
(`evaluate`) both read the typed AST.
"""

from __future__ import annotations

from types import FunctionType

from pybpfdsl.frontend.resolve import check_signature
from pybpfdsl.frontend.type_facts import TypeFacts
from pybpfdsl.frontend.typecheck.statements import StatementChecker
from pybpfdsl.frontend.values import PARSED_ATTRIBUTES, PacketVal, pseudo_local


class Checker(StatementChecker):
    """The type checker, its concepts combined: checks one @xdp function and the helpers it calls."""

    def check(self) -> TypeFacts:
        tree = self.main.tree
        check_signature(self.main)
        self.env = {tree.args.args[0].arg: PacketVal()}
        for attr in PARSED_ATTRIBUTES:  # the emitter parses the headers up front: none is narrowed yet
            self.parsed(attr)
        self.body(tree.body)
        if self.reachable:
            raise self.err(tree.body[-1], f"{tree.name} can reach its end without returning an action",
                           "end every path with `return XDP_PASS` (or another action)")
        return self.facts.facts


def typecheck(fn: FunctionType) -> TypeFacts:
    """The typed, folded AST of an @xdp function (raises `DslError` for an ill-typed program)."""
    return Checker(fn).check()


__all__ = ["Checker", "pseudo_local", "typecheck"]
