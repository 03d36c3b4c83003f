"""A packet pointer with a variable offset has only the range proven through it (the kernel gives it a new
id with range 0), not the packet length checked through pointers at constant offsets."""

from __future__ import annotations

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.kernel_oracle import load_xdp
from tests.verify.analysis.opcodes import EXIT, U8, U32, add_imm, load, mov, mov_reg

KERNEL, _ = kernel_bpf_available()


def _program(recheck: bool) -> list[Instruction]:
    """``if data + 30 > end: exit; p = data + (rx_queue & 7); [if p + 1 > end: exit;] *p``"""
    check = [mov_reg(4, 2), add_imm(4, 1), Instruction(0x2D, 4, 3, 1, 0)] if recheck else []
    return [load(U32, 2, 1, 0), load(U32, 3, 1, 4), load(U32, 5, 1, 16), Instruction(0x57, 5, 0, 0, 7),
            mov_reg(4, 2), add_imm(4, 30), Instruction(0x2D, 4, 3, 2 + len(check), 0),
            Instruction(0x0F, 2, 5, 0, 0), *check, load(U8, 0, 2, 0), mov(0, 2), EXIT]


def test_the_checked_length_does_not_serve_a_variable_offset() -> None:
    insns = _program(recheck=False)
    report = verify_instructions(insns)
    assert any(f.code == Code.PACKET_BOUNDS and f.insn == 8 for f in report.errors), report.format()
    if KERNEL:
        verdict = load_xdp(insns)
        assert not verdict.ok and "invalid access to packet" in verdict.log, verdict.last_lines


def test_a_check_through_the_pointer_itself_does() -> None:
    insns = _program(recheck=True)
    assert verify_instructions(insns).ok
    if KERNEL:
        assert load_xdp(insns).ok
