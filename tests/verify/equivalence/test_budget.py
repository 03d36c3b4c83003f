"""Proof budgets are counted in work (Z3 resource units and steps), so a verdict never depends on the
machine or its load: the same proof gives the same verdict and spends the same units every time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import z3

from pybpfdsl.verify.equivalence import budget as budget_module
from pybpfdsl.verify.equivalence.budget import Budget, OutOfBudget, parse_units
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from tests.verify.equivalence.test_arithmetic_patterns import float_squared_to_int

ROOT = Path(__file__).resolve().parents[3]

# Proves a program that merges, sweeps and cuts (the cheapest such pattern: 75,000 units), once within
# the compile budget and once within a budget that runs out halfway, and prints what each gave.
_PROVE_TWICE = """
import json, sys
sys.path.insert(0, {root!r})
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from tests.verify.equivalence.test_arithmetic_patterns import float_times_float
compiled = float_times_float.compile(prove=False)
full = prove_compiled(compiled.subject, budget=COMPILE_BUDGET)
short = prove_compiled(compiled.subject, budget=full.units // 2)
print(json.dumps([{{"status": r.status, "reason": r.reason, "units": r.units,
                   "stats": {{k: v for k, v in r.stats.items() if "memory" not in k}}}} for r in (full, short)]))
"""

_BUSY_SECONDS = 300
"""How long a busy loop runs at most if it were never killed (it is, when the proof ends)."""


def _prove_in_fresh_process(hash_seed: str) -> list[dict[str, object]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYBPFDSL_CACHE": "0"}
    done = subprocess.run([sys.executable, "-c", _PROVE_TWICE.format(root=str(ROOT))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    results: list[dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


@contextmanager
def _busy_loops(count: int) -> Iterator[None]:
    """`count` processes spinning on the CPU beside the body (each ends by itself after `_BUSY_SECONDS`)."""
    loop = f"import time\nend = time.monotonic() + {_BUSY_SECONDS}\nwhile time.monotonic() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_the_same_proof_gives_the_same_verdict_and_units_with_and_without_busy_loops_beside_it() -> None:
    alone = _prove_in_fresh_process("1")
    with _busy_loops(2):
        busy = _prove_in_fresh_process("2")
    assert alone == busy
    full, short = alone
    assert full["status"] == "proven"
    stats = full["stats"]
    assert isinstance(stats, dict) and stats["merged"] and stats["swept"] and stats["cuts"]
    assert short["status"] == "unknown" and "budget" in str(short["reason"])


def test_a_proof_out_of_budget_is_unknown_and_says_so() -> None:
    compiled = float_squared_to_int.compile(prove=False)
    result = prove_compiled(compiled.subject, budget=1_000)
    assert result.status == "unknown"
    assert "budget (1,000 units) ran out" in result.reason
    assert result.units >= 1_000


def test_the_wall_clock_safety_net_gives_unknown_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget_module, "SAFETY_SECONDS", 0.0)
    result = prove_compiled(float_squared_to_int.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "unknown"
    assert "safety net" in result.reason


def _hard_question() -> z3.Solver:
    """A solver with a query that takes millions of units (factoring a 64-bit product)."""
    x, y = z3.BitVecs("x y", 64)
    solver = z3.Solver()
    solver.add(x * y == 0x1234567890ABCD, z3.UGT(x, 1), z3.UGT(y, 1), z3.ULT(x, y))
    return solver


def test_a_check_stops_at_its_cap_and_the_units_count_against_the_budget() -> None:
    budget = Budget(10_000_000)
    assert budget.check(_hard_question(), 50_000) == z3.unknown
    assert 50_000 <= budget.spent < 60_000  # the check's units, and nothing else happened


def test_a_share_is_part_of_what_is_left_and_counts_towards_its_parent() -> None:
    parent = Budget(1_000_000)
    share = parent.share(0.25)
    assert share.units == 250_000
    assert share.check(_hard_question()) == z3.unknown  # stopped by the share, not by the parent
    assert 250_000 <= share.spent <= parent.spent < 300_000
    share.charge("explore", 10)
    assert parent.spent >= share.spent >= 250_000 + 10 * budget_module.STEP_COSTS["explore"]
    assert share.exhausted and not parent.exhausted


def test_python_side_steps_run_out_too() -> None:
    budget = Budget(10 * budget_module.STEP_COSTS["normalize"])
    with pytest.raises(OutOfBudget, match="while normalizing"):
        for _ in range(100):
            budget.charge("normalize")
            budget.require("normalizing")


def test_an_exhausted_budget_checks_nothing() -> None:
    budget = Budget(0)
    solver = z3.Solver()
    assert budget.check(solver) == z3.unknown


@pytest.mark.parametrize(("text", "units"), [("250000000", 250_000_000), ("250M", 250_000_000),
                                             ("1.5G", 1_500_000_000), ("100_000", 100_000), ("20k", 20_000)])
def test_budgets_are_written_as_units(text: str, units: int) -> None:
    assert parse_units(text) == units


@pytest.mark.parametrize("text", ["", "20s", "-5", "1e9", "M"])
def test_what_is_not_a_budget_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a budget"):
        parse_units(text)
