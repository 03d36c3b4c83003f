"""A sum made again where a register already holds it (xdp-tutorial's experiment01-tailgrow: ``r4 = r2;
r4 += r1; if r4 > r3 goto out; r1 += r2; r1 = *(u8 *)(r1 -1)``): `sums.known_sums` finds it, the sums pass
writes ``r1 += r2`` as ``r1 = r4`` (proven by the path prover, verified, loaded), and the window search folds
the copy into the load. A copy of another register is refused by the proof."""

from __future__ import annotations

import random

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.gate import kernel_verdict, prove_whole, verifier_accepts
from pybpfdsl.superopt.search import SearchBudget, search_window
from pybpfdsl.superopt.sums import known_sums, sums_pass
from pybpfdsl.superopt.window_check import branch_live
from pybpfdsl.superopt.windows import succs_of
from tests.superopt.conftest import _build

_BPF_OK, _ = kernel_bpf_available()


def _i(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> Instruction:
    return Instruction(opcode, dst, src, off, imm)


# data + (rx_queue_index & 255) checked for one byte, then made again for the access (and checked again:
# the kernel does not know the two sums are equal, so the input needs its own check to load).
PROGRAM = (
    _i(0x61, 2, 1, 0), _i(0x61, 3, 1, 4), _i(0x61, 4, 1, 16), _i(0x57, 4, imm=255), _i(0xB7, 0, imm=2),
    _i(0xBF, 5, 2), _i(0x0F, 5, 4), _i(0xBF, 6, 5), _i(0x07, 6, imm=1), _i(0x2D, 6, 3, 6),
    _i(0x0F, 2, 4), _i(0xBF, 7, 2), _i(0x07, 7, imm=1), _i(0x2D, 7, 3, 2),
    _i(0x71, 0, 2, 0), _i(0x57, 0, imm=3), _i(0x95),
)


def test_a_sum_is_known_until_an_operand_is_written() -> None:
    code = list(PROGRAM)
    facts = known_sums(code, succs_of(code)[0], set())
    assert facts[10][5] == 2 << 4 | 4  # r5 == r2 + r4 at `r2 += r4`
    assert 5 not in facts[11]  # r2 written: the fact named it


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    elf = _build(tmp_path_factory, "exit_tails")  # any one-program XDP object: its code is replaced
    code = BpfElf.from_bytes(elf).programs["xdp"].instructions
    assert code[-1] == PROGRAM[-1] and code.count(PROGRAM[-1]) == 1
    return rewrite_code(elf, {"xdp": [Replacement(0, len(code) - 1, PROGRAM[:-1])]})  # its exit kept


def test_the_second_sum_is_a_copy_proven_verified_and_loaded(planted: bytes) -> None:
    assert verifier_accepts(planted, planted).ok
    out, made = sums_pass(planted, ["xdp"])
    assert [(at, str(after)) for _sec, _fn, at, _before, after in made] == [(10, "r2 = r5")]
    assert prove_whole(planted, out, 2_000_000).ok
    assert verifier_accepts(planted, out).ok
    assert kernel_verdict(planted, out).status == ("ok" if _BPF_OK else "skipped")


def test_a_copy_of_another_register_is_refused(planted: bytes) -> None:
    wrong = rewrite_code(planted, {"xdp": [Replacement(10, 1, (_i(0xBF, 2, 6),))]})  # r6 is r5 + 1
    assert prove_whole(planted, wrong, 2_000_000).status == "failed"


def test_the_copy_folds_into_a_load_of_its_own_register() -> None:
    # tailgrow's ``r1 = r4; r0 = 0; r1 = *(u8 *)(r1 -1)``: the load reads r1 once, so it may read r4.
    window = (_i(0xBF, 1, 4), _i(0xB7, 0), _i(0x71, 1, 1, -1), _i(0x15, 1, 0, 1, 0xFF))
    got = search_window(window, branch_live(1, 1), random.Random(0), SearchBudget(proposals=60)).replacement
    assert got == (_i(0xB7, 0), _i(0x71, 1, 4, -1), window[-1])
