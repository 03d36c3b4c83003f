"""The LLVM instance of the DSL's arithmetic algebra (`lang.algebra`): each operation emits instructions.

`lang.arith` and `lang.fixed` define the arithmetic once; lowered with this instance at an llvmlite
builder's position, the code computes what the IR interpreter and the prover compute. What is particular
to LLVM and BPF lives here:

* Division and remainder: LLVM's `udiv`/`urem` by zero is undefined behaviour, so the divisor is replaced
  by 1 where it is 0 (the definition picks the DSL's result for that case itself). Signed division goes
  through magnitudes with unsigned instructions, because BPF CPUs before v4 have no signed division
  (LLVM fails with "unsupported signed division").
* The optimisation barriers: every multiplication of two run-time values and every division is one BPF
  instruction whose operands and result are hidden from LLVM's optimizer (`barriers.pinned`). Without
  that, LLVM uses what it knows about the operands (ranges, known bits) to factor products (`a*c + b*c`
  becomes `(a+b)*c`), narrow them to 32 bits or replace a quotient by a comparison; the bytecode is then
  correct but no longer has the IR's shape, and the equivalence proof must redo LLVM's reasoning with
  bit-blasted 64-bit multipliers and dividers, which it cannot do in seconds. With the barrier the proof
  treats these operations as uninterpreted functions and only has to match their operands
  (`verify/equivalence/nonlinear.py`). The cost is the few instructions LLVM would have saved.
* Constants fold here: an operation on constants gives a constant, so a product by a constant (a
  Q32.32 product's halves of a constant operand, say) stays visible to LLVM, which strength-reduces it:
  linear, and cheap to prove.
"""

from __future__ import annotations

from llvmlite import ir

from pybpfdsl.backend.barriers import pinned
from pybpfdsl.lang.algebra import INT_ALGEBRA

__all__ = ["LlvmAlgebra", "int_constant"]

_I1 = ir.IntType(1)


def int_constant(t: ir.IntType, value: int) -> ir.Constant:
    """A constant written in signed form, so every bit pattern prints as valid LLVM text."""
    bits = t.width
    value &= (1 << bits) - 1
    if bits > 1 and value >> (bits - 1):
        value -= 1 << bits
    return ir.Constant(t, value)


def _mask(width: int) -> int:
    return (1 << width) - 1


def _zero_extended_from(a: ir.Value) -> int:
    """How many low bits of `a` can be non-zero, as far as its own instruction shows (its width otherwise)."""
    if isinstance(a, ir.CastInstr) and a.opname == "zext" and isinstance(a.operands[0].type, ir.IntType):
        return int(a.operands[0].type.width)
    return int(a.type.width) if isinstance(a.type, ir.IntType) else 1 << 30


def _same(a: ir.Value, b: ir.Value) -> bool:
    """The same value: one object, or equal integer constants."""
    if a is b:
        return True
    return (isinstance(a, ir.Constant) and isinstance(b, ir.Constant) and a.type == b.type
            and isinstance(a.constant, int) and isinstance(b.constant, int)
            and (a.constant - b.constant) & _mask(a.type.width) == 0)


