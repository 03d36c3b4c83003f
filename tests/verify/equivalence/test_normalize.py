"""The canonical form of bit-vector terms: exact (Z3 proves every normal form equal to its term) and
canonical for the rewrites LLVM does (reassociation, strength reduction, combined loads, masks)."""

from __future__ import annotations

from collections.abc import Callable

import z3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl.verify.equivalence.normalize import Normalizer, normalize
from pybpfdsl.verify.equivalence.symbolic_state import Term

X, Y, Z = z3.BitVecs("x y z", 8)
N4 = z3.BitVec("n", 4)
MEM = z3.Array("mem", z3.BitVecSort(64), z3.BitVecSort(8))
LEN = z3.BitVec("len", 64)


def _valid(claim: Term) -> bool:
    solver = z3.Solver()
    solver.add(z3.Not(claim))
    return bool(solver.check() == z3.unsat)


def _same(a: Term, b: Term) -> bool:
    """Both normalize to one term (one normalizer, as both sides of a query share one)."""
    norm = Normalizer()
    return bool(norm.normalize(a).get_id() == norm.normalize(b).get_id())


# -- exactness: random terms of small width ---------------------------------------------------------

Builder = Callable[[], Term]
_LEAVES: list[Term] = [X, Y, Z, z3.ZeroExt(4, N4), MEM[z3.BitVecVal(3, 64)], MEM[z3.ZeroExt(56, X)]]


def _unary(op: int, k: int, a: Term, b: Term) -> Term:
    c = z3.BitVecVal(k, 8)
    table: list[Callable[[], Term]] = [
        lambda: -a, lambda: ~a, lambda: a << (k % 9), lambda: z3.LShR(a, k % 9), lambda: a & c,
        lambda: a | c, lambda: a ^ c, lambda: a * c, lambda: a + c,
        lambda: z3.Extract(7, 0, z3.LShR(z3.Concat(a, b), k % 16)),
        lambda: z3.Extract(15, 8, z3.ZeroExt(8, a) * k + z3.ZeroExt(8, b)),
        lambda: z3.ZeroExt(4, z3.Extract(3, 0, a)), lambda: z3.Concat(z3.Extract(3, 0, a), z3.Extract(7, 4, b)),
        lambda: z3.If(z3.ULE(a, b), a, b), lambda: z3.If(a == c, b, c + 1), lambda: z3.If(a < b, a + b, a),
        lambda: z3.Extract(7, 0, z3.ZeroExt(8, a) + z3.ZeroExt(8, b)),
        lambda: z3.Extract(11, 4, z3.Concat(a, b)) & (k | 1),
        lambda: z3.Extract(7, 0, z3.SignExt(8, a) >> 3),
        lambda: MEM[z3.ZeroExt(56, a) + 2],
        # One's-complement shapes: a complemented byte in a word's low half, a sum taken modulo its
        # own width after widening, a constant xored into a concatenation, a read past a store at
        # another residue modulo 4.
        lambda: z3.Extract(15, 8, z3.ZeroExt(8, a) * 256 + (255 - k % 256) - z3.ZeroExt(8, b)),
        lambda: z3.Extract(7, 0, z3.ZeroExt(8, a - b) + z3.ZeroExt(8, b & c)),
        lambda: z3.Extract(11, 4, z3.Concat(a, b) ^ (k * 257)),
        lambda: z3.Extract(9, 2, z3.Concat(a, b) | (k << 4)),
        lambda: z3.Store(MEM, 4 * z3.ZeroExt(56, a) + 1 + k % 2, b)[4 * z3.ZeroExt(56, c) + 2],
    ]
    return table[op % len(table)]()


def _binary(op: int, a: Term, b: Term) -> Term:
    table: list[Callable[[], Term]] = [
        lambda: a + b, lambda: a - b, lambda: a * b, lambda: a & b, lambda: a | b, lambda: a ^ b,
        lambda: (a << 4) | z3.LShR(b, 4), lambda: (a & 0x0F) | (b & 0xF0), lambda: z3.UDiv(a, b | 1),
    ]
    return table[op % len(table)]()


