"""A packet pointer with a variable offset, as the kernel sees it: a fixed offset, a variable part, and
the range proven through it.

``p = data + 14; p += x`` gives ``pkt(id=N, off=14, var=x)``: the kernel's new id keeps the fixed offset
14 apart from the variable part, so after ``if p + 2 > end`` a read at ``p - 1`` is the fixed offset 13,
within the range 16 (xdp-tools' parsers read the byte before an IPv6 extension header so: their ``- 1``
mutants load). A variable part that may be negative makes every access through the pointer refused
(``R2 min value is negative``), whatever the fixed offset.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.kernel_oracle import load_xdp
from tests.verify.analysis.opcodes import EXIT, JGT_X, U8, U32, add_imm, ja, load, mov, mov_reg

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")
AND_IMM, ADD_REG, OR_IMM, JEQ_IMM = 0x57, 0x0F, 0x47, 0x15


def _program(minus: int, read_at: int) -> list[Instruction]:
    """``x = (rx_queue & 7) - minus; if data + 30 > end: exit; p = data + 14 + x; if p + 2 > end: exit;
    return *(u8 *)(p + read_at)``"""
    return [load(U32, 2, 1, 0), load(U32, 3, 1, 4), load(U32, 5, 1, 16), Instruction(AND_IMM, 5, 0, 0, 7),
            add_imm(5, -minus), mov_reg(4, 2), add_imm(4, 30), Instruction(JGT_X, 4, 3, 6, 0),
            add_imm(2, 14), Instruction(ADD_REG, 2, 5, 0, 0), mov_reg(4, 2), add_imm(4, 2),
            Instruction(JGT_X, 4, 3, 1, 0), load(U8, 0, 2, read_at), mov(0, 2), EXIT]


READ = 13
"""The read's index in :func:`_program`."""


@pytest.mark.parametrize("read_at", [-1, -14, 0, 1])
def test_reads_from_the_fixed_offset_within_the_range_are_accepted(read_at: int) -> None:
    insns = _program(minus=0, read_at=read_at)
    assert verify_instructions(insns).ok, verify_instructions(insns).format()
    if KERNEL:
        assert load_xdp(insns).ok


def test_a_variable_part_that_may_be_negative_refuses_every_access() -> None:
    insns = _program(minus=4, read_at=0)
    report = verify_instructions(insns)
    assert any(f.code == Code.PACKET_BOUNDS and f.insn == READ and "negative" in f.message
               for f in report.errors), report.format()


@needs_kernel
def test_the_kernel_refuses_a_variable_part_that_may_be_negative() -> None:
    verdict = load_xdp(_program(minus=4, read_at=0))
    assert not verdict.ok and "min value is negative" in verdict.log, verdict.last_lines


@pytest.mark.parametrize("read_at", [-15, 2])
def test_reads_outside_the_fixed_offset_and_range_are_refused(read_at: int) -> None:
    insns = _program(minus=0, read_at=read_at)
    assert any(f.code == Code.PACKET_BOUNDS and f.insn == READ for f in verify_instructions(insns).errors)
    if KERNEL:
        assert not load_xdp(insns).ok


def _joined(read_at: int) -> list[Instruction]:
    """``if data + 40 > end: exit; x = (rx_queue & 7) | 8; p = data + x if x != 9 else data + 18;
    if p + 2 > end: exit; return *(u8 *)(p + read_at)``: a pointer with fixed offset 0 (and a variable part
    of at least 8) on one path, 18 on the other."""
    return [load(U32, 2, 1, 0), load(U32, 3, 1, 4), load(U32, 5, 1, 16), mov_reg(4, 2), add_imm(4, 40),
            Instruction(JGT_X, 4, 3, 12, 0), Instruction(AND_IMM, 5, 0, 0, 7), Instruction(OR_IMM, 5, 0, 0, 8),
            Instruction(JEQ_IMM, 5, 0, 3, 9), mov_reg(6, 2), Instruction(ADD_REG, 6, 5, 0, 0), ja(2),
            mov_reg(6, 2), add_imm(6, 18), mov_reg(4, 6), add_imm(4, 2), Instruction(JGT_X, 4, 3, 1, 0),
            load(U8, 0, 6, read_at), mov(0, 2), EXIT]


def test_a_join_keeps_the_smaller_fixed_offset() -> None:
    refused = verify_instructions(_joined(-1))
    assert any(f.code == Code.PACKET_BOUNDS and f.insn == 17 for f in refused.errors), refused.format()
    assert verify_instructions(_joined(0)).ok


@needs_kernel
def test_the_kernel_refuses_the_read_below_the_smaller_fixed_offset() -> None:
    verdict = load_xdp(_joined(-1))
    assert not verdict.ok and "outside of the packet" in verdict.log, verdict.last_lines
    assert load_xdp(_joined(0)).ok
