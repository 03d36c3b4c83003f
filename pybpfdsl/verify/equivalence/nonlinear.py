"""Multiplication and division as uninterpreted functions, so congruence does the work.

Bit-blasting encodes each 64-bit `bvmul` as a multiplier circuit and each `bvudiv` as a divider
circuit. When the IR and the bytecode compute equal operands in different ways (LLVM rewrites the
arithmetic around them), the SAT solver must rediscover that two such circuits give one result, which
it cannot do in seconds. Here every product of two run-time values and every division becomes an
application of an uninterpreted function per width, and the circuits are never built.

Nothing is known about the functions except that they are functions and that multiplication
commutes, so anything unsatisfiable with them is unsatisfiable with the real operations: an `unsat` is a
proof. A `sat` may be spurious; the prover then adds `definitions()` (each application equal to the
operation it stands for), which makes the query equisatisfiable with the original, so models are real
counterexamples. LLVM's two ways of writing |x| (a select, and `(x ^ (x >>s 63)) - (x >>s 63)`) are
rewritten to one term first, since most operands differ only in that.

In the abstraction, `merge` then finds applications whose operands are equal for every input (each a
small solver question: operands are linear or bitwise) and replaces them by one term, so the final
query sees syntactically equal products on both sides. This is what makes the abstraction work in
practice: the backend (`backend/llvm_algebra.py`) emits every product and quotient as one instruction
on operands LLVM could only rewrite in such provable ways, but the solver, left alone, does not
discover which operand pairs to compare. Signed division and remainders go onto the unsigned function
through magnitudes, as `lang.arith` defines them.

Long because the abstraction, the definitions that refine it and the search for shared cuts walk the same
terms with the same caches.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import z3

from pybpfdsl.ir import nodes as n
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.sampling import free_constants
from pybpfdsl.verify.equivalence.symbolic_state import Term
from pybpfdsl.verify.equivalence.terms import (
    DIVISION_KINDS,
    SDIV_KINDS,
    SREM_KINDS,
    UDIV_KINDS,
    UREM_KINDS,
    is_application,
    is_cut_point,
    shared_subterms,
    substitute,
    subterm_asts,
    subterms,
)
from pybpfdsl.verify.equivalence.z3_algebra import abs_value, magnitude_idiom, sign_of

MERGE_CHECK_UNITS = 3_000_000
"""Resource units of one operand-equality question in `merge` (about 1 s here; an undecided pair is
simply not merged)."""
SAMPLE_UNITS = 600_000
"""Resource units a solver may spend finding one sample input (`_Points`, and the sweep's)."""


@dataclass(frozen=True)
class Application:
    """One application of an abstracted operation."""

    kind: str
    term: Term
    commutative: bool


class NonlinearAbstraction:
    """Rewrites terms (memoized over the DAG); `lemmas` must be asserted alongside."""

    def __init__(self, normalize: Callable[[Term], Term] | None = None) -> None:
        """`normalize`: the normalizer the query's terms are in normal form of (`observe`), to see
        LLVM's |x| idiom through the normal form of its pieces (the low bits of x, pushed inside)."""
        self._normalize = normalize
        self.lemmas: list[Term] = []
        self.budget: Budget | None = None
        """When set, each rewritten node is paid from it, and rewriting past its end raises
        `budget.OutOfBudget`."""
        self.applications: list[Application] = []
        """In creation order, which is bottom-up: an application's operands come before it."""
        self.merged = 0
        self.refinements = 0
        self._merged_pairs: list[tuple[Term, Term]] = []
        self._points = _Points([], [], None)
        self._functions: dict[tuple[str, int], z3.FuncDeclRef] = {}
        # Keyed by Z3's term id; the term itself is kept too, because Z3 reuses the id of a freed term.
        self._seen: dict[int, tuple[Term, Term]] = {}
        self._known: dict[int, Term] = {}
        self._facts: set[int] = set()
        """Quotients by constants whose `_quotient_facts` are among the lemmas."""
        self._fact_lemmas: list[Term] = []
        """Those facts, which `merge` asks its questions under too."""

    def _function_term(self, kind: str, x: Term, y: Term) -> Term:
        width = x.size()
        f = self._functions.get((kind, width))
        if f is None:
            sort = z3.BitVecSort(width)
            f = self._functions[(kind, width)] = z3.Function(f"{kind}{width}", sort, sort, sort)
        return f(x, y)

    def _apply(self, kind: str, x: Term, y: Term, *, commutative: bool = False) -> Term:
        term = self._function_term(kind, x, y)
        if term.get_id() not in self._known:
            self._known[term.get_id()] = term
            self.applications.append(Application(kind, term, commutative))
        return term

    def _mul(self, x: Term, y: Term) -> Term:
        if _constant(x) or _constant(y):
            return x * y  # a constant factor is shifts and adds: cheap, and LLVM strength-reduces it
        return self._apply("mul", x, y, commutative=True)

    def _divide(self, x: Term, d: Term) -> Term:
        """The unsigned quotient for d != 0. Its value for d == 0 is never used (every caller picks
        the zero case itself, BPF's 0 or SMT-LIB's all ones), so the function is applied to the
        divisor made safe, `If(d == 0, 1, d)`: the backend divides by exactly that register, and with
        it the operands of the two programs are equal for every input, not only where d != 0."""
        quotient = self._apply("div", x, _safe(d))
        if z3.is_bv_value(d) and d.as_long() > 1 and quotient.get_id() not in self._facts:
            self._facts.add(quotient.get_id())
            facts = self._quotient_facts(quotient, x, d)
            self.lemmas.extend(facts)
            self._fact_lemmas.extend(facts)
        return quotient

    def _quotient_facts(self, q: Term, x: Term, c: Term) -> list[Term]:
        """True statements about `q = x / c` for a constant c > 1, in products by constants only: q is at
        most the largest quotient; and `(y << k) / c`, for y < 2**(width - k), is its whole part and its
        scaled remainder, `((y / c) << k) + (((y << k) - ((y / c) * c << k)) / c)`: the backend's one-division
        form of a float quotient and the two-division form (`ir/passes/unsaturated.py`), which relate through
        it (the shift cannot overflow, so both are floor(y·2**k / c); the remainder part is below 2**k)."""
        width = x.size()
        facts = [z3.ULE(q, z3.BitVecVal(((1 << width) - 1) // c.as_long(), width))]
        scaled = _scaled_dividend(x)
        if scaled is not None:
            y, k = scaled
            whole = self._divide(y, c)
            shift = z3.BitVecVal(1 << k, width)
            rest = self._divide(shift * y - z3.BitVecVal((c.as_long() << k) % (1 << width), width) * whole, c)
            facts.append(z3.Implies(z3.ULT(y, z3.BitVecVal(1 << (width - k), width)), q == shift * whole + rest))
        return facts

    def _remainder(self, x: Term, d: Term) -> Term:
        """The unsigned remainder for d != 0 (likewise)."""
        return self._apply("rem", x, _safe(d))

    def definitions(self) -> list[Term]:
        """Each application equal to the operation it stands for (divisors are never 0 here)."""
        real = {"mul": lambda x, y: x * y, "div": z3.UDiv, "rem": z3.URem}
        return [app.term == real[app.kind](app.term.arg(0), app.term.arg(1)) for app in self.applications]

    def rewrite(self, e: Term) -> Term:
        key = e.get_id()
        done = self._seen.get(key)
        if done is not None:
            return done[1]
        if self.budget is not None:
            self.budget.charge("abstract")
            self.budget.require("abstracting products and quotients")
        out = self._rewrite(e)
        self._seen[key] = (e, out)
        return out

    def _rewrite(self, e: Term) -> Term:
        if not z3.is_app(e) or e.num_args() == 0:
            return e
        kind = e.decl().kind()
        magnitude_of = _absolute_value(e)
        if magnitude_of is not None:
            return abs_value(self.rewrite(magnitude_of))
        low_magnitude = _low_absolute_value(e)
        if low_magnitude is not None:
            x, k = low_magnitude
            return z3.Extract(k - 1, 0, abs_value(self.rewrite(x)))
        if kind == z3.Z3_OP_ITE:
            guarded = self._guarded_division(e)
            if guarded is not None:
                return guarded
        if kind in (z3.Z3_OP_BADD, z3.Z3_OP_BSUB):
            summed = self._sum_with_magnitudes(e)
            if summed is not None:
                return summed
        args = [self.rewrite(a) for a in e.children()]
        if kind == z3.Z3_OP_BMUL:
            out = args[0]
            for a in args[1:]:
                out = self._mul(out, a)
            return out
        if kind in DIVISION_KINDS:
            return self._division(kind, args[0], args[1])
        if any(not a.eq(b) for a, b in zip(args, e.children())):
            return e.decl()(*args)
        return e

    def _same(self, x: Term, y: Term) -> bool:
        """Whether x and y are one value for every input: syntactically, or with one normal form."""
        if x.eq(y):
            return True
        return self._normalize is not None and self._normalize(x).eq(self._normalize(y))

    def _sum_with_magnitudes(self, e: Term) -> Term | None:
        """A sum containing LLVM's |x| idiom (at x's width or at its low k bits) as two separate
        summands, `mixed - sign` with `mixed` = `sign ^ low(x)` (or `low(x ^ (x >>s 63))`) and
        `sign` = `low(x >>s 63)`, which the normal form may have reordered among other summands and
        whose `low(x)` it may have pushed inside x's sum: the pair becomes `low(|x|)`, one term."""
        parts = _summands(e)
        if len(parts) < 2:
            return None
        found: tuple[int, int, Term] | None = None
        for i, (negated, part) in enumerate(parts):
            if negated:
                continue
            idiom = self._magnitude_idiom(part)
            if idiom is None:
                continue
            x, k, sign = idiom
            for j, (neg_j, other) in enumerate(parts):
                if neg_j and other.eq(sign):
                    found = (i, j, z3.Extract(k - 1, 0, abs_value(self.rewrite(x))) if k < x.size()
                             else abs_value(self.rewrite(x)))
                    break
            if found is not None:
                break
        if found is None:
            return None
        i, j, magnitude = found
        out = magnitude
        for index, (negated, part) in enumerate(parts):
            if index in (i, j):
                continue
            term = self.rewrite(part)
            out = out - term if negated else out + term
        return out

    def _magnitude_idiom(self, part: Term) -> tuple[Term, int, Term] | None:
        """(x, k, sign) when `part` is the `mixed` half of LLVM's |x| idiom at k bits (see above)."""
        kind = part.decl().kind()
        if kind == z3.Z3_OP_EXTRACT:
            hi, lo = part.params()
            inner = part.arg(0)
            if lo != 0 or inner.decl().kind() != z3.Z3_OP_BXOR or inner.num_args() != 2:
                return None
            for shifted, x in (inner.children(), inner.children()[::-1]):
                of = sign_of(shifted)
                if of is not None and of.eq(x):
                    return x, hi + 1, z3.Extract(hi, 0, shifted)
            return None
        if kind != z3.Z3_OP_BXOR or part.num_args() != 2:
            return None
        for sign, low in (part.children(), part.children()[::-1]):
            if sign.decl().kind() == z3.Z3_OP_EXTRACT and sign.params()[1] == 0:
                x = sign_of(sign.arg(0))
                k = sign.params()[0] + 1
                if x is not None and self._same(low, z3.Extract(k - 1, 0, x)):
                    return x, k, sign
            else:
                x = sign_of(sign)
                if x is not None and self._same(low, x):
                    return x, x.size(), sign
        return None

    def _guarded_division(self, e: Term) -> Term | None:
        """`If(d == 0, 0, x / d)` and `If(d == 0, x, x % d)` (BPF's rules, as both programs write
        them) as one application each."""
        cond, if_zero, result = e.children()
        divisor = _zero_tested(cond)
        if divisor is None or not z3.is_app(result) or result.num_args() != 2 or not result.arg(1).eq(divisor):
            return None
        kind = result.decl().kind()
        dividend = result.arg(0)
        quotient = z3.is_bv_value(if_zero) and if_zero.as_long() == 0 and kind in UDIV_KINDS | SDIV_KINDS
        remainder = if_zero.eq(dividend) and kind in UREM_KINDS | SREM_KINDS
        if not (quotient or remainder):
            return None
        return self._division(kind, self.rewrite(dividend), self.rewrite(divisor), bpf=True)

    def _division(self, kind: int, x: Term, d: Term, bpf: bool = False) -> Term:
        """A division or remainder, with SMT-LIB's results for a zero divisor (x udiv 0 = all ones,
        x urem 0 = x, and signed through magnitudes) or with BPF's (`bpf`: quotient 0, remainder x).
        """
        w = x.size()
        zero_quotient = z3.BitVecVal(0 if bpf else -1, w)
        if z3.is_bv_value(d) and d.as_long() != 0 and kind in UDIV_KINDS | UREM_KINDS:
            # A constant divisor is never 0: the zero case would only be a dead if-then-else that
            # makes equal operands differ in form.
            return self._divide(x, d) if kind in UDIV_KINDS else self._remainder(x, d)
        if kind in UDIV_KINDS:
            return z3.If(d == 0, zero_quotient, self._divide(x, d))
        if kind in UREM_KINDS:
            return z3.If(d == 0, x, self._remainder(x, d))
        mx, md = abs_value(x), abs_value(d)
        if kind in SDIV_KINDS:
            q = z3.If(md == 0, zero_quotient, self._divide(mx, md))
            return z3.If(z3.Xor(x < 0, d < 0), -q, q)
        r = z3.If(md == 0, mx, self._remainder(mx, md))
        return z3.If(x < 0, -r, r)

    def merge(self, assumptions: list[Term], budget: Budget) -> list[tuple[Term, Term]]:
        """Pairs (application, equal earlier application) for every application whose operands equal
        an earlier one's for every input, and (narrower product, low bits of a later wider one);
        substitute them into the abstract query (`z3.substitute`).

        Bottom-up, so operands that contain merged applications are compared after merging. The
        questions are paid from `budget`; once it is spent, the remaining applications stay apart.
        """
        solver = z3.Solver()
        solver.add(*assumptions, *self._fact_lemmas)  # each merged pair joins them (the facts name both)
        self._points = _Points(assumptions, [a.term for a in self.applications], budget)
        pairs: list[tuple[Term, Term]] = []
        representatives: dict[tuple[str, int], list[tuple[Term, list[Term]]]] = {}
        for app in self.applications:
            operands = [substitute(a, pairs) for a in app.term.children()]
            width = app.term.size()
            group = representatives.setdefault((app.kind, width), [])
            match = self._match(solver, app, operands, group, budget)
            if match is None and app.kind == "mul":
                # A narrower product may be the low bits of a wider one (the normalizer and LLVM
                # both narrow products of which only the low bits are used).
                for (kind, wide), reps in representatives.items():
                    if kind == "mul" and wide > width and match is None:
                        low = [(z3.Extract(width - 1, 0, r), [z3.Extract(width - 1, 0, o) for o in ops])
                               for r, ops in reps]
                        match = self._match(solver, app, operands, low, budget)
            if match is None and app.kind == "mul":
                # Or an earlier narrower product the low bits of this one: that one is then replaced
                # by these low bits, everywhere (earlier pairs and stored operands included).
                narrowed = self._narrower(solver, app, operands, representatives, budget)
                if narrowed is not None:
                    old = narrowed
                    low = z3.Extract(old.size() - 1, 0, app.term)
                    pairs = [(a, low if b.eq(old) else b) for a, b in pairs]
                    pairs.append((old, low))
                    solver.add(old == low)
                    for reps in representatives.values():
                        reps[:] = [(low if r.eq(old) else r, [substitute(o, [(old, low)]) for o in ops])
                                   for r, ops in reps]
            if match is None:
                for rep, rep_operands in group:
                    self.lemmas.append(_congruence(app, rep, operands, rep_operands))
                group.append((app.term, operands))
            else:
                pairs.append((app.term, match))
                solver.add(app.term == match)
        pairs = closed(pairs)
        self.merged = len(pairs)
        self._merged_pairs = pairs
        return pairs

    def _narrower(self, solver: z3.Solver, app: Application, operands: list[Term],
                  representatives: dict[tuple[str, int], list[tuple[Term, list[Term]]]],
                  budget: Budget) -> Term | None:
        """An earlier narrower product (a representative application, not yet replaced) whose operands
        are the low bits of `operands`, so that it is the low bits of `app`."""
        width = app.term.size()
        for (kind, narrow), reps in representatives.items():
            if kind != "mul" or narrow >= width:
                continue
            low = [z3.Extract(narrow - 1, 0, o) for o in operands]
            for rep, rep_operands in reps:
                if not is_application(rep.as_ast(), rep.ctx) or any(_occurs(rep, o, budget) for o in operands):
                    continue
                if self._match(solver, app, low, [(rep, rep_operands)], budget) is not None:
                    return rep
        return None

    def _match(self, solver: z3.Solver, app: Application, operands: list[Term],
               candidates: list[tuple[Term, list[Term]]], budget: Budget) -> Term | None:
        for rep, rep_operands in candidates:
            if budget.exhausted:
                return None
            orders = [operands, operands[::-1]] if app.commutative else [operands]
            if any(self._equal(solver, rep_operands, o, budget) for o in orders):
                return rep
        return None

    def _equal(self, solver: z3.Solver, xs: list[Term], ys: list[Term], budget: Budget) -> bool:
        """Whether the operand lists are equal for every input (under the solver's assumptions); a
        pair that differs at one of the sample points is not (no solver call needed). A question
        gets at most what is left of `budget`, so merging stays within its share."""
        budget.charge("question")
        if any(self._points.differ(x, y) for x, y in zip(xs, ys)):
            return False
        return all(x.eq(y) or equal_terms(solver, x, y, budget) for x, y in zip(xs, ys))

    def refine(self, model: z3.ModelRef) -> list[Term]:
        """Lemmas ruling out this model where it gives an application a value the real operation
        does not have on the model's operands (lazy instantiation of the definitions: one point
        each, which is all a constant operand pair needs)."""
        pairs = self._merged_pairs
        merged = {a.get_id() for a, _ in pairs}
        out: list[Term] = []
        for app in self.applications:
            if app.term.get_id() in merged:
                continue
            term = substitute(app.term, pairs)
            operands = [model.eval(a, model_completion=True) for a in term.children()]
            got = model.eval(term, model_completion=True)
            if not all(z3.is_bv_value(v) for v in (*operands, got)):
                continue
            real = _REAL[app.kind](operands[0].as_long(), operands[1].as_long(), term.size())
            if real is not None and real != got.as_long():
                at = z3.And(*[a == v for a, v in zip(term.children(), operands)])
                out.append(z3.Implies(at, term == z3.BitVecVal(real, term.size())))
        self.refinements += len(out)
        return out


def closed(pairs: list[tuple[Term, Term]]) -> list[tuple[Term, Term]]:
    """The pairs with every replacement itself substituted, until no replacement contains a replaced
    term: `z3.substitute` does not look inside what it puts in, and a replacement may contain an
    application merged later (a narrower product replaced by the low bits of a later wider one whose
    operands contain merged applications). Without this the query keeps both, unrelated."""
    for _ in range(len(pairs)):
        rewritten = [(old, substitute(new, pairs)) for old, new in pairs]
        if all(a.eq(b) for (_, a), (_, b) in zip(rewritten, pairs)):
            break
        pairs = rewritten
    return pairs


def _scaled_dividend(x: Term) -> tuple[Term, int] | None:
    """(y, k) when x is `y << k` for a constant 0 < k < width, written as a shift, as `2**k * y` or as y's low
    bits followed by k zero bits (as the normal form writes it)."""
    if not z3.is_app(x) or x.num_args() < 2:
        return None
    if x.decl().kind() == z3.Z3_OP_CONCAT:  # high bits, then k zero bits
        low = x.arg(x.num_args() - 1)
        high = x.children()[:-1]
        if not z3.is_bv_value(low) or low.as_long() != 0:
            return None
        k = low.size()
        return z3.ZeroExt(k, high[0] if len(high) == 1 else z3.Concat(*high)), k
    if x.num_args() != 2:
        return None
    if x.decl().kind() == z3.Z3_OP_BSHL and z3.is_bv_value(x.arg(1)):
        k = x.arg(1).as_long()
        return (x.arg(0), k) if 0 < k < x.size() else None
    if x.decl().kind() != z3.Z3_OP_BMUL:
        return None
    for factor, y in (x.children(), x.children()[::-1]):
        if z3.is_bv_value(factor):
            k = factor.as_long().bit_length() - 1
            if 0 < k < x.size() and factor.as_long() == 1 << k:
                return y, k
    return None


def _safe(d: Term) -> Term:
    """The divisor with 0 replaced by 1 (a constant stays a constant)."""
    if z3.is_bv_value(d):
        return d if d.as_long() != 0 else z3.BitVecVal(1, d.size())
    return z3.If(d == 0, z3.BitVecVal(1, d.size()), d)


def _absolute_value(e: Term) -> Term | None:
    """x, when `e` is |x| written as a select (`If(0 <= x, x, -x)` and its variants) or as LLVM's
    branch-free idiom (`(x ^ (x >>s 63)) - (x >>s 63)`); both become `z3_algebra.abs_value(x)`, one term."""
    kind = e.decl().kind()
    if kind == z3.Z3_OP_ITE:
        cond, yes, no = e.children()
        negated = False
        if cond.decl().kind() == z3.Z3_OP_NOT:
            cond, negated = cond.arg(0), True
        ck = cond.decl().kind()
        if ck not in (z3.Z3_OP_SLEQ, z3.Z3_OP_SGEQ, z3.Z3_OP_SLT, z3.Z3_OP_SGT):
            return None
        left, right = cond.children()
        # Normalise to "x is non-negative" (then yes = x, no = -x) or "x is negative".
        if ck == z3.Z3_OP_SLEQ and _is_zero(left):
            x, nonnegative = right, True
        elif ck == z3.Z3_OP_SGEQ and _is_zero(right):
            x, nonnegative = left, True
        elif ck == z3.Z3_OP_SLT and _is_zero(right):
            x, nonnegative = left, False
        elif ck == z3.Z3_OP_SGT and _is_zero(left):
            x, nonnegative = right, False
        else:
            return None
        if negated:
            nonnegative = not nonnegative
        plain, minus = (yes, no) if nonnegative else (no, yes)
        if plain.eq(x) and _negation_of(minus, x):
            return x
        return None
    return magnitude_idiom(e)


def _low_absolute_value(e: Term) -> tuple[Term, int] | None:
    """(x, k), when `e` is the low k bits of LLVM's |x| idiom, computed at k bits:
    `(low(x) ^ low(x >>s 63)) - low(x >>s 63)` (a 32-bit subtraction of a 64-bit magnitude)."""
    if e.decl().kind() != z3.Z3_OP_BSUB or e.num_args() != 2:
        return None
    mixed, sign = e.children()
    if mixed.decl().kind() != z3.Z3_OP_BXOR or mixed.num_args() != 2 or sign.decl().kind() != z3.Z3_OP_EXTRACT:
        return None
    hi, lo = sign.params()
    x = sign_of(sign.arg(0))
    if lo != 0 or x is None:
        return None
    low_x = z3.Extract(hi, 0, x)
    a, b = mixed.children()
    if (a.eq(low_x) and b.eq(sign)) or (a.eq(sign) and b.eq(low_x)):
        return x, hi + 1
    return None


def _occurs(t: Term, inside: Term, budget: Budget) -> bool:
    """Whether `t` is a subterm of `inside` (the walk paid from `budget`, node by node)."""
    below = subterm_asts([inside])
    budget.charge("walk", len(below))
    return t.get_id() in below


def _summands(e: Term) -> list[tuple[bool, Term]]:
    """The summands of a chain of additions and subtractions, each with whether it is subtracted."""
    out: list[tuple[bool, Term]] = []
    stack: list[tuple[bool, Term]] = [(False, e)]
    while stack:
        negated, t = stack.pop()
        kind = t.decl().kind() if z3.is_app(t) else None
        if kind == z3.Z3_OP_BADD:
            stack.extend((negated, c) for c in reversed(t.children()))
        elif kind == z3.Z3_OP_BSUB and t.num_args() >= 1:
            children = t.children()
            stack.extend((not negated, c) for c in reversed(children[1:]))
            stack.append((negated, children[0]))
        else:
            out.append((negated, t))
    return out


def _is_zero(t: Term) -> bool:
    return bool(z3.is_bv_value(t) and t.as_long() == 0)


def _negation_of(minus: Term, x: Term) -> bool:
    if minus.decl().kind() == z3.Z3_OP_BNEG and minus.arg(0).eq(x):
        return True
    return _is_zero(z3.simplify(minus + x))


def _zero_tested(cond: Term) -> Term | None:
    """d, when `cond` is `d == 0` (either way round)."""
    if not z3.is_eq(cond):
        return None
    a, b = cond.children()
    if _is_zero(b):
        return a
    if _is_zero(a):
        return b
    return None


def _constant(x: Term) -> bool:
    """Whether `x` folds to a constant. Only the operand is simplified: simplifying the whole query
    would lift if-then-else chains into operands and hide which products correspond."""
    return bool(z3.is_bv_value(x) or z3.is_bv_value(z3.simplify(x)))


_REAL: dict[str, Callable[[int, int, int], int | None]] = {
    "mul": lambda x, y, w: (x * y) % (1 << w),
    "div": lambda x, y, w: None if y == 0 else x // y,  # the zero case is never used
    "rem": lambda x, y, w: None if y == 0 else x % y,
}


def _congruence(app: Application, rep: Term, operands: list[Term], rep_operands: list[Term]) -> Term:
    """Equal operands give equal results (Ackermann's constraint, spelled out: the solver does not
    find on its own that operands equal under some path condition make two applications equal)."""
    orders = [operands, operands[::-1]] if app.commutative else [operands]
    same = z3.Or(*[z3.And(*[x == y for x, y in zip(o, rep_operands)]) for o in orders])
    return z3.Implies(same, app.term == rep)


class _Points:
    """A few sample inputs (satisfying the assumptions) with sample values of the abstract functions'
    applications, at which terms are evaluated: terms that differ at one are not equal for every
    input, which spares most of `merge`'s solver questions. Only ever used to rule a merge out."""

    COUNT = 3

    def __init__(self, assumptions: list[Term], applications: list[Term], budget: Budget | None) -> None:
        """Points drawn with solvers paid from `budget` (None: no points, nothing is ruled out)."""
        rng = random.Random(0)
        self._applications = applications
        self._random = rng
        self._points: list[tuple[dict[int, Term], list[tuple[Term, Term]]]] = []
        self._cache: dict[int, tuple[Term, tuple[int, ...] | None]] = {}
        if budget is None:
            return
        variables = free_constants(assumptions)
        for i in range(self.COUNT):
            solver = z3.Solver()
            solver.set("random_seed", i)
            solver.add(*assumptions)
            if budget.check(solver, SAMPLE_UNITS) != z3.sat:
                continue
            model = solver.model()
            known = {k: model.eval(v, model_completion=True) for k, v in variables.items()}
            self._points.append((known, self._sample_values(known, applications)))

    def _sample_values(self, known: dict[int, Term], applications: list[Term]) -> list[tuple[Term, Term]]:
        """A value per application, bottom-up: the real operation's on its operands' values where those
        are decided (so the point obeys the quotient facts too), a random one where not."""
        values: list[tuple[Term, Term]] = []
        for a in applications:
            for k, v in free_constants(a.children()).items():
                if k not in known and z3.is_bv(v):  # drawn now, as `_value` would draw it later
                    known[k] = z3.BitVecVal(self._random.getrandbits(v.size()), v.size())
            value = _real_value(a, known, values)
            values.append((a, value if value is not None
                           else z3.BitVecVal(self._random.getrandbits(a.size()), a.size())))
        return values

    def _value(self, t: Term) -> tuple[int, ...] | None:
        key = t.get_id()
        found = self._cache.get(key)
        if found is not None and found[0].eq(t):
            return found[1]
        out: list[int] = []
        for known, values in self._points:
            plain = z3.substitute(t, *values) if values else t
            pairs = []
            for k, v in free_constants([plain]).items():
                if not (z3.is_bv(v) or z3.is_bool(v)):
                    continue  # arrays stay symbolic: a value read from one is then not decided
                if k not in known or not known[k].sort().eq(v.sort()):
                    known[k] = z3.BitVecVal(self._random.getrandbits(v.size()), v.size()) if z3.is_bv(v) \
                        else z3.BoolVal(self._random.getrandbits(1) == 1)
                pairs.append((v, known[k]))
            try:
                value = z3.simplify(z3.substitute(plain, *pairs) if pairs else plain)
            except z3.Z3Exception:  # a sampling shortcut only: undecided means "ask the solver"
                value = plain
            if not z3.is_bv_value(value):
                self._cache[key] = (t, None)
                return None
            out.append(value.as_long())
        self._cache[key] = (t, tuple(out))
        return tuple(out)

    def differ(self, x: Term, y: Term) -> bool:
        if not self._points or x.eq(y):
            return False
        vx, vy = self._value(x), self._value(y)
        return vx is not None and vy is not None and vx != vy


def _real_value(application: Term, known: dict[int, Term], values: list[tuple[Term, Term]]) -> Term | None:
    """The value of the operation `application` stands for at a sample point (`known`: the inputs' values
    by Z3 id; `values`: the earlier applications'), or None when its operands are not decided there."""
    operation = _REAL.get(application.decl().name().rstrip("0123456789"))
    if operation is None:
        return None
    operands = [z3.substitute(o, *values) if values else o for o in application.children()]
    pairs = [(v, known[k]) for k, v in free_constants(operands).items()
             if k in known and known[k].sort().eq(v.sort())]
    try:
        x, y = (z3.simplify(z3.substitute(o, *pairs) if pairs else o) for o in operands)
    except z3.Z3Exception:
        return None
    if not (z3.is_bv_value(x) and z3.is_bv_value(y)):
        return None
    value = operation(x.as_long(), y.as_long(), application.size())
    return None if value is None else z3.BitVecVal(value, application.size())


def equal_terms(solver: z3.Solver, x: Term, y: Term, budget: Budget, units: int = MERGE_CHECK_UNITS) -> bool:
    """Whether x and y are equal for every input satisfying the solver's assertions (the whole
    question, if needed, to a fresh solver: see `compare_terms`)."""
    return compare_terms(solver, x, y, budget, units, fresh=True) is True


def compare_terms(solver: z3.Solver, x: Term, y: Term, budget: Budget, units: int,
                  fresh: bool = False) -> bool | z3.ModelRef | None:
    """True when x and y are equal for every input satisfying the solver's assertions; otherwise a
    model on which they differ, or None when undecided within `units` resource units per check (and
    what is left of `budget`).

    First with the subterms the two sides share replaced by fresh variables (`shared_cut_points`): a
    formula valid for arbitrary values there is valid for the real ones, and the solver then only
    compares what differs
    (typically an absolute value written two ways around one shared sum of products, which it cannot
    do quickly when it has to bit-blast that sum). Only if that fails is the whole question asked.

    Questions go to `solver` pushed and popped, except the whole one with `fresh`: that goes to a new
    solver with the same assertions, where Z3 preprocesses the question before bit-blasting (it does
    not in incremental mode). The merge asks few, large questions over the assumptions alone, and its
    questions about the halves of a magnitude took 0.3 s incrementally and 0.07 s fresh; the sweep asks
    many small ones over every lemma, which copying and preprocessing would make 20% slower."""
    cuts = shared_cut_points(x, y, budget)
    if cuts and _pushed(solver, substitute(x, cuts) != substitute(y, cuts), budget, units)[0] == z3.unsat:
        return True
    if fresh:  # never pushed: a push is what switches Z3 to its incremental mode
        whole = z3.Solver()
        whole.add(*solver.assertions(), x != y)
        verdict = budget.check(whole, units)
        model = whole.model() if verdict == z3.sat else None
    else:
        verdict, model = _pushed(solver, x != y, budget, units)
    return True if verdict == z3.unsat else model


def _pushed(solver: z3.Solver, claim: Term, budget: Budget,
            units: int) -> tuple[z3.CheckSatResult, z3.ModelRef | None]:
    """Whether `claim` is satisfiable with the solver's assertions (and a model if so), asked in a
    scope of its own, so the solver is as before afterwards."""
    solver.push()
    solver.add(claim)
    verdict = budget.check(solver, units)
    model = solver.model() if verdict == z3.sat else None
    solver.pop()
    return verdict, model


def shared_cut_points(x: Term, y: Term, budget: Budget | None = None) -> list[tuple[Term, Term]]:
    """(subterm, fresh constant) for the subterms x and y share, but not for negations, slices and
    the like of them (`is_cut_point`): substituted into both, what is left to compare is how the two
    terms differ, with the relations between the shared parts kept. The walk over both is paid from
    `budget` node by node (a question's fixed charge does not grow with its terms)."""
    walked = None if budget is None else (lambda nodes: budget.charge("walk", nodes))
    return [(t, z3.FreshConst(t.sort(), "shared")) for t in shared_subterms([x], [y], is_cut_point, walked)]


def has_runtime_products(program: n.Program) -> bool:
    """Whether the IR multiplies or divides run-time values (what this module abstracts)."""
    constants = {i.out for b in program.blocks for i in b.instrs if isinstance(i, n.Const)}
    for block in program.blocks:
        for i in block.instrs:
            if isinstance(i, n.IntQuotient | n.FixedDivInt):
                return True
            if isinstance(i, n.Binary) and i.op in (BinOp.DIV, BinOp.MOD):
                return True  # by a constant too: the abstraction keeps every quotient
            if isinstance(i, n.Binary) and i.op is BinOp.MUL and i.lhs not in constants and i.rhs not in constants:
                return True
    return False


def shared_cuts(side_a: list[Term], side_b: list[Term]) -> list[tuple[Term, Term]]:
    """(subterm, fresh constant) for the largest arithmetic subterms both sides contain.

    Substituting them into a query is a generalization (the query then holds for arbitrary values
    there): if it is unsatisfiable, so is the original. It spares the solver the bit-blasting of
    circuits both programs share (sums of constant products, abstract products), which it would
    otherwise build once and still have to reason through bit by bit. Subterms without arithmetic stay,
    because their exact bits (a zero-extended byte is below 256) are often what the proof needs.
    """
    left, right = subterms(side_a), subterms(side_b)
    arithmetic: dict[int, bool] = {}

    def costly(t: Term) -> bool:
        key = t.get_id()
        known = arithmetic.get(key)
        if known is None:
            known = z3.is_app(t) and t.num_args() > 0 and (
                t.decl().kind() in _COSTLY or any(costly(c) for c in t.children()))
            arithmetic[key] = known
        return known

    shared = [t for k, t in left.items() if k in right and z3.is_bv(t) and costly(t)]
    return [(t, z3.FreshConst(t.sort(), "cut")) for t in shared]


_COSTLY = {z3.Z3_OP_BMUL, z3.Z3_OP_UNINTERPRETED, *DIVISION_KINDS}
