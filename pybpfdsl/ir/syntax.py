"""The text form of IR records, declared once per class and read both ways.

Each instruction, terminator and declaration class in `nodes` has a `syntax` string such as
`"map_lookup @{map_name}, {key}"`: literal text with one placeholder per field. The fields left out are
`out`, which every instruction with a result prints as `%name.N: type = ` before its syntax, and `line`,
which the printer writes as a `; line N` comment. The printer renders a record by its syntax and the parser
reads the same syntax back, so the two cannot disagree, and a new operation is one class.

A placeholder renders as its field's declared type says:

    Value         %hint.N          tuple[Value, ...]  %a.1, %b.2      Edge  ^block or ^block(%a.1, %b.2)
    int           12               str                name            enum  its value (or lower-case name
    IR type       u32, struct Flow, ref<map>                                when the value is a number)

and some placeholders say more:

    {value:typed}   a Value and its type: `%x.3: u16`
    {value:const}   an integer constant of the record's type (`out`'s, else its `type` field): a float
                    prints as `1.5 (raw 6442450944)`, its Q32.32 bits in parentheses
    {width:bits}    a byte count, written in bits (`16` for 2)
    {flag:yes|no}   a bool, written as one of two words
    {.name}         an optional name: `.name`, or nothing for None (an optional enum: `.word`)
"""

from __future__ import annotations

import enum
import re
import types
import typing
from dataclasses import dataclass, fields
from typing import Protocol

from pybpfdsl.ir.nodes import Edge, Value
from pybpfdsl.ir.types import IRType, MapValueRef, StructType
from pybpfdsl.lang import fixed
from pybpfdsl.lang.types import SCALAR_TYPES, ScalarType


class IRSyntaxError(ValueError):
    """IR text the parser cannot read; names the line and column (both from 1) and shows the line."""

    def __init__(self, line: int, column: int, message: str, source: str = "") -> None:
        self.line, self.column, self.message, self.source = line, column, message, source
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"line {self.line}, column {self.column}: {self.message}"
        if not self.source:
            return where
        return f"{where}\n  {self.source}\n  {' ' * (self.column - 1)}^"


VALUE = re.compile(r"%(?:(?P<hint>[^\s,():;=%@^\[\]]+?)\.)?(?P<id>\d+)(?!\w|\.\d)")
"""`%hint.N` or `%N`. A hint may itself hold dots (`%<pkt>.tcp.7`): the id is the last `.N` not followed
by more digits or a name, so `%7.bytes` is value 7 and then a field."""
NAME = re.compile(r"[^\W\d][\w$]*")
WORD = re.compile(r"[A-Za-z_]\w*")
INT = re.compile(r"[-+]?\d+")
BLOCK = re.compile(r"\^(?P<name>[\w$.<>]+)")
FLOAT_TEXT = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan)")
TYPE = re.compile(r"struct\s+(?P<struct>[^\W\d][\w$]*)|ref<(?P<ref>[^>\s]+)>|(?P<scalar>[a-z]\w*)")


class Cursor:
    """A position in one line of IR text; its errors name the line and the column."""

    def __init__(self, text: str, line: int, pos: int = 0) -> None:
        self.text, self.line, self.pos = text, line, pos

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text)

    def peek(self, literal: str) -> bool:
        self.skip_space()
        return self.text.startswith(literal, self.pos)

    def error(self, message: str, pos: int | None = None) -> IRSyntaxError:
        at = self.pos if pos is None else pos
        return IRSyntaxError(self.line, at + 1, message, self.text)

    def found(self) -> str:
        rest = self.text[self.pos:].split()
        return f"found {rest[0]!r}" if rest else "found the end of the line"

    def take(self, pattern: re.Pattern[str], what: str) -> re.Match[str]:
        self.skip_space()
        m = pattern.match(self.text, self.pos)
        if m is None:
            raise self.error(f"expected {what}, {self.found()}")
        self.pos = m.end()
        return m

    def take_literal(self, literal: str) -> None:
        if not self.peek(literal):
            raise self.error(f"expected {literal!r}, {self.found()}")
        self.pos += len(literal)

    def expect_end(self) -> None:
        if not self.at_end():
            raise self.error(f"unexpected text after the end: {self.text[self.pos:]!r}")


class Scope(Protocol):
    """What reading a record needs from the parser: values, structs and block names by their text."""

    def value(self, hint: str, id_: int, declared: IRType | None, cursor: Cursor, start: int) -> Value: ...
    def struct(self, name: str, cursor: Cursor, start: int) -> StructType: ...
    def block(self, name: str, cursor: Cursor, start: int) -> str: ...


def read_value_name(c: Cursor) -> tuple[str, int, int]:
    """`%hint.N` at the cursor: (hint, id, start position)."""
    c.skip_space()
    start = c.pos
    m = c.take(VALUE, "a value (%name.N)")
    return m["hint"] or "", int(m["id"]), start


