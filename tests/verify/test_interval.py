"""Interval domain (unsigned and signed views): every transfer function checked exhaustively over all
intervals at 4 bits, checked by Z3 at 64 bits on random (edge-biased) abstract inputs, sampled by
hypothesis at 64 bits; lattice laws exhaustively at 4 bits."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfdsl.bpf.opcode import AluOp
from pybpfdsl.verify.domains import interval as iv
from pybpfdsl.verify.domains.bits import mask_of, to_signed
from pybpfdsl.verify.domains.interval import Interval, wrap_range
from tests.verify.soundness import (
    all_intervals,
    alu_concrete,
    check_binary,
    members_mask,
    prove,
    z3_alu,
    z3_in_interval,
)

W4 = 4
VIEWS = {False: all_intervals(W4, False), True: all_intervals(W4, True)}

Op = Callable[[Interval, Interval], Interval]
OPS: dict[str, tuple[Op, AluOp, bool]] = {
    "add": (iv.add, AluOp.ADD, False),
    "sub": (iv.sub, AluOp.SUB, False),
    "mul": (iv.mul, AluOp.MUL, False),
    "udiv": (iv.udiv, AluOp.DIV, False),
    "sdiv": (iv.sdiv, AluOp.DIV, True),
    "umod": (iv.umod, AluOp.MOD, False),
    "smod": (iv.smod, AluOp.MOD, True),
    "and": (iv.bit_and, AluOp.AND, False),
    "or": (iv.bit_or, AluOp.OR, False),
    "xor": (iv.bit_xor, AluOp.XOR, False),
    "lsh": (iv.lsh, AluOp.LSH, False),
    "rsh": (iv.rsh, AluOp.RSH, False),
    "arsh": (iv.arsh, AluOp.ARSH, False),
}


def gamma(i: Interval) -> int:
    return members_mask(i.contains, i.width)


def hull_of(patterns: list[int], width: int, signed: bool) -> Interval:
    vals = [to_signed(p, width) if signed else p for p in patterns]
    return Interval(min(vals), max(vals), width, signed)


# --------------------------------------------------------------------------- #
# Exhaustive soundness at 4 bits
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("signed_view", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("name", list(OPS))
def test_binary_sound_exhaustive_4_bits(name: str, signed_view: bool) -> None:
    abstract, op, signed_op = OPS[name]
    failures = check_binary(
        VIEWS[signed_view], gamma, abstract, lambda x, y: alu_concrete(op, x, y, W4, signed_op), W4
    )
    assert not failures, failures


@pytest.mark.parametrize("signed_view", [False, True], ids=["unsigned", "signed"])
def test_neg_sound_exhaustive(signed_view: bool) -> None:
    for a in VIEWS[signed_view]:
        r = iv.neg(a)
        assert all(r.contains(-x & 15) for x in a.members())
        assert r == wrap_range(-a.hi, -a.lo, W4, signed_view)


@pytest.mark.parametrize("signed_view", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("name", list(OPS))
def test_constants_fold_exactly(name: str, signed_view: bool) -> None:
    abstract, op, signed_op = OPS[name]
    for x in range(16):
        for y in range(16):
            r = abstract(Interval.const(x, W4, signed_view), Interval.const(y, W4, signed_view))
            assert r == Interval.const(alu_concrete(op, x, y, W4, signed_op), W4, signed_view), (x, y)


@pytest.mark.parametrize("signed_view", [False, True], ids=["unsigned", "signed"])
def test_add_sub_are_exact_hulls_unless_they_wrap(signed_view: bool) -> None:
    for a in VIEWS[signed_view]:
        for b in VIEWS[signed_view][::7]:
            for fn, op in ((iv.add, AluOp.ADD), (iv.sub, AluOp.SUB)):
                r = fn(a, b)
                results = [alu_concrete(op, x, y, W4) for x in a.members() for y in b.members()]
                assert r.is_top or r == hull_of(results, W4, signed_view)


def test_bitwise_bounds_are_not_endpoint_shortcuts() -> None:
    """[1, 2] | [1, 2] reaches 3 and [1, 2] ^ [1, 2] reaches 3, at no endpoint combination."""
    a = Interval(1, 2, 8)
    assert iv.bit_or(a, a).contains(3)
    assert iv.bit_xor(a, a).contains(3) and iv.bit_xor(a, a).contains(0)
    assert iv.bit_and(Interval(0, 255, 8), Interval(0, 15, 8)) == Interval(0, 15, 8)
    s = Interval(-1, 0, 8, True)
    assert iv.bit_and(s, Interval(5, 5, 8, True)) == Interval(0, 5, 8, True)


def test_division_by_zero_rules() -> None:
    zero = Interval(0, 0, 64)
    a = Interval(10, 20, 64)
    assert iv.udiv(a, zero) == zero
    assert iv.umod(a, zero) == a
    smin = Interval.const(1 << 63, 64, True)
    minus_one = Interval(-1, -1, 64, True)
    assert iv.sdiv(smin, minus_one) == smin
    assert iv.smod(smin, minus_one) == Interval(0, 0, 64, True)


def test_shift_counts_are_masked() -> None:
    assert iv.shift_counts(Interval(64, 65, 64)) == [0, 1]
    assert iv.lsh(Interval(1, 1, 64), Interval(64, 64, 64)) == Interval(1, 1, 64)
    assert iv.shift_counts(Interval(0, 200, 64)) == list(range(64))


def test_wrap_range_is_least_interval_of_the_residues() -> None:
    for signed in (False, True):
        for lo in range(-40, 40):
            for hi in range(lo, lo + 20):
                r = wrap_range(lo, hi, W4, signed)
                residues = [x & 15 for x in range(lo, hi + 1)]
                assert all(r.contains(p) for p in residues)
                best = hull_of(residues, W4, signed)
                assert r == best or (r.is_top and best.hi - best.lo + 1 < 16 and len(set(residues)) == 16) or \
                    (r.is_top and _wraps(lo, hi, signed))


def _wraps(lo: int, hi: int, signed: bool) -> bool:
    base = -8 if signed else 0
    return (lo - base) // 16 != (hi - base) // 16


# --------------------------------------------------------------------------- #
# Views and lattice laws (exhaustive at 4 bits)
# --------------------------------------------------------------------------- #


def test_split_and_view_are_exact() -> None:
    for signed in (False, True):
        for a in VIEWS[signed]:
            for target in (False, True):
                parts = a.split(target)
                assert sum(gamma(p) for p in parts) == gamma(a)  # disjoint pieces, same members
                assert a.view(target) == hull_of(list(a.members()), W4, target)
            t = a.to_tnum()
            assert all(t.contains(x) for x in a.members())


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_lattice_laws(signed: bool) -> None:
    values = [*VIEWS[signed], Interval.bottom(W4, signed)]
    g = {v: gamma(v) for v in values}
    for a in values:
        for b in values:
            assert a.le(b) == (g[a] & ~g[b] == 0)
            j, m = a.join(b), a.meet(b)
            assert a.le(j) and b.le(j) and j == b.join(a)
            assert g[m] == g[a] & g[b]  # meet is exact
            w = a.widen(b)
            assert a.le(w) and b.le(w)
            if b.le(a):
                n = a.narrow(b)
                assert b.le(n) and n.le(a)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_widening_terminates_and_narrowing_stays_above_fixpoint(signed: bool) -> None:
    rng = random.Random(3)
    lo_t, hi_t = Interval.top(64, signed).lo, Interval.top(64, signed).hi
    thresholds = [0, 255, 65535, -1] if signed else [0, 255, 65535]
    for _ in range(300):
        # Any ascending chain: each step joins in a random interval.
        x = Interval.const(rng.randrange(1 << 64), 64, signed)
        changes = 0
        for _ in range(50):
            c = sorted(rng.randrange(lo_t, hi_t + 1) for _ in range(2))
            nxt = x.widen(x.join(Interval(c[0], c[1], 64, signed)), thresholds)
            assert x.le(nxt)
            changes += nxt != x
            x = nxt
        assert changes <= 2 * (len(thresholds) + 1)
        # Narrowing from x toward any y ⊑ x keeps every z ⊑ y and stabilises in two steps.
        lo = rng.randrange(x.lo, x.hi + 1)
        y = Interval(lo, rng.randrange(lo, x.hi + 1), 64, signed)
        n1 = x.narrow(y)
        assert y.le(n1) and n1.le(x)
        assert n1.narrow(y).narrow(y) == n1.narrow(y)


def test_loop_counter_widen_then_narrow_recovers_bound() -> None:
    """i = 0; while i < 10: i += 1 — widening gives [0, max], narrowing with the guard gives [0, 10]."""
    head = Interval(0, 0, 64)
    for _ in range(5):
        body = iv.add(head.meet(Interval(0, 9, 64)), Interval(1, 1, 64))
        new = head.widen(head.join(body))
        if new == head:
            break
        head = new
    assert head == Interval.top(64)
    for _ in range(3):
        body = iv.add(head.meet(Interval(0, 9, 64)), Interval(1, 1, 64))
        head = head.narrow(Interval(0, 0, 64).join(body))
    assert head == Interval(0, 10, 64)


# --------------------------------------------------------------------------- #
# Z3 at 64 bits on random abstract inputs (the semantics there is Z3's, independent of the Python ints')
# --------------------------------------------------------------------------- #

EDGES = [0, 1, 2, 63, 64, 255, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, (1 << 63) - 1, 1 << 63,
         mask_of(64) - 1, mask_of(64)]


def random_interval(rng: random.Random, signed: bool, width: int = 64) -> Interval:
    def point() -> int:
        p = rng.choice(EDGES) if rng.random() < 0.5 else rng.randrange(1 << width)
        p = (p + rng.choice([0, 0, 1, -1, 7])) & mask_of(width)
        return to_signed(p, width) if signed else p

    a, b = point(), point()
    if rng.random() < 0.5:  # a small interval
        b = min(a + rng.randrange(300), Interval.top(width, signed).hi)
    return Interval(min(a, b), max(a, b), width, signed)


# Z3's bit-vector division and multiplication are too slow at 64 bits; those are checked at 16 bits here
# (and exhaustively at 4 bits, and by hypothesis at 64 bits).
Z3_WIDTH = {"mul": 16, "udiv": 16, "sdiv": 16, "umod": 16, "smod": 16}


@pytest.mark.parametrize("signed_view", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("name", list(OPS))
def test_z3_finds_no_counterexample(name: str, signed_view: bool) -> None:
    abstract, op, signed_op = OPS[name]
    width = Z3_WIDTH.get(name, 64)
    rng = random.Random(f"{name}{signed_view}")
    x, y = z3.BitVecs("x y", width)
    for _ in range(8):
        a, b = random_interval(rng, signed_view, width), random_interval(rng, signed_view, width)
        r = abstract(a, b)
        model = prove(z3_in_interval(r, z3_alu(op, x, y, width, signed_op)),
                      [z3_in_interval(a, x), z3_in_interval(b, y)])
        assert model is None, (a, b, r, model)


def test_concrete_semantics_agree_with_z3() -> None:
    rng = random.Random(11)
    for op in [*(o for _, o, _ in OPS.values()), AluOp.NEG]:
        for signed in (False, True):
            for _ in range(40):
                x = rng.choice(EDGES) if rng.random() < 0.5 else rng.randrange(1 << 64)
                y = rng.choice(EDGES) if rng.random() < 0.5 else rng.randrange(1 << 64)
                want = z3.simplify(z3_alu(op, z3.BitVecVal(x, 64), z3.BitVecVal(y, 64), 64, signed)).as_long()
                assert alu_concrete(op, x, y, 64, signed) == want, (op, signed, x, y)


# --------------------------------------------------------------------------- #
# Hypothesis at 64 bits
# --------------------------------------------------------------------------- #


@st.composite
def interval_and_member(draw: st.DrawFn, signed: bool) -> tuple[Interval, int]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    i = random_interval(rng, signed)
    v = draw(st.integers(i.lo, i.hi))
    return i, v & mask_of(64)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(OPS)), st.booleans(), st.data())
def test_binary_sound_64_bits(name: str, signed_view: bool, data: st.DataObject) -> None:
    abstract, op, signed_op = OPS[name]
    a, x = data.draw(interval_and_member(signed_view))
    b, y = data.draw(interval_and_member(signed_view))
    assert abstract(a, b).contains(alu_concrete(op, x, y, 64, signed_op))
