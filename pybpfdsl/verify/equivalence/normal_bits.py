"""Bit-vector operators in the normal form (`normalize`): +, -, negation and bitwise not; products by
constants and of two single-monomial factors; shifts by constants; concat as `hi * 2^m + lo`;
if-then-else with the arms' common part moved out; and and or/xor of operands whose bits cannot overlap
as sums, a constant or-ed or xored into a concatenation piece by piece; a read of an array past the
stores whose offsets provably differ from it (a constant apart, another residue modulo a power of two,
or integer ranges apart)."""

from __future__ import annotations

import bisect

import z3

from pybpfdsl.verify.equivalence.normal_atoms import StoreRun
from pybpfdsl.verify.equivalence.normal_poly import Monomial, Poly, constant_poly, make_poly, sum_poly, trailing_zeros
from pybpfdsl.verify.equivalence.normal_widths import WidthRules
from pybpfdsl.verify.equivalence.symbolic_state import Term
from pybpfdsl.verify.equivalence.terms import DIVISION_KINDS, SDIV_KINDS, SREM_KINDS, UREM_KINDS, op_kind
from pybpfdsl.verify.equivalence.z3_algebra import magnitude_idiom

_SIGNED_DIVISIONS = SDIV_KINDS | SREM_KINDS
_REMAINDERS = UREM_KINDS | SREM_KINDS


