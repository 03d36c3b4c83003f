"""`Struct`: typed records used as map keys and values, ring-buffer records and fixed-layout packet headers.

Fields are declared as annotations with DSL integer types. The layout is C's (each field aligned to its
size, the size rounded up to the largest alignment), so the BTF the compiler emits and the bytes libbpf
sees match. In maps the bytes are in host order; read from a packet (`pkt.payload.read(T, off)`) the
fields are decoded from network order (big-endian), as wire headers are.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pybpfdsl.lang.types import ScalarType, as_scalar_type


@dataclass(frozen=True)
class StructField:
    name: str
    type: ScalarType
    offset: int


class StructLayoutError(TypeError):
    """A Struct declaration the DSL cannot lay out."""


def _resolve_annotation(owner: type, name: str, annotation: object) -> ScalarType:
    if isinstance(annotation, str):
        namespace = dict(vars(sys.modules[owner.__module__]))
        try:
            annotation = eval(annotation, namespace)
        except Exception as exc:  # pragma: no cover - reported below
            raise StructLayoutError(f"{owner.__name__}.{name}: cannot resolve annotation {annotation!r}") from exc
    annotation = as_scalar_type(annotation) or annotation
    if not isinstance(annotation, ScalarType) or annotation.is_fixed:
        raise StructLayoutError(
            f"{owner.__name__}.{name}: a Struct field must be an integer type (u8..u64, i8..i64) or bool, "
            f"not {annotation!r}")
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
            ftype = _resolve_annotation(cls, name, annotation)
            size = ftype.size
            offset = (offset + size - 1) // size * size
            fields.append(StructField(name, ftype, offset))
            offset += size
            align = max(align, size)
        if not fields:
            raise StructLayoutError(f"{cls.__name__} declares no fields")
        cls._fields = tuple(fields)
        cls._align = align
        cls._size = (offset + align - 1) // align * align

    def __init__(self, *args: int, **kwargs: int) -> None:
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._fields)} positional fields")
        values = {f.name: 0 for f in self._fields}
        for f, v in zip(self._fields, args):
            values[f.name] = v
        for name, v in kwargs.items():
            if name not in values:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
            values[name] = v
        for f in self._fields:
            object.__setattr__(self, f.name, f.type(values[f.name]))

    @classmethod
    def fields(cls) -> tuple[StructField, ...]:
        return cls._fields

    @classmethod
    def size(cls) -> int:
        return cls._size

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
        inner = ", ".join(f"{f.name}={getattr(self, f.name)}" for f in self._fields)
        return f"{type(self).__name__}({inner})"
