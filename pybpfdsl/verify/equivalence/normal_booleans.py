"""Booleans and comparisons in the normal form (`normalize`): comparisons and equalities on the
narrowest width that holds both sides exactly, with constants folded; boolean structure flattened,
deduplicated and ordered; tests of split bits merged back into one comparison."""

from __future__ import annotations

from typing import Final

import z3
from z3.z3 import _to_expr_ref

from pybpfdsl.verify.equivalence.normal_bits import BitVectorRules
from pybpfdsl.verify.equivalence.normal_poly import Poly, constant_poly, make_poly, sum_poly, trailing_zeros
from pybpfdsl.verify.equivalence.symbolic_state import Term
from pybpfdsl.verify.equivalence.terms import op_kind


class BooleanRules(BitVectorRules):
    """The normal form of nodes of other sorts (booleans, arrays) and of comparisons."""

    def _rebuild(self, t: Term, args: list[Term]) -> Term:
        new = [self._child(a) for a in args]
        if all(a.eq(b) for a, b in zip(new, args)):
            return t
        return t.decl()(*new)

    def _other_node(self, t: Term) -> Term:
        if not z3.is_app(t) or t.num_args() == 0:
            return t
        args = t.children()
        if not z3.is_bool(t):
            if op_kind(t) == z3.Z3_OP_ITE:
                return self._bool_ite(self._others[args[0].get_id()], self._child(args[1]), self._child(args[2]))
            return self._rebuild(t, args)
        kind = op_kind(t)
        if kind in (z3.Z3_OP_AND, z3.Z3_OP_OR):
            return self._junction(kind, [self._others[a.get_id()] for a in args])
        if kind == z3.Z3_OP_NOT:
            return self._not(self._others[args[0].get_id()])
        if kind == z3.Z3_OP_EQ and z3.is_bv(args[0]):
            return self._equal(self._polys[args[0].get_id()], self._polys[args[1].get_id()])
        if kind == z3.Z3_OP_DISTINCT and len(args) == 2 and z3.is_bv(args[0]):
            return self._not(self._equal(self._polys[args[0].get_id()], self._polys[args[1].get_id()]))
        if kind in _UNSIGNED:
            x, y = (self._polys[a.get_id()] for a in args)
            strict, swap = _UNSIGNED[kind]
            if swap:
                x, y = y, x
            return self._not(self._ule(y, x)) if strict else self._ule(x, y)
        if kind in _SIGNED:
            px, py = (self._polys[a.get_id()] for a in args)
            strict, swap = _SIGNED[kind]
            if swap:
                px, py = py, px
            if self._nonnegative(px) and self._nonnegative(py):  # signed order is unsigned order
                return self._not(self._ule(py, px)) if strict else self._ule(px, py)
            # x <=s y is x + 2^(w-1) <=u y + 2^(w-1). When both shifted sums are exact (a bounded sum
            # minus a constant, compared with a constant), the integer comparison decides or narrows
            # it: `src * 1000003 - 7 < 0` is `src == 0` for a 32-bit src.
            if px.is_const or py.is_const:
                half = constant_poly(px.width, 1 << (px.width - 1))
                sx, sy = sum_poly(px.width, [(1, px), (1, half)]), sum_poly(py.width, [(1, py), (1, half)])
                if self.exact(sx) and self.exact(sy):
                    return self._not(self._ule(sy, sx)) if strict else self._ule(sx, sy)
            x, y = self.term(px), self.term(py)
            return self._not(y <= x) if strict else x <= y
        if kind == z3.Z3_OP_EQ:
            x, y = sorted((self._child(a) for a in args), key=lambda e: e.get_id())
            if x.eq(y):
                return z3.BoolVal(True)
            return x == y
        if kind == z3.Z3_OP_ITE:
            return self._bool_ite(self._others[args[0].get_id()], self._child(args[1]), self._child(args[2]))
        return self._rebuild(t, args)

    def _bool_ite(self, cond: Term, then: Term, other: Term) -> Term:
        if z3.is_true(cond) or then.eq(other):
            return then
        if z3.is_false(cond):
            return other
        if op_kind(cond) == z3.Z3_OP_NOT:
            cond, then, other = cond.arg(0), other, then
        # An arm that is itself an if-then-else on `cond` is decided there (as `BitVectorRules.ite`).
        if op_kind(then) == z3.Z3_OP_ITE and then.arg(0).eq(cond):
            then = then.arg(1)
        if op_kind(other) == z3.Z3_OP_ITE and other.arg(0).eq(cond):
            other = other.arg(2)
        if then.eq(other):
            return then
        self._ite_conditions.add(cond.get_id())
        return z3.If(cond, then, other)

    def _not(self, x: Term) -> Term:
        if z3.is_true(x):
            return z3.BoolVal(False)
        if z3.is_false(x):
            return z3.BoolVal(True)
        if op_kind(x) == z3.Z3_OP_NOT:
            return x.arg(0)
        return z3.Not(x)

    def _junction(self, kind: int, args: list[Term]) -> Term:
        conj = kind == z3.Z3_OP_AND
        items: dict[int, Term] = {}
        for a in args:
            if op_kind(a) == kind:
                # A path's condition is a conjunction nested once per branch: each level's items
                # are those of the level below (kept by id, not read back child by child) plus one.
                flat = self._flat.get(a.get_id())
                items.update(flat[1] if flat is not None else {b.get_id(): b for b in a.children()})
            else:
                items[a.get_id()] = a
        if self.budget is not None:  # the work here grows with the items, not with the node
            self.budget.charge("literal", len(items))
        kept: list[Term] = []
        for key in sorted(items):
            a = items[key]
            if z3.is_true(a) if conj else z3.is_false(a):
                continue
            if z3.is_false(a) if conj else z3.is_true(a):
                return a
            kept.append(a)
        ids = set(items)
        for a in kept:
            if op_kind(a) == z3.Z3_OP_NOT and a.arg(0).get_id() in ids:
                return z3.BoolVal(not conj)
        merged = self._merge_split_compares(conj, kept)
        if merged is not None:
            return self._junction(kind, merged)
        if not kept:
            return z3.BoolVal(conj)
        if len(kept) == 1:
            return kept[0]
        # Through the C API: z3.And checks each item's sort in Python, which costs more than the node.
        ctx = kept[0].ctx
        asts = (z3.Ast * len(kept))(*[a.as_ast() for a in kept])
        make = z3.Z3_mk_and if conj else z3.Z3_mk_or
        out = _to_expr_ref(make(ctx.ref(), len(kept), asts), ctx)
        self._flat[out.get_id()] = (out, {a.get_id(): a for a in kept})
        return out

    def _merge_split_compares(self, conj: bool, items: list[Term]) -> list[Term] | None:
        """Undo z3's splitting of a comparison with a constant at a bit: `x >= c` (c < 2^k) becomes
        `x[hi:k] != 0 or x[k-1:0] >= c` and `x <= c` becomes `x[hi:k] == 0 and x[k-1:0] <= c`."""
        highs: dict[tuple[int, int], tuple[int, int]] = {}
        parts = [self._split_parts(e, conj) for e in items]
        for i, (part, _) in enumerate(parts):
            if part is not None and part[2] > 0:
                base, hi, lo = part
                highs[(base.get_id(), lo)] = (i, hi)
        if not highs:
            return None
        for j, (_, low_test) in enumerate(parts):
            if low_test is None:
                continue
            base, k, c = low_test
            found = highs.get((base.get_id(), k))
            if found is None:
                continue
            hi = found[1]
            whole = self.poly(z3.Extract(hi, 0, base))
            const = constant_poly(whole.width, c)
            merged = self._ule(whole, const) if conj else self._ule(const, whole)
            return [x for i, x in enumerate(items) if i not in (found[0], j)] + [merged]
        return None

    def _split_parts(self, e: Term, conj: bool) -> tuple[tuple[Term, int, int] | None, tuple[Term, int, int] | None]:
        """`_zero_test` of the high-bits test in `e` and `_low_compare(e, conj)`, once per item (a
        path condition's literals come back in every longer condition)."""
        key = (e.get_id(), conj)
        found = self._split_cache.get(key)
        if found is None:
            test = e.arg(0) if not conj and op_kind(e) == z3.Z3_OP_NOT else e if conj else None
            found = self._split_cache[key] = (e, None if test is None else _zero_test(test), _low_compare(e, conj))
        return found[1], found[2]

    def _sides(self, x: Poly, y: Poly) -> tuple[Poly, Poly]:
        """x = y as L = R with positive coefficients on both sides, no constant on the left."""
        w = x.width
        d = sum_poly(w, [(1, x), (-1, y)])
        half = 1 << (w - 1)
        left = {m: c for m, c in d.terms if c < half}
        right = {m: -c for m, c in d.terms if c >= half}
        lp, rp = make_poly(w, left, 0), make_poly(w, right, -d.const)
        if lp.is_const or (not rp.is_const and rp.terms[0][0] < lp.terms[0][0]):
            lp, rp = make_poly(w, right, 0), make_poly(w, left, d.const)
        return lp, rp

    def _narrow(self, x: Poly, y: Poly) -> tuple[Poly, Poly]:
        """Both at the narrowest width that holds both exactly (their natural values, compared)."""
        if not (self.exact(x) and self.exact(y)):
            return x, y
        k = max(self.upper(x).bit_length(), self.upper(y).bit_length(), 1)
        if k >= x.width:
            return x, y
        return Poly(k, x.terms, x.const), Poly(k, y.terms, y.const)

    def _equal(self, x: Poly, y: Poly) -> Term:
        lp, rp = self._sides(x, y)
        if lp.is_const:
            return z3.BoolVal(lp.const == rp.const)
        if self.exact(lp) and self.exact(rp):
            lower_l, lower_r = lp.const, rp.const
            if self.upper(lp) < lower_r or self.upper(rp) < lower_l:
                return z3.BoolVal(False)
        lp, rp = self._narrow(lp, rp)
        if rp.is_const and len(lp.terms) == 1 and lp.terms[0][1] == 1 and len(lp.terms[0][0]) == 1:
            a = lp.terms[0][0][0]
            folded = self._ite_is(a, rp.const)
            if folded is not None:
                return folded
            stands = self._atom_polys.get(a)
            if stands is not None:  # an opaque sum equal to a constant: the sum modulo its width
                if rp.const >> stands.width:
                    return z3.BoolVal(False)
                return self._equal(stands, constant_poly(stands.width, rp.const))
        if rp.is_const and not rp.const and (len(lp.terms) > 1 or lp.terms[0][1] != 1) and self.exact(lp):
            # A sum of naturals with positive coefficients is 0 when each monomial is.
            return self._junction(z3.Z3_OP_AND, [self._equal(Poly(lp.width, ((m, 1),), 0), constant_poly(lp.width, 0))
                                                 for m, _ in lp.terms])
        if rp.is_const and len(lp.terms) > 1:
            pieces = self._pieces(lp)
            if pieces is not None:  # a concatenation equal to a constant: each piece equal to its bits
                covered = 0
                tests: list[Term] = []
                for low, size, a in pieces:
                    covered |= ((1 << size) - 1) << low
                    tests.append(self._equal(Poly(size, (((a,), 1),), 0),
                                             constant_poly(size, rp.const >> low)))
                if rp.const & ~covered:
                    return z3.BoolVal(False)
                return self._junction(z3.Z3_OP_AND, tests)
        return self.term(lp) == self.term(rp)

    def _pieces(self, p: Poly) -> list[tuple[int, int, int]] | None:
        """(low bit, width, atom) of a sum of atoms shifted to disjoint bits, without a constant."""
        if p.const:
            return None
        out: list[tuple[int, int, int]] = []
        for m, c in p.terms:
            if len(m) != 1 or c & (c - 1):
                return None
            out.append((trailing_zeros(c), self._atoms[m[0]].size(), m[0]))
        out.sort()
        at = 0
        for low, size, _ in out:
            if low < at or low + size > p.width:
                return None
            at = low + size
        return out

    def _ite_is(self, a: int, value: int) -> Term | None:
        """`ite(c, k1, k2) == value` for constant arms, as c, not c or false."""
        t = self._atoms[a]
        if op_kind(t) != z3.Z3_OP_ITE or not (z3.is_bv_value(t.arg(1)) and z3.is_bv_value(t.arg(2))):
            return None
        k1, k2 = t.arg(1).as_long(), t.arg(2).as_long()
        if k1 == value:
            return z3.BoolVal(True) if k2 == value else t.arg(0)
        return self._not(t.arg(0)) if k2 == value else z3.BoolVal(False)

    def _nonnegative(self, p: Poly) -> bool:
        return self.upper(p) < (1 << (p.width - 1))

    def _ule(self, x: Poly, y: Poly) -> Term:
        if x.is_const and y.is_const:
            return z3.BoolVal(x.const <= y.const)
        if self.exact(x) and self.exact(y):
            # Integers: cancel what both sides hold (each side stays non-negative).
            tx, ty = dict(x.terms), dict(y.terms)
            for m in set(tx) & set(ty):
                both = min(tx[m], ty[m])
                tx[m] -= both
                ty[m] -= both
            base = min(x.const, y.const)
            x, y = make_poly(x.width, tx, x.const - base), make_poly(y.width, ty, y.const - base)
            if self.upper(x) <= y.const:
                return z3.BoolVal(True)
            if x.const > self.upper(y):
                return z3.BoolVal(False)
            if x.is_const and y.is_const:
                return z3.BoolVal(x.const <= y.const)
            if x.is_const and not y.const and x.const <= min(c for _, c in y.terms):
                # k <= Σ c·m with every c >= k > 0 and naturals m: some m is not 0.
                return self._not(self._equal(y, constant_poly(y.width, 0)))
            x, y = self._narrow(x, y)
        elif (y.is_const and y.const == (1 << y.width) - 1) or (x.is_const and x.const == 0):
            return z3.BoolVal(True)
        if y.is_const:  # constants on the left: x <= c is not c + 1 <= x
            return self._not(self._ule(constant_poly(x.width, y.const + 1), x))
        if x.is_const and len(y.terms) == 1 and y.terms[0][1] == 1 and len(y.terms[0][0]) == 1 and not y.const:
            part = _extract_args(self._atoms[y.terms[0][0][0]])
            if part is not None and part[2] > 0:  # c <= x[hi:lo] is c·2^lo <= x[hi:0]
                base, hi, lo = part
                whole = self.widen(self.poly(z3.Extract(hi, 0, base)), max(hi + 1, x.width))
                return self._ule(constant_poly(whole.width, x.const << lo), whole)
        return z3.ULE(self.term(x), self.term(y))



