"""`Struct`: typed records used as map keys and values, ring-buffer records and fixed-layout packet headers.

Fields are declared as annotations with DSL types: integers, bool, and float (8 bytes holding the Q32.32
fixed point number the DSL computes floats in; `field_value` gives it as a float). The layout is C's
(each field aligned to its size, the size rounded up to the largest alignment), so the BTF the compiler
emits and the bytes libbpf sees match. In maps the bytes are in host order; read from a packet
(`pkt.payload.read(T, off)`) the fields are decoded from network order (big-endian), as wire headers are.
"""

from __future__ import annotations

import inspect
import re
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from pybpfdsl.lang import fixed
from pybpfdsl.lang.errors import DslError, SourceLocation
from pybpfdsl.lang.types import ScalarType, as_scalar_type


@dataclass(frozen=True)
class StructField:
    name: str
    type: ScalarType
    offset: int


class StructLayoutError(DslError, TypeError):
    """A Struct declaration the DSL cannot lay out: a DslError at the field's line in the class body (a
    TypeError too, as Python's own errors in a class statement are)."""

    def __str__(self) -> str:
        # Without a place in a file (a class made at run time), the message alone: whoever made the class
        # says where (the IR parser, at the struct's line).
        return self.render() if self.location is not None else self.message


_FIELD_TYPES_HINT = "a field's type is u8..u64, i8..i64, bool or float"


def _field_location(owner: type, name: str | None) -> SourceLocation | None:
    """Where `owner` declares field `name` (the class line when None or not found); None without source."""
    try:
        lines, first = inspect.getsourcelines(owner)
        file = inspect.getsourcefile(owner)
    except (OSError, TypeError):
        return None
    if file is None or not lines:
        return None
    at = 0
    if name is not None:
        pattern = re.compile(rf"\s*{re.escape(name)}\s*:")
        at = next((i for i, text in enumerate(lines) if pattern.match(text)), 0)
    text = lines[at].rstrip("\n")
    return SourceLocation(file, first + at, len(text) - len(text.lstrip()), text)


def _layout_error(owner: type, name: str | None, message: str, hint: str | None) -> StructLayoutError:
    return StructLayoutError(message, _field_location(owner, name), hint)


def _shown(annotation: object) -> str:
    """An annotation as the user wrote it: a class by its own name (not its module's, which may be a
    name the CLI made up for the file it imported)."""
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation)


def _resolve_annotation(owner: type, name: str, annotation: object) -> ScalarType:
    if isinstance(annotation, str):
        namespace = dict(vars(sys.modules[owner.__module__]))
        try:
            annotation = eval(annotation, namespace)
        except Exception:  # pragma: no cover - reported below
            raise _layout_error(owner, name, f"{owner.__name__}.{name}: cannot resolve the annotation "
                                             f"{annotation!r}", _FIELD_TYPES_HINT) from None
    annotation = as_scalar_type(annotation) or annotation
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        raise _layout_error(owner, name, f"{owner.__name__}.{name}: a Struct field cannot be another Struct "
                                         f"({annotation.__name__})",
                            f"declare {annotation.__name__}'s fields in {owner.__name__} itself; "
                            + _FIELD_TYPES_HINT)
    if not isinstance(annotation, ScalarType):
        raise _layout_error(owner, name, f"{owner.__name__}.{name}: a Struct field cannot be {_shown(annotation)}",
                            _FIELD_TYPES_HINT)
    return annotation


class Struct:
    """Base class of user records: `class Key(Struct): addr: u32; port: u16`."""

    _fields: ClassVar[tuple[StructField, ...]] = ()
    _size: ClassVar[int] = 0
    _align: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: list[StructField] = []
        offset = 0
        align = 1
        for name, annotation in inspect.get_annotations(cls).items():
            try:
                ftype = _resolve_annotation(cls, name, annotation)
            except StructLayoutError as exc:  # the user's class statement first, not this module's frames
                raise exc.with_traceback(None) from None
            size = ftype.size
            offset = (offset + size - 1) // size * size
            fields.append(StructField(name, ftype, offset))
            offset += size
            align = max(align, size)
        if not fields:
            raise _layout_error(cls, None, f"{cls.__name__} declares no fields",
                                "declare each field as an annotation: `class Key(Struct): addr: u32`")
        cls._fields = tuple(fields)
        cls._align = align
        cls._size = (offset + align - 1) // align * align

    def __init__(self, *args: int | float, **kwargs: int | float) -> None:
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._fields)} positional fields")
        values: dict[str, int | float] = {f.name: 0 for f in self._fields}
        for f, v in zip(self._fields, args):
            values[f.name] = v
        for name, v in kwargs.items():
            if name not in values:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            values[name] = v
        for f in self._fields:
            v = values[f.name]
            # A float field holds its Q32.32 number, as the kernel's map does: the number given (int or
            # float) is converted, so `Rate(2)` holds 2.0. The executions, which hold raw numbers, use
            # `of_raw`.
            object.__setattr__(self, f.name, f.type(v))

    @classmethod
    def of_raw(cls, *args: int, **kwargs: int) -> Self:
        """A record from its fields' stored numbers (a float field's Q32.32 number as an int), as the
        executions hold them; missing fields are 0."""
        obj = cls.__new__(cls)
        values = dict.fromkeys((f.name for f in cls._fields), 0)
        values.update(zip((f.name for f in cls._fields), args))
        values.update(kwargs)
        for f in cls._fields:
            object.__setattr__(obj, f.name, f.type.wrap(int(values[f.name])))
        return obj

    @classmethod
    def fields(cls) -> tuple[StructField, ...]:
        return cls._fields

    @classmethod
    def size(cls) -> int:
        return cls._size

    def field_value(self, name: str) -> int | float:
        """A field as the program reads it: a float field's Q32.32 number as a float, others as stored."""
        for f in self._fields:
            if f.name == name:
                raw = int(getattr(self, name))
                return fixed.to_float(raw) if f.type.is_fixed else raw
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def values(self) -> tuple[int, ...]:
        return tuple(int(getattr(self, f.name)) for f in self._fields)

    def to_bytes(self, byteorder: Literal["little", "big"] = "little") -> bytes:
        out = bytearray(self._size)
        for f in self._fields:
            raw = int(getattr(self, f.name)) & ((1 << (8 * f.type.size)) - 1)
            out[f.offset:f.offset + f.type.size] = raw.to_bytes(f.type.size, byteorder)
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes, byteorder: Literal["little", "big"] = "little") -> Struct:
        obj = cls.__new__(cls)
        for f in cls._fields:
            raw = int.from_bytes(data[f.offset:f.offset + f.type.size], byteorder)
            object.__setattr__(obj, f.name, f.type.wrap(raw))
        return obj

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.values() == other.values()

    def __hash__(self) -> int:
        return hash((type(self), self.values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={self.field_value(f.name)}" for f in self._fields)
        return f"{type(self).__name__}({inner})"
