"""The bit-vector algebra the DSL's arithmetic is written over, and its Python-int instance.

`lang.arith` and `lang.fixed` define every operation of the DSL (promotion aside, which is a rule on
types) once, as functions over an `Algebra`. Four executions instantiate it: pure Python and the IR
interpreter with `IntAlgebra` (here), the prover's IR encoding with Z3 bit-vectors
(`verify.equivalence.z3_algebra`) and the backend with an llvmlite builder (`backend.llvm_algebra`).
So they compute the same thing by construction, as `bpf.semantics` does for the instruction set.

Values are bit patterns of the width passed alongside (a DSL scalar of type `t` has `t.bits` bits: bool
one, float 64); signedness is chosen by the operation (`slt` or `ult`, `sdiv` or `udiv`), as in SMT-LIB
and LLVM. Booleans (`B`) are the algebra's truth values, distinct from the DSL's 1-bit `bool` values.

Division is total except at a zero divisor, where each instance gives what suits it (LLVM's division is
undefined there, so that instance divides by a safe divisor): the DSL's rules for a zero divisor are
written in `lang.arith` with `ite`, never left to an instance.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

V = TypeVar("V")  # a bit-vector value of the algebra
B = TypeVar("B")  # a truth value of the algebra


class Algebra(Protocol[V, B]):
    """Fixed-width bit vectors: the operations the DSL's arithmetic is written with."""

    def const(self, value: int, width: int) -> V:
        """`value` modulo 2**width."""
        ...

    def add(self, a: V, b: V, width: int) -> V: ...
    def sub(self, a: V, b: V, width: int) -> V: ...
    def mul(self, a: V, b: V, width: int) -> V: ...
    def neg(self, a: V, width: int) -> V: ...
    def and_(self, a: V, b: V, width: int) -> V: ...
    def or_(self, a: V, b: V, width: int) -> V: ...
    def xor(self, a: V, b: V, width: int) -> V: ...

    def udiv(self, a: V, b: V, width: int) -> V:
        """Unsigned quotient; any value when `b` is 0 (see the module's docstring)."""
        ...

    def urem(self, a: V, b: V, width: int) -> V:
        """Unsigned remainder; any value when `b` is 0."""
        ...

    def sdiv(self, a: V, b: V, width: int) -> V:
        """Signed quotient truncated toward zero (INT_MIN / -1 wraps); any value when `b` is 0."""
        ...

    def srem(self, a: V, b: V, width: int) -> V:
        """Remainder of `sdiv`, with the dividend's sign; any value when `b` is 0."""
        ...

    def shl(self, a: V, b: V, width: int) -> V:
        """`a` shifted left by `b` < width."""
        ...

    def lshr(self, a: V, b: V, width: int) -> V: ...
    def ashr(self, a: V, b: V, width: int) -> V: ...

    def abs_(self, a: V, width: int) -> V:
        """|a| of a signed value, as an unsigned one (|INT_MIN| = 2**(width-1) fits)."""
        ...

    def negative(self, a: V, width: int) -> B:
        """`a` is negative as a signed value (its sign bit is set)."""
        ...

    def zext(self, a: V, from_width: int, to_width: int) -> V: ...
    def sext(self, a: V, from_width: int, to_width: int) -> V: ...

    def trunc(self, a: V, from_width: int, to_width: int) -> V:
        """The low `to_width` bits."""
        ...

    def ite(self, cond: B, then: V, other: V) -> V: ...
    def eq(self, a: V, b: V, width: int) -> B: ...
    def ne(self, a: V, b: V, width: int) -> B: ...
    def ult(self, a: V, b: V, width: int) -> B: ...
    def ule(self, a: V, b: V, width: int) -> B: ...
    def ugt(self, a: V, b: V, width: int) -> B: ...
    def uge(self, a: V, b: V, width: int) -> B: ...
    def slt(self, a: V, b: V, width: int) -> B: ...
    def sle(self, a: V, b: V, width: int) -> B: ...
    def sgt(self, a: V, b: V, width: int) -> B: ...
    def sge(self, a: V, b: V, width: int) -> B: ...

    def bool_xor(self, a: B, b: B) -> B:
        """Exactly one of `a`, `b` holds."""
        ...

    def bool_value(self, cond: B) -> V:
        """A truth value as the DSL's 1-bit bool (1 when it holds)."""
        ...

    def zero_if_divisor_zero(self, divisor: V, value: V, width: int) -> V:
        """`value`, which is already 0 wherever `divisor` is 0. An instance may spell that case out (the
        Z3 one does, so the prover need not derive it through the division); the others return `value`."""
        ...

    def known(self, a: V, width: int) -> int | None:
        """`a`'s bit pattern when the instance can see that it is a constant, else None (always allowed).
        A definition may take a shortcut on a known operand only where it gives the same bits as the
        general form for every value (`fixed.multiply` by a whole number), so no execution can differ."""
        ...