def read_type(c: Cursor, scope: Scope) -> IRType:
    c.skip_space()
    start = c.pos
    m = c.take(TYPE, "a type (u32, float, struct Name, ref<map>)")
    if m["struct"]:
        return scope.struct(m["struct"], c, start)
    if m["ref"]:
        return MapValueRef(m["ref"])
    found = SCALAR_TYPES.get(m["scalar"])
    if found is None:
        raise c.error(f"unknown type {m['scalar']!r} (scalars: {', '.join(SCALAR_TYPES)})", start)
    return found


def _read_value(c: Cursor, scope: Scope, typed: bool = False) -> Value:
    hint, id_, start = read_value_name(c)
    declared = None
    if typed:
        c.take_literal(":")
        declared = read_type(c, scope)
    return scope.value(hint, id_, declared, c, start)


def _read_values(c: Cursor, scope: Scope) -> tuple[Value, ...]:
    if not c.peek("%"):
        return ()
    values = [_read_value(c, scope)]
    while c.peek(","):
        c.take_literal(",")
        values.append(_read_value(c, scope))
    return tuple(values)


def const_text(value: int, type_: object) -> str:
    """A constant as text: an integer, or for float the number and its raw Q32.32 bits."""
    if isinstance(type_, ScalarType) and type_.is_fixed:
        return f"{fixed.to_float(value)!r} (raw {value})"
    return str(value)


def read_const(c: Cursor, type_: object) -> int:
    """The inverse of `const_text`; a float may leave out `(raw N)` (hand-written IR), then it is converted."""
    c.skip_space()
    start = c.pos
    if not (isinstance(type_, ScalarType) and type_.is_fixed):
        return int(c.take(INT, "an integer constant").group())
    number = float(c.take(FLOAT_TEXT, "a number").group())
    if not c.peek("("):
        return fixed.from_float(number)
    c.take_literal("(")
    c.take_literal("raw")
    raw = int(c.take(INT, "the raw Q32.32 integer").group())
    c.take_literal(")")
    if fixed.to_float(raw) != number:
        raise c.error(f"{number!r} is not the float of raw {raw} ({fixed.to_float(raw)!r})", start)
    return raw


# ------------------------------------------------------------------------------------------ placeholders
Fields = dict[str, object]


class _Kind(enum.Enum):
    """How a placeholder writes its field (see the module docstring)."""

    VALUE = "value"
    TYPED = "typed"
    VALUES = "values"
    EDGE = "edge"
    INT = "int"
    BITS = "bits"
    CONST = "const"
    NAME = "name"
    DOTTED = "dotted"
    TYPE = "type"
    FLAG = "flag"
    ENUM = "enum"


@dataclass(frozen=True)
class _Literal:
    text: str

    def render(self, record: object) -> str:
        return self.text

    def read(self, c: Cursor, scope: Scope, into: Fields) -> None:
        for part in self.text.split():
            c.take_literal(part)


@dataclass(frozen=True)
class _Field:
    """One placeholder: which field, and how it is written (`kind`)."""

    name: str
    kind: _Kind
    words: tuple[str, ...] = ()  # an enum's or a flag's words
    enum_type: type[enum.Enum] | None = None

    def render(self, record: object) -> str:
        value = getattr(record, self.name)
        match self.kind:
            case _Kind.TYPED:
                return f"{value}: {value.type}"
            case _Kind.VALUES:
                return ", ".join(str(v) for v in value)
            case _Kind.CONST:
                return const_text(value, _record_type(record))
            case _Kind.BITS:
                return str(8 * value)
            case _Kind.FLAG:
                return self.words[0] if value else self.words[1]
            case _Kind.DOTTED:
                if value is None:
                    return ""
                return f".{_enum_text(value)}" if isinstance(value, enum.Enum) else f".{value}"
            case _Kind.ENUM:
                return _enum_text(value)
        return str(value)

    def read(self, c: Cursor, scope: Scope, into: Fields) -> None:
        into[self.name] = self._read(c, scope, into)

    def _read(self, c: Cursor, scope: Scope, into: Fields) -> object:
        match self.kind:
            case _Kind.VALUE | _Kind.TYPED:
                return _read_value(c, scope, typed=self.kind is _Kind.TYPED)
            case _Kind.VALUES:
                return _read_values(c, scope)
            case _Kind.EDGE:
                return _read_edge(c, scope)
            case _Kind.INT:
                return int(c.take(INT, f"an integer ({self.name})").group())
            case _Kind.BITS:
                c.skip_space()
                start = c.pos
                bits = int(c.take(INT, f"a width in bits ({self.name})").group())
                if bits <= 0 or bits % 8:
                    raise c.error(f"a width of {bits} bits is not whole bytes", start)
                return bits // 8
            case _Kind.CONST:
                return read_const(c, _record_type_of(into))
            case _Kind.NAME:
                return c.take(NAME, f"a name ({self.name})").group()
            case _Kind.DOTTED:
                if not c.text.startswith(".", c.pos):
                    return None
                c.pos += 1
                if self.enum_type is not None:
                    return self._member(c)
                return c.take(NAME, f"a field name after '.' ({self.name})").group()
            case _Kind.TYPE:
                return read_type(c, scope)
            case _Kind.FLAG:
                for word in sorted(self.words, key=len, reverse=True):
                    if c.peek(word):
                        c.pos += len(word)
                        return word == self.words[0]
                raise c.error(f"expected {' or '.join(map(repr, self.words))}, {c.found()}")
        assert self.kind is _Kind.ENUM
        return self._member(c)

    def _member(self, c: Cursor) -> enum.Enum:
        assert self.enum_type is not None
        c.skip_space()
        start = c.pos
        word = c.take(WORD, f"one of {', '.join(self.words)}").group()
        for member in self.enum_type:
            if _enum_text(member) == word:
                return member
        raise c.error(f"expected one of {', '.join(self.words)}, found {word!r}", start)


