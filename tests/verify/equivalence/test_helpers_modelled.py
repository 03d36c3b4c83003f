"""What issue 12's mutant run left "unknown" and the prover now models: map values at a variable offset
and the XDP helpers the corpus calls. Each difference is a counterexample that the interpreter replays
and the kernel confirms (BPF_PROG_TEST_RUN); each pair that is equal proves."""

from __future__ import annotations

import struct

from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.bpf.opcode import AluOp, InsnClass, JmpOp, Source, make
from pybpfdsl.runtime.test_run import run_xdp
from pybpfdsl.verify.equivalence.bytecode_encoding import BytecodeEncoder
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram
from pybpfdsl.verify.equivalence.paths import Unsupported
from pybpfdsl.verify.equivalence.prove import prove_objects
from pybpfdsl.verify.equivalence.state import Inputs, Layout
from tests.verify.equivalence.assembled import c_object, kernel, needs_clang, needs_kernel

I = Instruction  # noqa: E741 - keeps the programs below readable

SLOTS = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, unsigned int);
         __type(value, unsigned int[8]); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned char *data = (unsigned char *)(long)ctx->data, *end = (unsigned char *)(long)ctx->data_end;
    if (data + 1 > end) return XDP_PASS;
    unsigned int k = 0, i = data[0] & MASK;
    unsigned int *s = bpf_map_lookup_elem(&m, &k);
    if (!s) return XDP_PASS;
    s[i] += STEP;
    return s[(i + 1) & 7] > 3 ? XDP_DROP : XDP_PASS;
}
"""


def _slots(mask: int, step: int) -> bytes:
    return c_object(f"#define MASK {mask}\n#define STEP {step}\n" + SLOTS)


def _kernel_slots(elf: bytes, packet: bytes) -> tuple[int, bytes]:
    with kernel(elf) as obj:
        action = run_xdp(obj.program_fd("prog"), packet).action
        value = obj.kernel_map("m").lookup(bytes(4))
        assert value is not None
        return action, bytes(value)


@needs_clang
def test_map_value_slots_at_a_variable_offset_prove_when_equal() -> None:
    result = prove_objects(_slots(7, 1), _slots(7, 1), "prog")
    assert result.status == "proven", result.summary()


@needs_clang
@needs_kernel
def test_a_different_slot_at_a_variable_offset_is_a_counterexample_the_kernel_confirms() -> None:
    original, mutant = _slots(7, 1), _slots(3, 1)  # slots 4-7 are never counted in the mutant
    result = prove_objects(original, mutant, "prog")
    assert result.status == "counterexample", result.summary()
    cex = result.counterexample
    assert cex is not None and cex.reproduced, result.report()
    packet = cex.packet
    assert packet[0] & 4  # only a packet whose first byte picks slot 4-7 tells them apart
    assert _kernel_slots(original, packet)[1] != _kernel_slots(mutant, packet)[1]


@needs_clang
@needs_kernel
def test_a_different_amount_added_at_a_variable_offset_is_a_counterexample_the_kernel_confirms() -> None:
    original, mutant = _slots(7, 1), _slots(7, 2)
    result = prove_objects(original, mutant, "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()
    packet = result.counterexample.packet
    a, b = _kernel_slots(original, packet)[1], _kernel_slots(mutant, packet)[1]
    slot = packet[0] & 7
    assert struct.unpack_from("<I", a, 4 * slot)[0] == 1 and struct.unpack_from("<I", b, 4 * slot)[0] == 2


def test_messages_number_instructions_by_slot_as_the_disassembler_does() -> None:
    # lddw r3, 5 takes slots 0 and 1; `r0 = r2` (r2 never set) is instruction 1 but slot 2.
    insns = (I.lddw(3, 5), I(make(InsnClass.ALU64, AluOp.MOV, Source.X), 0, 2), I(make(InsnClass.JMP, JmpOp.EXIT)))
    assert slot_offsets(list(insns))[1] == 2
    program = BytecodeProgram("slots", insns, {}, Layout({}, {}), {})
    try:
        BytecodeEncoder(program, Inputs(program.layout)).run()
    except Unsupported as exc:
        assert str(exc).startswith("insn 2 reads r2"), exc
    else:
        raise AssertionError("reading an uninitialised register was encoded")
