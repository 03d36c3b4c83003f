"""The instructions the verifier's tests write by hand: opcodes by access width and small constructors
that read like the kernel's verifier log (``mov(0, 2)`` is ``r0 = 2``), all made from the package's own
opcode table (`pybpfdsl.bpf.opcode`), so no test writes an opcode in hex.
"""

from __future__ import annotations

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import SIZE_BYTES, AluOp, InsnClass, JmpOp, Mode, Size, Source, make

# By access width in bytes.
LDX = {SIZE_BYTES[s]: make(InsnClass.LDX, Mode.MEM, s) for s in Size}
"""``rD = *(size *)(rS + off)``"""
ST = {SIZE_BYTES[s]: make(InsnClass.ST, Mode.MEM, s) for s in Size}
"""``*(size *)(rD + off) = imm``"""
STX = {SIZE_BYTES[s]: make(InsnClass.STX, Mode.MEM, s) for s in Size}
"""``*(size *)(rD + off) = rS``"""
U8, U16, U32, U64 = LDX[1], LDX[2], LDX[4], LDX[8]
ST_W, ST_DW = ST[4], ST[8]
STX_DW = STX[8]
JGT_X = make(InsnClass.JMP, JmpOp.JGT, Source.X)
EXIT = Instruction(make(InsnClass.JMP, JmpOp.EXIT))


def mov(dst: int, imm: int) -> Instruction:
    """``rD = imm``"""
    return Instruction(make(InsnClass.ALU64, AluOp.MOV, Source.K), dst, 0, 0, imm)


def mov_reg(dst: int, src: int) -> Instruction:
    """``rD = rS``"""
    return Instruction(make(InsnClass.ALU64, AluOp.MOV, Source.X), dst, src, 0, 0)


def add_imm(dst: int, imm: int) -> Instruction:
    """``rD += imm``"""
    return Instruction(make(InsnClass.ALU64, AluOp.ADD, Source.K), dst, 0, 0, imm)


def load(size_op: int, dst: int, src: int, off: int) -> Instruction:
    """``rD = *(size *)(rS + off)`` (size_op 0x61 u32, 0x79 u64, 0x71 u8)."""
    return Instruction(size_op, dst, src, off, 0)


def store(size_op: int, dst: int, src: int, off: int) -> Instruction:
    """``*(size *)(rD + off) = rS`` (size_op 0x63 u32, 0x7B u64)."""
    return Instruction(size_op, dst, src, off, 0)


def jeq_imm(dst: int, imm: int, skip: int) -> Instruction:
    """``if rD == imm goto +skip``"""
    return Instruction(make(InsnClass.JMP, JmpOp.JEQ, Source.K), dst, 0, skip, imm)


def ja(skip: int) -> Instruction:
    """``goto +skip``"""
    return Instruction(make(InsnClass.JMP, JmpOp.JA), 0, 0, skip, 0)


def call(helper: int) -> Instruction:
    """``call helper``"""
    return Instruction(make(InsnClass.JMP, JmpOp.CALL), 0, 0, 0, int(helper))


CALL_LOOKUP = call(Helper.MAP_LOOKUP_ELEM)
PRANDOM = call(Helper.GET_PRANDOM_U32)
"""``call bpf_get_prandom_u32``: an unknown number in r0."""


def hash_lookup() -> list[Instruction]:
    """``key = 0; r0 = bpf_map_lookup_elem(&m, &key)``: the map's lddw is instruction 3."""
    return [Instruction(ST_W, 10, 0, -4, 0), mov_reg(2, 10), add_imm(2, -4), Instruction.lddw(1, 0), CALL_LOOKUP]


LOOKUP_MAP_INSN = 3
