"""What an expression denotes while the frontend lowers it.

Most expressions are scalars (an SSA value of a DSL type, or a constant not yet materialized). Others
denote things with no single SSA value: the packet, a header view (an offset, maybe absent), the payload,
a state object, a function to call. Locals may hold any kind that `components` can split into SSA values,
so they can flow through block parameters. Pure-Python mode's numbers are the same `Scalar`, holding
raw numbers instead of SSA values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import ModuleType
from typing import Generic, TypeAlias

from typing_extensions import TypeVar

from pybpfdsl.ir.nodes import Value
from pybpfdsl.lang.headers import HeaderSpec
from pybpfdsl.lang.state import StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType

V = TypeVar("V", covariant=True, default=Value)
"""What a scalar's `value` is: an SSA value while emitting (the default), a raw number while running.
Covariant: the type rules (`fold`) read any scalar, as `Scalar[object]`."""


@dataclass(frozen=True)
class Scalar(Generic[V]):
    """A scalar: `value` once materialized; `const` when known at compile time (float: a Python float).

    `literal` marks untyped constants (literals, module constants and arithmetic on them): they fold
    exactly, like Go's untyped constants. Constants with an explicit type (`u8(3)`, a typed local) fold
    in their type, wrapping like the code would.

    The emitter's scalars hold an SSA value (`Scalar`, that is `Scalar[Value]`); pure-Python mode's hold
    the raw number in the type's representation (`Scalar[int]`: a float's Q32.32 integer, a bool 0 or 1).
    One concept, two executions: both read the same type, constant and literal-ness.
    """

    type: ScalarType
    value: V | None = None
    const: int | float | None = None
    literal: bool = False


@dataclass(frozen=True)
class StructVal:
    cls: type[Struct]
    value: Value


@dataclass(frozen=True)
class PacketVal:
    """The program's packet parameter."""


@dataclass(frozen=True)
class HeaderVal:
    """A present header at `offset` (u64)."""

    spec: HeaderSpec
    offset: Value


@dataclass(frozen=True)
class PayloadVal:
    """The packet's payload, starting at `offset` (u64)."""

    offset: Value


@dataclass(frozen=True)
class OptionalVal:
    """A value that may be None: `present` (bool) says which. `narrowed` means a check proved it present."""

    inner: Scalar | StructVal | HeaderVal
    present: Value
    narrowed: bool = False

    def narrow(self) -> OptionalVal:
        return replace(self, narrowed=True)


@dataclass(frozen=True)
class NoneVal:
    """The constant None."""


@dataclass(frozen=True)
class StateVal:
    obj: StateObject


@dataclass(frozen=True)
class ConstTuple:
    items: tuple[int | float | bool, ...]


@dataclass(frozen=True)
class Callee:
    """Something callable: a builtin (by name), a DSL type, a Struct class or an inline helper."""

    kind: str
    target: object


@dataclass(frozen=True)
class ModuleVal:
    module: ModuleType


@dataclass(frozen=True)
class StringVal:
    text: str


DslValue: TypeAlias = (
    "Scalar | StructVal | PacketVal | HeaderVal | PayloadVal | OptionalVal | NoneVal | StateVal | ConstTuple"
    " | Callee | ModuleVal | StringVal"
)
# Kinds a local variable may hold.
LocalValue: TypeAlias = "Scalar | StructVal | HeaderVal | PayloadVal | OptionalVal | PacketVal"

PARSED_ATTRIBUTES = ("eth", "ipv4", "ipv6", "tcp", "udp", "payload")
"""The packet attributes the parse computes, in the order their results are passed (stable IR)."""


def pseudo_local(attr: str) -> str:
    """The local under which a path remembers the parse's result for `pkt.<attr>` (a header's presence
    and offset, the payload's start): the checker and the emitter narrow and join it like a local."""
    return f"<pkt>.{attr}"


def describe(v: object) -> str:
    """A short phrase for error messages, for the values the checker's kinds share with the emitter's
    (`typecheck.kinds.describe` phrases records, headers, the payload, optionals and methods; only the
    checker raises messages)."""
    match v:
        case Scalar(type=t):
            return f"a {t} value"
        case PacketVal():
            return "the packet"
        case NoneVal():
            return "None"
        case StateVal(obj=o):
            return f"the {o.kind_name} {o.name}"
        case ConstTuple():
            return "a constant tuple"
        case Callee(target=t):
            return f"the function {getattr(t, '__name__', t)}"
        case ModuleVal(module=m):
            return f"the module {m.__name__}"
        case StringVal():
            return "a string"
    return type(v).__name__
