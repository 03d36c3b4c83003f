"""Helpers the verifier has no model of are refused, by name: never accepted unchecked."""

from __future__ import annotations

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.verify.analysis import Code, verify_instructions

MOV_IMM, CALL, EXIT = 0xB7, 0x85, 0x95


def _refusal(helper: int) -> str:
    r = verify_instructions([Instruction(MOV_IMM, 1, 0, 0, 0), Instruction(CALL, 0, 0, 0, helper),
                             Instruction(MOV_IMM, 0, 0, 0, 2), Instruction(EXIT)])
    assert not r.ok
    (f,) = [f for f in r.errors if f.insn == 1]
    assert f.code == Code.UNKNOWN_HELPER
    return f.message


def test_spin_locks_are_refused_by_name() -> None:
    for helper in (Helper.SPIN_LOCK, Helper.SPIN_UNLOCK):
        message = _refusal(helper)
        assert message.startswith(f"{helper.kernel_name} (helper #{int(helper)}) is not modelled")


def test_a_helper_number_the_abi_does_not_know_is_refused() -> None:
    assert _refusal(100_000) == "helper #100000 is not in the helper table"
