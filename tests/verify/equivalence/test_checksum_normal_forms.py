"""Normal forms that make the IR's and LLVM's one's-complement arithmetic one term (issue 16 §3).

The IR folds an RFC 1624 sum twice with masks; LLVM folds once with a mask and adds the second carry
without one, writes a complemented byte into a word's low half, loads a 64-bit address in the other byte
order and xors the byte-swapped constant, and computes a header's offset that a store elsewhere may or
may not hit. Each claim: both forms normalize to one term, and Z3 agrees they are equal (the exactness
of each rule is also checked on random terms in `test_normalize`)."""

from __future__ import annotations

import z3

from pybpfdsl.verify.equivalence.normalize import Normalizer
from pybpfdsl.verify.equivalence.symbolic_state import Term


def _valid(claim: Term) -> bool:
    solver = z3.Solver()
    solver.add(z3.Not(claim))
    return bool(solver.check() == z3.unsat)


def _one_term(a: Term, b: Term) -> bool:
    norm = Normalizer()
    return bool(norm.normalize(a).eq(norm.normalize(b)))


OLD, NEW, CSUM = z3.BitVecs("old new csum", 16)


def _sum() -> Term:
    """~old + new + ~csum in 64 bits, as the IR writes an RFC 1624 update."""
    def word(w: Term) -> Term:
        return z3.ZeroExt(48, w)
    return (word(OLD) ^ 0xFFFF) + word(NEW) + (word(CSUM) ^ 0xFFFF)


def _ir_fold(s: Term) -> Term:
    s1 = (s & 0xFFFF) + z3.LShR(s, 16)
    s2 = (s1 & 0xFFFF) + z3.LShR(s1, 16)
    return (s2 & 0xFFFF) ^ 0xFFFF


def _llvm_fold(s: Term) -> Term:
    s1 = (z3.Extract(31, 0, s) & 0xFFFF) + z3.Extract(31, 0, z3.LShR(s, 16))
    s2 = s1 + z3.LShR(s1, 16)  # no mask: only the low 16 bits are stored
    return ~s2


def test_a_fold_with_or_without_its_last_mask_is_one_term() -> None:
    """The checksum's bytes, as each program stores them."""
    ir, llvm = _ir_fold(_sum()), _llvm_fold(_sum())
    for hi, lo in ((15, 8), (7, 0)):
        assert _valid(z3.Extract(hi, lo, ir) == z3.Extract(hi, lo, llvm))
        assert _one_term(z3.Extract(hi, lo, ir), z3.Extract(hi, lo, llvm)), (hi, lo)


def test_a_wrong_fold_stays_apart() -> None:
    """Folding only once (a carry lost) is another value: not one term, and Z3 finds the difference."""
    s = _sum()
    once = ((s & 0xFFFF) + z3.LShR(s, 16)) ^ 0xFFFF
    ir = z3.Extract(15, 0, _ir_fold(s))
    assert not _valid(z3.Extract(15, 0, once) == ir)
    assert not _one_term(z3.Extract(15, 0, once), ir)


def test_a_complemented_byte_in_a_low_half_leaves_the_high_byte() -> None:
    x, y = z3.BitVecs("x y", 8)
    word = z3.ZeroExt(8, x) * 256 + 255 - z3.ZeroExt(8, y)
    assert _one_term(z3.Extract(15, 8, word), x)
    # 256 - y may carry into the high byte (y = 0): not x.
    carried = z3.ZeroExt(8, x) * 256 + 256 - z3.ZeroExt(8, y)
    assert not _one_term(z3.Extract(15, 8, carried), x)
    assert not _valid(z3.Extract(15, 8, carried) == x)


def test_a_constant_xored_into_a_word_splits_at_its_bytes() -> None:
    """The last byte of a big-endian 64-bit load xor 0xFF, and the first byte of the little-endian load
    xor 0xFF << 56 (LLVM's byte-swapped constant): their 16-bit words are one term."""
    b = z3.BitVecs(" ".join(f"b{i}" for i in range(8)), 8)
    big = z3.Concat(*b) ^ 0xFF
    little = z3.Concat(*reversed(b)) ^ (0xFF << 56)
    for word in range(4):
        ir = z3.Extract(16 * word + 15, 16 * word, big)
        hi, lo = 7 - 2 * word - 1, 7 - 2 * word
        llvm = z3.Concat(z3.Extract(8 * hi + 7, 8 * hi, little), z3.Extract(8 * lo + 7, 8 * lo, little))
        assert _valid(ir == llvm)
        assert _one_term(ir, llvm), word


def test_a_read_passes_a_store_at_another_residue() -> None:
    """A UDP checksum stored at 4·ihl + 20 never hits the IPv4 checksum's byte 25 (4·ihl + 20 ≡ 0 mod 4);
    a store at 4·ihl + 21 may (ihl = 1), so the read stays a read of that store."""
    packet = z3.Array("p", z3.BitVecSort(64), z3.BitVecSort(8))
    ihl = z3.ZeroExt(60, z3.Extract(3, 0, z3.BitVec("ihl", 8)))
    v = z3.BitVec("v", 8)
    at25 = z3.BitVecVal(25, 64)
    n = Normalizer()
    assert n.normalize(z3.Select(z3.Store(packet, 4 * ihl + 20, v), at25)).eq(n.normalize(z3.Select(packet, at25)))
    maybe = z3.Select(z3.Store(packet, 4 * ihl + 21, v), at25)
    assert not n.normalize(maybe).eq(n.normalize(z3.Select(packet, at25)))


def test_a_widened_sum_and_its_complement_share_one_atom() -> None:
    """A byte sum that may wrap, widened, and 255 minus its complement widened are one term (the IR
    complements a checksum's low byte after widening it, LLVM before); 256 minus it is another value."""
    x, y = z3.BitVecs("x y", 8)
    low = x + 1 - y  # may wrap: its widening is an atom
    ir = z3.ZeroExt(8, low)
    llvm = 255 - z3.ZeroExt(8, ~low)
    assert _valid(ir == llvm)
    assert _one_term(ir, llvm)
    wrong = 256 - z3.ZeroExt(8, ~low)
    assert not _valid(ir == wrong)
    assert not _one_term(ir, wrong)


def test_the_bits_of_a_shifted_select_are_the_bits_of_each_arm() -> None:
    """`ite(c, 0, v + 1) - 1` (the IR's 'a checksum of 0 is 0xFFFF' after its constants moved out) has
    in each byte what each arm has: LLVM's branches store one arm's byte on each path. The constant
    added to one arm only is another value."""
    v = z3.BitVec("v", 16)
    c = v == 0xFFFF
    ir = z3.If(c, z3.BitVecVal(0, 16), v + 1) - 1
    llvm = z3.If(c, z3.BitVecVal(0xFFFF, 16), v)
    for hi, lo in ((15, 8), (7, 0)):
        assert _valid(z3.Extract(hi, lo, ir) == z3.Extract(hi, lo, llvm))
        assert _one_term(z3.Extract(hi, lo, ir), z3.Extract(hi, lo, llvm)), (hi, lo)
    wrong = z3.If(c, z3.BitVecVal(0, 16), v + 1)
    assert not _valid(z3.Extract(7, 0, wrong) == z3.Extract(7, 0, llvm))
    assert not _one_term(z3.Extract(7, 0, wrong), z3.Extract(7, 0, llvm))
