"""A jump to an exit where r0 holds K, sent to a tail ``r0 = K; exit``: the early return's ``r0 = K`` dies and
is dropped (superopt/exit_tails.py). Proven by the path prover, verified and loaded; a retarget to a tail of
another value is refused by the proof."""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import optimize_object
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.exit_tails import exit_tails
from pybpfdsl.superopt.gate import prove_whole
from tests.superopt.conftest import _build

_BPF_OK, _ = kernel_bpf_available()
R0_2 = Instruction(0xB7, 0, 0, 0, 2)  # r0 = 2


@pytest.fixture(scope="module")
def tails_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _build(tmp_path_factory, "exit_tails")


def _code(elf: bytes) -> list[Instruction]:
    return list(BpfElf.from_bytes(elf).programs["xdp"].instructions)


def test_the_bounds_test_jumps_to_the_final_tail_and_the_first_r0_goes(tails_elf: bytes) -> None:
    code = _code(tails_elf)
    assert code[0] == R0_2 and code[-2:] == [R0_2, Instruction(0x95)], "clang's shape changed: nothing to test"
    out, made = exit_tails(tails_elf, ["xdp"])
    new = _code(out)
    assert len(new) == len(code) - 1 and R0_2 not in new[:-2]
    assert [(start, after) for _sec, (_fn, start, _before, after, _exits) in made] == [(5, (code[5],)), (0, ())]
    # The bounds test now lands on the tail `r0 = 2; exit`.
    assert new[4].kind == code[5].kind and 4 + 1 + new[4].off == len(new) - 2


def test_the_pass_is_proven_verified_and_loaded(tails_elf: bytes) -> None:
    result = optimize_object(tails_elf, proposals=0, kernel=_BPF_OK, regions=False)  # the tails pass alone
    assert {r.source for r in result.rewrites} == {"tail"}
    assert (result.slots("before")["xdp"], result.slots("after")["xdp"]) == (14, 13)
    assert (result.verifier.status, result.proof.status, result.proven_by) == ("ok", "ok", "paths")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")


def test_a_jump_sent_to_a_tail_of_another_value_is_refused(tails_elf: bytes) -> None:
    code = _code(tails_elf)
    # `if r3 > r2 goto <exit>` where r0 holds 1 (XDP_DROP), sent to the tail returning 2: wrong.
    at = next(i for i in range(6, len(code)) if code[i].kind == code[5].kind)
    wrong = rewrite_code(tails_elf, {"xdp": [Replacement(at, 1, (code[at],), ((0, len(code) - 2),))]})
    assert prove_whole(tails_elf, wrong, 2_000_000).status == "failed"


def test_the_null_test_goes_to_the_exit_where_r0_is_the_value_returned(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    elf = _build(tmp_path_factory, "null_test")
    code = _code(elf)
    test = next(i for i, insn in enumerate(code) if insn.opcode == 0x15 and insn.dst == 0 and insn.imm == 0)
    assert code[test - 1] == Instruction(0xB7, 1, 0, 0, 0) and code[-2] == Instruction(0xBF, 0, 1)
    out, made = exit_tails(elf, ["xdp"])
    assert [(start, after) for _sec, (_fn, start, _before, after, _exits) in made] == \
        [(test, (code[test],)), (test - 1, ())]
    new = _code(out)
    assert test - 1 + 1 + new[test - 1].off == len(new) - 1  # to the exit itself
    result = optimize_object(elf, proposals=0, kernel=_BPF_OK, regions=False)
    assert (result.verifier.status, result.proof.status, result.proven_by) == ("ok", "ok", "paths")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")
    assert result.slots("after")["xdp"] == result.slots("before")["xdp"] - 1
    # The same jump sent to the exit where the tail returns another register's value: refused.
    wrong = rewrite_code(elf, {"xdp": [Replacement(test - 1, 1, (Instruction(0xB7, 1, 0, 0, 2),))]})
    wrong_out, _ = exit_tails(wrong, ["xdp"])
    assert wrong_out == wrong  # r1 = 2 on the NULL way: r0 (0) is not what the tail returns
    moved = rewrite_code(wrong, {"xdp": [Replacement(test, 1, (code[test],), ((0, len(code) - 1),))]})
    assert prove_whole(wrong, moved, 2_000_000).status == "failed"
