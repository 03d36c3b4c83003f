"""Pure-Python mode's running values: what an expression evaluates to (`Value`), a running function
(`Frame`), how a statement list ends early (`Signal`), and the scalar operations, each by `fold`'s
constant rules and `lang.arith`'s arithmetic in the type the typed AST gives (no type rules here)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from enum import EnumMeta
from types import ModuleType
from typing import TypeAlias

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang import arith
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.packet import HeaderView, Packet, Payload
from pybpfdsl.lang.state import StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType

_U32_MASK = 0xFFFFFFFF


class EvaluationError(Exception):
    """Pure-Python mode met something the compiler would not have accepted, or lacks a decision the
    type checker should have recorded: a bug in the frontend or here, not in the user's program."""


@dataclass(frozen=True)
class Callee:
    kind: str  # "builtin", "type", "struct", "inline"
    target: object


@dataclass(frozen=True)
class Method:
    base: object
    attr: str


@dataclass(frozen=True)
class TupleValue:
    items: tuple[int | float | bool, ...]


@dataclass(frozen=True)
class Text:
    text: str


Value: TypeAlias = (
    "Scalar[int] | HeaderView | Payload | Packet | Struct | StateObject | Callee | Method | TupleValue | Text"
    " | ModuleType | EnumMeta | None"  # EnumMeta: an IntEnum's constants (`XdpAction.DROP`)
)


@dataclass
class Frame:
    """One running function: the program or an inlined helper."""

    source: FunctionSource
    env: dict[str, Value]
    var_types: dict[str, ScalarType]
    helper: bool = False
    return_type: ScalarType | None = None


class Signal:
    """How a statement list ended early."""


BREAK = Signal()
CONTINUE = Signal()


@dataclass
class Return(Signal):
    value: Value



# ---------------------------------------------------------------------------------------- scalars
# No type rules here: a result's type is the one the checker recorded for its node (`type_of`), or the
# one `fold` (the rules the emitter asks) gives; constants fold by `fold`; the arithmetic is `lang`'s.
def raw_of(x: Scalar[int]) -> int:
    """A running scalar's raw value (pure Python computes every value, so it is always there)."""
    assert x.value is not None
    return x.value


def refuse(message: str, hint: str | None = None) -> DslError:
    return DslError(f"pure-Python mode met a constant the compiler refuses: {message}")


def folded(s: Scalar[object]) -> Scalar[int]:
    """A constant the type rules gave, with the raw value the code materializes for it."""
    return Scalar(s.type, fold.raw_constant(s), s.const, s.literal)


def const_num(value: int | float | bool) -> Scalar[int]:
    """A Python constant as the DSL types it (`fold.constant`: bool, the literal's integer type, or float)."""
    return folded(fold.constant(value, refuse))


def convert(x: Scalar[int], t: ScalarType) -> Scalar[int]:
    """Convert to `t` (an assignment, argument, or `T(x)`); constants by the compiler's constant rules."""
    if x.type == t:
        return x
    if x.const is not None and not fold.saturates_up(x, t):
        return folded(fold.convert_constant(x, t, refuse))
    return Scalar(t, arith.convert(raw_of(x), x.type, t))


def binary_in(op: BinOp, t: ScalarType, a: Scalar[int], b: Scalar[int]) -> Scalar[int]:
    """`a op b` computed in type `t` (both operands converted to it, also a shift's count)."""
    return Scalar(t, arith.binary(op, t, raw_of(convert(a, t)), raw_of(convert(b, t))))


def compare(op: CmpOp, a: Scalar[int], b: Scalar[int]) -> bool:
    """`a op b` in the type `fold` compares them in; constants compare as the compiler folds them."""
    folded = fold.fold_compare(op, a, b, refuse)
    if folded is not None:
        return bool(folded.const)
    t = fold.compare_type(a.type, b.type)
    return arith.compare(op, t, raw_of(convert(a, t)), raw_of(convert(b, t)))


def truth(x: Scalar[int]) -> bool:
    return compare(CmpOp.NE, x, const_num(0)) if not x.type.is_bool else raw_of(x) != 0



def source_text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # pragma: no cover - only for messages
        return type(node).__name__


def line_of(node: ast.AST) -> int:
    return getattr(node, "lineno", 0)