terms = st.recursive(
    st.one_of(st.sampled_from(_LEAVES), st.integers(0, 255).map(lambda v: z3.BitVecVal(v, 8))),
    lambda inner: st.one_of(
        st.tuples(st.integers(0, 99), st.integers(0, 255), inner, inner).map(lambda t: _unary(*t)),
        st.tuples(st.integers(0, 99), inner, inner).map(lambda t: _binary(*t)),
    ),
    max_leaves=8,
)


def _conditions(a: Term, b: Term, op: int) -> Term:
    table: list[Callable[[], Term]] = [
        lambda: z3.ULE(a, b), lambda: a == b, lambda: a <= b, lambda: z3.UGT(a, b), lambda: a > b,
        lambda: z3.Or(z3.Extract(7, 4, a) != 0, z3.ULE(3, z3.Extract(3, 0, a))),
        lambda: z3.And(z3.Extract(7, 4, a) == 0, z3.ULE(z3.Extract(3, 0, a), 9)),
        lambda: z3.Concat(a, b) == 0x1234, lambda: z3.If(z3.ULT(a, b), z3.BitVecVal(1, 8), z3.BitVecVal(0, 8)) == 1,
        lambda: z3.Not(z3.And(a == 3, z3.Not(b == 3))),
    ]
    return table[op % len(table)]()


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(terms)
def test_normal_form_equals_the_term(t: Term) -> None:
    norm = Normalizer()
    n = norm.normalize(t)
    assert n.size() == t.size()
    assert _valid(t == n), (t, n)
    assert norm.normalize(n).eq(n), "normalizing a normal form changes it"


@_SETTINGS
@given(terms, terms, st.integers(0, 99))
def test_normal_form_of_a_condition_is_equivalent(a: Term, b: Term, op: int) -> None:
    c = _conditions(a, b, op)
    assert _valid(c == normalize(c)), c


@_SETTINGS
@given(terms, terms, st.integers(0, 99))
def test_normal_form_under_a_condition_is_exact_there(t: Term, a: Term, op: int) -> None:
    cond = z3.And(_conditions(a, X, op), Y == 5)
    n = Normalizer().normalize_under(z3.If(_conditions(a, X, op), t + Y, t), cond)
    assert _valid(z3.Implies(cond, n == t + Y))


def test_bounded_variables_are_their_low_bits() -> None:
    norm = Normalizer([(LEN, 0xFFFF)])
    claim = norm.normalize(z3.And(z3.ULE(LEN, 0xFFFFFEFFFFFFFFFF), LEN >= 34))  # signed compare
    assert _valid(z3.Implies(z3.ULE(LEN, 0xFFFF), claim == z3.ULE(34, LEN)))
    assert str(claim) == "ULE(34, Extract(15, 0, len))"


# -- canonical: the rewrites LLVM does ----------------------------------------------------------------

def test_reassociation_and_constant_folding() -> None:
    a, b, c, h = z3.BitVecs("a b c h", 64)
    assert _same(((h * 31 + a) * 31 + b) + c, c + (b + (h * 961 + a * 31)))
    assert _same(a - (b - c), (a + c) - b)
    assert _same(~a, -a - 1)


def test_strength_reduction() -> None:
    h, a = z3.BitVecs("h a", 64)
    assert _same(h * 31 + a, (h << 5) - h + a)
    assert _same(h * 8, h << 3)
    assert _same(z3.LShR(h << 8, 8), h & 0x00FFFFFFFFFFFFFF)


