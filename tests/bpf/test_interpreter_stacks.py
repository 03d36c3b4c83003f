"""The interpreter's stack frames start from given contents (what a counterexample says the kernel left
there), frame by frame in the order the run creates them."""

from __future__ import annotations

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.interpreter import run
from pybpfdsl.bpf.opcode import AluOp, CallKind, InsnClass, JmpOp, Mode, Size, Source, make

I = Instruction  # noqa: E741 - keeps the programs below readable
EXIT = I(make(InsnClass.JMP, JmpOp.EXIT))


def _load_fp(off: int) -> Instruction:
    return I(make(InsnClass.LDX, Mode.MEM, Size.B), 0, 10, off)


def _call(delta: int) -> Instruction:
    return I(make(InsnClass.JMP, JmpOp.CALL), 0, CallKind.PSEUDO_CALL, 0, delta)


def test_the_main_frame_starts_from_the_given_bytes() -> None:
    stack = bytearray(512)
    stack[512 - 4] = 0x2A  # r10 - 4
    assert run([_load_fp(-4), EXIT], bytes(14), stacks=[bytes(stack)]).action == 0x2A
    assert run([_load_fp(-4), EXIT], bytes(14)).action == 0  # by default: zeros
    assert run([_load_fp(-4), EXIT], bytes(14), stacks=[b"\x01" * 3]).action == 0  # short: zeros past its end


def test_each_frame_takes_the_next_image_in_creation_order() -> None:
    # main: r6 = f(); r0 = f(); r0 += r6 * 256; f: return *(u8 *)(r10 - 1)
    mov_r6_r0 = I(make(InsnClass.ALU64, AluOp.MOV, Source.X), 6, 0)
    shift = I(make(InsnClass.ALU64, AluOp.LSH, Source.K), 6, 0, 0, 8)
    add = I(make(InsnClass.ALU64, AluOp.ADD, Source.X), 0, 6)
    program = [_call(5), mov_r6_r0, _call(3), shift, add, EXIT, _load_fp(-1), EXIT]
    frames = [bytes(512), bytes(511) + b"\x03", bytes(511) + b"\x05"]
    assert run(program, bytes(14), stacks=frames).action == 0x0305
