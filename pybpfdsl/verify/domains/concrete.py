"""Concrete BPF semantics of ALU and conditional-jump operations on bit patterns of any width.

This is the meaning the abstract domains over-approximate: a value is a ``width``-bit pattern held in a
non-negative Python int, every ALU result is reduced modulo ``2**width``, division by zero gives 0 and
modulo by zero keeps the dividend (BPF's rules), signed division truncates toward zero and
``INT_MIN / -1`` wraps to ``INT_MIN``, and shift counts are masked to ``width - 1``. A 32-bit (ALU32)
operation is the same function at ``width // 2`` whose result is zero-extended, so every domain can be
checked against this module at a small width (4 or 8 bits) as well as at 64.
"""

from __future__ import annotations

from pybpfdsl.bpf.opcode import AluOp, JmpOp

__all__ = [
    "alu_concrete",
    "bswap_concrete",
    "jmp_concrete",
    "mask_of",
    "sign_extend_concrete",
    "to_signed",
    "to_unsigned",
]


def mask_of(width: int) -> int:
    """All-ones pattern of ``width`` bits."""
    return (1 << width) - 1


def to_signed(x: int, width: int) -> int:
    """Two's-complement value of the ``width``-bit pattern ``x``."""
    x &= mask_of(width)
    return x - (1 << width) if x >> (width - 1) else x


def to_unsigned(x: int, width: int) -> int:
    """The ``width``-bit pattern of the integer ``x`` (reduced modulo ``2**width``)."""
    return x & mask_of(width)


def _sdiv_trunc(x: int, y: int) -> int:
    """Integer quotient rounded toward zero (C semantics), for y != 0."""
    q = abs(x) // abs(y)
    return q if (x < 0) == (y < 0) else -q


def alu_concrete(op: AluOp, x: int, y: int, width: int = 64, signed: bool = False) -> int:
    """``x op y`` on ``width``-bit patterns; ``signed`` selects sdiv/smod (``off == 1``).

    NEG ignores ``y``; MOV returns ``y``. END is not a binary operation (see :func:`bswap_concrete`).
    """
    m = mask_of(width)
    x &= m
    y &= m
    if op == AluOp.ADD:
        return (x + y) & m
    if op == AluOp.SUB:
        return (x - y) & m
    if op == AluOp.MUL:
        return (x * y) & m
    if op == AluOp.DIV:
        if y == 0:
            return 0
        if signed:
            return _sdiv_trunc(to_signed(x, width), to_signed(y, width)) & m
        return x // y
    if op == AluOp.MOD:
        if y == 0:
            return x
        if signed:
            sx, sy = to_signed(x, width), to_signed(y, width)
            return (sx - _sdiv_trunc(sx, sy) * sy) & m
        return x % y
    if op == AluOp.OR:
        return x | y
    if op == AluOp.AND:
        return x & y
    if op == AluOp.XOR:
        return x ^ y
    if op == AluOp.LSH:
        return (x << (y & (width - 1))) & m
    if op == AluOp.RSH:
        return x >> (y & (width - 1))
    if op == AluOp.ARSH:
        return (to_signed(x, width) >> (y & (width - 1))) & m
    if op == AluOp.NEG:
        return -x & m
    if op == AluOp.MOV:
        return y
    raise ValueError(f"{op.name} is not a binary ALU operation")


def jmp_concrete(op: JmpOp, x: int, y: int, width: int = 64) -> bool:
    """Whether the conditional jump ``if x op y`` is taken, on ``width``-bit patterns."""
    m = mask_of(width)
    x &= m
    y &= m
    if op == JmpOp.JEQ:
        return x == y
    if op == JmpOp.JNE:
        return x != y
    if op == JmpOp.JGT:
        return x > y
    if op == JmpOp.JGE:
        return x >= y
    if op == JmpOp.JLT:
        return x < y
    if op == JmpOp.JLE:
        return x <= y
    if op == JmpOp.JSET:
        return (x & y) != 0
    sx, sy = to_signed(x, width), to_signed(y, width)
    if op == JmpOp.JSGT:
        return sx > sy
    if op == JmpOp.JSGE:
        return sx >= sy
    if op == JmpOp.JSLT:
        return sx < sy
    if op == JmpOp.JSLE:
        return sx <= sy
    raise ValueError(f"{op.name} is not a conditional jump")


def sign_extend_concrete(x: int, bits: int, width: int = 64) -> int:
    """``width``-bit pattern of the low ``bits`` of ``x`` sign-extended (movsx)."""
    return to_signed(x & mask_of(bits), bits) & mask_of(width)


def bswap_concrete(x: int, bits: int) -> int:
    """The low ``bits`` of ``x`` with their bytes reversed, zero-extended (bswap / ``be`` on little-endian)."""
    return int.from_bytes((x & mask_of(bits)).to_bytes(bits // 8, "little"), "big")
