"""One arithmetic, four executions: the instances of `lang.algebra` agree on every operation.

`lang.arith` and `lang.fixed` are written once over an algebra; pure Python and the IR interpreter run the
Python-int instance, the prover the Z3 one, the backend the LLVM one. Here each operation runs on random
operands in three of them: Python ints, Z3 terms of constants (simplified to a value), and the LLVM
instance's code compiled for this machine and called (the kernel runs the same code compiled for BPF in
`tests/backend/test_lower.py`). An instance that gets an operation wrong disagrees here.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import z3
from hypothesis import given, settings
from hypothesis import strategies as st
from llvmlite import binding as llvm
from llvmlite import ir

from pybpfdsl.backend.llvm_algebra import LlvmAlgebra
from pybpfdsl.lang import arith, fixed
from pybpfdsl.lang.algebra import pattern
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import BOOL, FLOAT, INT_TYPES, SCALAR_TYPES, ScalarType, i64
from pybpfdsl.verify.equivalence.z3_algebra import Z3_ALGEBRA


@dataclass(frozen=True)
class Case:
    """One operation at fixed types: `run(ops, a, b)` over any algebra, operands of `left`/`right`."""

    name: str
    left: ScalarType
    right: ScalarType
    result_bits: int
    run: Callable[[Any, Any, Any], Any]
    python: Callable[[int, int], int]
    """The same on Python ints in the types' representation, as pure Python and the IR interpreter call it."""


def _binary(op: BinOp, t: ScalarType) -> Case:
    return Case(f"{op.value}_{t}", t, t, t.bits, lambda o, a, b: arith.binary_in(o, op, t, a, b),
                lambda a, b: arith.binary(op, t, a, b))


def _compare(op: CmpOp, t: ScalarType) -> Case:
    return Case(f"{op.value}_{t}", t, t, 1, lambda o, a, b: o.bool_value(arith.compare_in(o, op, t, a, b)),
                lambda a, b: int(arith.compare(op, t, a, b)))


def _convert(source: ScalarType, target: ScalarType) -> Case:
    return Case(f"{source}_to_{target}", source, source, target.bits,
                lambda o, a, b: arith.convert_in(o, a, source, target), lambda a, b: arith.convert(a, source, target))


CASES: list[Case] = [
    *(_binary(op, t) for t in INT_TYPES for op in BinOp),
    *(_binary(op, BOOL) for op in (BinOp.AND, BinOp.OR, BinOp.XOR)),
    *(_binary(op, FLOAT) for op in arith.FIXED_BINOPS),
    *(_compare(op, t) for t in (*INT_TYPES, BOOL, FLOAT) for op in CmpOp),
    *(_convert(s, t) for s in SCALAR_TYPES.values() for t in SCALAR_TYPES.values() if s != t),
    Case("int_quotient", i64, i64, 64, fixed.divide_integers, fixed.quotient),
    Case("fixed_div_int", FLOAT, i64, 64, fixed.divide_by_integer, fixed.div_int),
]


def values_of(t: ScalarType) -> st.SearchStrategy[int]:
    """Values of `t` in its representation, the edges where arithmetic goes wrong included."""
    if t.is_bool:
        return st.integers(0, 1)
    lo, hi = (-(1 << 63), (1 << 63) - 1) if t.is_fixed else (t.min, t.max)
    edges = sorted({lo, lo + 1, hi, hi - 1, 0, 1, 2, t.wrap(-1), t.bits - 1, t.bits, fixed.ONE if t.is_fixed else 3,
                    -fixed.ONE if t.is_fixed else t.wrap(-3)})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi), st.integers(-300, 300).map(t.wrap))


# --------------------------------------------------------------------------- #
# The three executions of a case, each giving the result's bit pattern
# --------------------------------------------------------------------------- #


def python_result(case: Case, a: int, b: int) -> int:
    return pattern(case.python(a, b), case.result_bits)


def z3_result(case: Case, a: int, b: int) -> int:
    term = case.run(Z3_ALGEBRA, z3.BitVecVal(pattern(a, case.left.bits), case.left.bits),
                    z3.BitVecVal(pattern(b, case.right.bits), case.right.bits))
    value = z3.simplify(term)
    assert z3.is_bv_value(value), value
    result: int = value.as_long()
    return result


@cache
def _machine_code() -> tuple[Any, dict[str, Callable[[int, int], int]]]:
    """Every case as a function `u64 f(u64 a, u64 b)` compiled for this machine (one module, once)."""
    module = ir.Module(name="arith_instances")
    module.triple = llvm.get_process_triple()
    i64_t = ir.IntType(64)
    for case in CASES:
        fn = ir.Function(module, ir.FunctionType(i64_t, [i64_t, i64_t]), case.name)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        ops = LlvmAlgebra(b)
        a, c = (b.trunc(arg, ir.IntType(t.bits)) for arg, t in zip(fn.args, (case.left, case.right)))
        result = case.run(ops, a, c)
        b.ret(b.zext(result, i64_t) if case.result_bits < 64 else result)
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    machine = llvm.Target.from_default_triple().create_target_machine()
    compiled = llvm.parse_assembly(str(module))
    compiled.verify()
    engine = llvm.create_mcjit_compiler(compiled, machine)
    engine.finalize_object()
    signature = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64)
    functions = {case.name: signature(engine.get_function_address(case.name)) for case in CASES}
    return engine, functions  # the engine owns the code: kept alive with the functions


def llvm_result(case: Case, a: int, b: int) -> int:
    fn = _machine_code()[1][case.name]
    result: int = fn(pattern(a, 64), pattern(b, 64))
    return result & ((1 << case.result_bits) - 1)


@st.composite
def case_and_operands(draw: st.DrawFn) -> tuple[Case, int, int]:
    case = draw(st.sampled_from(CASES))
    a, b = draw(values_of(case.left)), draw(values_of(case.right))
    if draw(st.booleans()) and case.left == case.right:
        b = a  # equal operands: x - x, x / x, x == x
    return case, a, b


@settings(max_examples=800, deadline=None)  # about 3 per case; each CI run draws anew
@given(case_and_operands())
def test_python_z3_and_llvm_instances_agree(drawn: tuple[Case, int, int]) -> None:
    case, a, b = drawn
    expected = python_result(case, a, b)
    assert z3_result(case, a, b) == expected, (case.name, a, b)
    assert llvm_result(case, a, b) == expected, (case.name, a, b)


def test_every_operation_has_a_case() -> None:
    names = {c.name for c in CASES}
    assert {f"{op.value}_i32" for op in BinOp} <= names
    assert {f"{op.value}_float" for op in CmpOp} <= names
    assert len([c for c in CASES if "_to_" in c.name]) == len(SCALAR_TYPES) * (len(SCALAR_TYPES) - 1)


def test_python_instance_is_the_reference_fixed_point() -> None:
    """The Python instance of the Q32.32 product is exact truncation of the rational product (checked
    independently of the algebra in tests/lang/test_fixed.py); here two values by hand."""
    assert fixed.mul(fixed.from_float(-1.5), fixed.from_float(2.25)) == fixed.from_float(-3.375)
    assert fixed.to_int(fixed.from_float(-2.5)) == -2
