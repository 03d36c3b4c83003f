"""The semantics table: each operation on edge values, against a reference written from the kernel's
instruction-set document; and the concrete and Z3 algebras agreeing on the same table."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, AtomicOp, Endian, InsnClass, JmpOp, Kind, Size, Source, make
from pybpfdsl.bpf.semantics import (
    INT_OPS,
    Z3_OPS,
    SemanticsError,
    alu,
    alu_operand,
    atomic,
    bswap,
    jump_taken,
    lddw_constant,
    load_value,
    store_value,
)

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
INT64_MIN = 1 << 63
INT64_MAX = (1 << 63) - 1
INT32_MIN = 1 << 31
INT32_MAX = (1 << 31) - 1

EDGES = sorted({0, 1, 2, 3, 7, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0xFFFF, 0x8000, INT32_MAX, INT32_MIN, M32,
                1 << 32, (1 << 32) + 1, INT64_MAX, INT64_MIN, M64, M64 - 1, 0x1234_5678_9ABC_DEF0,
                0xFFFF_FFFF_8000_0000})


def s(v: int, w: int) -> int:
    return v - (1 << w) if v >> (w - 1) & 1 else v


# --------------------------------------------------------------------------- #
# Reference semantics, restated from Documentation/bpf/standardization/instruction-set.rst
# --------------------------------------------------------------------------- #


def ref_binary(op: AluOp, w: int, a: int, b: int, signed: bool) -> int:
    m = (1 << w) - 1
    a, b = a & m, b & m
    if signed:
        sa, sb = s(a, w), s(b, w)
        if op == AluOp.DIV:
            if sb == 0:
                return 0
            q = abs(sa) // abs(sb)
            return (q if (sa < 0) == (sb < 0) else -q) & m  # truncating; INT_MIN/-1 wraps to INT_MIN
        if sb == 0:
            return a
        r = abs(sa) % abs(sb)
        return (-r if sa < 0 else r) & m  # sign of the dividend
    match op:
        case AluOp.ADD:
            return (a + b) & m
        case AluOp.SUB:
            return (a - b) & m
        case AluOp.MUL:
            return (a * b) & m
        case AluOp.DIV:
            return a // b if b else 0
        case AluOp.MOD:
            return a % b if b else a
        case AluOp.OR:
            return a | b
        case AluOp.AND:
            return a & b
        case AluOp.XOR:
            return a ^ b
        case AluOp.LSH:
            return (a << (b & (w - 1))) & m
        case AluOp.RSH:
            return a >> (b & (w - 1))
        case AluOp.ARSH:
            return (s(a, w) >> (b & (w - 1))) & m
        case AluOp.NEG:
            return -a & m
        case AluOp.MOV:
            return b
    raise AssertionError(op)


def reg_insn(cls: InsnClass, op: AluOp, off: int = 0) -> Instruction:
    return Instruction(make(cls, op, Source.X), 1, 2, off)


BINARY_OPS = [AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.DIV, AluOp.OR, AluOp.AND, AluOp.LSH, AluOp.RSH,
              AluOp.NEG, AluOp.MOD, AluOp.XOR, AluOp.MOV, AluOp.ARSH]


@pytest.mark.parametrize("cls", [InsnClass.ALU, InsnClass.ALU64], ids=["alu32", "alu64"])
@pytest.mark.parametrize("op", BINARY_OPS, ids=lambda o: o.name)
def test_alu_register_forms_on_edge_values(cls: InsnClass, op: AluOp) -> None:
    w = 64 if cls == InsnClass.ALU64 else 32
    insn = reg_insn(cls, op)
    for a, b in itertools.product(EDGES, EDGES):
        got = alu(INT_OPS, insn, a, b)
        assert got == ref_binary(op, w, a, b, signed=False), (op, w, hex(a), hex(b))
        assert got <= (M64 if w == 64 else M32), "32-bit results are zero-extended"


@pytest.mark.parametrize("cls", [InsnClass.ALU, InsnClass.ALU64], ids=["alu32", "alu64"])
@pytest.mark.parametrize("op", [AluOp.DIV, AluOp.MOD], ids=["sdiv", "smod"])
def test_signed_division_on_edge_values(cls: InsnClass, op: AluOp) -> None:
    w = 64 if cls == InsnClass.ALU64 else 32
    insn = reg_insn(cls, op, off=1)
    for a, b in itertools.product(EDGES, EDGES):
        assert alu(INT_OPS, insn, a, b) == ref_binary(op, w, a, b, signed=True), (op, w, hex(a), hex(b))


@pytest.mark.parametrize(
    ("cls", "op", "off", "dst", "src", "want"),
    [
        # Division by zero: quotient 0, remainder keeps dst (for ALU its low half, zero-extended).
        (InsnClass.ALU64, AluOp.DIV, 0, 123, 0, 0),
        (InsnClass.ALU64, AluOp.MOD, 0, M64, 0, M64),
        (InsnClass.ALU, AluOp.DIV, 0, M64, 0, 0),
        (InsnClass.ALU, AluOp.MOD, 0, 0xAAAA_BBBB_CCCC_DDDD, 0, 0xCCCC_DDDD),
        # ALU32 divides by the low half of src only: 2**32 is a zero divisor there.
        (InsnClass.ALU, AluOp.DIV, 0, 10, 1 << 32, 0),
        (InsnClass.ALU, AluOp.MOD, 0, 10, 1 << 32, 10),
        # Signed: INT_MIN / -1 == INT_MIN, INT_MIN % -1 == 0, x / 0 == 0, x % 0 == x.
        (InsnClass.ALU64, AluOp.DIV, 1, INT64_MIN, M64, INT64_MIN),
        (InsnClass.ALU64, AluOp.MOD, 1, INT64_MIN, M64, 0),
        (InsnClass.ALU, AluOp.DIV, 1, INT32_MIN, M32, INT32_MIN),
        (InsnClass.ALU, AluOp.MOD, 1, INT32_MIN, M32, 0),
        (InsnClass.ALU64, AluOp.DIV, 1, -7 & M64, 0, 0),
        (InsnClass.ALU64, AluOp.MOD, 1, -7 & M64, 0, -7 & M64),
        (InsnClass.ALU, AluOp.MOD, 1, -7 & M64, 0, -7 & M32),
        # Truncation towards zero, remainder with the dividend's sign.
        (InsnClass.ALU64, AluOp.DIV, 1, -7 & M64, 2, -3 & M64),
        (InsnClass.ALU64, AluOp.MOD, 1, -7 & M64, 2, -1 & M64),
        (InsnClass.ALU64, AluOp.MOD, 1, 7, -2 & M64, 1),
        (InsnClass.ALU, AluOp.DIV, 1, -7 & M32, 2, -3 & M32),
        # Shift counts are masked to 63 / 31.
        (InsnClass.ALU64, AluOp.LSH, 0, 1, 64, 1),
        (InsnClass.ALU64, AluOp.LSH, 0, 1, 65, 2),
        (InsnClass.ALU, AluOp.LSH, 0, 1, 33, 2),
        (InsnClass.ALU, AluOp.RSH, 0, 0x8000_0000, 32 + 31, 1),
        (InsnClass.ALU64, AluOp.ARSH, 0, INT64_MIN, 63 + 64, M64),
        (InsnClass.ALU, AluOp.ARSH, 0, INT32_MIN, 31, M32),
        (InsnClass.ALU, AluOp.ARSH, 0, 0xFFFF_FFFF_0000_0000, 4, 0),
        # 32-bit ops zero-extend, including mov and neg.
        (InsnClass.ALU, AluOp.MOV, 0, M64, M64, M32),
        (InsnClass.ALU, AluOp.NEG, 0, 1, 0, M32),
        (InsnClass.ALU64, AluOp.NEG, 0, 1, 0, M64),
        (InsnClass.ALU, AluOp.ADD, 0, M32, 1, 0),
        (InsnClass.ALU64, AluOp.ADD, 0, M32, 1, 1 << 32),
        # movsx (v4): sign-extend the low 8/16/32 bits of src.
        (InsnClass.ALU64, AluOp.MOV, 8, 0, 0x80, M64 - 0x7F),
        (InsnClass.ALU64, AluOp.MOV, 16, 0, 0x1_7FFF, 0x7FFF),
        (InsnClass.ALU64, AluOp.MOV, 32, 0, 0x8000_0000, 0xFFFF_FFFF_8000_0000),
        (InsnClass.ALU, AluOp.MOV, 8, 0, 0xFF, M32),
        (InsnClass.ALU, AluOp.MOV, 16, 0, 0x8000, 0xFFFF_8000),
    ],
)
def test_documented_corner_cases(cls: InsnClass, op: AluOp, off: int, dst: int, src: int, want: int) -> None:
    assert alu(INT_OPS, reg_insn(cls, op, off), dst, src) == want


def test_immediate_operands_are_sign_extended() -> None:
    add64 = Instruction(make(InsnClass.ALU64, AluOp.ADD, Source.K), 1, 0, 0, -1)
    assert alu(INT_OPS, add64, 5, alu_operand(INT_OPS, add64, None)) == 4
    mov32 = Instruction(make(InsnClass.ALU, AluOp.MOV, Source.K), 1, 0, 0, -1)
    assert alu(INT_OPS, mov32, 0, alu_operand(INT_OPS, mov32, None)) == M32
    mov64 = Instruction(make(InsnClass.ALU64, AluOp.MOV, Source.K), 1, 0, 0, -1)
    assert alu(INT_OPS, mov64, 0, alu_operand(INT_OPS, mov64, None)) == M64
    # Unsigned ALU64 division by an immediate divides by the sign-extended value.
    div64 = Instruction(make(InsnClass.ALU64, AluOp.DIV, Source.K), 1, 0, 0, -1)
    assert alu(INT_OPS, div64, M64, alu_operand(INT_OPS, div64, None)) == 1
    div32 = Instruction(make(InsnClass.ALU, AluOp.DIV, Source.K), 1, 0, 0, -1)
    assert alu(INT_OPS, div32, M64, alu_operand(INT_OPS, div32, None)) == 1


@pytest.mark.parametrize(
    ("cls", "order", "bits", "value", "want"),
    [
        (InsnClass.ALU, Endian.TO_LE, 16, 0x1122_3344_5566_7788, 0x7788),
        (InsnClass.ALU, Endian.TO_LE, 32, 0x1122_3344_5566_7788, 0x5566_7788),
        (InsnClass.ALU, Endian.TO_LE, 64, 0x1122_3344_5566_7788, 0x1122_3344_5566_7788),
        (InsnClass.ALU, Endian.TO_BE, 16, 0x1122_3344_5566_7788, 0x8877),
        (InsnClass.ALU, Endian.TO_BE, 32, 0x1122_3344_5566_7788, 0x8877_6655),
        (InsnClass.ALU, Endian.TO_BE, 64, 0x1122_3344_5566_7788, 0x8877_6655_4433_2211),
        (InsnClass.ALU64, Endian.TO_LE, 16, 0x1122_3344_5566_7788, 0x8877),  # v4 bswap16
        (InsnClass.ALU64, Endian.TO_LE, 32, 0x1122_3344_5566_7788, 0x8877_6655),
        (InsnClass.ALU64, Endian.TO_LE, 64, 0x1122_3344_5566_7788, 0x8877_6655_4433_2211),
    ],
)
def test_byte_order(cls: InsnClass, order: Endian, bits: int, value: int, want: int) -> None:
    insn = Instruction(make(cls, AluOp.END, order), 1, 0, 0, bits)
    assert alu(INT_OPS, insn, value, 0) == want


def test_bad_byte_order_width_is_rejected() -> None:
    with pytest.raises(SemanticsError):
        alu(INT_OPS, Instruction(make(InsnClass.ALU, AluOp.END, Endian.TO_BE), 1, 0, 0, 8), 0, 0)


# --------------------------------------------------------------------------- #
# Jumps
# --------------------------------------------------------------------------- #

REF_COND: dict[JmpOp, Callable[[int, int, int], bool]] = {
    JmpOp.JEQ: lambda a, b, w: a == b,
    JmpOp.JNE: lambda a, b, w: a != b,
    JmpOp.JGT: lambda a, b, w: a > b,
    JmpOp.JGE: lambda a, b, w: a >= b,
    JmpOp.JLT: lambda a, b, w: a < b,
    JmpOp.JLE: lambda a, b, w: a <= b,
    JmpOp.JSGT: lambda a, b, w: s(a, w) > s(b, w),
    JmpOp.JSGE: lambda a, b, w: s(a, w) >= s(b, w),
    JmpOp.JSLT: lambda a, b, w: s(a, w) < s(b, w),
    JmpOp.JSLE: lambda a, b, w: s(a, w) <= s(b, w),
    JmpOp.JSET: lambda a, b, w: bool(a & b),
}


@pytest.mark.parametrize("cls", [InsnClass.JMP, InsnClass.JMP32], ids=["jmp", "jmp32"])
@pytest.mark.parametrize("op", list(REF_COND), ids=lambda o: o.name)
def test_conditions_on_edge_values(cls: InsnClass, op: JmpOp) -> None:
    w = 32 if cls == InsnClass.JMP32 else 64
    m = (1 << w) - 1
    insn = Instruction(make(cls, op, Source.X), 1, 2, 3)
    for a, b in itertools.product(EDGES, EDGES):
        assert jump_taken(INT_OPS, insn, a, b) == REF_COND[op](a & m, b & m, w), (op, w, hex(a), hex(b))


def test_jmp32_ignores_the_upper_halves() -> None:
    jeq32 = Instruction(make(InsnClass.JMP32, JmpOp.JEQ, Source.X), 1, 2, 3)
    assert jump_taken(INT_OPS, jeq32, 0xAAAA_0000_0000_0005, 5)
    jslt = Instruction(make(InsnClass.JMP, JmpOp.JSLT, Source.K), 1, 0, 3, -1)
    assert jump_taken(INT_OPS, jslt, INT64_MIN, alu_operand(INT_OPS, jslt, None))


# --------------------------------------------------------------------------- #
# Memory values, atomics, lddw
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("sz", "raw", "zext", "sext"),
    [
        (Size.B, 0x80, 0x80, M64 - 0x7F),
        (Size.B, 0x7F, 0x7F, 0x7F),
        (Size.H, 0x8000, 0x8000, M64 - 0x7FFF),
        (Size.W, 0xFFFF_FFFF, M32, M64),
        (Size.W, 0x7FFF_FFFF, 0x7FFF_FFFF, 0x7FFF_FFFF),
        (Size.DW, M64, M64, M64),
    ],
)
def test_loads_extend(sz: Size, raw: int, zext: int, sext: int) -> None:
    assert load_value(INT_OPS, raw, sz) == zext
    assert load_value(INT_OPS, raw, sz, signed=True) == sext


def test_stores_truncate() -> None:
    assert store_value(INT_OPS, 0x1122_3344_5566_7788, Size.B) == 0x88
    assert store_value(INT_OPS, 0x1122_3344_5566_7788, Size.H) == 0x7788
    assert store_value(INT_OPS, 0x1122_3344_5566_7788, Size.W) == 0x5566_7788
    assert store_value(INT_OPS, 0x1122_3344_5566_7788, Size.DW) == 0x1122_3344_5566_7788


@pytest.mark.parametrize(
    ("aop", "sz", "old", "src", "r0", "memory", "register", "fetched"),
    [
        (AtomicOp.ADD, Size.DW, 5, 7, 0, 12, None, None),
        (AtomicOp.ADD, Size.W, M32, 1 << 32 | 1, 0, 0, None, None),
        (AtomicOp.FETCH_ADD, Size.W, M32, 1, 0, 0, "src", M32),
        (AtomicOp.OR, Size.DW, 0xF0, 0x0F, 0, 0xFF, None, None),
        (AtomicOp.FETCH_AND, Size.DW, 0xF0, 0x3C, 0, 0x30, "src", 0xF0),
        (AtomicOp.FETCH_XOR, Size.W, 0xFF, 0x0F, 0, 0xF0, "src", 0xFF),
        (AtomicOp.XCHG, Size.W, 9, 1 << 40 | 3, 0, 3, "src", 9),
        (AtomicOp.CMPXCHG, Size.DW, 9, 4, 9, 4, "r0", 9),
        (AtomicOp.CMPXCHG, Size.DW, 9, 4, 8, 9, "r0", 9),
        # 32-bit cmpxchg compares the low half of r0 only and zero-extends what it loads.
        (AtomicOp.CMPXCHG, Size.W, 9, 4, 0xFFFF_0000_0000_0009, 4, "r0", 9),
        (AtomicOp.CMPXCHG, Size.W, M32, 4, 0, M32, "r0", M32),
    ],
)
def test_atomics(aop: AtomicOp, sz: Size, old: int, src: int, r0: int, memory: int, register: str | None,
                 fetched: int | None) -> None:
    effect = atomic(INT_OPS, aop, sz, old, src, r0)
    assert (effect.memory, effect.register, effect.fetched) == (memory, register, fetched)


def test_lddw_constant() -> None:
    assert lddw_constant(INT_OPS, Instruction.lddw(1, 0x1122_3344_8000_0000)) == 0x1122_3344_8000_0000


def test_bswap_is_an_involution() -> None:
    for v in EDGES:
        for w in (16, 32, 64):
            x = v & ((1 << w) - 1)
            assert bswap(INT_OPS, bswap(INT_OPS, x, w), w) == x


# --------------------------------------------------------------------------- #
# Concrete and Z3 algebras agree on the table
# --------------------------------------------------------------------------- #


def z3_value(term: object) -> int:
    out = z3.simplify(term)
    assert z3.is_bv_value(out), out
    return int(out.as_long())


def z3_bool(term: object) -> bool:
    out = z3.simplify(term)
    assert z3.is_true(out) or z3.is_false(out), out
    return bool(z3.is_true(out))


def bv(v: int, w: int = 64) -> object:
    return z3.BitVecVal(v, w)


ALU_INSNS = (
    [reg_insn(c, op) for c in (InsnClass.ALU, InsnClass.ALU64) for op in BINARY_OPS]
    + [reg_insn(c, op, 1) for c in (InsnClass.ALU, InsnClass.ALU64) for op in (AluOp.DIV, AluOp.MOD)]
    + [reg_insn(InsnClass.ALU64, AluOp.MOV, off) for off in (8, 16, 32)]
    + [reg_insn(InsnClass.ALU, AluOp.MOV, off) for off in (8, 16)]
    + [Instruction(make(c, AluOp.END, e), 1, 0, 0, bits) for c, e in
       ((InsnClass.ALU, Endian.TO_LE), (InsnClass.ALU, Endian.TO_BE), (InsnClass.ALU64, Endian.TO_LE))
       for bits in (16, 32, 64)]
)
JMP_INSNS = [Instruction(make(c, op, Source.X), 1, 2, 1) for c in (InsnClass.JMP, InsnClass.JMP32) for op in REF_COND]

operand = st.one_of(st.sampled_from(EDGES), st.integers(0, M64), st.integers(0, 0xFF),
                    st.integers(0, M32).map(lambda v: v | 0xFFFF_FFFF_0000_0000))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(a=operand, b=operand)
def test_z3_and_concrete_agree_on_alu(a: int, b: int) -> None:
    for insn in ALU_INSNS:
        concrete = alu(INT_OPS, insn, a, b)
        assert z3_value(alu(Z3_OPS, insn, bv(a), bv(b))) == concrete, (str(insn), hex(a), hex(b))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(a=operand, b=operand)
def test_z3_and_concrete_agree_on_jumps(a: int, b: int) -> None:
    for insn in JMP_INSNS:
        assert z3_bool(jump_taken(Z3_OPS, insn, bv(a), bv(b))) == jump_taken(INT_OPS, insn, a, b), str(insn)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(old=operand, src=operand, r0=operand)
def test_z3_and_concrete_agree_on_atomics_and_loads(old: int, src: int, r0: int) -> None:
    for aop in (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR, AtomicOp.FETCH_ADD, AtomicOp.XCHG,
                AtomicOp.CMPXCHG):
        for sz in (Size.W, Size.DW):
            w = sz.bytes * 8
            cell = old & ((1 << w) - 1)
            want = atomic(INT_OPS, aop, sz, cell, src, r0)
            got = atomic(Z3_OPS, aop, sz, bv(cell, w), bv(src), bv(r0))
            assert z3_value(got.memory) == want.memory
            assert got.register == want.register
            if want.fetched is not None:
                assert z3_value(got.fetched) == want.fetched
    for sz in (Size.B, Size.H, Size.W, Size.DW):
        w = sz.bytes * 8
        raw = old & ((1 << w) - 1)
        for signed in (False, True):
            assert z3_value(load_value(Z3_OPS, bv(raw, w), sz, signed)) == load_value(INT_OPS, raw, sz, signed)
        assert z3_value(store_value(Z3_OPS, bv(old), sz)) == store_value(INT_OPS, old, sz)


def test_z3_encoding_is_symbolic() -> None:
    """The Z3 instance builds terms over free variables, so the table can be used for proofs: e.g. it
    proves that ALU32 results (END aside: to-le/be 64 keeps all 64 bits) never have upper bits set, and
    that x / 0 == 0 for every x."""
    x, y = z3.BitVecs("x y", 64)
    for insn in ALU_INSNS:
        if insn.cls == InsnClass.ALU and insn.kind != Kind.END:
            result = alu(Z3_OPS, insn, x, y)
            solver = z3.Solver()
            solver.add(z3.Extract(63, 32, result) != 0)
            assert solver.check() == z3.unsat, str(insn)
    div = reg_insn(InsnClass.ALU64, AluOp.DIV)
    solver = z3.Solver()
    solver.add(alu(Z3_OPS, div, x, bv(0)) != 0)
    assert solver.check() == z3.unsat
