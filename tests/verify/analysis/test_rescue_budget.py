"""Loops the closed-form estimate calls too complex, which the simulated exploration rescues: its budget.

The simulation steps each instruction it counts, and a rescue accepts a count up to a third of the kernel's
limit (``RESCUE_MARGIN``), so its budget is that count (``RESCUE_WORK``): at 150,000 steps it gave up on
generated programs the kernel loads at 50,948 to 158,104 instructions (seeds 972, 5415, 3386: simulated at
174,000 to 298,000). Deep loops (one path passes a head more than 16 times) get ``DEEP_WORK``: 60,000
gave up on seeds 3431 (a 6 x 8 nest, simulated at 94,561) and 3470 (35 iterations, 78,707), which the
kernel loads at 130,025 and 27,841. The programs are kept as bytes (compiled on 2026-12-07 from the
sources of that morning's generator, whose seeds no longer give the same programs).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpfdsl.bpf.abi import BPF_COMPLEXITY_LIMIT_INSNS
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, loops, verify_object
from tests.verify.corpus.differential import kernel_accepts

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

DATA = Path(__file__).parent / "data"


@needs_kernel
@pytest.mark.parametrize("seed", [972, 5415, 3386, 3431, 3470])
def test_loops_the_kernel_loads_are_rescued(seed: int) -> None:
    elf = (DATA / f"generated_seed{seed}.o").read_bytes()
    ok, log = kernel_accepts(elf, "prog")
    assert ok, log
    report = verify_object(elf, "prog")
    assert report.ok, report.format()


def test_the_rescue_budget_is_what_a_rescue_may_count() -> None:
    """A smaller budget refuses loops the rescue would accept; a larger one only spends time on loops it
    cannot accept (the count passes the budget one step after the budget runs out)."""
    assert loops.RESCUE_WORK * loops.RESCUE_MARGIN <= BPF_COMPLEXITY_LIMIT_INSNS
    assert (loops.RESCUE_WORK + 1) * loops.RESCUE_MARGIN > BPF_COMPLEXITY_LIMIT_INSNS
    assert loops.DEEP_WORK <= loops.RESCUE_WORK


def test_a_smaller_budget_refused_seed_972(monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget, not something else, decides seed 972: at 150,000 steps it is refused as too complex."""
    monkeypatch.setattr(loops, "RESCUE_WORK", 150_000)
    report = verify_object((DATA / "generated_seed972.o").read_bytes(), "prog")
    assert [f.code for f in report.errors] == [Code.COMPLEXITY], report.format()
