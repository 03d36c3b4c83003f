"""The meaning of every eBPF register operation, written once over an abstract bit-vector algebra.

Two consumers read this module: the concrete bytecode interpreter (:mod:`pybpfdsl.bpf.interpreter`),
which instantiates it with Python integers (:data:`INT_OPS`), and the Z3 encoding used for
translation validation, which instantiates it with Z3 bit-vectors (:data:`Z3_OPS`).  Because both run
the *same* functions below, they cannot drift apart (the K2 paper, §4.1, does the same: one formula per
opcode, reused by its interpreter and its verification-condition generator).

The algebra (:class:`BitVecOps`) is deliberately SMT-LIB shaped: every operation is total and takes
the operand width explicitly, so that the concrete instance needs no width-carrying value objects and
the Z3 instance can simply ignore it.  Division follows SMT-LIB (x udiv 0 = all ones, x urem 0 = x);
BPF's own rules for a zero divisor are written *here*, as explicit ``ite``\\ s, because they are BPF
semantics and must not depend on which algebra happens to agree with them.

What is covered (Documentation/bpf/standardization/instruction-set.rst):

* ALU / ALU64: add sub mul div mod or and xor lsh rsh arsh neg mov, v4 sdiv/smod and movsx; 32-bit
  results are zero-extended to 64; shift counts are masked to width-1; division by zero gives 0 and
  modulo by zero leaves dst (for ALU: its low 32 bits, zero-extended);
* END (to-le / to-be, 16/32/64) and v4 BSWAP;
* JMP / JMP32 conditions;
* the value side of loads (zero- or sign-extending), stores (truncating), atomics (result in memory and
  in the fetching register) and lddw constants.

Memory, maps and helpers are *not* here: they depend on the memory model, which differs between the
interpreter (regions and offsets) and a solver encoding (arrays or K2-style read/write tables).

Entry points for a consumer: :func:`alu`, :func:`alu_operand`, :func:`jump_taken`, :func:`jump_operand`,
:func:`load_value`, :func:`store_value`, :func:`atomic`, :func:`lddw_constant`.

Long because the table and both algebras it is instantiated with belong together: splitting them would
put the one definition the interpreter and the prover share in several places.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from pybpfdsl.bpf.abi import MapType, RedirectFlag, XdpAction
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import (
    SOURCE_MASK,
    AluOp,
    AtomicOp,
    Endian,
    InsnClass,
    JmpOp,
    Kind,
    Size,
    Source,
    alu_op,
    jmp_op,
    source,
)

__all__ = [
    "ALU_BINARY",
    "CONDITIONS",
    "INT_OPS",
    "REDIRECT_BROADCAST",
    "REDIRECT_MAP_FLAGS",
    "SIGNED_ALU_BINARY",
    "Z3_OPS",
    "AtomicEffect",
    "BitVecOps",
    "IntOps",
    "SemanticsError",
    "Z3Ops",
    "alu",
    "alu_operand",
    "alu_width",
    "atomic",
    "binary_op",
    "bswap",
    "condition",
    "jump_operand",
    "jump_taken",
    "jump_width",
    "lddw_constant",
    "load_value",
    "redirect_map",
    "store_value",
]

V = TypeVar("V")  # a bit-vector value of the algebra
B = TypeVar("B")  # a boolean of the algebra


class SemanticsError(ValueError):
    """The instruction is not one this table gives a meaning to (invalid or unsupported encoding)."""


class BitVecOps(Protocol[V, B]):
    """A fixed-width bit-vector algebra.

    Values are unsigned bit patterns of the width passed alongside.  Every operation is total with
    SMT-LIB semantics (bvudiv, bvurem, bvsdiv, bvsrem, bvshl, bvlshr, bvashr), so an implementation is
    exactly a model of QF_BV.
    """

    def const(self, value: int, width: int) -> V:
        """``value`` modulo 2**width."""
        ...

    def add(self, a: V, b: V, width: int) -> V: ...
    def sub(self, a: V, b: V, width: int) -> V: ...
    def mul(self, a: V, b: V, width: int) -> V: ...
    def udiv(self, a: V, b: V, width: int) -> V: ...
    def urem(self, a: V, b: V, width: int) -> V: ...
    def sdiv(self, a: V, b: V, width: int) -> V:
        """Signed division truncating towards zero (bvsdiv)."""
        ...

    def srem(self, a: V, b: V, width: int) -> V:
        """Remainder of :meth:`sdiv`, sign of the dividend (bvsrem)."""
        ...

    def and_(self, a: V, b: V, width: int) -> V: ...
    def or_(self, a: V, b: V, width: int) -> V: ...
    def xor(self, a: V, b: V, width: int) -> V: ...
    def shl(self, a: V, b: V, width: int) -> V: ...
    def lshr(self, a: V, b: V, width: int) -> V: ...
    def ashr(self, a: V, b: V, width: int) -> V: ...
    def neg(self, a: V, width: int) -> V: ...
    def zext(self, a: V, from_width: int, to_width: int) -> V: ...
    def sext(self, a: V, from_width: int, to_width: int) -> V: ...
    def trunc(self, a: V, from_width: int, to_width: int) -> V:
        """The low ``to_width`` bits."""
        ...

    def extract(self, a: V, hi: int, lo: int, width: int) -> V:
        """Bits ``hi..lo`` (inclusive) of a ``width``-bit value, as a ``hi-lo+1``-bit value."""
        ...

    def concat(self, hi: V, lo: V, hi_width: int, lo_width: int) -> V: ...
    def ite(self, cond: B, then: V, other: V) -> V: ...
    def eq(self, a: V, b: V, width: int) -> B: ...
    def ult(self, a: V, b: V, width: int) -> B: ...
    def ule(self, a: V, b: V, width: int) -> B: ...
    def slt(self, a: V, b: V, width: int) -> B: ...
    def sle(self, a: V, b: V, width: int) -> B: ...
    def not_(self, a: B) -> B: ...


# --------------------------------------------------------------------------- #
# The two algebras
# --------------------------------------------------------------------------- #


def _mask(width: int) -> int:
    return (1 << width) - 1


def _signed(value: int, width: int) -> int:
    return value - (1 << width) if value >> (width - 1) & 1 else value


class IntOps:
    """Concrete algebra: values are Python ints in ``[0, 2**width)``, booleans are bools."""

    def const(self, value: int, width: int) -> int:
        return value & _mask(width)

    def add(self, a: int, b: int, width: int) -> int:
        return (a + b) & _mask(width)

    def sub(self, a: int, b: int, width: int) -> int:
        return (a - b) & _mask(width)

    def mul(self, a: int, b: int, width: int) -> int:
        return (a * b) & _mask(width)

    def udiv(self, a: int, b: int, width: int) -> int:
        return a // b if b else _mask(width)

    def urem(self, a: int, b: int, width: int) -> int:
        return a % b if b else a

    def sdiv(self, a: int, b: int, width: int) -> int:
        sa, sb = _signed(a, width), _signed(b, width)
        if sb == 0:
            return 1 if sa < 0 else _mask(width)  # bvsdiv: -(x udiv 0) for negative x
        q = abs(sa) // abs(sb)
        return (q if (sa < 0) == (sb < 0) else -q) & _mask(width)

    def srem(self, a: int, b: int, width: int) -> int:
        sa, sb = _signed(a, width), _signed(b, width)
        if sb == 0:
            return a
        r = abs(sa) % abs(sb)
        return (-r if sa < 0 else r) & _mask(width)

    def and_(self, a: int, b: int, width: int) -> int:
        return a & b

    def or_(self, a: int, b: int, width: int) -> int:
        return a | b

    def xor(self, a: int, b: int, width: int) -> int:
        return a ^ b

    def shl(self, a: int, b: int, width: int) -> int:
        return (a << b) & _mask(width) if b < width else 0

    def lshr(self, a: int, b: int, width: int) -> int:
        return a >> b if b < width else 0

    def ashr(self, a: int, b: int, width: int) -> int:
        return (_signed(a, width) >> min(b, width - 1)) & _mask(width)

    def neg(self, a: int, width: int) -> int:
        return -a & _mask(width)

    def zext(self, a: int, from_width: int, to_width: int) -> int:
        return a

    def sext(self, a: int, from_width: int, to_width: int) -> int:
        return _signed(a, from_width) & _mask(to_width)

    def trunc(self, a: int, from_width: int, to_width: int) -> int:
        return a & _mask(to_width)

    def extract(self, a: int, hi: int, lo: int, width: int) -> int:
        return (a >> lo) & _mask(hi - lo + 1)

    def concat(self, hi: int, lo: int, hi_width: int, lo_width: int) -> int:
        return hi << lo_width | lo

    def ite(self, cond: bool, then: int, other: int) -> int:
        return then if cond else other

    def eq(self, a: int, b: int, width: int) -> bool:
        return a == b

    def ult(self, a: int, b: int, width: int) -> bool:
        return a < b

    def ule(self, a: int, b: int, width: int) -> bool:
        return a <= b

    def slt(self, a: int, b: int, width: int) -> bool:
        return _signed(a, width) < _signed(b, width)

    def sle(self, a: int, b: int, width: int) -> bool:
        return _signed(a, width) <= _signed(b, width)

    def not_(self, a: bool) -> bool:
        return not a


class Z3Ops:
    """Symbolic algebra: values are ``z3.BitVecRef`` of the stated width, booleans ``z3.BoolRef``.

    z3 is imported on first use so that the concrete interpreter works without it.  Note the Python
    operators of z3 are *signed* for ``/``, ``%`` (bvsmod, not bvsrem!), ``<`` and ``>>``; this class
    names the operation it means instead of relying on them.
    """

    def __init__(self) -> None:
        self._z3: Any = None

    @property
    def z3(self) -> Any:
        if self._z3 is None:
            import z3

            self._z3 = z3
        return self._z3

    def const(self, value: int, width: int) -> Any:
        return self.z3.BitVecVal(value & _mask(width), width)

    def add(self, a: Any, b: Any, width: int) -> Any:
        return a + b

    def sub(self, a: Any, b: Any, width: int) -> Any:
        return a - b

    def mul(self, a: Any, b: Any, width: int) -> Any:
        return a * b

    def udiv(self, a: Any, b: Any, width: int) -> Any:
        return self.z3.UDiv(a, b)

    def urem(self, a: Any, b: Any, width: int) -> Any:
        return self.z3.URem(a, b)

    def sdiv(self, a: Any, b: Any, width: int) -> Any:
        return a / b  # z3's `/` on bit-vectors is bvsdiv

    def srem(self, a: Any, b: Any, width: int) -> Any:
        return self.z3.SRem(a, b)

    def and_(self, a: Any, b: Any, width: int) -> Any:
        return a & b

    def or_(self, a: Any, b: Any, width: int) -> Any:
        return a | b

    def xor(self, a: Any, b: Any, width: int) -> Any:
        return a ^ b

    def shl(self, a: Any, b: Any, width: int) -> Any:
        return a << b

    def lshr(self, a: Any, b: Any, width: int) -> Any:
        return self.z3.LShR(a, b)

    def ashr(self, a: Any, b: Any, width: int) -> Any:
        return a >> b  # z3's `>>` on bit-vectors is bvashr

    def neg(self, a: Any, width: int) -> Any:
        return -a

    def zext(self, a: Any, from_width: int, to_width: int) -> Any:
        return a if to_width == from_width else self.z3.ZeroExt(to_width - from_width, a)

    def sext(self, a: Any, from_width: int, to_width: int) -> Any:
        return a if to_width == from_width else self.z3.SignExt(to_width - from_width, a)

    def trunc(self, a: Any, from_width: int, to_width: int) -> Any:
        return a if to_width == from_width else self.z3.Extract(to_width - 1, 0, a)

    def extract(self, a: Any, hi: int, lo: int, width: int) -> Any:
        return self.z3.Extract(hi, lo, a)

    def concat(self, hi: Any, lo: Any, hi_width: int, lo_width: int) -> Any:
        return self.z3.Concat(hi, lo)

    def ite(self, cond: Any, then: Any, other: Any) -> Any:
        return self.z3.If(cond, then, other)

    def eq(self, a: Any, b: Any, width: int) -> Any:
        return a == b

    def ult(self, a: Any, b: Any, width: int) -> Any:
        return self.z3.ULT(a, b)

    def ule(self, a: Any, b: Any, width: int) -> Any:
        return self.z3.ULE(a, b)

    def slt(self, a: Any, b: Any, width: int) -> Any:
        return a < b

    def sle(self, a: Any, b: Any, width: int) -> Any:
        return a <= b

    def not_(self, a: Any) -> Any:
        return self.z3.Not(a)


INT_OPS = IntOps()
"""The concrete algebra (shared instance: it has no state)."""
Z3_OPS = Z3Ops()
"""The Z3 algebra (shared instance)."""


# --------------------------------------------------------------------------- #
# ALU: one function per operation, over `width`-bit operands
# --------------------------------------------------------------------------- #

BinaryFn = Callable[[BitVecOps[Any, Any], Any, Any, int], Any]
"""``(ops, dst, src, width) -> result``, all three ``width`` bits wide."""


def _zero_guard(ops: BitVecOps[V, B], divisor: V, width: int, if_zero: V, otherwise: V) -> V:
    return ops.ite(ops.eq(divisor, ops.const(0, width), width), if_zero, otherwise)


def _div(ops: BitVecOps[V, B], a: V, b: V, w: int) -> V:
    # BPF: dst / 0 == 0 (SMT-LIB would give all ones).
    return _zero_guard(ops, b, w, ops.const(0, w), ops.udiv(a, b, w))


def _mod(ops: BitVecOps[V, B], a: V, b: V, w: int) -> V:
    # BPF: dst % 0 == dst; the caller's zero-extension makes that "the low 32 bits" for ALU.
    return _zero_guard(ops, b, w, a, ops.urem(a, b, w))


def _sdiv(ops: BitVecOps[V, B], a: V, b: V, w: int) -> V:
    # Truncating; INT_MIN / -1 wraps to INT_MIN, as bvsdiv does; dst s/ 0 == 0.
    return _zero_guard(ops, b, w, ops.const(0, w), ops.sdiv(a, b, w))


def _smod(ops: BitVecOps[V, B], a: V, b: V, w: int) -> V:
    # Sign follows the dividend (bvsrem, not bvsmod); INT_MIN s% -1 == 0; dst s% 0 == dst.
    return _zero_guard(ops, b, w, a, ops.srem(a, b, w))


def _shift_count(ops: BitVecOps[V, B], b: V, w: int) -> V:
    # The kernel masks the count (interpreter: `SRC & 63` / `& 31`; x86 shifts by CL do the same).
    return ops.and_(b, ops.const(w - 1, w), w)


def _lsh(ops: BitVecOps[V, B], a: V, b: V, w: int) -> V:
    return ops.shl(a, _shift_count(ops, b, w), w)


def _rsh(ops: BitVecOps[V, B], a: V, b: V, w: int) -> V:
    return ops.lshr(a, _shift_count(ops, b, w), w)


def _arsh(ops: BitVecOps[V, B], a: V, b: V, w: int) -> V:
    return ops.ashr(a, _shift_count(ops, b, w), w)


def _mov(ops: BitVecOps[V, B], a: V, b: V, w: int) -> V:
    return b


def _neg(ops: BitVecOps[V, B], a: V, b: V, w: int) -> V:
    return ops.neg(a, w)


ALU_BINARY: Mapping[AluOp, BinaryFn] = MappingProxyType(
    {
        AluOp.ADD: lambda o, a, b, w: o.add(a, b, w),
        AluOp.SUB: lambda o, a, b, w: o.sub(a, b, w),
        AluOp.MUL: lambda o, a, b, w: o.mul(a, b, w),
        AluOp.DIV: _div,
        AluOp.OR: lambda o, a, b, w: o.or_(a, b, w),
        AluOp.AND: lambda o, a, b, w: o.and_(a, b, w),
        AluOp.LSH: _lsh,
        AluOp.RSH: _rsh,
        AluOp.NEG: _neg,
        AluOp.MOD: _mod,
        AluOp.XOR: lambda o, a, b, w: o.xor(a, b, w),
        AluOp.MOV: _mov,
        AluOp.ARSH: _arsh,
    }
)
"""Unsigned / plain semantics of every ALU operation but END, at operand width ``w``."""

SIGNED_ALU_BINARY: Mapping[AluOp, BinaryFn] = MappingProxyType({AluOp.DIV: _sdiv, AluOp.MOD: _smod})
"""The v4 ``off=1`` variants (sdiv, smod)."""


def binary_op(ops: BitVecOps[V, B], op: AluOp, a: V, b: V, width: int, signed: bool = False) -> V:
    """``a op b`` at ``width`` bits (no zero-extension: that is :func:`alu`'s job)."""
    table = SIGNED_ALU_BINARY if signed else ALU_BINARY
    fn = table.get(op)
    if fn is None:
        raise SemanticsError(f"no {'signed ' if signed else ''}binary semantics for {op.name}")
    result: V = fn(ops, a, b, width)
    return result


def bswap(ops: BitVecOps[V, B], a: V, width: int) -> V:
    """Reverse the bytes of a ``width``-bit value."""
    nbytes = width // 8
    out = ops.extract(a, 7, 0, width)
    for i in range(1, nbytes):
        out = ops.concat(out, ops.extract(a, 8 * i + 7, 8 * i, width), 8 * i, 8)
    return out


def _end(ops: BitVecOps[V, B], insn: Instruction, dst: V) -> V:
    """ALU END (and v4 ALU64 BSWAP): convert the low ``imm`` bits, zero-extend to 64.

    The host is little-endian: to-le only truncates, to-be (and bswap) reverses the bytes.
    """
    bits = insn.imm
    if bits not in (16, 32, 64):
        raise SemanticsError(f"byte swap width must be 16, 32 or 64, not {bits}")
    low = ops.trunc(dst, 64, bits)
    swap = insn.cls == InsnClass.ALU64 or insn.opcode & SOURCE_MASK == Endian.TO_BE
    if swap:
        low = bswap(ops, low, bits)
    return ops.zext(low, bits, 64)


def alu_width(insn: Instruction) -> int:
    """Operand width: 64 for ALU64, 32 for ALU."""
    return 64 if insn.cls == InsnClass.ALU64 else 32


def reads_source(insn: Instruction) -> bool:
    """Whether an ALU/ALU64 instruction reads its source register. A byte-order conversion reads
    none: its source bit says to which byte order it converts (`be32` has it set, with src 0, and r0
    may hold anything there, a pointer too)."""
    return source(insn.opcode) == Source.X and insn.kind not in (Kind.END, Kind.BSWAP)


def alu_operand(ops: BitVecOps[V, B], insn: Instruction, src_reg: V | None) -> V:
    """The second operand as a 64-bit value: the source register, or ``imm`` sign-extended.

    For ALU (32-bit) only the low half of it is used, which for K is ``imm`` itself.
    """
    if reads_source(insn):
        if src_reg is None:
            raise SemanticsError("a register-source instruction needs the source register's value")
        return src_reg
    return ops.const(insn.imm_sext, 64)


def alu(ops: BitVecOps[V, B], insn: Instruction, dst: V, src: V) -> V:
    """New 64-bit value of ``dst`` after ALU/ALU64 ``insn``.

    ``dst`` is the old 64-bit register, ``src`` the 64-bit operand from :func:`alu_operand`.  32-bit
    operations compute on the low halves and zero-extend the result (also for MOV, NEG and MOVSX).
    """
    kind = insn.kind
    if kind in (Kind.END, Kind.BSWAP):
        return _end(ops, insn, dst)
    w = alu_width(insn)
    a = ops.trunc(dst, 64, w)
    b = ops.trunc(src, 64, w)
    op = alu_op(insn.opcode)
    if op is None or kind not in (Kind.ALU, Kind.SDIV, Kind.NEG, Kind.MOV, Kind.MOVSX):
        raise SemanticsError(f"{insn.kind.value} ({insn.opcode:#04x}) is not an arithmetic instruction")
    if kind == Kind.MOVSX:
        if w == 32 and insn.off == 32:
            raise SemanticsError("32-bit movsx only extends from 8 or 16 bits")
        result = ops.sext(ops.trunc(src, 64, insn.off), insn.off, w)
    else:
        result = binary_op(ops, op, a, b, w, signed=kind == Kind.SDIV)
    return ops.zext(result, w, 64)


# --------------------------------------------------------------------------- #
# Conditional jumps
# --------------------------------------------------------------------------- #

CondFn = Callable[[BitVecOps[Any, Any], Any, Any, int], Any]


def _jset(ops: BitVecOps[V, B], a: V, b: V, w: int) -> B:
    return ops.not_(ops.eq(ops.and_(a, b, w), ops.const(0, w), w))


CONDITIONS: Mapping[JmpOp, CondFn] = MappingProxyType(
    {
        JmpOp.JEQ: lambda o, a, b, w: o.eq(a, b, w),
        JmpOp.JNE: lambda o, a, b, w: o.not_(o.eq(a, b, w)),
        JmpOp.JGT: lambda o, a, b, w: o.ult(b, a, w),
        JmpOp.JGE: lambda o, a, b, w: o.ule(b, a, w),
        JmpOp.JLT: lambda o, a, b, w: o.ult(a, b, w),
        JmpOp.JLE: lambda o, a, b, w: o.ule(a, b, w),
        JmpOp.JSGT: lambda o, a, b, w: o.slt(b, a, w),
        JmpOp.JSGE: lambda o, a, b, w: o.sle(b, a, w),
        JmpOp.JSLT: lambda o, a, b, w: o.slt(a, b, w),
        JmpOp.JSLE: lambda o, a, b, w: o.sle(a, b, w),
        JmpOp.JSET: _jset,
    }
)
"""``(ops, dst, src, width) -> bool`` for each conditional jump."""


def condition(ops: BitVecOps[V, B], op: JmpOp, a: V, b: V, width: int) -> B:
    """Whether ``a op b`` holds at ``width`` bits."""
    fn = CONDITIONS.get(op)
    if fn is None:
        raise SemanticsError(f"{op.name} is not a conditional jump")
    result: B = fn(ops, a, b, width)
    return result


def jump_width(insn: Instruction) -> int:
    """Comparison width: 32 for JMP32, 64 for JMP."""
    return 32 if insn.cls == InsnClass.JMP32 else 64


def jump_operand(ops: BitVecOps[V, B], insn: Instruction, src_reg: V | None) -> V:
    """Second comparison operand as 64 bits: the source register or ``imm`` sign-extended."""
    return alu_operand(ops, insn, src_reg)


def jump_taken(ops: BitVecOps[V, B], insn: Instruction, dst: V, src: V) -> B:
    """Whether conditional jump ``insn`` is taken, given 64-bit ``dst`` and operand ``src``."""
    op = jmp_op(insn.opcode)
    if insn.kind != Kind.JCOND or op is None:
        raise SemanticsError(f"{insn.kind.value} ({insn.opcode:#04x}) is not a conditional jump")
    w = jump_width(insn)
    return condition(ops, op, ops.trunc(dst, 64, w), ops.trunc(src, 64, w), w)


# --------------------------------------------------------------------------- #
# Values moving to and from memory
# --------------------------------------------------------------------------- #


def load_value(ops: BitVecOps[V, B], raw: V, size: Size, signed: bool = False) -> V:
    """Register value of a ``size`` load of bits ``raw``: LDX zero-extends, v4 LDX MEMSX sign-extends."""
    bits = size.bytes * 8
    return ops.sext(raw, bits, 64) if signed else ops.zext(raw, bits, 64)


def store_value(ops: BitVecOps[V, B], value: V, size: Size) -> V:
    """Bits written by a ``size`` store of 64-bit ``value`` (ST's imm is sign-extended first)."""
    return ops.trunc(value, 64, size.bytes * 8)


@dataclass(frozen=True)
class AtomicEffect(Generic[V]):
    """What an atomic instruction does, given the old memory contents.

    ``memory`` is the new memory value (``width`` bits).  ``register`` names the register that receives
    ``fetched`` (the old memory value zero-extended to 64 bits): ``"src"`` for the FETCH variants and
    xchg, ``"r0"`` for cmpxchg, None when nothing is fetched.
    """

    memory: V
    register: str | None
    fetched: V | None


def atomic(ops: BitVecOps[V, B], aop: AtomicOp, size: Size, old: V, src: V, r0: V) -> AtomicEffect[V]:
    """Effect of STX | ATOMIC ``aop`` on a ``size`` cell holding ``old``.

    ``src`` and ``r0`` are the 64-bit register values; the operation uses their low ``width`` bits.
    cmpxchg compares the cell with r0, stores src if equal, and always loads the old value into r0.
    """
    if size not in (Size.W, Size.DW) or aop in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL):
        raise SemanticsError(f"no read-modify-write semantics for {aop.name} at size {size.name}")
    w = size.bytes * 8
    operand = ops.trunc(src, 64, w)
    fetched = ops.zext(old, w, 64)
    if aop == AtomicOp.XCHG:
        return AtomicEffect(operand, "src", fetched)
    if aop == AtomicOp.CMPXCHG:
        expected = ops.trunc(r0, 64, w)
        new = ops.ite(ops.eq(old, expected, w), operand, old)
        return AtomicEffect(new, "r0", fetched)
    base = AtomicOp(aop & ~1)
    new = binary_op(ops, _ATOMIC_ALU[base], old, operand, w)
    return AtomicEffect(new, "src", fetched) if aop.fetches else AtomicEffect(new, None, None)