def _read_edge(c: Cursor, scope: Scope) -> Edge:
    c.skip_space()
    start = c.pos
    target = scope.block(c.take(BLOCK, "a block (^name)")["name"], c, start)
    if not c.text.startswith("(", c.pos):
        return Edge(target)
    c.pos += 1
    args = _read_values(c, scope)
    c.take_literal(")")
    return Edge(target, args)


def _enum_text(member: enum.Enum) -> str:
    return member.value if isinstance(member.value, str) else member.name.lower()


def _record_type(record: object) -> object:
    """The type a `const` placeholder is written in: the result's, or a declaration's `type`."""
    out = getattr(record, "out", None)
    return out.type if isinstance(out, Value) else getattr(record, "type", None)


def _record_type_of(into: Fields) -> object:
    out = into.get("out")
    return out.type if isinstance(out, Value) else into.get("type")


# ------------------------------------------------------------------------------------------ compiling
_PLACEHOLDER = re.compile(r"\{(?P<dot>\.)?(?P<name>\w+)(?::(?P<kind>[^}]*))?\}")


@dataclass(frozen=True)
class Syntax:
    """A class's syntax string, compiled: its pieces in order and the words its text may start with."""

    cls: type
    pieces: tuple[_Literal | _Field, ...]
    first_words: tuple[str, ...]

    def render(self, record: object) -> str:
        return "".join(p.render(record) for p in self.pieces)

    def read(self, c: Cursor, scope: Scope, into: Fields) -> Fields:
        """Read the record's fields at the cursor into `into` (which may already hold `out`)."""
        for piece in self.pieces:
            piece.read(c, scope, into)
        return into


_COMPILED: dict[type, Syntax] = {}


def syntax_of(cls: type) -> Syntax:
    """`cls.syntax`, compiled once; every field but `out` and `line` must appear in it exactly once."""
    found = _COMPILED.get(cls)
    if found is None:
        found = _COMPILED[cls] = _compile(cls)
    return found


def _compile(cls: type) -> Syntax:
    text: str = getattr(cls, "syntax")  # noqa: B009 - a class attribute that `type` does not declare
    hints = typing.get_type_hints(cls)
    pieces: list[_Literal | _Field] = []
    at = 0
    for m in _PLACEHOLDER.finditer(text):
        if m.start() > at:
            pieces.append(_Literal(text[at:m.start()]))
        pieces.append(_field(cls, m["name"], hints[m["name"]], m["kind"] or "", bool(m["dot"])))
        at = m.end()
    if at < len(text):
        pieces.append(_Literal(text[at:]))
    named = [p.name for p in pieces if isinstance(p, _Field)]
    wanted = [f.name for f in fields(cls) if f.name not in ("out", "line")]
    if sorted(named) != sorted(wanted):
        raise TypeError(f"{cls.__name__}.syntax {text!r} must name each of {wanted} once")
    first = pieces[0]
    words = (first.text.split()[0],) if isinstance(first, _Literal) else first.words
    return Syntax(cls, tuple(pieces), words)


def _field(cls: type, name: str, hint: object, kind: str, dotted: bool) -> _Field:
    if dotted:
        optional = [a for a in typing.get_args(hint) if isinstance(a, type) and issubclass(a, enum.Enum)]
        if optional:  # `Expect | None`: `.likely`, or nothing
            return _Field(name, _Kind.DOTTED, tuple(_enum_text(m) for m in optional[0]), optional[0])
        return _Field(name, _Kind.DOTTED)
    if "|" in kind:
        return _Field(name, _Kind.FLAG, tuple(kind.split("|")))
    if kind:
        if kind not in ("typed", "const", "bits"):
            raise TypeError(f"{cls.__name__}.{name}: unknown placeholder kind {kind!r}")
        return _Field(name, _Kind(kind))
    if hint is Value:
        return _Field(name, _Kind.VALUE)
    if hint is Edge:
        return _Field(name, _Kind.EDGE)
    if typing.get_origin(hint) is tuple:
        return _Field(name, _Kind.VALUES)
    if hint is int:
        return _Field(name, _Kind.INT)
    if hint is str:
        return _Field(name, _Kind.NAME)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _Field(name, _Kind.ENUM, tuple(_enum_text(m) for m in hint), hint)
    if hint in (ScalarType, StructType) or typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _Field(name, _Kind.TYPE)
    raise TypeError(f"{cls.__name__}.{name}: no text form for a field of type {hint!r}")

