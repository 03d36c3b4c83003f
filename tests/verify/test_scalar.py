"""Scalars (tnum × u64 × s64 × u32 × s32): every ALU op (64- and 32-bit) and every branch condition (64-
and 32-bit, taken and not, incl. JSET) checked against the concrete semantics for every concrete member,
at 8 bits with a 4-bit "32-bit" half, over all pairs of a seeded family of abstract values; checked by
Z3 at 64 bits on random abstract values; lattice laws, reduction and precision pitfalls."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import z3

from pybpfdsl.bpf.opcode import JMP_OPS, AluOp, JmpOp
from pybpfdsl.verify.domains.bits import mask_of, to_signed
from pybpfdsl.verify.domains.interval import Interval
from pybpfdsl.verify.domains.scalar import Scalar, alu, bswap, end, movsx, refine, truncate
from pybpfdsl.verify.domains.tnum import Tnum
from tests.verify.soundness import (
    alu_concrete,
    bits_of,
    bswap_concrete,
    check_binary,
    jmp_concrete,
    members_mask,
    prove,
    sign_extend_concrete,
    z3_alu_scalar,
    z3_in_scalar,
    z3_jmp_scalar,
)

W = 8  # register width for the exhaustive checks; its low half (4 bits) plays the 32-bit subregister
H = W // 2


def random_scalar(rng: random.Random, width: int) -> Scalar:
    """A scalar built from one or two random facts, biased toward small sets and boundary values."""
    h = width // 2
    full = mask_of(width)
    edges = [0, 1, mask_of(h), 1 << (h - 1), 1 << h, 1 << (width - 1), full, full - 1, (1 << (width - 1)) - 1]

    def point(bits: int) -> int:
        p = rng.choice(edges) if rng.random() < 0.5 else rng.randrange(1 << bits)
        return (p + rng.choice([0, 0, 1, -1, -2, 3])) & mask_of(bits)

    def fact() -> Scalar:
        kind = rng.randrange(6)
        span = rng.choice([0, 1, 3, 10, 40]) if width <= 8 else rng.choice([0, 1, 7, 300, 1 << 33, 1 << 62])
        if kind == 0:
            return Scalar.const(point(width), width)
        if kind == 1:
            lo = point(width)
            return Scalar.urange(lo, min(lo + span, full), width)
        if kind == 2:
            lo = to_signed(point(width), width)
            return Scalar.srange(lo, min(lo + span, (1 << (width - 1)) - 1), width)
        if kind == 3:
            m = 0
            for _ in range(rng.randrange(1, 4 if width <= 8 else 12)):
                m |= 1 << rng.randrange(width)
            return Scalar.make(width, tnum=Tnum(point(width) & ~m, m, width))
        if kind == 4:  # a fact about the low half only
            lo = point(h)
            return Scalar.make(width, u32=Interval(lo, min(lo + span, mask_of(h)), h))
        return Scalar.top(width)

    s = fact()
    if rng.random() < 0.4:
        t = s.meet(fact())
        if not t.is_bottom:
            s = t
    return s


def family(seed: int, n: int) -> list[Scalar]:
    rng = random.Random(seed)
    fixed = [Scalar.const(0, W), Scalar.const(0x80, W), Scalar.const(0xFF, W), Scalar.urange(0x0E, 0x12, W),
             Scalar.srange(-3, 2, W), Scalar.make(W, u32=Interval(0, 2, H))]
    out = list(fixed)
    while len(out) < n:
        s = random_scalar(rng, W)
        if s not in out:
            out.append(s)
    return out


FAMILY = family(1, 16)


def gamma(s: Scalar) -> int:
    return members_mask(s.contains, s.width)


BINARY_OPS = [(AluOp.ADD, False), (AluOp.SUB, False), (AluOp.MUL, False), (AluOp.DIV, False), (AluOp.DIV, True),
              (AluOp.MOD, False), (AluOp.MOD, True), (AluOp.OR, False), (AluOp.AND, False), (AluOp.XOR, False),
              (AluOp.LSH, False), (AluOp.RSH, False), (AluOp.ARSH, False), (AluOp.NEG, False), (AluOp.MOV, False)]
CONDS = list(JMP_OPS)


def concrete_alu(op: AluOp, signed: bool, alu32: bool) -> Callable[[int, int], int]:
    if alu32:
        return lambda x, y: alu_concrete(op, x & mask_of(H), y & mask_of(H), H, signed)
    return lambda x, y: alu_concrete(op, x, y, W, signed)


# --------------------------------------------------------------------------- #
# ALU transfer: every concrete member, all pairs of the family
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("alu32", [False, True], ids=["alu64", "alu32"])
@pytest.mark.parametrize(("op", "signed"), BINARY_OPS, ids=[f"{o.name}{'_s' if s else ''}" for o, s in BINARY_OPS])
def test_alu_sound_for_every_member(op: AluOp, signed: bool, alu32: bool) -> None:
    failures = check_binary(
        FAMILY, gamma, lambda a, b: alu(op, a, b, alu32=alu32, signed=signed), concrete_alu(op, signed, alu32), W
    )
    assert not failures, failures


@pytest.mark.parametrize("alu32", [False, True], ids=["alu64", "alu32"])
@pytest.mark.parametrize(("op", "signed"), BINARY_OPS, ids=[f"{o.name}{'_s' if s else ''}" for o, s in BINARY_OPS])
def test_alu_on_constants_is_exact(op: AluOp, signed: bool, alu32: bool) -> None:
    rng = random.Random(op.value)
    fn = concrete_alu(op, signed, alu32)
    for _ in range(25):
        x, y = rng.randrange(256), rng.randrange(256)
        r = alu(op, Scalar.const(x, W), Scalar.const(y, W), alu32=alu32, signed=signed)
        assert r == Scalar.const(fn(x, y), W), (x, y, r)


# --------------------------------------------------------------------------- #
# Branch refinement: every concrete pair on the edge must survive; None only if no pair takes the edge
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("jmp32", [False, True], ids=["jmp64", "jmp32"])
@pytest.mark.parametrize("op", CONDS, ids=[o.name for o in CONDS])
def test_refine_sound_for_every_member(op: JmpOp, jmp32: bool) -> None:
    # holds[x] = bitset of the y for which the condition holds
    n = 1 << W
    holds = [sum(1 << y for y in range(n) if (jmp_concrete(op, x & mask_of(H), y & mask_of(H), H) if jmp32
                                              else jmp_concrete(op, x, y, W))) for x in range(n)]
    gammas = [gamma(s) for s in FAMILY]
    members = [bits_of(g) for g in gammas]
    for i, a in enumerate(FAMILY):
        for j, b in enumerate(FAMILY):
            for taken in (False, True):
                r = refine(op, jmp32, a, b, taken)
                xs_on_edge, ys_on_edge = 0, 0
                for x in members[i]:
                    ys = (holds[x] if taken else ~holds[x]) & gammas[j]
                    if ys:
                        xs_on_edge |= 1 << x
                        ys_on_edge |= ys
                if r is None:
                    assert xs_on_edge == 0, (a, b, taken)
                else:
                    assert xs_on_edge & ~gamma(r[0]) == 0 and ys_on_edge & ~gamma(r[1]) == 0, (a, b, taken, r)


def test_refine_decides_constant_comparisons() -> None:
    """With constant operands exactly one edge is feasible, for every condition and both widths."""
    for op in CONDS:
        for jmp32 in (False, True):
            for x, y in [(0, 0), (3, 0x13), (0x80, 1), (0xF0, 0x0F), (0x7F, 0x80)]:
                holds = jmp_concrete(op, x & 15, y & 15, H) if jmp32 else jmp_concrete(op, x, y, W)
                a, b = Scalar.const(x, W), Scalar.const(y, W)
                assert refine(op, jmp32, a, b, holds) == (a, b)
                assert refine(op, jmp32, a, b, not holds) is None, (op, jmp32, x, y)


# --------------------------------------------------------------------------- #
# Width changes
# --------------------------------------------------------------------------- #


def test_movsx_and_truncate_sound() -> None:
    for a in FAMILY:
        xs = bits_of(gamma(a))
        for bits in (2, 4):
            r = movsx(a, bits)
            assert all(r.contains(sign_extend_concrete(x, bits, W)) for x in xs)
            t = truncate(a, bits)
            assert all(t.contains(x & mask_of(bits)) for x in xs)
        r32 = movsx(a, 2, alu32=True)
        assert all(r32.contains(sign_extend_concrete(x, 2, H)) for x in xs)


def test_bswap_and_end_sound_at_16_and_64_bits() -> None:
    rng = random.Random(5)
    for width in (16, 64):
        for _ in range(40):
            a = random_scalar(rng, width)
            if a.is_bottom:
                continue
            samples = [x for x in (a.u64.lo, a.u64.hi, a.tnum.value, a.tnum.umax) if a.contains(x)]
            for bits in (16, 32, 64):
                if bits > width:
                    continue
                for x in samples:
                    assert bswap(a, bits).contains(bswap_concrete(x, bits))
                    assert end(a, True, bits).contains(bswap_concrete(x, bits))
                    assert end(a, False, bits).contains(x & mask_of(bits))
    assert bswap(Scalar.const(0x1122, 64), 16) == Scalar.const(0x2211, 64)


# --------------------------------------------------------------------------- #
# Reduction and lattice laws
# --------------------------------------------------------------------------- #


def test_reduce_keeps_exactly_the_members() -> None:
    rng = random.Random(9)
    for _ in range(400):
        a, b = random_scalar(rng, W), random_scalar(rng, W)
        raw = Scalar(a.tnum, b.u64, a.s64, b.u32, rng.choice([a.s32, b.s32]))  # an unreduced mixture
        reduced = raw.reduce()
        assert gamma(reduced) == gamma(raw)
        assert reduced.is_bottom == (gamma(raw) == 0)  # emptiness is detected, not left as odd bounds
        assert reduced.reduce() == reduced


def test_reduce_shortcuts_answer_what_the_rounds_compute() -> None:
    """Scalar.reduce memoizes, and a known-constant tnum skips the rounds: both give exactly the reduction
    of the rounds themselves (the analysis' verdicts must not depend on which path answered)."""
    rng = random.Random(13)
    for width in (W, 64):
        for _ in range(400):
            a, b = random_scalar(rng, width), random_scalar(rng, width)
            t = a.tnum if rng.random() < 0.5 else Tnum.const(rng.choice([a.tnum.value, b.tnum.value, b.u64.lo]), width)
            raw = Scalar(t, b.u64, a.s64, b.u32, rng.choice([a.s32, b.s32]))
            rounds = raw._reduce()[0]
            assert raw.reduce() == rounds
            assert raw.reduce() == rounds  # again, from the memo


def test_reduce_detects_empty_tnum_range_intersection() -> None:
    """{0, 4} ∩ [1, 3] is empty even though [1, 3] lies inside [tnum.umin, tnum.umax]."""
    assert Scalar.make(64, tnum=Tnum(0, 4), u64=Interval(1, 3)).is_bottom


def test_lattice_laws_on_family() -> None:
    g = {s: gamma(s) for s in FAMILY}
    for a in FAMILY:
        for b in FAMILY:
            j, m, w = a.join(b), a.meet(b), a.widen(b)
            assert (g[a] | g[b]) & ~gamma(j) == 0
            assert gamma(m) == g[a] & g[b]
            assert a.le(w) and b.le(w)
            if a.le(b):
                assert g[a] & ~g[b] == 0
            if m.le(a):
                n = a.narrow(m)
                assert gamma(m) & ~gamma(n) == 0 and gamma(n) & ~g[a] == 0


def test_widening_terminates() -> None:
    rng = random.Random(4)
    for _ in range(25):
        x = Scalar.const(rng.randrange(1 << 64))
        changes = 0
        for _ in range(30):
            nxt = x.widen(x.join(random_scalar(rng, 64)), thresholds=[0, 255, 65535])
            assert x.le(nxt)
            changes += nxt != x
            x = nxt
        assert changes <= 64 + 4 * 2 * 4  # tnum height + each interval bound: ≤ thresholds + 1 moves


def test_loop_counter_widen_then_narrow() -> None:
    """i = 0; while i < 10: i += 1 — the head stabilises at [0, 10] after widening and narrowing."""
    init, one, ten = Scalar.const(0), Scalar.const(1), Scalar.const(10)

    def body(head: Scalar) -> Scalar:
        inside = refine(JmpOp.JLT, False, head, ten, True)
        return init if inside is None else init.join(alu(AluOp.ADD, inside[0], one))

    head = init
    while not (nxt := head.widen(body(head))).le(head):
        head = nxt
    for _ in range(3):
        head = head.narrow(body(head)).reduce()
    assert head.u64 == Interval(0, 10) and head.s64 == Interval(0, 10, 64, True)
    exit_state = refine(JmpOp.JLT, False, head, ten, False)
    assert exit_state is not None and exit_state[0] == Scalar.const(10)


# --------------------------------------------------------------------------- #
# Precision and known pitfalls (ALU32/JMP32, and/or/xor, JSET)
# --------------------------------------------------------------------------- #


def test_jmp32_refines_only_the_low_half_unless_the_upper_half_is_known() -> None:
    r = refine(JmpOp.JLT, True, Scalar.top(), Scalar.const(10), True)
    assert r is not None
    a = r[0]
    assert a.u32 == Interval(0, 9, 32)
    assert a.contains(0x1_0000_0005) and a.u64.hi == 0xFFFF_FFFF_0000_0009  # largest value with low half ≤ 9
    r = refine(JmpOp.JLT, True, Scalar.urange(0, 0xFFFF_FFFF), Scalar.const(10), True)
    assert r is not None and r[0].u64 == Interval(0, 9)
    r = refine(JmpOp.JLT, True, Scalar.urange(0x5_0000_0000, 0x5_FFFF_FFFF), Scalar.const(10), True)
    assert r is not None and r[0].u64 == Interval(0x5_0000_0000, 0x5_0000_0009)


def test_alu32_zero_extends() -> None:
    r = alu(AluOp.SUB, Scalar.const(0), Scalar.const(1), alu32=True)
    assert r == Scalar.const(0xFFFF_FFFF)
    r = alu(AluOp.MOV, Scalar.top(), Scalar.srange(-1, 0), alu32=True)
    assert r.u64.hi == 0xFFFF_FFFF and r.contains(0xFFFF_FFFF) and r.contains(0)
    r = alu(AluOp.ADD, Scalar.urange(0xFFFF_FFF0, 0xFFFF_FFFF), Scalar.const(0x20), alu32=True)
    assert r.contains(0x10) and r.contains(0x1F) and r.u64.hi <= 0xFFFF_FFFF


def test_bitwise_precision() -> None:
    assert alu(AluOp.AND, Scalar.top(), Scalar.const(0xFF)).u64 == Interval(0, 0xFF)
    r = alu(AluOp.OR, Scalar.urange(1, 2), Scalar.urange(1, 2))
    assert r.contains(3) and r.u64 == Interval(1, 3)
    # CVE-2021-3490 shape: 32-bit AND of values whose upper halves differ must not invent 64-bit bounds.
    a = Scalar.make(64, tnum=Tnum(0x1_0000_0000, 0xFFFF_FFFF))
    r = alu(AluOp.AND, a, Scalar.const(0xF), alu32=True)
    assert r.u64 == Interval(0, 0xF)


def test_jset_refinement() -> None:
    r = refine(JmpOp.JSET, False, Scalar.urange(0, 255), Scalar.const(0x10), True)
    assert r is not None and r[0].tnum.value & 0x10 and r[0].u64.lo == 0x10
    r = refine(JmpOp.JSET, False, Scalar.urange(0, 255), Scalar.const(0x10), False)
    assert r is not None and r[0].tnum.mask & 0x10 == 0 and r[0].tnum.value & 0x10 == 0
    assert refine(JmpOp.JSET, False, Scalar.const(0), Scalar.top(), True) is None
    assert refine(JmpOp.JSET, False, Scalar.const(6), Scalar.make(64, tnum=Tnum(2, 0xF0)), False) is None
    r = refine(JmpOp.JSET, True, Scalar.const(0x1_0000_0000), Scalar.const(0x1_0000_0000), True)
    assert r is None  # the low halves share no bit


def test_jne_trims_interval_ends() -> None:
    r = refine(JmpOp.JNE, False, Scalar.urange(0, 10), Scalar.const(0), True)
    assert r is not None and r[0].u64 == Interval(1, 10)
    assert refine(JmpOp.JEQ, False, Scalar.urange(0, 10), Scalar.urange(20, 30), True) is None


# --------------------------------------------------------------------------- #
# Z3 at 64 bits on random abstract scalars
# --------------------------------------------------------------------------- #

Z3_ALU = [(AluOp.ADD, False), (AluOp.SUB, False), (AluOp.AND, False), (AluOp.OR, False), (AluOp.XOR, False),
          (AluOp.LSH, False), (AluOp.RSH, False), (AluOp.ARSH, False), (AluOp.NEG, False)]


@pytest.mark.parametrize("alu32", [False, True], ids=["alu64", "alu32"])
@pytest.mark.parametrize(("op", "signed"), Z3_ALU, ids=[o.name for o, _ in Z3_ALU])
def test_z3_alu_no_counterexample_at_64_bits(op: AluOp, signed: bool, alu32: bool) -> None:
    rng = random.Random(f"{op.name}{alu32}")
    x, y = z3.BitVecs("x y", 64)
    for _ in range(6):
        a, b = random_scalar(rng, 64), random_scalar(rng, 64)
        r = alu(op, a, b, alu32=alu32, signed=signed)
        model = prove(z3_in_scalar(r, z3_alu_scalar(op, x, y, 64, signed, alu32)),
                      [z3_in_scalar(a, x), z3_in_scalar(b, y)])
        assert model is None, (a, b, r, model)


@pytest.mark.parametrize("jmp32", [False, True], ids=["jmp64", "jmp32"])
@pytest.mark.parametrize("op", CONDS, ids=[o.name for o in CONDS])
def test_z3_refine_no_counterexample_at_64_bits(op: JmpOp, jmp32: bool) -> None:
    rng = random.Random(f"{op.name}{jmp32}")
    x, y = z3.BitVecs("x y", 64)
    for _ in range(4):
        a, b = random_scalar(rng, 64), random_scalar(rng, 64)
        if rng.random() < 0.3:
            b = Scalar.const(rng.choice([0, 1, 0x10, 0xFFFF_FFFF, 1 << 63]))
        for taken in (False, True):
            r = refine(op, jmp32, a, b, taken)
            edge = z3_jmp_scalar(op, x, y, 64, jmp32)
            premises = [z3_in_scalar(a, x), z3_in_scalar(b, y), edge if taken else z3.Not(edge)]
            claim = z3.BoolVal(False) if r is None else z3.And(z3_in_scalar(r[0], x), z3_in_scalar(r[1], y))
            assert prove(claim, premises) is None, (a, b, taken, r)
