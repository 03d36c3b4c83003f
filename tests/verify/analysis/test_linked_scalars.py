"""A number copied (``r1 = r2``) and then offset by a constant once (``r1 += k``) is bounded by a comparison of
either copy, as the kernel bounds it (its scalar ids and BPF_ADD_CONST, ``sync_linked_regs``; issue 13).

clang -O1 relies on it: xdp-trafficgen's ``xdp_redirect_update_port`` folds a checksum in a loop
``l: r2 = r1; r2 &= 0xffff; r1 = r2; r1 += 1; if r2 == 0xffff goto l``, which ends because the kernel knows
r1 = 0x10000 on the jump back; without the link we saw its second iteration repeat the first and refused
it as endless. Every neighbour where the kernel has no link (a second ``+=``, any other operation on the
copy) or where the loop really repeats is refused, by both.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, JmpOp, Source, make
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.kernel_oracle import HASH_MAP, kernel_verdict
from tests.verify.analysis.opcodes import EXIT, PRANDOM, U8, add_imm, hash_lookup, jeq_imm, load, mov, mov_reg

KERNEL, WHY = kernel_bpf_available()
AND_K = make(InsnClass.ALU64, AluOp.AND, Source.K)
JGT_K = make(InsnClass.JMP, JmpOp.JGT, Source.K)


def _fold(back: int) -> list[Instruction]:
    """r1 = prandom; l: r2 = r1; r2 &= 0xffff; r1 = r2; r1 += back; if r2 == 0xffff goto l; return XDP_PASS."""
    return [PRANDOM, mov_reg(1, 0), mov_reg(2, 1), Instruction(AND_K, 2, 0, 0, 0xFFFF), mov_reg(1, 2),
            add_imm(1, back), jeq_imm(2, 0xFFFF, -5), mov(0, 2), EXIT]


def test_a_checksum_fold_loop_ends_through_the_linked_copy() -> None:
    insns = _fold(1)
    report = verify_instructions(insns)
    assert report.ok, report.format()
    if KERNEL:
        assert kernel_verdict(insns).ok


def test_the_same_loop_without_the_increment_is_endless() -> None:
    insns = _fold(0)
    report = verify_instructions(insns)
    assert any(f.code == Code.UNBOUNDED_LOOP for f in report.errors), report.format()
    if KERNEL:
        assert not kernel_verdict(insns).ok


def _indexed(copy: list[Instruction]) -> list[Instruction]:
    """r6 = lookup (8-byte value) or exit; r0 = prandom; ``copy`` (r1 from r0); if r0 > 3 exit;
    read the value's byte at r1."""
    tail = [Instruction(JGT_K, 0, 0, 3, 3), mov_reg(2, 6), Instruction(make(InsnClass.ALU64, AluOp.ADD, Source.X),
                                                                         2, 1, 0, 0), load(U8, 3, 2, 0),
            mov(0, 2), EXIT]
    body = [mov_reg(6, 0), PRANDOM, *copy, *tail]
    return [*hash_lookup(), jeq_imm(0, 0, len(body) - 2), *body]


INDEXED = {
    # name: (how r1 is made from r0, the kernel accepts)
    "r1 = r0 + 4": ([mov_reg(1, 0), add_imm(1, 4)], True),
    "r1 = r0 + 2 + 2 (two additions: no link)": ([mov_reg(1, 0), add_imm(1, 2), add_imm(1, 2)], False),
    "r1 = (r0 + 4) & -1 (another operation: no link)": ([mov_reg(1, 0), add_imm(1, 4),
                                                         Instruction(AND_K, 1, 0, 0, -1)], False),
}


@pytest.mark.parametrize("name", list(INDEXED))
def test_a_bound_on_the_original_bounds_its_offset_copy(name: str) -> None:
    copy, accepted = INDEXED[name]
    insns = _indexed(copy)
    report = verify_instructions(insns, map_refs={3: (HASH_MAP, None)})
    assert report.ok == accepted, report.format()
    if not accepted:
        assert any(f.code in (Code.MAP_BOUNDS, Code.POINTER_ARITH) for f in report.errors), report.format()
    if KERNEL:
        verdict = kernel_verdict(insns, map_insns=[3])
        assert verdict.ok == accepted, verdict.last_lines
