"""A fixpoint that does not settle is a refusal, quickly, never an analysis that runs forever.

Generated program 967 (a two-iteration `range(6, 0, -3)` loop with packet reads and breaks) kept the
analysis widening one loop head without end: each join linked two packet pointers under a fresh id, so
every result differed from the last by a name. The root cause (id-renaming joins at loop heads) is still
open; this is the guard: after WIDEN_LIMIT passes through one partition at a loop head the program is
refused with a COMPLEXITY finding at that loop. The limit is a step count, so the verdict is the same on
any machine.
"""

from __future__ import annotations

from pathlib import Path

from pybpfdsl.verify.analysis import Code, verify_program
from pybpfdsl.verify.analysis.fixpoint import WIDEN_LIMIT
from tests.generated.checks import load_module
from tests.generated.program_strategy import RandomChooser, generate_program


def test_a_loop_whose_analysis_never_settles_is_refused_at_the_loop(tmp_path: Path) -> None:
    gen = generate_program(RandomChooser(967))
    module, _ = load_module(gen.source, tmp_path, "never_settles")
    compiled = getattr(module, gen.function).compile(prove=False, verify=False)
    report = verify_program(compiled.subject)
    assert not report.ok
    [finding] = report.errors
    assert finding.code == Code.COMPLEXITY
    assert f"did not settle at this loop after {WIDEN_LIMIT:,} passes" in finding.message
    assert "not the kernel's" in finding.message
    assert report.instructions[finding.insn] is not None  # a real instruction: the loop's head