def _extract_args(t: Term) -> tuple[Term, int, int] | None:
    if z3.is_app(t) and op_kind(t) == z3.Z3_OP_EXTRACT:
        hi, lo = t.params()
        return t.arg(0), hi, lo
    return None


def _zero_test(e: Term) -> tuple[Term, int, int] | None:
    """(x, hi, lo) when e is `x[hi:lo] == 0`."""
    if op_kind(e) != z3.Z3_OP_EQ or not z3.is_bv(e.arg(0)):
        return None
    for x, y in ((e.arg(0), e.arg(1)), (e.arg(1), e.arg(0))):
        if z3.is_bv_value(y) and y.as_long() == 0:
            return _extract_args(x)
    return None


def _low_compare(e: Term, conj: bool) -> tuple[Term, int, int] | None:
    """(x, k, c) when e is `x[k-1:0] <= c` (conj) or `c <= x[k-1:0]` (not conj), or the equality z3
    leaves for the extreme c."""
    kind = op_kind(e)
    negated = kind == z3.Z3_OP_NOT
    if negated:
        e = e.arg(0)
        kind = op_kind(e)
    if kind == z3.Z3_OP_ULEQ and negated == conj:  # normal forms keep the constant on the left
        bound, side = e.arg(0), e.arg(1)
        if not z3.is_bv_value(bound):
            return None
        part = _extract_args(side)
        if part is None or part[2] != 0:
            return None
        return part[0], part[1] + 1, bound.as_long() - (1 if conj else 0)
    if negated:
        return None
    if kind == z3.Z3_OP_EQ and z3.is_bv(e.arg(0)):
        for x, y in ((e.arg(0), e.arg(1)), (e.arg(1), e.arg(0))):
            part = _extract_args(x)
            if part is None or part[2] != 0 or not z3.is_bv_value(y):
                continue
            k = part[1] + 1
            extreme = 0 if conj else (1 << k) - 1
            if y.as_long() == extreme:
                return part[0], k, extreme
    return None


_UNSIGNED: Final = {z3.Z3_OP_ULEQ: (False, False), z3.Z3_OP_UGEQ: (False, True),
                    z3.Z3_OP_ULT: (True, False), z3.Z3_OP_UGT: (True, True)}
"""Kind → (strict, swap): `a < b` is `not b <= a`; `a >= b` is `b <= a`."""
_SIGNED: Final = {z3.Z3_OP_SLEQ: (False, False), z3.Z3_OP_SGEQ: (False, True),
                  z3.Z3_OP_SLT: (True, False), z3.Z3_OP_SGT: (True, True)}

