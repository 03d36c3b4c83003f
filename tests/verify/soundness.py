"""Soundness harness for the abstract domains: exhaustive checks at small widths and Z3 proofs at 64 bits.

Soundness of an abstract operation op# means: for all x ∈ γ(a), y ∈ γ(b), op(x, y) ∈ γ(op#(a, b)).

* Exhaustive: enumerate abstract values at a small width (every tnum / every interval at 4 bits, a
  family of scalars at 8 bits), every concrete member, and check membership of every concrete result
  against BPF's semantics, `bpf.semantics` on Python ints (`alu_concrete` and friends below: the same
  table the bytecode interpreter and the prover run). The domains are parameterised by width, so this runs
  the production code itself.
* Z3, symbolic: the tnum word-level cores (``tnum_*_bits``) are written with operators shared by ints
  and Z3 bit-vectors, so we run *the same functions* on symbolic 64-bit (value, mask) pairs and ask Z3
  for a well-formed input and members whose result is not a member; unsat is a proof for all inputs.
* Z3, concrete abstract values: for interval and scalar operations (full of Python branching) we compute
  op#(a, b) for given 64-bit a, b and ask Z3 for members x, y with op(x, y) ∉ γ(result).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import z3

from pybpfdsl.bpf import semantics
from pybpfdsl.bpf.opcode import AluOp, JmpOp
from pybpfdsl.bpf.semantics import INT_OPS
from pybpfdsl.verify.domains.bits import mask_of
from pybpfdsl.verify.domains.interval import Interval
from pybpfdsl.verify.domains.scalar import Scalar
from pybpfdsl.verify.domains.tnum import Tnum

# --------------------------------------------------------------------------- #
# The concrete semantics: bpf.semantics on Python ints, at any width
# --------------------------------------------------------------------------- #


def alu_concrete(op: AluOp, x: int, y: int, width: int = 64, signed: bool = False) -> int:
    """``x op y`` on ``width``-bit patterns; ``signed`` selects sdiv/smod (``off == 1``). NEG ignores ``y``,
    MOV returns it; a 32-bit (ALU32) operation is this at half the width, zero-extended."""
    m = mask_of(width)
    signed = signed and op in semantics.SIGNED_ALU_BINARY  # the other operations have no signed variant
    result: int = semantics.binary_op(INT_OPS, op, x & m, y & m, width, signed)
    return result


def jmp_concrete(op: JmpOp, x: int, y: int, width: int = 64) -> bool:
    """Whether the conditional jump ``if x op y`` is taken, on ``width``-bit patterns."""
    m = mask_of(width)
    taken: bool = semantics.condition(INT_OPS, op, x & m, y & m, width)
    return taken


def sign_extend_concrete(x: int, bits: int, width: int = 64) -> int:
    """``width``-bit pattern of the low ``bits`` of ``x`` sign-extended (movsx)."""
    return INT_OPS.sext(x & mask_of(bits), bits, width)


def bswap_concrete(x: int, bits: int) -> int:
    """The low ``bits`` of ``x`` with their bytes reversed, zero-extended (bswap / ``be`` on little-endian)."""
    swapped: int = semantics.bswap(INT_OPS, x & mask_of(bits), bits)
    return swapped


# --------------------------------------------------------------------------- #
# Enumeration at small widths
# --------------------------------------------------------------------------- #


def all_tnums(width: int) -> list[Tnum]:
    """Every well-formed tnum of ``width`` bits (3**width of them)."""
    out = []
    for mask in range(1 << width):
        for value in range(1 << width):
            if value & mask == 0:
                out.append(Tnum(value, mask, width))
    return out


def all_intervals(width: int, signed: bool) -> list[Interval]:
    """Every non-empty interval of the view."""
    lo_min = -(1 << (width - 1)) if signed else 0
    hi_max = lo_min + (1 << width) - 1
    return [Interval(lo, hi, width, signed) for lo in range(lo_min, hi_max + 1) for hi in range(lo, hi_max + 1)]


def members_mask(contains: Callable[[int], bool], width: int) -> int:
    """γ as a bitset over all ``width``-bit patterns."""
    bits = 0
    for x in range(1 << width):
        if contains(x):
            bits |= 1 << x
    return bits


def bits_of(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


def check_binary(
    values: Sequence[Any],
    gamma: Callable[[Any], int],
    abstract: Callable[[Any, Any], Any],
    concrete: Callable[[int, int], int],
    width: int,
    pairs: Iterable[tuple[int, int]] | None = None,
) -> list[str]:
    """Check op# against op for the given pairs of abstract values (all pairs by default).

    ``gamma`` maps an abstract value to its member bitset; results are compared as bitsets, so each
    (x, y) is evaluated once per table rather than once per abstract pair. Returns failure descriptions.
    """
    n = 1 << width
    table = [[concrete(x, y) for y in range(n)] for x in range(n)]
    gammas = [gamma(v) for v in values]
    members = [bits_of(g) for g in gammas]
    # image[x][j] = bitset of op(x, y) over y in γ(values[j])
    image_cache: dict[tuple[int, int], int] = {}

    def image(x: int, j: int) -> int:
        key = (x, j)
        got = image_cache.get(key)
        if got is None:
            row = table[x]
            got = 0
            for y in members[j]:
                got |= 1 << row[y]
            image_cache[key] = got
        return got

    failures = []
    todo = pairs if pairs is not None else ((i, j) for i in range(len(values)) for j in range(len(values)))
    for i, j in todo:
        result = abstract(values[i], values[j])
        allowed = gamma(result)
        reached = 0
        for x in members[i]:
            reached |= image(x, j)
        if reached & ~allowed:
            missing = bits_of(reached & ~allowed)[:3]
            failures.append(f"{values[i]} op {values[j]} = {result} misses {missing}")
            if len(failures) > 5:
                break
    return failures


# --------------------------------------------------------------------------- #
# Z3: running the word-level tnum cores on bit-vectors
# --------------------------------------------------------------------------- #


class Z3Word:
    """A Z3 bit-vector that behaves like a non-negative int under the operators the tnum cores use.

    ``>>`` is a logical shift (ints are non-negative, so Python's ``>>`` is logical on them too).
    """

    def __init__(self, e: Any, width: int = 64) -> None:
        self.e = e if not isinstance(e, int) else z3.BitVecVal(e & mask_of(width), width)
        self.width = width

    def _o(self, other: Any) -> Any:
        return other.e if isinstance(other, Z3Word) else z3.BitVecVal(other & mask_of(self.width), self.width)

    def _w(self, e: Any) -> Z3Word:
        return Z3Word(e, self.width)

    def __add__(self, o: Any) -> Z3Word:
        return self._w(self.e + self._o(o))

    def __sub__(self, o: Any) -> Z3Word:
        return self._w(self.e - self._o(o))

    def __mul__(self, o: Any) -> Z3Word:
        return self._w(self.e * self._o(o))

    def __and__(self, o: Any) -> Z3Word:
        return self._w(self.e & self._o(o))

    __rand__ = __and__

    def __or__(self, o: Any) -> Z3Word:
        return self._w(self.e | self._o(o))

    __ror__ = __or__

    def __xor__(self, o: Any) -> Z3Word:
        return self._w(self.e ^ self._o(o))

    __rxor__ = __xor__

    def __invert__(self) -> Z3Word:
        return self._w(~self.e)

    def __lshift__(self, o: Any) -> Z3Word:
        return self._w(self.e << self._o(o))

    def __rshift__(self, o: Any) -> Z3Word:
        return self._w(z3.LShR(self.e, self._o(o)))


def z3_tnum_wf(v: Any, m: Any) -> Any:
    return v & m == 0


def z3_tnum_member(v: Any, m: Any, x: Any) -> Any:
    return x & ~m == v


PROOF_UNITS = 1_000_000_000
"""What one soundness proof may spend, in Z3 resource units (not seconds: a busy machine must not turn a
proof into "z3 gave up"). Far above what the slowest one here needs."""


def prove(claim: Any, premises: Sequence[Any], units: int = PROOF_UNITS) -> Any | None:
    """None if premises ⇒ claim holds for all values; else a counterexample model."""
    s = z3.Solver()
    s.set("rlimit", units)
    s.add(*premises)
    s.add(z3.Not(claim))
    r = s.check()
    if r == z3.unsat:
        return None
    if r == z3.unknown:
        raise AssertionError(f"z3 gave up: {s.reason_unknown()}")
    return s.model()


# --------------------------------------------------------------------------- #
# Z3: BPF semantics and membership for intervals and scalars with concrete abstract values
# --------------------------------------------------------------------------- #


def z3_alu(op: AluOp, x: Any, y: Any, width: int, signed: bool = False) -> Any:
    """BPF ALU semantics on bit-vectors of ``width`` bits (the independent reference for the proofs)."""
    zero = z3.BitVecVal(0, width)
    count = y & (width - 1)
    if op == AluOp.ADD:
        return x + y
    if op == AluOp.SUB:
        return x - y
    if op == AluOp.MUL:
        return x * y
    if op == AluOp.DIV:
        return z3.If(y == 0, zero, x / y if signed else z3.UDiv(x, y))  # bvsdiv wraps INT_MIN / -1
    if op == AluOp.MOD:
        return z3.If(y == 0, x, z3.SRem(x, y) if signed else z3.URem(x, y))  # smod: sign of dividend
    if op == AluOp.OR:
        return x | y
    if op == AluOp.AND:
        return x & y
    if op == AluOp.XOR:
        return x ^ y
    if op == AluOp.LSH:
        return x << count
    if op == AluOp.RSH:
        return z3.LShR(x, count)
    if op == AluOp.ARSH:
        return x >> count
    if op == AluOp.NEG:
        return -x
    if op == AluOp.MOV:
        return y
    raise ValueError(op)


def z3_jmp(op: JmpOp, x: Any, y: Any) -> Any:
    return {
        JmpOp.JEQ: x == y,
        JmpOp.JNE: x != y,
        JmpOp.JGT: z3.UGT(x, y),
        JmpOp.JGE: z3.UGE(x, y),
        JmpOp.JLT: z3.ULT(x, y),
        JmpOp.JLE: z3.ULE(x, y),
        JmpOp.JSGT: x > y,
        JmpOp.JSGE: x >= y,
        JmpOp.JSLT: x < y,
        JmpOp.JSLE: x <= y,
        JmpOp.JSET: x & y != 0,
    }[op]


def z3_in_interval(i: Interval, x: Any) -> Any:
    """x (a bit-vector of width ≥ i.width) has its low i.width bits in i."""
    if i.is_bottom:
        return z3.BoolVal(False)
    low = x if x.size() == i.width else z3.Extract(i.width - 1, 0, x)
    lo = z3.BitVecVal(i.lo & mask_of(i.width), i.width)
    hi = z3.BitVecVal(i.hi & mask_of(i.width), i.width)
    if i.signed:
        return z3.And(lo <= low, low <= hi)
    return z3.And(z3.ULE(lo, low), z3.ULE(low, hi))


def z3_in_tnum(t: Tnum, x: Any) -> Any:
    return x & ~z3.BitVecVal(t.mask, t.width) == z3.BitVecVal(t.value, t.width)


def z3_in_scalar(s: Scalar, x: Any) -> Any:
    return z3.And(
        z3_in_tnum(s.tnum, x),
        z3_in_interval(s.u64, x),
        z3_in_interval(s.s64, x),
        z3_in_interval(s.u32, x),
        z3_in_interval(s.s32, x),
    )


def z3_alu_scalar(op: AluOp, x: Any, y: Any, width: int, signed: bool, alu32: bool) -> Any:
    if not alu32:
        return z3_alu(op, x, y, width, signed)
    h = width // 2
    low = z3_alu(op, z3.Extract(h - 1, 0, x), z3.Extract(h - 1, 0, y), h, signed)
    return z3.ZeroExt(width - h, low)


def z3_jmp_scalar(op: JmpOp, x: Any, y: Any, width: int, jmp32: bool) -> Any:
    if not jmp32:
        return z3_jmp(op, x, y)
    h = width // 2
    return z3_jmp(op, z3.Extract(h - 1, 0, x), z3.Extract(h - 1, 0, y))
