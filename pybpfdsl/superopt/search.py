"""Metropolis-Hastings over one window (K2 §3): propose, test, and prove only what could be an improvement.

The chain's cost is K2's: the candidate's performance cost plus a weight times the number of tests it
gets wrong, so the chain may walk through wrong programs on its way to a right, cheaper one. A
candidate that passes every test and is cheaper than the best proven one so far goes to the Z3 window
proof; a counterexample becomes one more test (K2's counterexample-guided loop). Everything random comes
from one ``random.Random`` seeded by the caller: the same seed, window and budget give the same result.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, Kind, Source, alu_op, source
from pybpfdsl.superopt.cost import CostModel, cost
from pybpfdsl.superopt.moves import Candidate, pools_of, propose
from pybpfdsl.superopt.neighbours import neighbours
from pybpfdsl.superopt.window_check import (
    DEFAULT_PROOF_UNITS,
    TestCase,
    expected_outputs,
    failures,
    fit,
    make_tests,
    prove_window,
    stack_safe,
)
from pybpfdsl.superopt.window_semantics import candidate_atomic, ends_in_branch, in_window, is_branch
from pybpfdsl.verify.analysis.liveness import registers_of

__all__ = ["SearchBudget", "WindowResult", "read_before_written", "search_window"]

_ERROR_WEIGHT = 4
_BETA = 1.0
_TESTS = 12


@dataclass(frozen=True)
class SearchBudget:
    """Proposals per window and Z3 units per window proof (never seconds)."""

    proposals: int = 600
    proof_units: int = DEFAULT_PROOF_UNITS
    max_proofs: int = 12


@dataclass(frozen=True)
class WindowResult:
    """The best proven replacement (None if none beat the original) and what was spent."""

    replacement: tuple[Instruction, ...] | None
    proposals: int
    proofs: int
    refuted: int
    best_at: int = 0
    """Proposals spent when the best was found (K2's time to best, in steps): the greedy step's count when
    the chain found nothing better."""


def _compact(c: Candidate) -> tuple[Instruction, ...]:
    return tuple(i for i in c if i is not None)


def read_before_written(code: Sequence[Instruction]) -> int:
    """Registers ``code`` reads before writing them (bit set): what it needs defined on entry."""
    need = written = 0
    for insn in code:
        reads, writes = registers_of(insn)
        for r in reads:
            if not written >> r & 1:
                need |= 1 << r
        for r in writes:
            written |= 1 << r
    return need


def _allowed(insn: Instruction) -> bool:
    return in_window(insn) or candidate_atomic(insn)


def _shaped_like(original: Sequence[Instruction], cand: Sequence[Instruction]) -> bool:
    """A branch window's candidates end in a conditional jump, with no other jump; other windows' have none;
    and neither makes a stack access the kernel refuses (`stack_safe`)."""
    if ends_in_branch(original):
        shaped = bool(cand) and is_branch(cand[-1]) and all(_allowed(i) for i in cand[:-1])
    else:
        shaped = all(_allowed(i) for i in cand)
    return shaped and stack_safe(cand)


def _rank(code: Sequence[Instruction], model: CostModel) -> tuple[int, int]:
    """Cost first; among equals, fewer register stores and register comparisons (a store or jump with
    an immediate for a register that held a constant frees that register, which the next step may then
    drop). Strictly decreasing, so greedy ends."""
    reg_uses = sum(i.kind == Kind.STX or (is_branch(i) and source(i.opcode) == Source.X) for i in code)
    return cost(code, model), reg_uses


_DIVISION_UNITS = 10
"""The factor on a proof's units where a candidate makes a remainder the code before it made by dividing (`neighbours`'
``t /= d; t *= d; x -= t`` as ``x %= d``): Z3 bit-blasts the two 64-bit divisions, which 2M units do not cover."""


def _units(budget: SearchBudget, before: Sequence[Instruction], cand: Sequence[Instruction]) -> int:
    def mods(code: Sequence[Instruction]) -> int:
        return sum(i.kind == Kind.ALU and alu_op(i.opcode) == AluOp.MOD for i in code)
    return budget.proof_units * (_DIVISION_UNITS if mods(cand) > mods(before) else 1)


def _greedy(original: tuple[Instruction, ...], live_out: int, known: Mapping[int, int], tests: list[TestCase],
            budget: SearchBudget, model: CostModel, defined: int,
            widths: Mapping[int, int] | None = None) -> tuple[tuple[Instruction, ...], int, int]:
    """Apply the first proven cheaper neighbour until none is left. (best, proposals, proofs)."""
    current = original
    expected = expected_outputs(original, tests)
    tried = proofs = 0
    improved = True
    while improved and tried < budget.proposals and proofs < budget.max_proofs:
        improved = False
        for cand in neighbours(current, known):
            tried += 1
            if read_before_written(cand) & ~defined or _rank(cand, model) >= _rank(current, model) \
                    or not _shaped_like(original, cand):
                continue
            if failures(original, cand, live_out, tests, expected, stop_at=1):
                continue
            proofs += 1
            if prove_window(original, cand, live_out, _units(budget, current, cand), known, widths).proven:
                current, improved = cand, True
                break
            if proofs >= budget.max_proofs:
                break
    return current, tried, proofs


def search_window(window: Sequence[Instruction], live_out: int, rng: random.Random,
                  budget: SearchBudget = SearchBudget(), model: CostModel = CostModel.SLOTS,
                  known: Mapping[int, int] | None = None, widths: Mapping[int, int] | None = None) -> WindowResult:
    """MCMC from the window itself; the cheapest candidate proven equal under ``live_out``, the
    registers ``known`` to hold constants on entry and those of known ``widths``."""
    original = tuple(window)
    tests = make_tests(rng, _TESTS, known, widths)
    expected = expected_outputs(original, tests)
    pools = pools_of(original)
    # The candidate may read on entry only what the original reads there (and r10): any other register
    # may be uninitialised at the window, which the kernel refuses even where the value does not matter.
    defined = read_before_written(original) | 1 << 10
    start, tried, proofs = _greedy(original, live_out, known or {}, tests, budget, model, defined, widths)
    best_cost = cost(start, model)
    # A greedy result of the same cost but fewer register stores and compares is kept too: the register
    # it freed (``r7 = 0`` stored eight times, over two windows) is dropped by a later pass, once every
    # window that read it stores the immediate instead.
    best: tuple[Instruction, ...] | None = start if _rank(start, model) < _rank(original, model) else None
    # A branch window's chain walks its straight-line part; the jump (as the greedy step left it) stays last.
    tail = start[-1:] if ends_in_branch(original) else ()
    start = start[:len(start) - len(tail)]
    current: Candidate = start + (None,) * (len(original) - len(tail) - len(start))
    current_f = float(best_cost)
    seen: dict[tuple[Instruction, ...], bool] = {}
    refuted = 0
    best_at = tried if best is not None else 0
    for step in range(max(0, budget.proposals - tried)):
        if not current:
            break  # a window of only its jump: nothing for the chain to change
        cand = propose(rng, pools, current)
        body = _compact(cand) + tail
        if not _shaped_like(original, body) or read_before_written(body) & ~defined:
            continue
        perf = cost(body, model)
        # Counting stops at 3 wrong tests (enough to steer the chain), at 1 when it could not win anyway.
        wrong = failures(original, body, live_out, tests, expected, stop_at=3 if perf < best_cost else 1)
        f = perf + _ERROR_WEIGHT * wrong
        if wrong == 0 and perf < best_cost and body not in seen and proofs < budget.max_proofs:
            proofs += 1
            verdict = prove_window(original, body, live_out, budget.proof_units, known, widths)
            seen[body] = verdict.proven
            if verdict.proven:
                best, best_cost, best_at = body, perf, tried + step + 1
            elif verdict.counterexample is not None:
                refuted += 1
                regs = fit(verdict.counterexample.regs, known, widths)
                tests.append(TestCase(regs, verdict.counterexample.memory))
                expected = expected_outputs(original, tests)
                f += _ERROR_WEIGHT
        if f <= current_f or rng.random() < math.exp(-_BETA * (f - current_f)):
            current, current_f = cand, f
    return WindowResult(best, budget.proposals, proofs, refuted, best_at)