class BitVectorRules(WidthRules):
    """The normal form of each bit-vector operator over its children's."""

    def _mul(self, a: Poly, b: Poly) -> Poly:
        w = a.width
        if b.is_const:
            a, b = b, a
        if a.is_const:
            return sum_poly(w, [(a.const, b)])
        if len(a.terms) == 1 and len(b.terms) == 1:
            (ma, ca), (mb, cb) = a.terms[0], b.terms[0]
            mono = tuple(sorted(ma + mb))
            terms = {mono: ca * cb}
            if a.const:
                terms[mb] = terms.get(mb, 0) + a.const * cb
            if b.const:
                terms[ma] = terms.get(ma, 0) + b.const * ca
            return make_poly(w, terms, a.const * b.const)
        x, y = sorted((self.term(a), self.term(b)), key=lambda t: t.get_id())
        return self.atom(x * y)

    def ite(self, cond: Term, then: Poly, other: Poly) -> Poly:
        """if cond then `then` else `other` (same width): the common part outside, the rest narrow."""
        if z3.is_true(cond) or then == other:
            return then
        if z3.is_false(cond):
            return other
        if op_kind(cond) == z3.Z3_OP_NOT:
            cond, then, other = cond.arg(0), other, then
        # An arm that is itself an if-then-else on `cond` is decided there: if c then (if c then a else
        # b) else d is if c then a else d (a chain over a program's paths repeats their conditions).
        key = cond.get_id()
        inner = self._ite_results.get(then)
        if inner is not None and inner[0] == key:
            then = inner[1]
        inner = self._ite_results.get(other)
        if inner is not None and inner[0] == key:
            other = inner[2]
        if then == other:
            return then
        out = self._ite(cond, then, other)
        self._ite_results[out] = (key, then, other)
        return out

    def _ite(self, cond: Term, then: Poly, other: Poly) -> Poly:
        w = then.width
        rest_a = dict(then.terms)
        rest_b = dict(other.terms)
        common: dict[Monomial, int] = {}
        for m, c in then.terms:
            if rest_b.get(m) == c:
                common[m] = c
                del rest_a[m], rest_b[m]
        base = min(then.const, other.const)
        a = make_poly(w, rest_a, then.const - base)
        b = make_poly(w, rest_b, other.const - base)
        k = w
        if self.exact(a) and self.exact(b):
            k = max(self.upper(a).bit_length(), self.upper(b).bit_length(), 1)
        a, b = Poly(k, a.terms, a.const), Poly(k, b.terms, b.const)
        self._ite_conditions.add(cond.get_id())
        arm = self.atom(z3.If(cond, self.term(a), self.term(b)))
        return sum_poly(w, [(1, make_poly(w, common, base)), (1, Poly(w, arm.terms, 0))])

    # -- bit-vector nodes ------------------------------------------------------------------------

    def _bv_node(self, t: Term) -> Poly:
        w = t.size()
        if z3.is_bv_value(t):
            return constant_poly(w, t.as_long())
        if not z3.is_app(t) or t.num_args() == 0:
            bounded = self._bounds.get(t.get_id())
            if bounded is None or bounded[1] >= (1 << w) - 1:
                return self.atom(t)
            low = self.atom(z3.Extract(max(bounded[1].bit_length(), 1) - 1, 0, t))
            self._max[low.terms[0][0][0]] = bounded[1]
            return Poly(w, low.terms, 0)
        kind = op_kind(t)
        args = t.children()

        def p(i: int) -> Poly:
            return self._polys[args[i].get_id()]

        if kind == z3.Z3_OP_BADD:
            return sum_poly(w, [(1, p(i)) for i in range(len(args))])
        if kind == z3.Z3_OP_BSUB:
            magnitude = self._magnitude(args)
            if magnitude is not None:
                return magnitude
            return sum_poly(w, [(1, p(0)), *[(-1, p(i)) for i in range(1, len(args))]])
        if kind == z3.Z3_OP_BNEG:
            return sum_poly(w, [(-1, p(0))])
        if kind == z3.Z3_OP_BNOT:
            return sum_poly(w, [(-1, p(0)), (1, constant_poly(w, -1))])
        if kind == z3.Z3_OP_BMUL:
            out = p(0)
            for i in range(1, len(args)):
                out = self._mul(out, p(i))
            return out
        if kind == z3.Z3_OP_CONCAT:
            parts: list[tuple[int, Poly]] = []
            at = 0
            for i in reversed(range(len(args))):
                parts.append((1 << at, self.widen(p(i), w)))
                at += args[i].size()
            return sum_poly(w, parts)
        if kind == z3.Z3_OP_ZERO_EXT:
            return self.widen(p(0), w)
        if kind == z3.Z3_OP_SIGN_EXT:
            extended = self._sign_extended(p(0), args[0].size(), w)
            if extended is not None:
                return extended
        if kind == z3.Z3_OP_EXTRACT:
            hi, lo = t.params()
            return self.extract(p(0), hi, lo)
        if kind in (z3.Z3_OP_BSHL, z3.Z3_OP_BLSHR) and p(1).is_const:
            k = p(1).const
            if k >= w:
                return constant_poly(w, 0)
            if kind == z3.Z3_OP_BSHL:
                return sum_poly(w, [(1 << k, p(0))])
            return self.widen(self.extract(p(0), w - 1, k), w) if k else p(0)
        if kind == z3.Z3_OP_BAND:
            return self._and([p(i) for i in range(len(args))], w)
        if kind in (z3.Z3_OP_BOR, z3.Z3_OP_BXOR):
            return self._or(kind, [p(i) for i in range(len(args))], w)
        if kind == z3.Z3_OP_ITE:
            return self.ite(self._others[args[0].get_id()], p(1), p(2))
        if kind == z3.Z3_OP_SELECT and z3.is_bv(args[1]):
            return self._select(t, args[0], p(1))
        if kind in DIVISION_KINDS:
            unsigned = self._unsigned_division(kind, args, w)
            if unsigned is not None:
                return unsigned
        return self.atom(self._rebuild(t, args))

    def _unsigned_division(self, kind: int, args: list[Term], w: int) -> Poly | None:
        """A quotient or remainder of non-negative operands in one form whatever its signedness and
        width: a signed one whose operands are both below 2^(w-1) is the unsigned one (for a zero
        divisor too: bvsdiv then gives all ones and bvsrem the dividend, as bvudiv and bvurem do), and
        a remainder of operands below 2^32 at 64 bits is the zero-extended 32-bit remainder (the
        quotient keeps its width: a zero divisor gives all ones of it). The DSL's i64 `h % n` of a
        masked hash by a zero-extended count is a signed remainder in the IR where LLVM emits BPF's
        unsigned `w1 %= w2`: as two atoms the solver had to relate them through two dividers, and a
        load balancer's proof ran out of every budget (tests/verify/equivalence/test_hash_mod_proofs.py)."""
        x, d = (self._polys[a.get_id()] for a in args)

        def below(bits: int) -> bool:
            return all(self.exact(q) and self.upper(q) < 1 << bits for q in (x, d))

        signed = kind in _SIGNED_DIVISIONS
        if signed and not below(w - 1):
            return None
        cx, cd = self._child(args[0]), self._child(args[1])
        remainder = kind in _REMAINDERS
        if remainder and w > 32 and below(32):
            return self.poly(z3.ZeroExt(w - 32, z3.URem(z3.Extract(31, 0, cx), z3.Extract(31, 0, cd))))
        if not signed:
            return None
        return self.atom(z3.URem(cx, cd) if remainder else z3.UDiv(cx, cd))

    def _sign_extended(self, q: Poly, v: int, w: int) -> Poly | None:
        """A `v`-bit value sign-extended to `w` bits: a constant folded (the IR's `i32` deltas of
        `adjust_head`, `SignExt(32, 20)`, left as atoms, kept a moved packet's reads apart from the
        bytecode's constant offsets), a value whose top bit is provably clear zero-extended."""
        if q.is_const:
            return constant_poly(w, q.const - (1 << v) if q.const >> (v - 1) else q.const)
        if self.exact(q) and self.upper(q) < 1 << (v - 1):
            return self.widen(q, w)
        return None

    def _magnitude(self, args: list[Term]) -> Poly | None:
        """LLVM's branch-free |x|, `(x ^ (x >>s 63)) - (x >>s 63)`, as one opaque atom (matched on the
        normalized operands: the bytecode masks the shift amount, `63 & 63`), which the abstraction
        then writes as the IR's `If(x < 0, -x, x)` (`nonlinear`). As the sum of its two summands, a
        constant factor spread over them (`|x| * 1000` in a Q32.32 product by 1000.5) and the solver had
        to prove `1000·(x ^ s) - 1000·s` equal to `1000·|x|` through two multiplier circuits, which it
        did not within any budget. Not the select itself: a bytecode path that decides x's sign would
        then specialize it (`normalize_under`) where the IR's merged value keeps it whole."""
        if len(args) != 2:
            return None
        idiom = self._child(args[0]) - self._child(args[1])
        return None if magnitude_idiom(idiom) is None else self.atom(idiom)

    def _select(self, t: Term, array: Term, at: Poly) -> Poly:
        """A read of `array` at `at`, past the stores that provably miss it (their offset differs from
        `at` by a constant, or the two offsets' integer ranges are apart, `interval`) to the store that
        hits it (the same offset) or to one that may: the byte a program wrote at a fixed header offset
        is then that byte whatever it wrote at offsets the parse computed (a TCP checksum at l4 + 16,
        l4 ≥ 34, never hits the IPv4 checksum at 24), and both programs' reads are one term however
        their stores interleave."""
        # The normal form of the array: a merged state's `If` of two equal store chains is one chain.
        array = self.past_stores(self._others[array.get_id()], at)
        if z3.is_app_of(array, z3.Z3_OP_STORE) and self.poly(array.arg(1)) == at:
            return self.poly(array.arg(2))
        return self.atom(z3.Select(array, self.term(at)))

    def past_stores(self, array: Term, at: Poly) -> Term:
        """`array` walked down past the stores that provably miss `at` (`_apart`): to the topmost
        store whose offset is `at` or may be, or to the array below every store. A run of stores
        at one base plus constants (`StoreRun`: a tail grown by 4,000 zero bytes, a header written
        field by field) is passed in one step when `at` is that base plus a constant, so reading
        every byte of a long run costs steps in proportion to the reads, not to reads times stores;
        every step is paid from the budget."""
        key = (at.width, at.terms)
        while z3.is_app_of(array, z3.Z3_OP_STORE):
            run, depth = self._run_of(array)
            if self.budget is not None:
                self.budget.charge("normalize")
                self.budget.require("normalizing the outputs")
            if run.key == key:
                depths = run.at.get(at.const, ())
                i = bisect.bisect_right(depths, depth)
                if i:
                    return run.stores[depths[i - 1]]
                array = run.below
                continue
            if not self._apart(self.poly(array.arg(1)), at):
                return array
            array = array.arg(0)
        return array

    def _run_of(self, store: Term) -> tuple[StoreRun, int]:
        """The run of `store` and its depth in it (0: the run's lowest store), indexing the stores
        below it first (iteratively: chains are long)."""
        found = self._runs.get(store.get_id())
        if found is not None:
            return found
        pending = []
        array = store
        while z3.is_app_of(array, z3.Z3_OP_STORE) and array.get_id() not in self._runs:
            pending.append(array)
            array = array.arg(0)
        for s in reversed(pending):
            if self.budget is not None:
                self.budget.charge("normalize")
            offset = self.poly(s.arg(1))
            key = (offset.width, offset.terms)
            below = s.arg(0)
            under = self._runs.get(below.get_id()) if z3.is_app_of(below, z3.Z3_OP_STORE) else None
            if under is not None and under[0].key == key and under[1] == len(under[0].stores) - 1:
                run = under[0]
            else:
                run = StoreRun(key, below)
            depth = len(run.stores)
            run.stores.append(s)
            run.at.setdefault(offset.const, []).append(depth)
            self._runs[s.get_id()] = (run, depth)
        return self._runs[store.get_id()]

    def apart(self, x: Term, y: Term) -> bool:
        """Whether two bit-vector terms of one width differ whatever their atoms (`_apart`)."""
        self._visit(x)
        self._visit(y)
        return self._apart(self._polys[x.get_id()], self._polys[y.get_id()])

    def _apart(self, x: Poly, y: Poly) -> bool:
        """Whether x ≠ y whatever the atoms: their difference is a constant other than 0, or both are
        integers (`interval`) in ranges that do not meet."""
        difference = sum_poly(x.width, [(1, x), (-1, y)])
        if difference.is_const:
            return difference.const != 0
        # Every coefficient a multiple of 2^t and the constant not: the difference is not 0 modulo 2^t,
        # so not modulo 2^width (4·ihl + 20 is never the byte 30).
        if difference.const and trailing_zeros(difference.const) < min(trailing_zeros(c) for _, c in difference.terms):
            return True
        ranges = []
        for q in (x, y):
            if not (self.exact(q) or self._signed_exact(q)):
                return False
            ranges.append((q.const, self.upper(q)) if self.exact(q) else self.interval(q))
        (lx, hx), (ly, hy) = ranges
        return hx < ly or hy < lx

    def _and(self, ps: list[Poly], w: int) -> Poly:
        mask = (1 << w) - 1
        rest: list[Poly] = []
        for q in ps:
            if q.is_const:
                mask &= q.const
            else:
                rest.append(q)
        for q in rest:
            mask &= self.maybe_bits(q)
        if mask == 0:
            return constant_poly(w, 0)
        if not rest:
            return constant_poly(w, mask)
        if len(rest) == 1:
            q = rest[0]
            parts: list[tuple[int, Poly]] = []
            bit = 0
            while bit < w:
                if not mask >> bit & 1:
                    bit += 1
                    continue
                end = bit
                while end + 1 < w and mask >> (end + 1) & 1:
                    end += 1
                parts.append((1 << bit, self.widen(self.extract(q, end, bit), w)))
                bit = end + 1
            return sum_poly(w, parts)
        terms = sorted({self.term(q).get_id(): self.term(q) for q in rest}.values(), key=lambda x: x.get_id())
        out = terms[0]
        for x in terms[1:]:
            out = out & x
        whole = self.atom(out)
        return self._and([whole, constant_poly(w, mask)], w) if mask != (1 << w) - 1 else whole

    def _piecewise(self, kind: int, ps: list[Poly], w: int) -> Poly | None:
        """x | c or x ^ c for a concatenation x (atoms at disjoint bits, `_pieces`) and a constant c, as
        the concatenation of each piece with its slice of c (bits outside every piece are c's): a
        64-bit word xor 0xFF is its low byte's complement beside the other bytes, whichever byte order
        it was loaded in, so its 16-bit halves are polynomials of bytes on both sides."""
        if len(ps) != 2 or ps[0].is_const == ps[1].is_const:
            return None
        x, k = (ps[1], ps[0]) if ps[0].is_const else (ps[0], ps[1])
        pieces = self._pieces(x)
        if pieces is None or len(pieces) < 2:
            return None
        c = k.const
        covered = 0
        parts: list[tuple[int, Poly]] = []
        for low, size, a in pieces:
            mask = (1 << size) - 1
            covered |= mask << low
            piece = self._or(kind, [Poly(size, (((a,), 1),), 0), constant_poly(size, c >> low & mask)], size)
            parts.append((1 << low, self.widen(piece, w)))
        parts.append((1, constant_poly(w, c & ~covered)))
        return sum_poly(w, parts)

    def _or(self, kind: int, ps: list[Poly], w: int) -> Poly:
        full = (1 << w) - 1
        if kind == z3.Z3_OP_BXOR:
            flips = 0
            rest = []
            for q in ps:
                if q.is_const:
                    flips ^= q.const
                else:
                    rest.append(q)
            if len(rest) == 1 and (flips == full or (flips and not self.maybe_bits(rest[0]) & ~flips)):
                # Every bit x may have is flipped: x ^ m = m - x (no borrow), as ~x = -1 - x.
                return sum_poly(w, [(-1, rest[0]), (1, constant_poly(w, flips))])
            ps = rest + ([constant_poly(w, flips)] if flips else [])
        piecewise = self._piecewise(kind, ps, w)
        if piecewise is not None:
            return piecewise
        seen = 0
        disjoint = True
        for q in ps:
            bits = self.maybe_bits(q)
            if seen & bits:
                disjoint = False
                break
            seen |= bits
        if disjoint:
            return sum_poly(w, [(1, q) for q in ps])
        counts: dict[int, tuple[Term, int]] = {}
        for q in ps:
            t = self.term(q)
            counts[t.get_id()] = (t, counts.get(t.get_id(), (t, 0))[1] + 1)
        # x | x is x; x ^ x is 0.
        terms = [t for key, (t, n) in sorted(counts.items()) if kind == z3.Z3_OP_BOR or n % 2]
        if not terms:
            return constant_poly(w, 0)
        if len(terms) == 1:
            return self.poly(terms[0])
        out = terms[0]
        for x in terms[1:]:
            out = (out | x) if kind == z3.Z3_OP_BOR else (out ^ x)
        return self.atom(out)

