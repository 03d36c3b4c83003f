"""The gate with deliberately wrong rewrites: whatever the window search claims, a wrong object is never
returned."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.superopt import api, search
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.gate import prove_whole
from pybpfdsl.superopt.window_check import Verdict


def _wrong_constant(elf: bytes) -> bytes:
    """``classify`` returning another action: its last `r0 = 3` made `r0 = 1`."""
    text = BpfElf.from_bytes(elf).text
    assert text is not None
    at = max(i for i, insn in enumerate(text.instructions) if insn.kind == Kind.MOV and insn.imm == 3)
    return rewrite_code(elf, {".text": [Replacement(at, 1, (Instruction(0xB7, 0, 0, 0, 1),))]})


def test_the_whole_program_proof_refuses_a_wrong_rewrite(sample_elf: bytes) -> None:
    assert prove_whole(sample_elf, _wrong_constant(sample_elf), units=20_000_000).status == "failed"


def test_a_search_that_accepts_anything_still_returns_nothing_wrong(
        sample_elf: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every candidate passes the tests and is "proven": only the whole-object gate stands in the way.
    monkeypatch.setattr(search, "failures", lambda *a, **k: 0)
    monkeypatch.setattr(search, "prove_window",
                        lambda original, cand, *a, **k: Verdict("proven") if len(cand) < len(original)
                        else Verdict("unknown"))
    result = api.optimize_object(sample_elf, proposals=40, passes=1, kernel=False)
    assert result.after == sample_elf or result.proof.status == "ok"
    assert result.notes  # the wrong pass was seen and refused


def test_nothing_unproven_is_ever_applied(sample_elf: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Sequence[Instruction]] = []

    def undecided(original: Sequence[Instruction], candidate: Sequence[Instruction], *args: object,
                  **kwargs: object) -> Verdict:
        calls.append(candidate)
        return Verdict("unknown")

    monkeypatch.setattr(search, "prove_window", undecided)
    result = api.optimize_object(sample_elf, proposals=40, passes=1, kernel=False)
    assert calls and result.after == sample_elf and not result.rewrites
