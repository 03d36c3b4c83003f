"""A loop's fixpoint settles, and one that would not is a refusal, quickly, never an analysis that runs forever.

Generated program 967 (a two-iteration `range(6, 0, -3)` loop with packet reads and breaks) once kept the
analysis widening one loop head without end: each join linked two packet pointers under a name neither side
used, so every result differed from the last by that name alone. Links made at a join are now numbered in
the order they appear (``abstract_state._canonical``), so states that differ only by names are equal, and
the program settles in a few dozen passes; its counter, which widening cannot hold (the loop tests a copy
of it), is checked on the termination pass's unrolled iterations (``driver._recheck``). The guard stays:
after WIDEN_LIMIT passes through one partition at a loop head the program is refused with a COMPLEXITY
finding at that loop (a step count, so the verdict is the same on any machine).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, driver, fixpoint, verify_instructions, verify_object
from tests.verify.analysis.kernel_oracle import kernel_verdict
from tests.verify.corpus.differential import kernel_accepts

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

SETTLES_WITHIN = 60
"""Passes through one loop-head partition that seed 967 needs at most (it took 21 when measured)."""

DATA = Path(__file__).parent / "data"


def _generated(seed: int) -> bytes:
    """Generated program ``seed`` as compiled at 9ae1fe6: kept as bytes, because the compiler now unrolls
    these short loops, and the verifier must still settle on (and judge rightly) the loop it once could not."""
    return (DATA / f"generated_seed{seed}.o").read_bytes()


def test_seed_967_settles_well_under_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixpoint, "WIDEN_LIMIT", SETTLES_WITHIN)
    report = verify_object(_generated(967), "prog")
    assert report.analysis is not None and report.analysis.cfg.heads  # the loop is there
    assert not any(f.code == Code.COMPLEXITY for f in report.findings), report.format()


@needs_kernel
@pytest.mark.parametrize("seed", [967, 532, 557])
def test_loops_on_a_tested_copy_of_the_counter_get_the_kernels_verdict(seed: int) -> None:
    """Seeds 532 and 557 were refused ("pointer arithmetic with an unbounded scalar") because widening lost
    their counter (``r0 = r5 - 3; if r5 > 5 ...; r5 = r0``); the kernel, which walks each iteration, loads
    all three."""
    elf = _generated(seed)
    ok, log = kernel_accepts(elf, "prog")
    assert ok, log
    report = verify_object(elf, "prog")
    assert report.ok, report.format()


def test_a_loop_whose_analysis_never_settles_is_refused_at_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    # A loop needs more than one pass at its head: with a limit of 1 the guard must fire.
    monkeypatch.setattr(fixpoint, "WIDEN_LIMIT", 1)
    monkeypatch.setattr(driver, "WIDEN_LIMIT", 1)
    report = verify_object(_generated(967), "prog")
    assert not report.ok
    [finding] = report.errors
    assert finding.code == Code.COMPLEXITY
    assert "did not settle at this loop after 1 passes" in finding.message
    assert "not the kernel's" in finding.message
    assert report.instructions[finding.insn] is not None  # a real instruction: the loop's head


def _walk(reach: int) -> list[Instruction]:
    """A packet pointer moved one byte per iteration of a 3-iteration loop, checked for 4 bytes each time,
    then read at ``reach`` (within the check for 0-3, one byte past it for 4): its loop head joins the
    pointer at packet+0 with packet+1, +2, linking them under names made at that join."""
    return [
        Instruction(0x61, 2, 1, 0, 0),   # r2 = *(u32 *)(r1 + 0)       data
        Instruction(0x61, 3, 1, 4, 0),   # r3 = *(u32 *)(r1 + 4)       data_end
        Instruction(0xB7, 4, 0, 0, 0),   # r4 = 0                      counter
        Instruction(0xBF, 5, 2, 0, 0),   # r5 = r2
        Instruction(0xBF, 6, 5, 0, 0),   # loop: r6 = r5
        Instruction(0x07, 6, 0, 0, 4),   # r6 += 4
        Instruction(0x2D, 6, 3, 4, 0),   # if r6 > r3 goto out
        Instruction(0x71, 0, 5, reach, 0),  # r0 = *(u8 *)(r5 + reach)
        Instruction(0x07, 5, 0, 0, 1),   # r5 += 1
        Instruction(0x07, 4, 0, 0, 1),   # r4 += 1
        Instruction(0xA5, 4, 0, -7, 3),  # if r4 < 3 goto loop
        Instruction(0xB7, 0, 0, 0, 2),   # out: r0 = XDP_PASS
        Instruction(0x95, 0, 0, 0, 0),   # exit
    ]


def test_a_linked_pointer_read_past_its_check_in_a_loop_is_refused() -> None:
    report = verify_instructions(_walk(4))
    assert not report.ok
    assert any(f.insn == 7 for f in report.errors), report.format()


def test_a_linked_pointer_read_within_its_check_in_a_loop_is_accepted() -> None:
    report = verify_instructions(_walk(3))
    assert report.ok, report.format()


@needs_kernel
@pytest.mark.parametrize("reach", [3, 4])
def test_the_linked_pointer_loops_as_the_kernel_judges_them(reach: int) -> None:
    kernel = kernel_verdict(_walk(reach))
    assert kernel.ok == (reach == 3), kernel.last_lines
    assert verify_instructions(_walk(reach)).ok == kernel.ok