def _mask(width: int) -> int:
    return (1 << width) - 1


def _signed(value: int, width: int) -> int:
    return value - (1 << width) if value >> (width - 1) & 1 else value


class IntAlgebra:
    """Python ints in `[0, 2**width)`, truth values are bools. A zero divisor gives 0 (never used)."""

    def const(self, value: int, width: int) -> int:
        return value & _mask(width)

    def known(self, a: int, width: int) -> int | None:
        return a

    def add(self, a: int, b: int, width: int) -> int:
        return (a + b) & _mask(width)

    def sub(self, a: int, b: int, width: int) -> int:
        return (a - b) & _mask(width)

    def mul(self, a: int, b: int, width: int) -> int:
        return (a * b) & _mask(width)

    def neg(self, a: int, width: int) -> int:
        return -a & _mask(width)

    def and_(self, a: int, b: int, width: int) -> int:
        return a & b

    def or_(self, a: int, b: int, width: int) -> int:
        return a | b

    def xor(self, a: int, b: int, width: int) -> int:
        return a ^ b

    def udiv(self, a: int, b: int, width: int) -> int:
        return a // b if b else 0

    def urem(self, a: int, b: int, width: int) -> int:
        return a % b if b else 0

    def sdiv(self, a: int, b: int, width: int) -> int:
        sa, sb = _signed(a, width), _signed(b, width)
        if sb == 0:
            return 0
        q = abs(sa) // abs(sb)
        return (q if (sa < 0) == (sb < 0) else -q) & _mask(width)

    def srem(self, a: int, b: int, width: int) -> int:
        sa, sb = _signed(a, width), _signed(b, width)
        if sb == 0:
            return 0
        r = abs(sa) % abs(sb)
        return (-r if sa < 0 else r) & _mask(width)

    def shl(self, a: int, b: int, width: int) -> int:
        return (a << b) & _mask(width)

    def lshr(self, a: int, b: int, width: int) -> int:
        return a >> b

    def ashr(self, a: int, b: int, width: int) -> int:
        return (_signed(a, width) >> b) & _mask(width)

    def abs_(self, a: int, width: int) -> int:
        return abs(_signed(a, width))

    def negative(self, a: int, width: int) -> bool:
        return a >> (width - 1) & 1 == 1

    def zext(self, a: int, from_width: int, to_width: int) -> int:
        return a

    def sext(self, a: int, from_width: int, to_width: int) -> int:
        return _signed(a, from_width) & _mask(to_width)

    def trunc(self, a: int, from_width: int, to_width: int) -> int:
        return a & _mask(to_width)

    def ite(self, cond: bool, then: int, other: int) -> int:
        return then if cond else other

    def eq(self, a: int, b: int, width: int) -> bool:
        return a == b

    def ne(self, a: int, b: int, width: int) -> bool:
        return a != b

    def ult(self, a: int, b: int, width: int) -> bool:
        return a < b

    def ule(self, a: int, b: int, width: int) -> bool:
        return a <= b

    def ugt(self, a: int, b: int, width: int) -> bool:
        return a > b

    def uge(self, a: int, b: int, width: int) -> bool:
        return a >= b

    def slt(self, a: int, b: int, width: int) -> bool:
        return _signed(a, width) < _signed(b, width)

    def sle(self, a: int, b: int, width: int) -> bool:
        return _signed(a, width) <= _signed(b, width)

    def sgt(self, a: int, b: int, width: int) -> bool:
        return _signed(a, width) > _signed(b, width)

    def sge(self, a: int, b: int, width: int) -> bool:
        return _signed(a, width) >= _signed(b, width)

    def bool_xor(self, a: bool, b: bool) -> bool:
        return a != b

    def bool_value(self, cond: bool) -> int:
        return 1 if cond else 0

    def zero_if_divisor_zero(self, divisor: int, value: int, width: int) -> int:
        return value


INT_ALGEBRA = IntAlgebra()
"""The Python-int instance (it has no state)."""


def pattern(value: int, width: int) -> int:
    """The `width`-bit pattern of a Python int (signed or not)."""
    return value & _mask(width)


def signed_value(value: int, width: int) -> int:
    """The two's-complement value of a `width`-bit pattern."""
    return _signed(value, width)