def test_combined_byte_loads_with_byte_swaps() -> None:
    b = [MEM[z3.BitVecVal(12 + i, 64)] for i in range(4)]
    big_endian = z3.ZeroExt(32, z3.Concat(*b))  # the IR: bytes in network order
    wide = z3.Concat(b[3], b[2], b[1], b[0])  # one little-endian load
    swapped = (z3.LShR(wide, 24) & 0xFF) | (z3.LShR(wide, 8) & 0xFF00) | ((wide << 8) & 0xFF0000) | (wide << 24)
    assert _same(big_endian, z3.ZeroExt(32, swapped))
    as_bytes = z3.Concat(*[z3.Extract(8 * i + 7, 8 * i, wide) for i in range(4)])
    assert _same(big_endian, z3.ZeroExt(32, as_bytes))
    # Two 16-bit halves summed into a 64-bit value.
    halves = z3.ZeroExt(48, z3.Concat(b[0], b[1])) * 65536 + z3.ZeroExt(48, z3.Concat(b[2], b[3]))
    assert _same(big_endian, halves)


def test_shift_and_mask_pairs() -> None:
    byte = MEM[z3.BitVecVal(14, 64)]
    wide = z3.ZeroExt(24, byte)
    assert _same(z3.LShR(wide, 4) & 15, z3.ZeroExt(28, z3.Extract(7, 4, byte)))
    assert _same(z3.ZeroExt(56, z3.Extract(7, 0, wide & 15)) * 4, z3.ZeroExt(60, z3.Extract(3, 0, byte)) << 2)
    assert _same(wide & 0xF0, z3.LShR(wide, 4) << 4)
    x = z3.BitVec("x", 64)
    assert _same(z3.Extract(15, 8, x << 4), z3.Extract(11, 4, x))
    assert _same(z3.Extract(7, 0, x * 31) & 3, z3.ZeroExt(6, z3.Extract(1, 0, x) * 3))


def test_packet_offsets_reach_one_select() -> None:
    ihl = MEM[z3.BitVecVal(14, 64)]
    ir = 14 + z3.ZeroExt(56, z3.Extract(7, 0, z3.ZeroExt(24, ihl) & 15)) * 4 + 12
    bc = 26 + 4 * z3.Concat(z3.BitVecVal(0, 60), z3.Extract(3, 0, ihl))
    assert _same(MEM[ir], MEM[bc])


def test_comparisons_meet_in_one_form() -> None:
    length = z3.BitVec("length", 64)
    split = z3.Or(z3.Extract(63, 6, length) != 0, z3.ULE(34, z3.Extract(5, 0, length)))  # z3.simplify's form
    assert _same(split, z3.ULE(34, length))
    assert _same(z3.And(z3.Extract(63, 4, length) == 0, z3.ULE(z3.Extract(3, 0, length), 9)), z3.ULE(length, 9))
    byte = MEM[z3.BitVecVal(46, 64)]
    assert _same(z3.ULE(5, z3.Extract(7, 4, byte)), z3.Not(z3.ULE(byte, 79)))
    assert _same(z3.UGT(X, 3), z3.Not(z3.ULE(X, 3)))
    assert _same(z3.ZeroExt(16, z3.Concat(X, Y)) == 2048, z3.And(Y == 0, X == 8))
    assert _same(z3.If(z3.ULE(X, 4), z3.BitVecVal(1, 64), z3.BitVecVal(0, 64)) == 1, z3.ULE(X, 4))
    assert _same(z3.ZeroExt(8, X) + 1 == z3.ZeroExt(8, Y) + 1, Y == X)


def test_a_negated_sum_is_the_negation_of_the_sums_normal_form() -> None:
    # `-a - b - c` and `a + b + c` appear on the two sides of a signed product: written as
    # `-(a + b + c)` around the very sum, a comparison that cuts the shared sum keeps them related.
    a, b, c = z3.BitVecs("a b c", 64)
    norm = Normalizer()
    total, negated = norm.normalize(a * b + 256 * c + a), norm.normalize(-(a * b) - c * 256 - a)
    assert negated.decl().kind() == z3.Z3_OP_BNEG and negated.arg(0).eq(total)
    difference = norm.normalize(a * b + 7 - c - a)
    assert difference.decl().kind() == z3.Z3_OP_BSUB and difference.arg(1).eq(norm.normalize(c + a))


