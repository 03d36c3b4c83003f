"""Tnum domain: every operation checked exhaustively at 4 (mul: 5) bits, proven by Z3 at 64 bits where the
operation is a word-level core, and sampled by hypothesis at 64 bits."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfdsl.bpf.opcode import AluOp
from pybpfdsl.verify.domains.bits import mask_of
from pybpfdsl.verify.domains.tnum import (
    Tnum,
    tnum_add_bits,
    tnum_and_bits,
    tnum_arshift_bits,
    tnum_join_bits,
    tnum_lshift_bits,
    tnum_meet_bits,
    tnum_or_bits,
    tnum_rshift_bits,
    tnum_sub_bits,
    tnum_xor_bits,
)
from tests.verify.soundness import (
    Z3Word,
    all_tnums,
    alu_concrete,
    bswap_concrete,
    check_binary,
    members_mask,
    prove,
    sign_extend_concrete,
    z3_tnum_member,
    z3_tnum_wf,
)

W4 = 4
TNUMS4 = all_tnums(W4)


def gamma(t: Tnum) -> int:
    return members_mask(t.contains, t.width)


def alpha(xs: list[int], width: int) -> Tnum:
    """Best abstraction of a non-empty set of patterns."""
    return functools.reduce(Tnum.join, (Tnum.const(x, width) for x in xs))


BINARY: dict[str, tuple[Callable[[Tnum, Tnum], Tnum], AluOp]] = {
    "add": (Tnum.add, AluOp.ADD),
    "sub": (Tnum.sub, AluOp.SUB),
    "mul": (Tnum.mul, AluOp.MUL),
    "and": (Tnum.and_, AluOp.AND),
    "or": (Tnum.or_, AluOp.OR),
    "xor": (Tnum.xor, AluOp.XOR),
    "lshift": (Tnum.lshift_by, AluOp.LSH),
    "rshift": (Tnum.rshift_by, AluOp.RSH),
    "arshift": (Tnum.arshift_by, AluOp.ARSH),
}


# --------------------------------------------------------------------------- #
# Exhaustive soundness at small widths
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_sound_exhaustive_4_bits(name: str) -> None:
    abstract, op = BINARY[name]
    failures = check_binary(TNUMS4, gamma, abstract, lambda x, y: alu_concrete(op, x, y, W4), W4)
    assert not failures, failures


def test_mul_sound_exhaustive_5_bits() -> None:
    failures = check_binary(all_tnums(5), gamma, Tnum.mul, lambda x, y: alu_concrete(AluOp.MUL, x, y, 5), 5)
    assert not failures, failures


@pytest.mark.parametrize("name", ["and", "or", "xor", "add", "sub"])
def test_bitwise_and_additive_ops_are_optimal(name: str) -> None:
    """and/or/xor/add/sub give the least tnum containing every concrete result (the CGO'22 result)."""
    abstract, op = BINARY[name]
    for a in TNUMS4:
        for b in TNUMS4:
            best = alpha([alu_concrete(op, x, y, W4) for x in a.members() for y in b.members()], W4)
            assert abstract(a, b) == best, (a, b)


def test_constants_fold_exactly() -> None:
    for name, (abstract, op) in BINARY.items():
        for x in range(16):
            for y in range(16):
                expected = Tnum.const(alu_concrete(op, x, y, W4), W4)
                assert abstract(Tnum.const(x, W4), Tnum.const(y, W4)) == expected, name


def test_unary_ops_exhaustive() -> None:
    for t in TNUMS4:
        members = list(t.members())
        assert all(t.neg().contains(-x & 15) for x in members)
        for k in range(W4):
            assert all(t.lshift(k).contains((x << k) & 15) for x in members)
            assert all(t.rshift(k).contains(x >> k) for x in members)
            assert all(t.arshift(k).contains(alu_concrete(AluOp.ARSH, x, k, W4)) for x in members)
        for bits in (1, 2, 3):
            assert all(t.subreg(bits).contains(x & mask_of(bits)) for x in members)
        wide = t.sign_extend(8)
        assert all(wide.contains(sign_extend_concrete(x, 4, 8)) for x in members)
        assert all(t.zero_extend(8).contains(x) for x in members)
        assert t.shift_counts() == sorted({x & 3 for x in members})


def test_bswap_and_with_subreg() -> None:
    t = Tnum(0x1200, 0x00F0, 16)
    swapped = t.bswap(16)
    assert all(swapped.contains(bswap_concrete(x, 16)) for x in t.members())
    assert Tnum(0xAB00, 0xF, 16).with_subreg(Tnum(0x3, 0x4, 8)) == Tnum(0xAB03, 0x4, 16)


def test_members_bounds_and_queries_exhaustive() -> None:
    for t in TNUMS4:
        members = list(t.members())
        assert sorted(members) == [x for x in range(16) if t.contains(x)]
        assert (t.umin, t.umax) == (min(members), max(members))
        signed = [x - 16 if x & 8 else x for x in members]
        assert (t.smin, t.smax) == (min(signed), max(signed))
        assert t.is_const == (len(members) == 1)
        for x in range(-1, 18):
            ge = [m for m in members if m >= x]
            le = [m for m in members if m <= x]
            assert t.min_ge(x) == (min(ge) if ge else None), (t, x)
            assert t.max_le(x) == (max(le) if le else None), (t, x)


def test_from_range_is_least_tnum_containing_range() -> None:
    for lo in range(32):
        for hi in range(lo, 32):
            assert Tnum.from_range(lo, hi, 5) == alpha(list(range(lo, hi + 1)), 5)


# --------------------------------------------------------------------------- #
# Lattice laws (exhaustive at 4 bits)
# --------------------------------------------------------------------------- #


def test_le_is_gamma_inclusion() -> None:
    g = {t: gamma(t) for t in TNUMS4}
    for a in TNUMS4:
        for b in TNUMS4:
            assert a.le(b) == (g[a] & ~g[b] == 0)


def test_join_is_least_upper_bound_and_meet_is_intersection() -> None:
    g = {t: gamma(t) for t in TNUMS4}
    for a in TNUMS4:
        for b in TNUMS4:
            j = a.join(b)
            assert a.le(j) and b.le(j)
            assert j == alpha([x for x in range(16) if (g[a] | g[b]) >> x & 1], W4)
            assert j == b.join(a)
            m = a.meet(b)
            assert (g[a] & g[b] == 0) if m is None else g[m] == g[a] & g[b]
            assert a.widen(b) == j
            if b.le(a):
                n = a.narrow(b)
                assert b.le(n) and n.le(a)


def test_widening_chains_stabilise_within_width_steps() -> None:
    import random

    rng = random.Random(7)
    for _ in range(200):
        x = Tnum.const(rng.randrange(1 << 64))
        changes = 0
        for _ in range(200):
            nxt = x.widen(x.join(Tnum.const(rng.randrange(1 << 64))))
            changes += nxt != x
            x = nxt
        assert changes <= 64


# --------------------------------------------------------------------------- #
# Z3 proofs at 64 bits: the same core functions, on symbolic (value, mask) pairs
# --------------------------------------------------------------------------- #

W64 = 64
FULL = Z3Word(mask_of(W64))


def _words(*names: str) -> list[Z3Word]:
    return [Z3Word(z3.BitVec(n, W64)) for n in names]


Core = Callable[[Z3Word, Z3Word, Z3Word, Z3Word, Z3Word], tuple[Z3Word, Z3Word]]
CORES: dict[str, tuple[Core, Callable[[Z3Word, Z3Word], Z3Word]]] = {
    "add": (tnum_add_bits, lambda x, y: x + y),  # type: ignore[dict-item]
    "sub": (tnum_sub_bits, lambda x, y: x - y),  # type: ignore[dict-item]
    "and": (tnum_and_bits, lambda x, y: x & y),  # type: ignore[dict-item]
    "or": (tnum_or_bits, lambda x, y: x | y),  # type: ignore[dict-item]
    "xor": (tnum_xor_bits, lambda x, y: x ^ y),  # type: ignore[dict-item]
}


@pytest.mark.parametrize("name", list(CORES))
def test_z3_proves_binary_core_sound_at_64_bits(name: str) -> None:
    core, concrete = CORES[name]
    av, am, bv, bm, x, y = _words("av", "am", "bv", "bm", "x", "y")
    rv, rm = core(av, am, bv, bm, FULL)
    premises = [z3_tnum_wf(av.e, am.e), z3_tnum_wf(bv.e, bm.e), z3_tnum_member(av.e, am.e, x.e),
                z3_tnum_member(bv.e, bm.e, y.e)]
    assert prove(z3_tnum_wf(rv.e, rm.e), premises[:2]) is None
    assert prove(z3_tnum_member(rv.e, rm.e, concrete(x, y).e), premises) is None


@pytest.mark.parametrize("kind", ["lshift", "rshift", "arshift"])
def test_z3_proves_shift_core_sound_at_64_bits_for_every_count(kind: str) -> None:
    v, m, x, k = _words("v", "m", "x", "k")
    rv: Any
    rm: Any
    if kind == "lshift":
        rv, rm = tnum_lshift_bits(v, m, k, FULL)  # type: ignore[arg-type]
        expected = x.e << k.e
    elif kind == "rshift":
        rv, rm = tnum_rshift_bits(v, m, k)  # type: ignore[arg-type]
        expected = z3.LShR(x.e, k.e)
    else:
        rv, rm = tnum_arshift_bits(v, m, k, W64 - 1, FULL)  # type: ignore[arg-type]
        expected = x.e >> k.e
    premises = [z3.ULT(k.e, W64), z3_tnum_wf(v.e, m.e), z3_tnum_member(v.e, m.e, x.e)]
    claim = z3.And(z3_tnum_wf(rv.e, rm.e), z3_tnum_member(rv.e, rm.e, expected))
    assert prove(claim, premises) is None


def test_z3_proves_join_is_upper_bound_and_meet_exact() -> None:
    av, am, bv, bm, x = _words("av", "am", "bv", "bm", "x")
    jv: Any
    jm: Any
    mv: Any
    mm: Any
    conflict: Any
    jv, jm = tnum_join_bits(av, am, bv, bm, FULL)  # type: ignore[arg-type]
    wf = [z3_tnum_wf(av.e, am.e), z3_tnum_wf(bv.e, bm.e)]
    in_a, in_b = z3_tnum_member(av.e, am.e, x.e), z3_tnum_member(bv.e, bm.e, x.e)
    assert prove(z3.And(z3_tnum_wf(jv.e, jm.e), z3_tnum_member(jv.e, jm.e, x.e)), [*wf, z3.Or(in_a, in_b)]) is None
    mv, mm, conflict = tnum_meet_bits(av, am, bv, bm, FULL)  # type: ignore[arg-type]
    in_meet = z3.And(conflict.e == 0, z3_tnum_member(mv.e, mm.e, x.e))
    assert prove(in_meet == z3.And(in_a, in_b), wf) is None
    assert prove(z3.Implies(conflict.e == 0, z3_tnum_wf(mv.e, mm.e)), wf) is None


# --------------------------------------------------------------------------- #
# Hypothesis at 64 bits (covers mul and the by-tnum shifts, which Z3 cannot take whole)
# --------------------------------------------------------------------------- #


@st.composite
def tnum_and_member(draw: st.DrawFn) -> tuple[Tnum, int]:
    mask = draw(st.one_of(st.integers(0, mask_of(64)), st.sampled_from([0, 1, 0xFF, 0xFFFF_FFFF, 1 << 63])))
    value = draw(st.integers(0, mask_of(64))) & ~mask
    t = Tnum(value, mask)
    x = value | (draw(st.integers(0, mask_of(64))) & mask)
    return t, x


@settings(max_examples=300, deadline=None)
@given(tnum_and_member(), tnum_and_member(), st.sampled_from(sorted(BINARY)))
def test_binary_sound_64_bits(a: tuple[Tnum, int], b: tuple[Tnum, int], name: str) -> None:
    (ta, x), (tb, y) = a, b
    abstract, op = BINARY[name]
    assert abstract(ta, tb).contains(alu_concrete(op, x, y))
