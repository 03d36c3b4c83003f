"""The copies pass: a register copy ``rX = rY`` where rX already holds rY's value on every path to it
(each way into a join made the copy) is dropped, proven by the path prover and in lock step (each
program's registers meet the equalities its own must-analysis finds), verified and loaded like the input."""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import optimize_object
from pybpfdsl.superopt.lockstep import prove_lockstep
from pybpfdsl.superopt.windows import known_equal, succs_of
from tests.superopt.conftest import _build

_BPF_OK, _ = kernel_bpf_available()


@pytest.fixture(scope="module")
def copies_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _build(tmp_path_factory, "copies")


def test_a_copy_every_way_in_made_is_dropped_proven_and_loaded(copies_elf: bytes) -> None:
    result = optimize_object(copies_elf, proposals=0, kernel=_BPF_OK, tails=False)  # the copies pass alone
    assert [(r.source, r.start) for r in result.rewrites] == [("copy", 12)]
    assert (result.slots("before")["xdp"], result.slots("after")["xdp"]) == (18, 17)
    assert (result.verifier.status, result.proof.status) == ("ok", "ok")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")


def test_the_lock_step_proof_proves_the_drop(copies_elf: bytes) -> None:
    result = optimize_object(copies_elf, proposals=0, kernel=False, tails=False)
    assert prove_lockstep(copies_elf, result.after).proven


MOV = 0xBF  # rX = rY (64-bit)


def _mov(dst: int, src: int) -> Instruction:
    return Instruction(MOV, dst, src)


def test_an_equality_holds_at_a_join_only_where_both_ways_in_have_it() -> None:
    # r1 = r2; if r5 == 0 goto +2; r0 = 1; goto +1; r1 = r3; (join) r1 = r2; exit
    code = [_mov(1, 2), Instruction(0x15, 5, 0, 2, 0), Instruction(0xB7, 0, 0, 0, 1), Instruction(0x05, 0, 0, 1),
            _mov(1, 3), _mov(1, 2), Instruction(0x95)]
    equal = known_equal(code, succs_of(code)[0], set())
    assert equal[2].get(1, 0) >> 2 & 1  # one way: r1 == r2
    assert not equal[5].get(1, 0) >> 2 & 1  # the other way copied r3: nothing at the join
    code[4] = _mov(3, 1)  # that way copies r1 into r3 instead: r1 == r2 still holds there
    equal = known_equal(code, succs_of(code)[0], set())
    assert equal[5].get(1, 0) >> 2 & 1 and equal[5].get(2, 0) >> 1 & 1


def test_a_write_or_a_call_ends_an_equality() -> None:
    code = [_mov(1, 2), Instruction(0x07, 2, 0, 0, 1), _mov(3, 4), Instruction(0x85, 0, 0, 0, 7), Instruction(0x95)]
    equal = known_equal(code, succs_of(code)[0], set())
    assert equal[1] == {1: 1 << 2, 2: 1 << 1}
    assert 1 not in equal[2] and 2 not in equal[2]  # r2 += 1
    assert equal[3] == {3: 1 << 4, 4: 1 << 3}
    assert 3 not in equal[4]  # the call clobbers r3 (and r4)
