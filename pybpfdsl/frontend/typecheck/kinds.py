"""What an expression denotes while the type checker walks it: the emitter's kinds (`values`) without IR.

Scalars are `values.Scalar[object]`: a type, a constant where there is one, and `value` a `Token` once
the emitter would have materialized it in a register. Two scalars are the same value only when they are
equal, tokens included, as the emitter's SSA values are: a local assigned the same constant on two paths
is two values (a block parameter at the join, no constant), a local untouched on both paths is one.
Headers, the payload and records carry no value here: nothing the checker decides hangs on which one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeAlias

from pybpfdsl.frontend import values
from pybpfdsl.frontend.values import Callee, ConstTuple, ModuleVal, NoneVal, PacketVal, Scalar, StateVal, StringVal
from pybpfdsl.lang.headers import HeaderSpec
from pybpfdsl.lang.structs import Struct


class Token:
    """A register's identity: each materialized scalar has its own (compared by identity)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<token {id(self):x}>"


@dataclass(frozen=True)
class Header:
    """A present header."""

    spec: HeaderSpec


@dataclass(frozen=True)
class Payload:
    """The packet's payload."""


@dataclass(frozen=True)
class Record:
    """A record of a Struct class."""

    cls: type[Struct]


@dataclass(frozen=True)
class Maybe:
    """A value that may be None; `narrowed` means a check proved it present."""

    inner: Scalar[object] | Record | Header
    narrowed: bool = False

    def narrow(self) -> Maybe:
        return replace(self, narrowed=True)


Kind: TypeAlias = (
    "Scalar[object] | Record | PacketVal | Header | Payload | Maybe | NoneVal | StateVal | ConstTuple | Callee"
    " | ModuleVal | StringVal"
)
Local: TypeAlias = "Scalar[object] | Record | Header | Payload | Maybe | PacketVal"
Env = dict[str, Local]


def describe(v: object) -> str:
    """The phrase the emitter's messages use for a value (`values.describe`)."""
    match v:
        case Record(cls=c):
            return f"a {c.__name__} record"
        case Header(spec=s):
            return f"the {s.name} header"
        case Payload():
            return "the payload"
        case Maybe(inner=i):
            return f"{describe(i)} or None"
        case Callee(kind="method", target=(base, attr)):
            return f"the method `{attr}` of {describe(base)}"
    return values.describe(v)


def materialize(v: Local) -> Local:
    """A constant scalar as the emitter keeps it in a register: the same constant, now one value."""
    if isinstance(v, Scalar) and v.value is None:
        return replace(v, value=Token())
    return v


def fresh(v: Scalar[object]) -> Scalar[object]:
    """A computed (or joined) scalar of `v`'s type: a new value, no constant."""
    return Scalar(v.type, Token())


def _same_shape(a: Local, b: Local) -> bool:
    if type(a) is not type(b):
        return False
    match a, b:
        case Scalar(), Scalar():
            return a.type == b.type
        case Maybe(), Maybe():
            return _same_shape(a.inner, b.inner)
    return a == b or isinstance(a, Payload | PacketVal)


def _numbers_where_checked(vals: list[Local]) -> list[Local]:
    """A local that is a number on some paths and a number checked not to be None on the others is a
    number on every path (`flow._numbers_where_checked`)."""
    if any(isinstance(v, Scalar) for v in vals) and all(
            isinstance(v, Scalar) or (isinstance(v, Maybe) and v.narrowed and isinstance(v.inner, Scalar))
            for v in vals):
        return [v.inner if isinstance(v, Maybe) else v for v in vals]
    return vals


def _rebuilt(template: Local, narrowed: bool) -> Local:
    match template:
        case Scalar():
            return fresh(template)
        case Maybe(inner=i):
            inner = _rebuilt(i, narrowed)
            assert isinstance(inner, Scalar | Record | Header)
            return Maybe(inner, narrowed)
    return template


def join(envs: list[Env]) -> Env | None:
    """The locals after paths meet, as `flow.FlowBuilder.merge` joins them (None: no path reaches).

    A local defined on only some paths, or holding different kinds, is dropped; one with the same value
    on every path keeps it; otherwise it is a new value of its type (no constant)."""
    if not envs:
        return None
    if len(envs) == 1:
        return envs[0]
    merged: Env = {}
    for name in [k for k in envs[0] if all(k in e for e in envs[1:])]:
        vals = _numbers_where_checked([e[name] for e in envs])
        for e, v in zip(envs, vals):
            e[name] = v
        if all(v is vals[0] or v == vals[0] for v in vals[1:]):
            merged[name] = vals[0]
            continue
        if not all(_same_shape(vals[0], v) for v in vals[1:]):
            continue
        narrowed = all(not isinstance(v, Maybe) or v.narrowed for v in vals)
        merged[name] = _rebuilt(vals[0], narrowed)
    return merged
