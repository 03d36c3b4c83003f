"""Examples and construct programs prove equivalent to their IR; the attach gate and compile(prove=...)."""

from __future__ import annotations

import pytest

from examples import (
    admission_control,
    bandwidth_limiter,
    circuit_breaker,
    fault_injection,
    logging_counters,
    per_source_counters,
    port_acl,
    rate_limiter,
    rpc_filter,
    vlan_tagging,
)
from pybpfdsl.deploy import GATES, Candidate, ProofGate
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from tests.differential import constructs as c

PROVEN = [
    fault_injection.fault_injection, circuit_breaker.circuit_breaker, port_acl.port_acl_filter,
    rpc_filter.rpc_filter, logging_counters.logging_counters, per_source_counters.per_source_counters,
    vlan_tagging.vlan_tagging,
    c.branches, c.matching, c.tuples_and_constants, c.helpers_inlined, c.struct_maps, c.globals_ops,
    c.lru_and_arrays, c.randomness, c.int_arith, c.signed_arith,
]
FIXED_POINT = [rate_limiter.rate_limiter, bandwidth_limiter.bandwidth_limiter, admission_control.admission_control]
"""Q32.32 products and quotients LLVM rewrites around: the token buckets and admission control's
signed product (the costliest examples: 6.5 to 16 million resource units each)."""


@pytest.mark.parametrize("program", PROVEN, ids=lambda p: p.name)
def test_program_proves_equivalent(program: object) -> None:
    compiled = program.compile(prove=False)  # type: ignore[attr-defined]
    result = prove_compiled(compiled.subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()
    assert 0 < result.units <= COMPILE_BUDGET and "paths_b" in result.stats


@pytest.mark.parametrize("program", FIXED_POINT, ids=lambda p: p.name)
def test_fixed_point_program_proves_equivalent(program: object) -> None:
    compiled = program.compile(prove=False)  # type: ignore[attr-defined]
    result = prove_compiled(compiled.subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()
    assert result.stats["merged"] and result.stats["swept"]  # both steps were needed


def test_compile_attaches_the_proof_or_says_it_was_skipped() -> None:
    proven = fault_injection.fault_injection.compile(prove=True)
    assert proven.proof.status == "proven" and proven.proof.units > 0
    assert "solver_checks" in proven.proof.stats and "paths_a" in proven.proof.stats
    skipped = fault_injection.fault_injection.compile(prove=False)
    assert skipped.proof.status == "skipped"


def test_attach_gate_refuses_unproven_programs() -> None:
    assert any(isinstance(g, ProofGate) for g in GATES)
    gate = ProofGate()
    good = fault_injection.fault_injection.compile(prove=True)
    assert gate.check(Candidate("f", "lo", "attach", None, good)).passed
    from dataclasses import replace

    from pybpfdsl.verify.equivalence.prove import ProofResult

    bad = replace(good)
    object.__setattr__(bad, "proof", ProofResult("counterexample", reason="injected"))
    verdict = gate.check(Candidate("f", "lo", "attach", None, bad))
    assert not verdict.passed and "injected" in verdict.reason
