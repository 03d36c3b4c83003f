"""Helpers the verifier has no model of are refused, by name: never accepted unchecked."""

from __future__ import annotations

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.verify.analysis import Code, verify_instructions

MOV_IMM, CALL, EXIT = 0xB7, 0x85, 0x95


def _refusal(helper: int, code: Code = Code.UNKNOWN_HELPER) -> str:
    r = verify_instructions([Instruction(MOV_IMM, 1, 0, 0, 0), Instruction(CALL, 0, 0, 0, helper),
                             Instruction(MOV_IMM, 0, 0, 0, 2), Instruction(EXIT)])
    assert not r.ok
    (f,) = [f for f in r.errors if f.insn == 1]
    assert f.code == code
    return f.message


def test_spin_locks_on_a_number_are_refused_by_the_lock_rules() -> None:
    """bpf_spin_lock/unlock are modelled (tests/verify/analysis/test_spin_lock.py): a number is no lock."""
    for helper in (Helper.SPIN_LOCK, Helper.SPIN_UNLOCK):
        message = _refusal(helper, Code.LOCK)
        assert message.startswith(f"{helper.kernel_name}: r1 must point to the bpf_spin_lock of a map value")


def test_a_helper_number_the_abi_does_not_know_is_refused() -> None:
    assert _refusal(100_000) == "helper #100000 is not in the helper table"
