"""Sweeping: equal subterms of the two sides are found and merged, and only proven-equal ones."""

from __future__ import annotations

import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfdsl import XDP_PASS, Global, Packet, u64, xdp
from pybpfdsl.verify.equivalence import sweep as sweep_module
from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.nonlinear import closed
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from pybpfdsl.verify.equivalence.sweep import sweep
from pybpfdsl.verify.equivalence.terms import is_costly_product, substitute

MUL = z3.Function("mul64", z3.BitVecSort(64), z3.BitVecSort(64), z3.BitVecSort(64))
A, B, S = z3.BitVecs("a b s", 64)


def _magnitude(x: z3.BitVecRef) -> z3.BitVecRef:
    return z3.If(x < 0, -x, x)


SWEEP_UNITS = 50_000_000
"""Resource units of a sweep here: far more than these small questions need."""


def _sweep(side_a: list[z3.ExprRef], side_b: list[z3.ExprRef]) -> list[tuple[z3.ExprRef, z3.ExprRef]]:
    """The pairs of every stage (each stage's terms are already rewritten by the ones before)."""
    return [pair for stage in sweep(side_a, side_b, [], [], Budget(SWEEP_UNITS)).stages for pair in stage]


def test_a_products_sign_written_two_ways_becomes_one_term() -> None:
    # The IR tests the signs separately; LLVM tests the sign of a ^ b (lang.fixed's signed product).
    product = MUL(_magnitude(A), _magnitude(B))
    ir = S + z3.If(z3.Xor(A < 0, B < 0), -product, product)
    bytecode = S + z3.If((A ^ B) < 0, -product, product)
    for stage in sweep([ir], [bytecode], [], [], Budget(SWEEP_UNITS)).stages:
        bytecode = substitute(bytecode, stage)
    assert bytecode.eq(ir)


def test_a_select_between_x_and_minus_x_matches_its_negation() -> None:
    # `s - If(c, p, -p)` and `s + If(c, -p, p)`: the selects are negations of each other.
    product = MUL(A, B)
    ir = S - z3.If(A < 0, product, -product)
    bytecode = S + z3.If(A < 0, -product, product)
    pairs = _sweep([ir], [bytecode])
    assert any(z3.is_app(r) and r.decl().kind() == z3.Z3_OP_BNEG for _, r in pairs), \
        "the select is matched to the negation of the other side's"
    for t, r in pairs:
        solver = z3.Solver()
        solver.add(t != r)
        assert solver.check() == z3.unsat


def test_unequal_terms_that_agree_on_most_inputs_stay_apart() -> None:
    # Equal except where a == 12345: random samples rarely tell them apart, the solver does.
    product = MUL(A, B)
    ir = z3.If(A == 12345, product + 1, product)
    bytecode = product + 0 * A
    pairs = _sweep([ir + S], [bytecode + S])
    for t, r in pairs:
        solver = z3.Solver()
        solver.add(t != r)
        assert solver.check() == z3.unsat


def test_merged_pairs_are_closed_under_substitution() -> None:
    f = z3.Function("f", z3.BitVecSort(8), z3.BitVecSort(8))
    x, y, z = z3.BitVecs("x y z", 8)
    pairs = closed([(x, f(y)), (y, z)])
    assert [str(v) for _, v in pairs] == ["f(z)", "z"]


def test_costly_products_are_those_by_constants_not_powers_of_two() -> None:
    x = z3.BitVec("x", 64)
    expected = {1000: True, 1000 << 32: True, 31: True, 3: True, 3 << 40: True, 1 << 32: False, 1: False}
    for k, costly in expected.items():
        product = x * k
        assert is_costly_product(product.as_ast(), product.ctx) is costly, k
    runtime = x * z3.BitVec("y", 64)
    assert not is_costly_product(runtime.as_ast(), runtime.ctx)


scale = Global(float, 2.5)
scaled = Global(u64, 0)


@xdp
def scaled_to_int(pkt: Packet) -> int:
    scaled.value = u64(scale.value * 1000.25)
    return XDP_PASS


@xdp
def scaled_by_a_whole_number(pkt: Packet) -> int:
    scaled.value = u64(scale.value * 1000.0)
    return XDP_PASS


def test_a_product_by_a_constant_written_two_ways_is_swept_together() -> None:
    # The IR multiplies the magnitude by the constant's halves one way, LLVM another. The solver did not
    # prove the two adder trees equal within 20 s; sweeping meets the two products in 0.2 s. Within the
    # budget `compile()` gives a proof, since `attach` needs it.
    result = prove_compiled(scaled_to_int.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()
    assert result.stats["swept"] and not result.stats["abstracted"]


def test_a_product_by_a_whole_number_is_one_product_on_both_sides() -> None:
    # `fixed.multiply` by k * 2**32 is the raw value times k on both sides: nothing left to sweep.
    result = prove_compiled(scaled_by_a_whole_number.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()
    assert not result.stats.get("swept") and not result.stats["abstracted"]


# Random 8-bit expressions over two variables and one abstract function.
X, Y = z3.BitVecs("x y", 8)
F = z3.Function("f", z3.BitVecSort(8), z3.BitVecSort(8), z3.BitVecSort(8))
_LEAVES = st.sampled_from([X, Y, z3.BitVecVal(0, 8), z3.BitVecVal(1, 8), z3.BitVecVal(255, 8)])


def _combine(children: st.SearchStrategy[z3.BitVecRef]) -> st.SearchStrategy[z3.BitVecRef]:
    binary = st.tuples(st.sampled_from(["add", "sub", "xor", "and", "f", "ite"]), children, children)
    unary = st.tuples(st.sampled_from(["neg", "not", "scale"]), children)

    def build(parts: tuple[object, ...]) -> z3.BitVecRef:
        op, *args = parts
        a = args[0]
        b = args[1] if len(args) > 1 else None
        table = {"add": lambda: a + b, "sub": lambda: a - b, "xor": lambda: a ^ b, "and": lambda: a & b,
                 "f": lambda: F(a, b), "ite": lambda: z3.If(z3.ULT(a, b), a, b), "neg": lambda: -a,
                 "not": lambda: ~a, "scale": lambda: a * 87}  # a costly product: a sweep anchor too
        return table[str(op)]()  # type: ignore[no-any-return]

    return st.one_of(binary, unary).map(build)


EXPRESSIONS = st.recursive(_LEAVES, _combine, max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(EXPRESSIONS, min_size=1, max_size=3), st.lists(EXPRESSIONS, min_size=1, max_size=3))
def test_every_pair_the_sweep_returns_is_equal_for_every_input(side_a: list[z3.BitVecRef],
                                                              side_b: list[z3.BitVecRef]) -> None:
    # Substituting a pair into a query is sound only if the two terms are equal for all inputs and
    # every interpretation of the abstract function. One sample point, so that unequal terms often
    # share a signature and only the solver's question keeps them apart.
    points = sweep_module.SWEEP_POINTS
    sweep_module.SWEEP_POINTS = 1
    try:
        pairs = _sweep([F(e, X) for e in side_a], [F(e, X) for e in side_b])
    finally:
        sweep_module.SWEEP_POINTS = points
    for t, r in pairs:
        solver = z3.Solver()
        solver.add(t != r)
        assert solver.check() == z3.unsat, (t, r)
