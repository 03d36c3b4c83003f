"""Walking Z3 term DAGs without z3py's per-node wrappers.

`ExprRef.children()` builds a Python object for every child (several C calls each, to find its
sort and class). The prover walks the same large DAGs many times (the subterms both sides share, for
every merge and sweep question), and half of a proof's time went there. These walks stay with raw
ASTs through the C API and wrap only the terms the caller keeps.
"""

from __future__ import annotations

from collections.abc import Callable

import z3
from z3 import Ast

from pybpfdsl.verify.equivalence.symbolic_state import Term


def subterm_asts(roots: list[Term]) -> dict[int, Ast]:
    """Every distinct subterm of `roots` (roots included), by Z3 id, as raw ASTs (alive as long as
    the roots are)."""
    if not roots:
        return {}
    ctx = roots[0].ctx.ref()
    seen: dict[int, Ast] = {}
    stack = [r.as_ast() for r in roots]
    while stack:
        a = stack.pop()
        key = z3.Z3_get_ast_id(ctx, a)
        if key in seen:
            continue
        seen[key] = a
        if z3.Z3_get_ast_kind(ctx, a) == z3.Z3_APP_AST:
            app = z3.Z3_to_app(ctx, a)
            for i in range(z3.Z3_get_app_num_args(ctx, app)):
                stack.append(z3.Z3_get_app_arg(ctx, app, i))
    return seen


def subterms(roots: list[Term], keep: Callable[[Ast, z3.Context], bool] | None = None) -> dict[int, Term]:
    """Every distinct subterm of `roots` by id (only those `keep` accepts, if given), wrapped."""
    if not roots:
        return {}
    ctx = roots[0].ctx
    return {k: z3.z3._to_expr_ref(a, ctx) for k, a in subterm_asts(roots).items()
            if keep is None or keep(a, ctx)}


def shared_subterms(xs: list[Term], ys: list[Term], keep: Callable[[Ast, z3.Context], bool],
                    walked: Callable[[int], None] | None = None) -> list[Term]:
    """The subterms occurring both in `xs` and in `ys` that `keep` accepts, wrapped; `walked` is told
    how many nodes the walk visited (to charge them to a budget)."""
    if not xs or not ys:
        return []
    ctx = xs[0].ctx
    left, right = subterm_asts(xs), subterm_asts(ys)
    if walked is not None:
        walked(len(left) + len(right))
    small, large = (left, right) if len(left) <= len(right) else (right, left)
    return [z3.z3._to_expr_ref(a, ctx) for k, a in small.items() if k in large and keep(a, ctx)]


def _application(a: Ast, ctx: z3.Context) -> tuple[int, int] | None:
    """(operation kind, number of arguments) of an application; None for a quantifier or variable."""
    ref = ctx.ref()
    if z3.Z3_get_ast_kind(ref, a) != z3.Z3_APP_AST:
        return None
    app = z3.Z3_to_app(ref, a)
    return z3.Z3_get_decl_kind(ref, z3.Z3_get_app_decl(ref, app)), z3.Z3_get_app_num_args(ref, app)


def _is_bv(a: Ast, ctx: z3.Context) -> bool:
    ref = ctx.ref()
    return bool(z3.Z3_get_sort_kind(ref, z3.Z3_get_sort(ref, a)) == z3.Z3_BV_SORT)


def is_computed_bv(a: Ast, ctx: z3.Context) -> bool:
    """A bit-vector application with arguments (not a variable or a constant)."""
    found = _application(a, ctx)
    return found is not None and found[1] > 0 and _is_bv(a, ctx)


_WRAPPERS = frozenset({z3.Z3_OP_BNEG, z3.Z3_OP_BNOT, z3.Z3_OP_EXTRACT, z3.Z3_OP_ZERO_EXT, z3.Z3_OP_SIGN_EXT,
                       z3.Z3_OP_CONCAT, z3.Z3_OP_ITE})
"""Bit-vector operations that only negate, slice, extend, join or choose between their operands."""


