"""bpf_fib_lookup in the proof (issue 16 §3): an unknown but consistent function of what a program passes,
so a program using it is proven, and a miscompile of what it passes or reads back is refuted with a
counterexample the interpreters replay (their routing table made from the solver's answers)."""

from __future__ import annotations

import dataclasses

import pytest

from pybpfdsl.verify.equivalence.bytecode_program import load_program
from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer
from pybpfdsl.verify.equivalence.proof_result import ProofResult
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled, prove_ir_bytecode
from tests.differential.test_fib_lookup import route


def test_a_program_using_fib_lookup_is_proven() -> None:
    result = prove_compiled(route.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.reason


def _mutated(text: str, off: int) -> ProofResult:
    """The proof of `route` with the one instruction printed as `text` given offset `off`."""
    compiled = route.compile(prove=False)
    bytecode = load_program(compiled.elf, compiled.name)
    insns = list(bytecode.instructions)
    [index] = [i for i, insn in enumerate(insns) if str(insn) == text]
    insns[index] = dataclasses.replace(insns[index], off=off)
    mutant = bytecode.with_instructions(tuple(insns))
    return prove_ir_bytecode(compiled.subject.program, mutant, CompiledReplayer(compiled.subject, mutant),
                             budget=COMPILE_BUDGET)


@pytest.mark.parametrize(("text", "off", "why"), [
    ("*(u32 *)(r10 -32) = r2", -28, "the destination passed at the wrong place: another question"),
    ("r3 = *(u16 *)(r10 -8)", -6, "the source MAC read from the wrong place"),
])
def test_a_miscompiled_lookup_is_refuted(text: str, off: int, why: str) -> None:
    result = _mutated(text, off)
    assert result.status == "counterexample", (why, result.reason)
    cex = result.counterexample
    assert cex is not None and cex.runs is not None and cex.routes, why
    assert cex.runs[0].outputs({}) != cex.runs[1].outputs({}), why

