"""IR values as Z3 terms: a scalar is a bit-vector, a record the tuple of its fields, a map-value
reference the map, the key and whether the lookup found it; how they are laid out as bytes and how two
paths' values merge where the paths meet (`ir_encoding` runs the IR over them)."""

from __future__ import annotations

from dataclasses import dataclass

import z3

from pybpfdsl.ir.types import StructType
from pybpfdsl.lang.types import ScalarType
from pybpfdsl.verify.equivalence.paths import Unsupported
from pybpfdsl.verify.equivalence.symbolic_state import Term, bv_to_bytes, bytes_to_bv, ite
from pybpfdsl.verify.equivalence.z3_algebra import bool_bv, resize

__all__ = ["IRVal", "Ref", "decode_value", "encode_value", "field_of", "memory_size", "merge_value",
           "merged_condition", "select_value", "term_of"]


@dataclass(frozen=True)
class Ref:
    """A map-value reference: the map, the key bits and whether the lookup found it."""

    map_name: str
    key: Term
    found: Term


IRVal = Term | tuple[Term, ...] | Ref


def encode_value(value: IRVal, t: ScalarType | StructType) -> list[Term]:
    """The bytes of a key, value, record or global as the kernel stores them (C layout, zero padding)."""
    if isinstance(t, ScalarType):
        return bv_to_bytes(resize(value, 8 * t.size, signed=False), t.size)
    assert isinstance(value, tuple)
    out = [z3.BitVecVal(0, 8)] * t.cls.size()
    for f, v in zip(t.cls.fields(), value):
        out[f.offset:f.offset + f.type.size] = encode_value(v, f.type)
    return out


def decode_value(parts: list[Term], t: ScalarType | StructType) -> IRVal:
    """Inverse of `encode_value`; a stored bool byte means true when it is not zero."""
    if isinstance(t, ScalarType):
        bits = bytes_to_bv(parts[:t.size])
        return bool_bv(bits != 0) if t.is_bool else bits
    return tuple(decode_value(parts[f.offset:f.offset + f.type.size], f.type)
                 for f in t.cls.fields())


def term_of(x: IRVal) -> Term:
    """`x` as a scalar bit-vector: neither a struct's fields nor a map reference."""
    assert not isinstance(x, (tuple, Ref))
    return x


def field_of(t: ScalarType | StructType, name: str | None) -> tuple[int, ScalarType | StructType]:
    if name is None:
        return 0, t
    assert isinstance(t, StructType)
    for f in t.cls.fields():
        if f.name == name:
            return f.offset, f.type
    raise Unsupported(f"{t} has no field {name!r}")


def memory_size(t: ScalarType | StructType) -> int:
    return t.size if isinstance(t, ScalarType) else t.cls.size()



def merged_condition(bit: IRVal) -> tuple[Term, bool] | None:
    """`(w, p)` when `bit` is a flag merged from two paths: `If(w, 1, 0)` (p True) or `If(w, 0, 1)`."""
    if isinstance(bit, (tuple, Ref)) or not z3.is_app_of(bit, z3.Z3_OP_ITE):
        return None
    w, one, other = bit.children()
    if z3.is_bv_value(one) and z3.is_bv_value(other) and {one.as_long(), other.as_long()} == {0, 1}:
        return w, one.as_long() == 1
    return None


def merge_value(when: Term, a: IRVal, b: IRVal) -> IRVal | None:
    if isinstance(a, Ref) or isinstance(b, Ref):
        if not (isinstance(a, Ref) and isinstance(b, Ref)) or a.map_name != b.map_name:
            return None
        if a is b:
            return a
        return Ref(a.map_name, ite(when, a.key, b.key), ite(when, a.found, b.found))
    if isinstance(a, tuple) or isinstance(b, tuple):
        if not (isinstance(a, tuple) and isinstance(b, tuple)) or len(a) != len(b):
            return None
        fields = [merge_value(when, x, y) for x, y in zip(a, b)]
        return None if any(f is None for f in fields) else tuple(fields)
    if a.sort() != b.sort():
        return None
    return ite(when, a, b)


def select_value(cond: Term, a: IRVal, b: IRVal) -> IRVal:
    if isinstance(a, Ref) and isinstance(b, Ref):
        if a.map_name != b.map_name:
            raise Unsupported("select between references into different maps")
        return Ref(a.map_name, z3.If(cond, a.key, b.key), z3.If(cond, a.found, b.found))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return tuple(z3.If(cond, x, y) for x, y in zip(a, b))
    return z3.If(cond, a, b)