def is_cut_point(a: Ast, ctx: z3.Context) -> bool:
    """A computed bit-vector worth replacing by a fresh variable when two terms sharing it are
    compared (`is_computed_bv`), unless it only wraps other terms (`_WRAPPERS`). A wrapper costs the
    solver little, and cut apart from its operand it loses its relation to it: with both `S` and
    `-S` cut, `-If(c, S, -S)` and `If(c, -S, S)` become `-If(c, u, v)` and `If(c, v, u)`, which are
    not equal; with `S` alone cut they are, at once."""
    found = _application(a, ctx)
    return found is not None and found[1] > 0 and found[0] not in _WRAPPERS and _is_bv(a, ctx)


def is_free_constant(a: Ast, ctx: z3.Context) -> bool:
    """An uninterpreted constant (an input variable, or a fresh one)."""
    return _application(a, ctx) == (z3.Z3_OP_UNINTERPRETED, 0)


def is_application(a: Ast, ctx: z3.Context) -> bool:
    """An application of an uninterpreted function (with arguments)."""
    found = _application(a, ctx)
    return found is not None and found[0] == z3.Z3_OP_UNINTERPRETED and found[1] > 0


def substitute(t: Term, pairs: list[tuple[Term, Term]]) -> Term:
    """`z3.substitute(t, *pairs)` without its per-pair sort checks in Python, which cost more than
    the substitution on the prover's long pair lists (the pairs here always have matching sorts)."""
    if not pairs:
        return t
    ctx = t.ctx
    sources, targets = (Ast * len(pairs))(), (Ast * len(pairs))()
    for i, (x, y) in enumerate(pairs):
        sources[i], targets[i] = x.as_ast(), y.as_ast()
    out: Term = z3.z3._to_expr_ref(z3.Z3_substitute(ctx.ref(), t.as_ast(), len(pairs), sources, targets), ctx)
    return out


def is_costly_product(a: Ast, ctx: z3.Context) -> bool:
    """A product by a constant that is not a power of two: bit-blasted, a tree of adders (`x * 1000`
    is six shifted copies of x added; a power of two is a shift). Two programs' trees for one product
    differ (LLVM splits it into 32-bit halves), and a solver proves such trees equal slowly, so
    sweeping treats them as it treats abstract functions. Even `x * 3` counts: alone its one adder is
    quick to compare, but next to a larger product in one output it made the sweep's questions
    too hard (`u64(x * 3.0) + u64(x * 1000.0)`)."""
    found = _application(a, ctx)
    if found is None or found[0] != z3.Z3_OP_BMUL:
        return False
    ref = ctx.ref()
    app = z3.Z3_to_app(ref, a)
    for i in range(found[1]):
        arg = z3.Z3_get_app_arg(ref, app, i)
        if z3.Z3_is_numeral_ast(ref, arg):
            value = int(z3.Z3_get_numeral_string(ref, arg))
            return value & (value - 1) != 0  # neither zero nor a power of two
    return False


def is_sweep_anchor(a: Ast, ctx: z3.Context) -> bool:
    """What the terms sweeping compares are above: an abstract function's application, or a costly
    product by a constant."""
    return is_application(a, ctx) or is_costly_product(a, ctx)


UDIV_KINDS = frozenset({z3.Z3_OP_BUDIV, z3.Z3_OP_BUDIV_I})
UREM_KINDS = frozenset({z3.Z3_OP_BUREM, z3.Z3_OP_BUREM_I})
SDIV_KINDS = frozenset({z3.Z3_OP_BSDIV, z3.Z3_OP_BSDIV_I})
SREM_KINDS = frozenset({z3.Z3_OP_BSREM, z3.Z3_OP_BSREM_I})
DIVISION_KINDS = UDIV_KINDS | UREM_KINDS | SDIV_KINDS | SREM_KINDS
"""z3's quotient and remainder operators, unsigned and signed (the `_I` kinds are z3's forms for a divisor it
knows is not zero), for the normal form and the abstraction alike."""


def op_kind(e: Term) -> int:
    """The operator of an application (cheaper than `e.decl().kind()`, which builds a FuncDeclRef)."""
    ctx = e.ctx_ref()
    ast = e.as_ast()
    if z3.Z3_get_ast_kind(ctx, ast) != z3.Z3_APP_AST:
        return -1
    kind: int = z3.Z3_get_decl_kind(ctx, z3.Z3_get_app_decl(ctx, ast))
    return kind