def test_if_then_else_moves_the_common_part_out() -> None:
    h, a = z3.BitVecs("h a", 64)
    cond = z3.ULE(a, 7)
    assert _same(z3.If(cond, h * 31 + a, h * 31), h * 31 + z3.If(cond, a, z3.BitVecVal(0, 64)))
    assert _same(z3.If(z3.Not(cond), h, a), z3.If(cond, a, h))


def test_a_condition_decides_if_then_else_inside_a_value() -> None:
    ihl = z3.Extract(3, 0, MEM[z3.BitVecVal(14, 64)])
    at_least = z3.ULE(5, ihl)
    offset = 4 * z3.ZeroExt(60, z3.If(at_least, ihl, z3.BitVecVal(5, 4))) + 14
    norm = Normalizer()
    assert norm.normalize_under(MEM[offset], z3.And(at_least, X == 1)).eq(
        norm.normalize(MEM[4 * z3.ZeroExt(60, ihl) + 14]))
    assert norm.normalize_under(X + Y, z3.And(at_least, X == 1)).eq(norm.normalize(Y + 1))


# -- comparisons of bounded sums ----------------------------------------------------------------------

SRC = z3.BitVec("src", 32)


def test_a_bounded_sum_minus_a_constant_is_negative_only_below_the_constant() -> None:
    # LLVM knows `src * 1000003 - 7 < 0` (src a 32-bit field, widened) exactly when src == 0, and
    # tests that; the IR keeps the sign test of the product. Both must be one condition.
    big = z3.ZeroExt(32, SRC) * 1000003 - 7
    assert _same(big < 0, SRC == 0)
    assert _same(big >= 0, z3.Not(SRC == 0))
    assert _valid(z3.Implies(SRC == 0, big < 0)) and _valid(z3.Implies(SRC != 0, big >= 0))
    # A sum that may wrap stays a signed comparison (no claim about its sign is made).
    wrapping = z3.ZeroExt(32, SRC) * (1 << 40) - 7
    assert not _same(wrapping < 0, SRC == 0)


def test_a_sum_of_naturals_is_zero_when_each_part_is() -> None:
    a, b = z3.ZeroExt(56, X), z3.ZeroExt(56, Y)
    assert _same(a * 3 + b * 5 == 0, z3.And(X == 0, Y == 0))
    assert _same(a * 7 == 0, X == 0)
    some = z3.Not(z3.And(X == 0, Y == 0))
    assert _same(z3.ULE(3, a * 3 + b * 5), some)  # every coefficient at least 3
    assert not _same(z3.ULE(4, a * 3 + b * 5), some)  # 3 * 1 is below 4


def test_llvm_magnitude_idiom_is_one_atom_under_a_constant_factor() -> None:
    # `|x| * 1000` of a Q32.32 product by 1000.5: spread over `(x ^ s) - s`, the factor made two multiplier
    # circuits the solver had to prove equal to the IR's one; as one atom it is one monomial.
    x = z3.BitVec("x", 64)
    sign = x >> 63
    idiom = (x ^ sign) - sign
    normalizer = Normalizer()
    magnitude = normalizer.normalize(idiom)
    assert normalizer.normalize(idiom * 1000).eq(z3.BitVecVal(1000, 64) * magnitude)
    # Only the idiom: `(x ^ s) + s` is not |x| and stays a sum of its parts.
    plus = normalizer.normalize(((x ^ sign) + sign) * 1000)
    assert not any(t.eq(magnitude) for t in plus.children())
    solver = z3.Solver()
    solver.add(idiom != z3.If(x < 0, -x, x))
    assert solver.check() == z3.unsat
