"""A packet pointer compared past packet_end keeps that fact, exactly as the kernel keeps it (issue 13).

On the edge where ``p > packet_end`` (``p >= packet_end``) holds, the kernel marks the register (its range
becomes BEYOND_PKT_END, AT_PKT_END), decides a later comparison of that same register with packet_end by the
mark, and refuses any access through it. clang -O1 relies on the first: xdp-tutorial's ``xdp_vlan_02`` jumps
from its first length check to a tail that tests the same register again before it reads a register written
only where the check passed. Every neighbour where the kernel does not decide the jump (a copy taken before
the check, a ``>=`` mark tested with ``>``, a mark cleared by a later check that passed) is refused, by both.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, JmpOp, Source, make
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.kernel_oracle import kernel_verdict
from tests.verify.analysis.opcodes import EXIT, JGT_X, U8, U32, add_imm, load, mov, mov_reg

KERNEL, WHY = kernel_bpf_available()
JGE_X = make(InsnClass.JMP, JmpOp.JGE, Source.X)
JLT_X = make(InsnClass.JMP, JmpOp.JLT, Source.X)
AND_K = make(InsnClass.ALU64, AluOp.AND, Source.K)


def _jgt(dst: int, src: int) -> Instruction:
    return Instruction(JGT_X, dst, src, 0, 0)


TAIL = {
    # name: (first check, between, second check, the kernel accepts, what it says when it refuses)
    "the same register again (xdp_vlan_02)": ([_jgt(1, 2)], [], Instruction(JGT_X, 1, 2, 2, 0), True, ""),
    "the same register, end < p": ([Instruction(JLT_X, 2, 1, 0, 0)], [], Instruction(JLT_X, 2, 1, 2, 0), True, ""),
    "a >= mark decides >=": ([Instruction(JGE_X, 1, 2, 0, 0)], [], Instruction(JGE_X, 1, 2, 2, 0), True, ""),
    "a > mark decides >=": ([_jgt(1, 2)], [], Instruction(JGE_X, 1, 2, 2, 0), True, ""),
    "a >= mark does not decide >": ([Instruction(JGE_X, 1, 2, 0, 0)], [], Instruction(JGT_X, 1, 2, 2, 0), False,
                                    "!read_ok"),
    "a copy taken before the check": ([mov_reg(4, 1), _jgt(1, 2)], [], Instruction(JGT_X, 4, 2, 2, 0), False,
                                      "!read_ok"),
    # (the kernel's range is not kept through a constant added, on 6.18: no mark on r4)
    "a constant added after the check": ([_jgt(1, 2)], [mov_reg(4, 1), add_imm(4, 2)], Instruction(JGT_X, 4, 2, 2, 0),
                                         False, "!read_ok"),
}


@pytest.mark.parametrize("name", list(TAIL))
def test_a_register_compared_past_the_end_decides_its_next_comparison(name: str) -> None:
    first, between, again, accepted, says = TAIL[name]
    insns = _program(first, between, again)
    report = verify_instructions(insns)
    assert report.ok == accepted, report.format()
    if not accepted:
        assert any(f.code == Code.UNINIT_REG for f in report.errors), report.format()
    if KERNEL:
        verdict = kernel_verdict(insns)
        assert verdict.ok == accepted, verdict.last_lines
        assert says in verdict.log


def _program(first: list[Instruction], between: list[Instruction], again: Instruction) -> list[Instruction]:
    """r2 = end; r3 = data; r1 = data + 14; ``first`` (its last instruction jumps to L when r1 is past the
    end); r5 = data[12]; L: ``between``; ``again`` (jumps over the read of r5 when r1 is past the end);
    return r5 & 3. On the path from the check to L, r5 is never written: only a decided ``again`` keeps
    it from the read."""
    head = [load(U32, 2, 1, 4), load(U32, 3, 1, 0), mov_reg(1, 3), add_imm(1, 14)]
    *pre, check = first
    body = [load(U8, 5, 3, 12)]
    check = Instruction(check.opcode, check.dst, check.src, len(body), 0)
    tail = [mov(0, 0), *between, again, mov_reg(0, 5), Instruction(AND_K, 0, 0, 0, 3), EXIT]
    return [*head, *pre, check, *body, *tail]


def test_a_check_that_passes_clears_the_mark() -> None:
    """On the path where r1 > end, ``r4 = data + 10; if r4 > end`` passing sets the range of every pointer at
    a constant offset from data, r1's too: its mark is gone and the kernel walks both ways of ``r1 > end``."""
    head = [load(U32, 2, 1, 4), load(U32, 3, 1, 0), mov_reg(1, 3), add_imm(1, 14)]
    body = [load(U8, 5, 3, 12)]
    check = Instruction(JGT_X, 1, 2, len(body), 0)
    recheck = [mov_reg(4, 3), add_imm(4, 10), Instruction(JGT_X, 4, 2, 0, 0)]  # both ways to L
    tail = [mov(0, 0), Instruction(JGT_X, 1, 2, 2, 0), mov_reg(0, 5), Instruction(AND_K, 0, 0, 0, 3), EXIT]
    insns = [*head, check, *body, *recheck, *tail]
    report = verify_instructions(insns)
    assert not report.ok
    assert any(f.code == Code.UNINIT_REG for f in report.errors), report.format()
    if KERNEL:
        verdict = kernel_verdict(insns)
        assert not verdict.ok and "!read_ok" in verdict.log, verdict.last_lines


@pytest.mark.parametrize("derived", [False, True], ids=["the marked register", "a constant added to it"])
def test_no_access_through_a_register_compared_past_the_end(derived: bool) -> None:
    """``if data + 20 > end exit`` proves 20 bytes; then ``r1 = data + 14; if r1 > end`` is taken on no packet,
    but the kernel walks that edge with r1 marked, and refuses ``*(u8 *)(r1 - 1)`` there (our checked length
    of 20 bytes alone would allow it), and through ``r1 - 1`` (unmarked, but with no range proven: the kernel
    gives the sum range 0, not the range of data's other pointers)."""
    access = [mov_reg(5, 1), add_imm(5, -1), load(U8, 0, 5, 0)] if derived else [load(U8, 0, 1, -1)]
    insns = [load(U32, 2, 1, 4), load(U32, 3, 1, 0), mov_reg(4, 3), add_imm(4, 20),
             Instruction(JGT_X, 4, 2, 3, 0), mov_reg(1, 3), add_imm(1, 14), Instruction(JGT_X, 1, 2, 2, 0),
             mov(0, 2), EXIT,
             *access, Instruction(AND_K, 0, 0, 0, 3), EXIT]
    report = verify_instructions(insns)
    assert not report.ok
    errors = [f for f in report.errors if f.code == Code.PACKET_BOUNDS]
    assert errors and (derived or "past packet_end" in errors[0].message), report.format()
    if KERNEL:
        verdict = kernel_verdict(insns)
        assert not verdict.ok and "offset is outside of the packet" in verdict.log, verdict.last_lines
