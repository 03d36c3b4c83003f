"""The DSL's value types: fixed-width integers, bool and fixed-point floats.

These objects are both what a user writes (`h: u32 = 0`, `u8(x)`) and what the compiler reasons with.
Calling a type converts a Python value the way the DSL does (integers wrap, floats truncate toward zero),
so pure-Python code and compiled code share one definition of conversion.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from pybpfdsl.lang import fixed


class Kind(enum.Enum):
    """What family a scalar type belongs to."""

    INT = "int"
    BOOL = "bool"
    FIXED = "fixed"


@dataclass(frozen=True)
class ScalarType:
    """A DSL scalar: a fixed-width integer, bool, or a fixed-point float (Q32.32 stored in 64 bits)."""

    name: str
    kind: Kind
    bits: int
    signed: bool

    def __repr__(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name

    @property
    def is_int(self) -> bool:
        return self.kind is Kind.INT

    @property
    def is_bool(self) -> bool:
        return self.kind is Kind.BOOL

    @property
    def is_fixed(self) -> bool:
        return self.kind is Kind.FIXED

    @property
    def size(self) -> int:
        """Size in bytes when stored in memory (bool takes one byte)."""
        return max(self.bits, 8) // 8

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def wrap(self, value: int) -> int:
        """Reduce an integer to this type's range (two's complement wrap-around)."""
        if self.kind is Kind.BOOL:
            return 1 if value else 0
        value &= (1 << self.bits) - 1
        if self.signed and value >> (self.bits - 1):
            value -= 1 << self.bits
        return value

    def __call__(self, value: int | float | bool) -> int:
        """Convert like the DSL does: integers wrap, floats truncate toward zero, bools give 0 or 1.

        For `float` the result is the raw Q32.32 integer of the fixed-point value.
        """
        if self.kind is Kind.FIXED:
            if isinstance(value, float):
                return fixed.from_float(value)
            return fixed.from_int(int(value))
        if self.kind is Kind.BOOL:
            return 1 if value else 0
        if isinstance(value, float):
            return self.wrap(int(value))
        return self.wrap(int(value))


u8: Final = ScalarType("u8", Kind.INT, 8, False)
u16: Final = ScalarType("u16", Kind.INT, 16, False)
u32: Final = ScalarType("u32", Kind.INT, 32, False)
u64: Final = ScalarType("u64", Kind.INT, 64, False)
i8: Final = ScalarType("i8", Kind.INT, 8, True)
i16: Final = ScalarType("i16", Kind.INT, 16, True)
i32: Final = ScalarType("i32", Kind.INT, 32, True)
i64: Final = ScalarType("i64", Kind.INT, 64, True)
BOOL: Final = ScalarType("bool", Kind.BOOL, 1, False)
FLOAT: Final = ScalarType("float", Kind.FIXED, 64, True)

INT_TYPES: Final = (u8, u16, u32, u64, i8, i16, i32, i64)
SCALAR_TYPES: Final = {t.name: t for t in (*INT_TYPES, BOOL, FLOAT)}


def as_scalar_type(t: object) -> ScalarType | None:
    """The DSL type a declaration names: a DSL type itself, or Python's `float`/`bool` for float/bool."""
    if isinstance(t, ScalarType):
        return t
    if t is float:
        return FLOAT
    if t is bool:
        return BOOL
    return None


def int_type(bits: int, signed: bool) -> ScalarType:
    """The integer type of a width and signedness."""
    for t in INT_TYPES:
        if t.bits == bits and t.signed == signed:
            return t
    raise ValueError(f"no {bits}-bit integer type")


def promote(t: ScalarType) -> ScalarType:
    """C's integer promotion: bool and integers narrower than 32 bits become i32."""
    if t.kind is Kind.BOOL or (t.kind is Kind.INT and t.bits < 32):
        return i32
    return t


def common_type(a: ScalarType, b: ScalarType) -> ScalarType:
    """C's usual arithmetic conversions, extended with float: any float operand makes the result float."""
    if a.is_fixed or b.is_fixed:
        return FLOAT
    a, b = promote(a), promote(b)
    if a == b:
        return a
    if a.signed == b.signed:
        return a if a.bits >= b.bits else b
    unsigned, signed = (a, b) if not a.signed else (b, a)
    if unsigned.bits >= signed.bits:
        return unsigned
    return signed  # the signed type is wider, so it holds every value of the unsigned one


def literal_type(value: int) -> ScalarType:
    """The type of an integer literal: i32 if it fits, else i64, else u64 (C's rule for decimal literals,
    extended with u64 so every 64-bit constant can be written)."""
    for t in (i32, i64, u64):
        if t.min <= value <= t.max:
            return t
    raise OverflowError(f"integer literal {value} does not fit in 64 bits")
