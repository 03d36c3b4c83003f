"""Known widths across blocks: a register every path fills with a narrow load (or 32-bit result) needs no
mask after the join. The window proofs and the lock-step proof assume the widths each program's own
must-analysis finds, and a rewrite that assumes a width the program does not guarantee is refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.api import optimize_object
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.lockstep import prove_lockstep
from pybpfdsl.superopt.window_check import prove_window
from pybpfdsl.superopt.windows import known_widths, succs_of
from tests.verify.corpus.c_corpus import _arch_include

HERE = Path(__file__).resolve().parent
LDX_H = Instruction(0x69, 4, 1, 2)  # r4 = *(u16 *)(r1 +2)
LDX_B = Instruction(0x71, 4, 1, 5)  # r4 = *(u8 *)(r1 +5)
LDX_DW = Instruction(0x79, 4, 1, 8)  # r4 = *(u64 *)(r1 +8)
AND_FFFF = Instruction(0x57, 4, 0, 0, 0xFFFF)
AND_FF = Instruction(0x57, 4, 0, 0, 0xFF)
EXIT = Instruction(0x95, 0, 0, 0)


def _diamond(other: Instruction) -> list[Instruction]:
    """if r2 != 1: r4 = <other> else r4 = u16 load; then r4 &= 0xffff."""
    return [Instruction(0x55, 2, 0, 2, 1), LDX_H, Instruction(0x05, 0, 0, 1), other, AND_FFFF,
            Instruction(0xBF, 0, 4), EXIT]


def test_the_width_at_a_join_is_the_wider_of_the_ways_in() -> None:
    code = _diamond(LDX_B)
    assert known_widths(code, succs_of(code)[0], set())[4] == {4: 16}
    code = _diamond(LDX_DW)  # one way in leaves r4 64 bits wide: nothing is known
    assert 4 not in known_widths(code, succs_of(code)[0], set())[4]
    code = [LDX_H, Instruction(0x77, 4, 0, 0, 4), Instruction(0xBC, 5, 4), Instruction(0x57, 4, 0, 0, -8), EXIT]
    facts = known_widths(code, succs_of(code)[0], set())
    assert facts[2] == {4: 12} and facts[3] == {4: 12, 5: 32} and facts[4] == {4: 12, 5: 32}
    code = [LDX_H, Instruction(0x85, 0, 0, 0, 1), Instruction(0xBF, 0, 4), EXIT]  # a call clobbers r0-r5
    assert known_widths(code, succs_of(code)[0], set())[2] == {}


def test_a_mask_the_width_makes_redundant_is_proven_droppable_and_a_narrower_one_is_not() -> None:
    live = 1 << 4
    assert prove_window((AND_FFFF,), (), live, widths={4: 16}).proven
    assert prove_window((AND_FFFF,), (), live, widths={4: 8}).proven
    assert prove_window((AND_FFFF,), (), live).status == "different"
    # A planted wrong rewrite: r4 is 16 bits wide, the mask keeps 8.
    assert prove_window((AND_FF,), (), live, widths={4: 16}).status == "different"


@pytest.fixture(scope="module")
def widths_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    cc = shutil.which("clang")
    if cc is None:
        pytest.skip("clang is not installed")
    out = tmp_path_factory.mktemp("widths") / "widths.o"
    subprocess.run([cc, "-O2", "-g", "-target", "bpf", *_arch_include(), "-c", str(HERE / "widths.c"),
                    "-o", str(out)], check=True, capture_output=True)
    return out.read_bytes()


def _masks(elf: bytes) -> list[int]:
    code = BpfElf.from_bytes(elf).programs["xdp"].instructions
    return [i for i, insn in enumerate(code) if insn.opcode == 0x57 and insn.imm == 0xFFFF]


def test_the_optimiser_drops_the_mask_after_the_join_and_proves_it(widths_elf: bytes) -> None:
    assert _masks(widths_elf), "clang no longer keeps the mask: the subject tests nothing"
    result = optimize_object(widths_elf, proposals=50, kernel=False, tails=False)
    assert not _masks(result.after)
    assert result.proof.status == "ok"
    assert prove_lockstep(widths_elf, result.after).proven


def test_the_lock_step_proof_refuses_a_mask_narrowed_below_the_width(widths_elf: bytes) -> None:
    # Planted: `r1 &= 0xffff` as `r1 &= 0xff` where one way in loads 16 bits: a wrong program.
    at = _masks(widths_elf)[0]
    mask = BpfElf.from_bytes(widths_elf).programs["xdp"].instructions[at]
    wrong = rewrite_code(widths_elf, {"xdp": [Replacement(at, 1, (Instruction(0x57, mask.dst, 0, 0, 0xFF),))]})
    verdict = prove_lockstep(widths_elf, wrong)
    assert not verdict.proven and "differs" in verdict.reason
    # And the mask dropped where the analysis is told nothing of the loads: a 64-bit load on one way.
    code = BpfElf.from_bytes(widths_elf).programs["xdp"].instructions
    load = next(i for i in range(at) if code[i].opcode == 0x71 and code[i].dst == mask.dst)
    wide = rewrite_code(widths_elf, {"xdp": [Replacement(load, 1, (Instruction(0x79, mask.dst, code[load].src,
                                                                              code[load].off),))]})
    dropped = rewrite_code(wide, {"xdp": [Replacement(at, 1, ())]})
    verdict = prove_lockstep(wide, dropped)
    assert not verdict.proven and "differs" in verdict.reason


def test_a_zero_extension_is_folded_into_the_instruction_that_set_the_register() -> None:
    import random

    from pybpfdsl.superopt.neighbours import neighbours
    from pybpfdsl.superopt.search import SearchBudget, search_window

    def best(window: tuple[Instruction, ...], live: int) -> tuple[Instruction, ...] | None:
        return search_window(window, live, random.Random(0), SearchBudget(proposals=60)).replacement

    # r1 = r0; w1 = w1  ->  w1 = w0 (a 32-bit copy zero-extends)
    assert best((Instruction(0xBF, 1, 0), Instruction(0xBC, 1, 1)), 1 << 1) == (Instruction(0xBC, 1, 0),)
    # r6 = *(u8 *)(r1 +0); r6 += -4; w6 = w6  ->  ...; w6 += -4 (a number: the kernel takes 32-bit arithmetic)
    window = (Instruction(0x71, 6, 1, 0), Instruction(0x07, 6, 0, 0, -4), Instruction(0xBC, 6, 6))
    assert best(window, 1 << 6) == (window[0], Instruction(0x04, 6, 0, 0, -4))
    # data_end - data of two context loads: packet pointers the kernel forbids 32-bit arithmetic on. The
    # proof would accept `w2 -= w1` (it sees numbers), so the move must not offer it.
    pointers = (Instruction(0x61, 1, 6, 0), Instruction(0x61, 2, 6, 4), Instruction(0x1F, 2, 1),
                Instruction(0xBC, 2, 2))
    assert prove_window(pointers, (*pointers[:2], Instruction(0x1C, 2, 1)), 1 << 2).proven
    assert not any(Instruction(0x1C, 2, 1) in cand for cand in neighbours(pointers, {}))
    # A right shift's low half depends on the high half: not folded (and refused if it were).
    shifted = (Instruction(0x71, 6, 1, 0), Instruction(0x77, 6, 0, 0, 4), Instruction(0xBC, 6, 6))
    assert prove_window(shifted, (shifted[0], Instruction(0x74, 6, 0, 0, 4)), 1 << 6).proven  # u8: equal here
    wide = (Instruction(0x79, 6, 1, 0), *shifted[1:])
    assert prove_window(wide, (wide[0], Instruction(0x74, 6, 0, 0, 4)), 1 << 6).status == "different"
