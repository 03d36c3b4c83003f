"""Division as an uninterpreted function plus its defining lemmas, so congruence does the work.

Bit-blasting encodes each `bvudiv` as its own relational circuit (q·d + r = x, r < d). When the IR and
the bytecode divide equal-but-differently-computed dividends (LLVM rewrites the arithmetic around a
division), the SAT solver must rediscover that two such circuits give one quotient, which it does very
slowly. Here every unsigned division becomes `udiv(x, d)` of one uninterpreted function, constrained by
exactly the same definition (so the query is equisatisfiable: proofs and counterexamples are real);
equal arguments then give equal quotients by congruence, at the word level. Signed division and
remainders are rewritten onto it through magnitudes, as `lang.arith` defines them.
"""

from __future__ import annotations

import z3

from pybpfdsl.verify.equivalence.state import Term

_DIVISIONS = {z3.Z3_OP_BUDIV, z3.Z3_OP_BUDIV_I, z3.Z3_OP_BUREM, z3.Z3_OP_BUREM_I,
              z3.Z3_OP_BSDIV, z3.Z3_OP_BSDIV_I, z3.Z3_OP_BSREM, z3.Z3_OP_BSREM_I}


class DivisionAbstraction:
    def __init__(self) -> None:
        self.functions: dict[int, z3.FuncDeclRef] = {}
        self.lemmas: list[Term] = []
        self._seen: dict[int, Term] = {}
        self._defined: set[int] = set()

    def _udiv(self, x: Term, d: Term) -> Term:
        """The quotient term (SMT-LIB semantics: all ones for d == 0), defined once per application."""
        w = x.size()
        f = self.functions.get(w)
        if f is None:
            f = self.functions[w] = z3.Function(f"udiv{w}", z3.BitVecSort(w), z3.BitVecSort(w), z3.BitVecSort(w))
        q = f(x, d)
        key = q.get_id()
        if key not in self._defined:
            self._defined.add(key)
            def wide(t: Term) -> Term:  # products need twice the width
                return z3.ZeroExt(w, t)

            product = wide(q) * wide(d)
            self.lemmas.append(z3.If(d == 0, q == z3.BitVecVal(-1, w),
                                     z3.And(z3.ULE(product, wide(x)), z3.ULT(wide(x) - product, wide(d)))))
        return q

    def _urem(self, x: Term, d: Term) -> Term:
        return z3.If(d == 0, x, x - self._udiv(x, d) * d)

    def rewrite(self, e: Term) -> Term:
        """`e` with every division replaced (memoized over the DAG)."""
        key = e.get_id()
        done = self._seen.get(key)
        if done is not None:
            return done
        out = e
        if z3.is_app(e) and e.num_args() > 0:
            args = [self.rewrite(a) for a in e.children()]
            kind = e.decl().kind()
            if kind in _DIVISIONS:
                out = self._division(kind, args[0], args[1])
            elif any(not a.eq(b) for a, b in zip(args, e.children())):
                out = e.decl()(*args)
        self._seen[key] = out
        return out

    def _division(self, kind: int, x: Term, d: Term) -> Term:
        if kind in (z3.Z3_OP_BUDIV, z3.Z3_OP_BUDIV_I):
            return self._udiv(x, d)
        if kind in (z3.Z3_OP_BUREM, z3.Z3_OP_BUREM_I):
            return self._urem(x, d)
        mx, md = z3.If(x < 0, -x, x), z3.If(d < 0, -d, d)
        if kind in (z3.Z3_OP_BSDIV, z3.Z3_OP_BSDIV_I):
            q = self._udiv(mx, md)
            return z3.If(z3.Xor(x < 0, d < 0), -q, q)
        r = self._urem(mx, md)
        return z3.If(x < 0, -r, r)
