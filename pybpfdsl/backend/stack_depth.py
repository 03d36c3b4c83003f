"""How deep below r10 a compiled program's code reaches: its stack frame, read from the bytecode.

LLVM's BPF backend reports a frame past 512 bytes through LLVM's default diagnostic handler, which
prints the message and ends the whole process (llvmlite installs no handler, so no exception reaches
Python). The frame is known only after register allocation (spills of values live across a long
stretch are most of it), so it cannot be predicted from the IR. `object_emit` therefore raises LLVM's
limit far above any real frame, and the compiler reads the frame from the code LLVM produced and
refuses it itself, at the user's line (`backend.compile`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpfdsl.bpf.btf_ext import LineInfo
from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, Source, alu_op, source

__all__ = ["FRAME_POINTER", "StackReach", "deepest_stack_access"]

FRAME_POINTER = 10
"""r10, the read-only frame pointer: the stack is the 512 bytes below it."""


@dataclass(frozen=True)
class StackReach:
    """The deepest stack byte one instruction touches (or points at), and where it came from."""

    depth: int
    """Bytes below r10: the frame the code needs."""
    section: str
    insn_index: int
    line: LineInfo | None
    """The source position of that instruction (of the nearest one before it that has one)."""


def deepest_stack_access(elf: bytes) -> StackReach | None:
    """The deepest stack access in any program of the object, or None when the code uses no stack.

    Counted: loads and stores through r10 (`*(u64 *)(r10 - 8)`), and pointers made from it
    (`r2 = r10; r2 += -16`, the form a helper's key or buffer argument takes; the object pointed at
    lies above the pointer, so the pointer is the deepest byte). A register stops being such a pointer
    at its next other write; jumps are ignored, which only matters for code LLVM does not emit (a
    pointer made on one path and offset on another).
    """
    parsed = BpfElf(elf)
    deepest: StackReach | None = None
    for section, program in parsed.programs.items():
        below: dict[int, int] = {}  # register -> its offset from r10, while it holds r10 + offset
        for index, insn in enumerate(program.instructions):
            reach = _reach(insn, below)
            if reach is not None and reach > 0 and (deepest is None or reach > deepest.depth):
                deepest = StackReach(reach, section, index, _line_of(program.line_info, index))
    return deepest


def _reach(insn: Instruction, below: dict[int, int]) -> int | None:
    """Bytes below r10 `insn` touches; updates `below` for the register it writes."""
    kind, dst, src = insn.kind, insn.dst, insn.src
    wide = insn.cls == InsnClass.ALU64
    if kind in (Kind.LDX, Kind.LDX_SX):
        below.pop(dst, None)
        return -insn.off if src == FRAME_POINTER else None
    if kind in (Kind.ST, Kind.STX, Kind.ATOMIC):
        return -insn.off if dst == FRAME_POINTER else None
    if kind == Kind.MOV and wide and source(insn.opcode) == Source.X and (src == FRAME_POINTER or src in below):
        below[dst] = below.get(src, 0)
        return None
    op = alu_op(insn.opcode)
    if kind == Kind.ALU and wide and source(insn.opcode) == Source.K and dst in below and op in (AluOp.ADD,
                                                                                                 AluOp.SUB):
        below[dst] += insn.imm if op == AluOp.ADD else -insn.imm
        return -below[dst]
    if kind == Kind.CALL:
        for scratch in range(6):  # a call clobbers r0-r5
            below.pop(scratch, None)
    elif kind not in (Kind.JA, Kind.GOTOL, Kind.JCOND, Kind.MAY_GOTO, Kind.EXIT):
        below.pop(dst, None)
    return None


def _line_of(lines: tuple[LineInfo, ...], index: int) -> LineInfo | None:
    before = [li for li in lines if li.insn_index <= index and li.line > 0]
    return max(before, key=lambda li: li.insn_index) if before else None
