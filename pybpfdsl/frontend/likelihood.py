"""Which way a condition usually goes: `likely(c)` / `unlikely(c)` in the source, or a profile of the
conditions' outcomes in pure-Python runs.

Both become the same thing in the IR: a `nodes.Expect` on the branches a condition emits (the backend
then lays the usual path out as the fall-through, `backend.block_layout`). Neither changes what a
program does: in every execution `likely(c)` is the truth of `c`.

The checker, the emitter and pure Python each recognise the spelling with `spelled`; pure Python
records outcomes in a `BranchProfile` under the typed AST's keys (lowering context, node), and the
emitter reads its `expectations` under the same keys.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from types import FunctionType, ModuleType

from pybpfdsl.frontend.resolve import local_names, resolve_global
from pybpfdsl.frontend.type_facts import Key, TypeFacts
from pybpfdsl.ir.nodes import Expect
from pybpfdsl.lang import builtins as dsl_builtins
from pybpfdsl.lang.errors import DslError

__all__ = ["PROFILE_BIAS", "SPELLINGS", "BranchProfile", "spelled"]

SPELLINGS: dict[str, Expect] = {"likely": Expect.LIKELY, "unlikely": Expect.UNLIKELY}
"""The built-ins that hint a condition, by name."""

PROFILE_BIAS = 0.75
"""A profile hints a condition that went the same way in at least this share of the runs that tested
it: a usual path worth laying out as the fall-through, not a coin toss."""


def spelled(node: ast.expr, fn: FunctionType) -> tuple[Expect, ast.Call] | None:
    """`likely(...)` / `unlikely(...)` in `fn`'s code: the hint and the call; None for any other
    expression. The callee is resolved as Python would (`likely`, or `module.likely`, not a local of
    that name), without evaluating anything, so the checker, the emitter and pure Python agree."""
    if not isinstance(node, ast.Call):
        return None
    func, found = node.func, None
    try:
        if isinstance(func, ast.Name) and func.id not in local_names(fn):
            found = resolve_global(fn, func.id, DslError)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                func.value.id not in local_names(fn):
            module = resolve_global(fn, func.value.id, DslError)
            found = getattr(module, func.attr, None) if isinstance(module, ModuleType) else None
    except DslError:
        return None  # an unknown name: the checker says so where it evaluates the call
    for name, expect in SPELLINGS.items():
        if found is getattr(dsl_builtins, name):
            return expect, node
    return None


@dataclass
class BranchProfile:
    """How often each condition of one program held, over pure-Python runs (`XdpProgram.profile`).

    Keyed like the typed AST it was gathered on (`facts`): a profile serves the program it was taken
    from. Every test is counted, the parts of `and`/`or`/`not` too; `expectations` gives the hints.
    """

    facts: TypeFacts
    outcomes: dict[Key, list[int]] = field(default_factory=dict)
    """Condition → [times it failed, times it held]."""
    packets: int = 0
    """The packets run."""

    def record(self, key: Key, held: bool) -> None:
        self.outcomes.setdefault(key, [0, 0])[held] += 1

    def expectations(self, bias: float = PROFILE_BIAS) -> dict[Key, Expect]:
        """The conditions that went one way in at least `bias` of the runs that tested them, and that way."""
        if not 0.5 < bias <= 1:
            raise ValueError(f"bias must be in (0.5, 1], not {bias!r}")
        found: dict[Key, Expect] = {}
        for key, (failed, held) in self.outcomes.items():
            total = failed + held
            if held >= bias * total:
                found[key] = Expect.LIKELY
            elif failed >= bias * total:
                found[key] = Expect.UNLIKELY
        return found

    def summary(self) -> str:
        """One line: packets run, conditions tested, conditions hinted."""
        return (f"{self.packets} packets, {len(self.outcomes)} conditions tested, "
                f"{len(self.expectations())} with a usual outcome")