class LlvmAlgebra:
    """Values are LLVM integers (`iN` for N bits, so the DSL's bool is `i1`), truth values are `i1`."""

    def __init__(self, builder: ir.IRBuilder) -> None:
        self.b = builder
        # Kept with the values themselves, since a freed value's id may be reused.
        self._zero_tests: dict[int, tuple[ir.Value, ir.Value]] = {}
        """`icmp eq x, 0` results: (the icmp, x)."""
        self._guarded: dict[int, tuple[ir.Value, ir.Value, ir.Value]] = {}
        """Division results: (the result, its divisor, what it is when the divisor is 0)."""
        self._constant_magnitudes: dict[int, tuple[ir.Value, int]] = {}
        """`abs_` of a constant: (the result, its value)."""
        self._pinned_operands: dict[tuple[int, int], tuple[ir.Value, ir.Block, ir.Value]] = {}
        self._below_sign_bit: dict[int, ir.Value] = {}
        """Quotients by a constant above 1: never negative, which the pinned result hides from LLVM (the
        prover knows it of every such quotient, `verify/equivalence/nonlinear.py`)."""
        """Multiplication operands behind the barrier, per block: (operand, block, the pinned value)."""

    def const(self, value: int, width: int) -> ir.Value:
        return int_constant(ir.IntType(width), value)

    def known(self, a: ir.Value, width: int) -> int | None:
        if isinstance(a, ir.Constant) and isinstance(a.constant, int):
            return a.constant & _mask(width)
        return None

    # -- arithmetic ---------------------------------------------------------------------------------

    def add(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self.b.add(a, c)

    def sub(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self.b.sub(a, c)

    def mul(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        """One multiply instruction on exactly these operands (a constant operand stays visible: strength
        reduction of a constant product is linear and cheap to prove)."""
        a, c = self._constant_magnitude(a, width), self._constant_magnitude(c, width)
        if isinstance(a, ir.Constant):
            a, c = c, a
        if isinstance(c, ir.Constant) and isinstance(c.constant, int) and width == 64 \
                and c.constant & _mask(64) >> 32 and not isinstance(a, ir.Constant):
            # By its halves: two 32-bit immediates LLVM turns into shifts and adds, not a 64-bit one that
            # needs an `lddw` and a multiply (the same product mod 2**64).
            high, low = (c.constant & _mask(64)) >> 32, c.constant & 0xFFFFFFFF
            shifted = self.b.shl(self.b.mul(a, self.const(high, 64)), self.const(32, 64))
            return self.b.add(shifted, self.b.mul(a, self.const(low, 64)))
        if isinstance(a, ir.Constant) or isinstance(c, ir.Constant):
            return self.b.mul(a, c)
        return pinned(self.b, self.b.mul(self._pinned_operand(a), self._pinned_operand(c)))  # no range facts

    def _constant_magnitude(self, a: ir.Value, width: int) -> ir.Value:
        """`a` as a constant when it is the magnitude of one (a Q32.32 product multiplies by a whole
        magnitude, `lang.fixed.multiply`: by a constant factor, a product LLVM strength-reduces)."""
        known = self._constant_magnitudes.get(id(a))
        return self.const(known[1], width) if known is not None and known[0] is a else a

    def _pinned_operand(self, a: ir.Value) -> ir.Value:
        """`a` behind the barrier, once per block: a Q32.32 product uses each half of each operand twice,
        and a barrier per use holds a copy of the half in a register of its own (a move each)."""
        key = (id(a), id(self.b.block))
        known = self._pinned_operands.get(key)
        if known is not None and known[0] is a and known[1] is self.b.block:
            return known[2]
        value = pinned(self.b, a)
        self._pinned_operands[key] = (a, self.b.block, value)
        return value

    def neg(self, a: ir.Value, width: int) -> ir.Value:
        return self.b.sub(self.const(0, width), a)

    def and_(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        if (k := self._halves_of_constant(a, c)) is not None:
            return self.const(k[0] & k[1], width)
        return self.b.and_(a, c)

    def or_(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self.b.or_(a, c)

    def xor(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self.b.xor(a, c)

    def shl(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self.b.shl(a, c)

    def lshr(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        if (k := self._halves_of_constant(a, c)) is not None:
            return self.const(k[0] >> k[1], width)
        if isinstance(c, ir.Constant) and isinstance(c.constant, int) and c.constant >= _zero_extended_from(a):
            # Only zeros are left (a Q32.32 value from a u32, `random()`, has no high half): a constant, so
            # that a product by it is a product by a constant, which LLVM folds, not a pinned multiply.
            return self.const(0, width)
        return self.b.lshr(a, c)

    def ashr(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self.b.ashr(a, c)

    def abs_(self, a: ir.Value, width: int) -> ir.Value:
        """|a|; of a constant, remembered, so that its halves (`lshr` and `and_` by constants) are
        constants: the partial products of a Q32.32 product by a constant are then products by constants,
        which LLVM may strength-reduce. (The magnitude itself stays an instruction: a quotient's divisor
        and the product by it stay pinned, as the prover expects.)"""
        if _zero_extended_from(a) < width or self._known_nonnegative(a):
            return a  # never negative (its own magnitude): no select for LLVM to see through
        magnitude = self._sign_and_magnitude(a, width)[1]
        if isinstance(a, ir.Constant) and isinstance(a.constant, int):
            value = INT_ALGEBRA.abs_(a.constant & _mask(width), width)
            self._constant_magnitudes[id(magnitude)] = (magnitude, value)
        return magnitude

    def _known_nonnegative(self, a: ir.Value) -> bool:
        return self._below_sign_bit.get(id(a)) is a

    def negative(self, a: ir.Value, width: int) -> ir.Value:
        if _zero_extended_from(a) < width or self._known_nonnegative(a):
            return ir.Constant(_I1, 0)
        return self.b.icmp_signed("<", a, self.const(0, width))

    def _halves_of_constant(self, a: ir.Value, c: ir.Value) -> tuple[int, int] | None:
        known = self._constant_magnitudes.get(id(a))
        if known is None or known[0] is not a or not (isinstance(c, ir.Constant) and isinstance(c.constant, int)):
            return None
        return known[1], c.constant

    def _sign_and_magnitude(self, x: ir.Value, width: int) -> tuple[ir.Value, ir.Value]:
        negative = self.negative(x, width)
        return negative, self.b.select(negative, self.neg(x, width), x)

    def _with_sign(self, negative: ir.Value, magnitude: ir.Value, width: int) -> ir.Value:
        return self.b.select(negative, self.neg(magnitude, width), magnitude)

    # -- division -------------------------------------------------------------------------------
    # LLVM's division by zero is undefined behaviour: each division here divides by the divisor or 1, and
    # gives for a zero divisor what `lang.arith` chooses for it (0, or the dividend for a remainder). The
    # definition's own guard, `ite(divisor == 0, that, result)`, is then the result itself, and `ite`
    # returns it instead of emitting a second select.

    def _divide(self, instruction: str, a: ir.Value, c: ir.Value, width: int, at_zero: ir.Value) -> ir.Value:
        divide = self.b.udiv if instruction == "udiv" else self.b.urem
        if width == 64 and isinstance(c, ir.Constant) and isinstance(c.constant, int) and c.constant & _mask(width):
            # By a non-zero constant: no zero case, and the divisor stays an immediate (a register holding
            # a pinned constant costs a move). 64-bit only: BPF has no 128-bit product, so LLVM keeps a
            # 64-bit division by a constant as one instruction, but turns a 32-bit one into a multiplication
            # by a magic number, which the prover would have to bit-blast (`x % 3` on a u32).
            result = self._guard(pinned(self.b, divide(pinned(self.b, a), c)), c, at_zero)
            if instruction == "udiv" and c.constant & _mask(width) > 1:
                self._below_sign_bit[id(result)] = result
            return result
        is_zero = self.b.icmp_unsigned("==", c, self.const(0, width), name="divisor_is_zero")
        safe = self.b.select(is_zero, self.const(1, width), c, name="safe_divisor")
        result = pinned(self.b, divide(pinned(self.b, a), pinned(self.b, safe)))
        return self._guard(self.b.select(is_zero, at_zero, result), c, at_zero)

    def _guard(self, result: ir.Value, divisor: ir.Value, at_zero: ir.Value) -> ir.Value:
        self._guarded[id(result)] = (result, divisor, at_zero)
        return result

    def udiv(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._divide("udiv", a, c, width, self.const(0, width))

    def urem(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._divide("urem", a, c, width, a)

    def sdiv(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        """On magnitudes: |a| / |c| with the sign of a ^ c (INT_MIN / -1 wraps to INT_MIN); 0 by zero."""
        a_negative, a_magnitude = self._sign_and_magnitude(a, width)
        c_negative, c_magnitude = self._sign_and_magnitude(c, width)
        quotient = self.udiv(a_magnitude, c_magnitude, width)
        return self._guard(self._with_sign(self.b.xor(a_negative, c_negative), quotient, width), c,
                           self.const(0, width))

    def srem(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        """On magnitudes: |a| % |c| with the dividend's sign; by zero |a| with a's sign, a itself."""
        a_negative, a_magnitude = self._sign_and_magnitude(a, width)
        _, c_magnitude = self._sign_and_magnitude(c, width)
        remainder = self.urem(a_magnitude, c_magnitude, width)
        return self._guard(self._with_sign(a_negative, remainder, width), c, a)

    # -- widths -----------------------------------------------------------------------------------

    def zext(self, a: ir.Value, from_width: int, to_width: int) -> ir.Value:
        return self.b.zext(a, ir.IntType(to_width))

    def sext(self, a: ir.Value, from_width: int, to_width: int) -> ir.Value:
        return self.b.sext(a, ir.IntType(to_width))

    def trunc(self, a: ir.Value, from_width: int, to_width: int) -> ir.Value:
        return self.b.trunc(a, ir.IntType(to_width))

    # -- choices and comparisons ------------------------------------------------------------------

    def ite(self, cond: ir.Value, then: ir.Value, other: ir.Value) -> ir.Value:
        test, guarded = self._zero_tests.get(id(cond)), self._guarded.get(id(other))
        if (test is not None and guarded is not None and test[0] is cond and guarded[0] is other
                and test[1] is guarded[1] and _same(then, guarded[2])):
            return other  # `other` is `then` already where the divisor is 0 (see the divisions above)
        return self.b.select(cond, then, other)

    def _icmp(self, signed: bool, predicate: str, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self.b.icmp_signed(predicate, a, c) if signed else self.b.icmp_unsigned(predicate, a, c)

    def eq(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        result = self._icmp(False, "==", a, c, width)
        if _same(c, self.const(0, width)):
            self._zero_tests[id(result)] = (result, a)
        return result

    def ne(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._icmp(False, "!=", a, c, width)

    def ult(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._icmp(False, "<", a, c, width)

    def ule(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._icmp(False, "<=", a, c, width)

    def ugt(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._icmp(False, ">", a, c, width)

    def uge(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._icmp(False, ">=", a, c, width)

    def slt(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._icmp(True, "<", a, c, width)

    def sle(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._icmp(True, "<=", a, c, width)

    def sgt(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._icmp(True, ">", a, c, width)

    def sge(self, a: ir.Value, c: ir.Value, width: int) -> ir.Value:
        return self._icmp(True, ">=", a, c, width)

    def bool_xor(self, a: ir.Value, c: ir.Value) -> ir.Value:
        return self.xor(a, c, 1)

    def bool_value(self, cond: ir.Value) -> ir.Value:
        return cond  # an i1 already

    def zero_if_divisor_zero(self, divisor: ir.Value, value: ir.Value, width: int) -> ir.Value:
        return value