_ATOMIC_ALU: Mapping[AtomicOp, AluOp] = MappingProxyType(
    {AtomicOp.ADD: AluOp.ADD, AtomicOp.OR: AluOp.OR, AtomicOp.AND: AluOp.AND, AtomicOp.XOR: AluOp.XOR}
)


def lddw_constant(ops: BitVecOps[V, B], insn: Instruction) -> V:
    """The 64-bit immediate of a plain lddw (pseudo forms are references: the memory model's job)."""
    return ops.const(insn.imm64, 64)


# --------------------------------------------------------------------------- #
# bpf_redirect_map (helper 51): the action, given whether the map holds the key
# --------------------------------------------------------------------------- #

_BROADCAST_FLAGS = RedirectFlag.BROADCAST | RedirectFlag.EXCLUDE_INGRESS
REDIRECT_MAP_FLAGS: Mapping[int, int] = MappingProxyType({
    MapType.DEVMAP: _BROADCAST_FLAGS, MapType.DEVMAP_HASH: _BROADCAST_FLAGS, MapType.CPUMAP: 0, MapType.XSKMAP: 0})
"""The flags bpf_redirect_map accepts besides the fallback action (its low two bits), by the map types it
redirects through (net/core/filter.c `__bpf_xdp_redirect_map`): DEVMAP and DEVMAP_HASH take
BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS, CPUMAP and XSKMAP nothing more."""
REDIRECT_BROADCAST = RedirectFlag.BROADCAST
"""BPF_F_BROADCAST: the packet goes to every device of the map, whatever the key (its target is the
whole map, which a consumer may leave unmodelled)."""


def redirect_map(ops: BitVecOps[V, B], map_type: int, flags: V, found: B) -> tuple[V, B]:
    """(r0, kept) of bpf_redirect_map(map, key, `flags`) on a map of `map_type` that holds the key's low
    32 bits when `found`: a flag it does not take aborts (XDP_ABORTED, the redirect state `kept` as it
    was); a key it holds redirects (XDP_REDIRECT, the target that element); otherwise the flags' low
    two bits are the action (and the target the device numbered by the last index, see the kernel)."""
    allowed = 3 | REDIRECT_MAP_FLAGS[map_type]
    bad = ops.not_(ops.eq(ops.and_(flags, ops.const(~allowed, 64), 64), ops.const(0, 64), 64))
    fallback = ops.and_(flags, ops.const(3, 64), 64)
    result = ops.ite(bad, ops.const(XdpAction.ABORTED, 64), ops.ite(found, ops.const(XdpAction.REDIRECT, 64), fallback))
    return result, bad
