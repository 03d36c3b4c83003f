"""The bytecode interpreter without the kernel: memory model, maps, helpers, calls, faults, and the
adapter that runs compiled programs against Python state objects."""

from __future__ import annotations

import random

import pytest

from pybpfdsl.bpf.abi import MapType
from pybpfdsl.bpf.faults import BytecodeFault, StepLimitExceeded, UnsupportedHelper
from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind
from pybpfdsl.bpf.interpreter import XdpContext, run
from pybpfdsl.bpf.memory import InterpMap
from pybpfdsl.bpf.opcode import (
    AluOp,
    AtomicOp,
    CallKind,
    Endian,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
    make,
)
from pybpfdsl.bpf.random_programs import generate, random_packet
from pybpfdsl.differential import run_python, snapshot
from pybpfdsl.lang.helpers import use_helpers
from pybpfdsl.program import XdpProgram
from pybpfdsl.state_transfer import run_bytecode
from pybpfdsl.testing import FixedHelpers, reset_state
from tests.differential import constructs

I = Instruction  # noqa: E741 - keeps the programs below readable

PACKET = bytes(range(64))


def mov(dst: int, imm: int) -> Instruction:
    return I(make(InsnClass.ALU64, AluOp.MOV, Source.K), dst, 0, 0, imm)


def movr(dst: int, src: int) -> Instruction:
    return I(make(InsnClass.ALU64, AluOp.MOV, Source.X), dst, src)


def add(dst: int, imm: int) -> Instruction:
    return I(make(InsnClass.ALU64, AluOp.ADD, Source.K), dst, 0, 0, imm)


def ldx(sz: Size, dst: int, src: int, off: int) -> Instruction:
    return I(make(InsnClass.LDX, Mode.MEM, sz), dst, src, off)


def stx(sz: Size, dst: int, src: int, off: int) -> Instruction:
    return I(make(InsnClass.STX, Mode.MEM, sz), dst, src, off)


def st(sz: Size, dst: int, off: int, imm: int) -> Instruction:
    return I(make(InsnClass.ST, Mode.MEM, sz), dst, 0, off, imm)


def jmp(op: JmpOp, dst: int, src: int, off: int) -> Instruction:
    return I(make(InsnClass.JMP, op, Source.X), dst, src, off)


def jmpi(op: JmpOp, dst: int, imm: int, off: int) -> Instruction:
    return I(make(InsnClass.JMP, op, Source.K), dst, 0, off, imm)


def call(helper: int) -> Instruction:
    return I(make(InsnClass.JMP, JmpOp.CALL), 0, CallKind.HELPER, 0, helper)


EXIT = I(make(InsnClass.JMP, JmpOp.EXIT))

# r2 = data, r3 = data_end; `if r2 + n > r3 goto +k` checks n bytes are there.
PKT_PTRS = [ldx(Size.W, 2, 1, 0), ldx(Size.W, 3, 1, 4)]


def bounds(n: int, skip: int) -> list[Instruction]:
    return [movr(4, 2), add(4, n), jmp(JmpOp.JGT, 4, 3, skip)]


def hash_map(max_entries: int = 4) -> InterpMap:
    return InterpMap("h", MapType.HASH, 4, 8, max_entries)


def lookup_and_increment(map_fd: int) -> list[Instruction]:
    """*(u32*)(fp-4) = 7; p = lookup(map, fp-4); if p: *p += 1 (through the pointer); return p != 0."""
    return [
        st(Size.W, 10, -4, 7),
        Instruction.lddw(1, map_fd, src=PseudoSrc.MAP_FD),
        movr(2, 10), add(2, -4),
        call(1),
        mov(6, 0),
        jmpi(JmpOp.JEQ, 0, 0, 4),
        ldx(Size.DW, 1, 0, 0), add(1, 1), stx(Size.DW, 0, 1, 0),
        mov(6, 1),
        movr(0, 6),
        EXIT,
    ]


# --------------------------------------------------------------------------- #
# Maps and global data
# --------------------------------------------------------------------------- #


def test_map_value_pointers_alias_the_map() -> None:
    m = hash_map()
    assert run(lookup_and_increment(5), PACKET, fd_maps={5: m}).action == 0  # absent key
    assert m.update((7).to_bytes(4, "little"), (41).to_bytes(8, "little")) == 0
    assert run(lookup_and_increment(5), PACKET, fd_maps={5: m}).action == 1
    assert m.value((7).to_bytes(4, "little")) == (42).to_bytes(8, "little")


def test_array_maps_and_index_references() -> None:
    arr = InterpMap("a", MapType.ARRAY, 4, 8, 10)
    prog = lookup_and_increment(0)
    prog[1] = Instruction.lddw(1, 0, src=PseudoSrc.MAP_IDX)
    assert run(prog, PACKET, fd_array=[arr]).action == 1
    assert arr.value(InterpMap.index_key(7)) == (1).to_bytes(8, "little")
    small = InterpMap("a", MapType.ARRAY, 4, 8, 7)  # key 7 is out of range
    assert run(prog, PACKET, fd_array=[small]).action == 0


def test_map_update_and_delete_follow_the_kernel_errnos() -> None:
    m = hash_map(max_entries=1)
    k1, k2, v = b"\1\0\0\0", b"\2\0\0\0", bytes(8)
    assert m.update(k1, v, 2) == -2  # BPF_EXIST on a missing key: ENOENT
    assert m.update(k1, v, 1) == 0
    assert m.update(k1, v, 1) == -17  # BPF_NOEXIST on a present key: EEXIST
    assert m.update(k2, v) == -7  # full: E2BIG
    assert m.update(k1, v, 4) == -22
    assert m.delete(k2) == -2 and m.delete(k1) == 0
    lru = InterpMap("l", MapType.LRU_HASH, 4, 8, 1)
    assert lru.update(k1, v) == 0 and lru.update(k2, v) == 0  # evicts k1
    assert list(lru.entries) == [k2]
    arr = InterpMap("a", MapType.ARRAY, 4, 8, 2)
    assert arr.delete(k1) == -22 and arr.update(b"\5\0\0\0", v) == -7 and arr.update(k1, v, 1) == -17


def test_map_update_helper_and_delete_helper() -> None:
    m = hash_map()
    prog = [
        st(Size.W, 10, -4, 3), st(Size.DW, 10, -16, 99),
        Instruction.lddw(1, 1, src=PseudoSrc.MAP_FD), movr(2, 10), add(2, -4), movr(3, 10), add(3, -16),
        mov(4, 0), call(2),
        movr(6, 0),
        Instruction.lddw(1, 1, src=PseudoSrc.MAP_FD), movr(2, 10), add(2, -4), call(3),
        I(make(InsnClass.ALU64, AluOp.ADD, Source.X), 0, 6),
        EXIT,
    ]
    result = run(prog, PACKET, fd_maps={1: m})
    assert result.r0 == 0 and not m.entries
    m.update((3).to_bytes(4, "little"), bytes(8))
    assert run([*prog[:10], EXIT], PACKET, fd_maps={1: m}).r0 == 0  # update of an existing key


def test_global_data_by_pseudo_map_value_and_by_elf_relocation() -> None:
    bss = InterpMap.section(".bss", bytes(16))
    prog = [Instruction.lddw(1, 9, src=PseudoSrc.MAP_VALUE), st(Size.W, 1, 0, 0x55), mov(0, 2), EXIT]
    prog[0] = Instruction(0x18, 1, PseudoSrc.MAP_VALUE, 0, 9, 4, is_wide=True)  # value offset 4
    run(prog, PACKET, fd_maps={9: bss})
    assert bss.value(InterpMap.index_key(0)) == bytes(4) + b"\x55" + bytes(11)
    reloc = Relocation(0, 0, ".bss", RelocKind.DATA, ".bss", 8)
    run([Instruction.lddw(1, 0), st(Size.DW, 1, 0, -1), mov(0, 2), EXIT], PACKET,
        relocations={0: reloc}, maps={".bss": bss})
    assert bss.value(InterpMap.index_key(0)) == bytes(4) + b"\x55" + bytes(3) + b"\xff" * 8


def test_read_only_sections_fault_on_write() -> None:
    ro = InterpMap.section(".rodata", b"abcd", readonly=True)
    reloc = Relocation(0, 0, ".rodata", RelocKind.DATA, ".rodata", 0)
    prog = [Instruction.lddw(1, 0), ldx(Size.B, 0, 1, 1), EXIT]
    assert run(prog, PACKET, relocations={0: reloc}, maps={".rodata": ro}).r0 == ord("b")
    with pytest.raises(BytecodeFault, match="read-only"):
        run([Instruction.lddw(1, 0), st(Size.B, 1, 0, 1), EXIT], PACKET, relocations={0: reloc},
            maps={".rodata": ro})


# --------------------------------------------------------------------------- #
# Packet, context, stack
# --------------------------------------------------------------------------- #


def test_packet_bounds_checks_compare_offsets_and_writes_land_in_the_packet() -> None:
    bswap64 = I(make(InsnClass.ALU64, AluOp.END, Source.K), 5, 0, 0, 64)
    prog = [*PKT_PTRS, *bounds(8, 5), ldx(Size.DW, 5, 2, 0), bswap64, stx(Size.DW, 2, 5, 0), mov(0, 3), EXIT,
            mov(0, 0), EXIT]
    result = run(prog, PACKET)
    assert result.action == 3
    assert result.packet == bytes(range(8))[::-1] + PACKET[8:]
    short = run(prog, PACKET[:7])
    assert short.action == 0 and short.packet == PACKET[:7]  # the check jumped to the exit with r0 = 0


def test_a_byte_order_conversion_reads_no_source_register() -> None:
    # `be32 r5` has the source bit set (it picks the byte order) and src 0: r0 holding a pointer
    # there is no pointer arithmetic (LLVM emitted this in the signed_arith construct).
    be32 = I(make(InsnClass.ALU, AluOp.END, Endian.TO_BE), 5, 0, 0, 32)
    prog = [*PKT_PTRS, movr(0, 2), mov(5, 0x11223344), be32, movr(0, 5), EXIT]
    assert run(prog, PACKET).r0 == 0x44332211


def test_out_of_bounds_packet_access_faults_with_the_instruction_index() -> None:
    prog = [*PKT_PTRS, ldx(Size.W, 0, 2, 62), EXIT]  # no bounds check: bytes 62..65 of 64
    with pytest.raises(BytecodeFault) as info:
        run(prog, PACKET)
    assert info.value.pc == 2
    with pytest.raises(BytecodeFault, match="non-pointer"):
        run([mov(1, 4096), ldx(Size.B, 0, 1, 0), EXIT], PACKET)
    with pytest.raises(BytecodeFault, match="outside stack"):
        run([stx(Size.DW, 10, 1, 0), EXIT], PACKET)


def test_context_fields() -> None:
    prog = [ldx(Size.W, 6, 1, 12), ldx(Size.W, 7, 1, 16), movr(0, 6),
            I(make(InsnClass.ALU64, AluOp.LSH, Source.K), 7, 0, 0, 8), I(make(InsnClass.ALU64, AluOp.OR,
                                                                                Source.X), 0, 7), EXIT]
    assert run(prog, PACKET).r0 == 1
    assert run(prog, PACKET, ctx=XdpContext(ingress_ifindex=5, rx_queue_index=2)).r0 == 5 | 2 << 8
    with pytest.raises(BytecodeFault, match="xdp_md"):
        run([ldx(Size.W, 0, 1, 24), EXIT], PACKET)
    with pytest.raises(BytecodeFault, match="read-only"):
        run([st(Size.W, 1, 12, 0), EXIT], PACKET)


def test_pointer_spill_and_fill_through_the_stack() -> None:
    prog = [*PKT_PTRS, *bounds(4, 5), stx(Size.DW, 10, 2, -8), mov(2, 0), ldx(Size.DW, 2, 10, -8),
            ldx(Size.B, 0, 2, 3), EXIT, mov(0, 0), EXIT]
    assert run(prog, PACKET).r0 == 3
    # Overwriting part of the slot turns the pointer into bytes: dereferencing those faults.
    clobbered = [*prog[:6], st(Size.B, 10, -8, 0), *prog[6:]]
    with pytest.raises(BytecodeFault, match="non-pointer"):
        run(clobbered, PACKET)


def test_atomics_on_the_stack() -> None:
    xadd = I(make(InsnClass.STX, Mode.ATOMIC, Size.DW), 10, 2, -8, AtomicOp.FETCH_ADD)
    cmpxchg = I(make(InsnClass.STX, Mode.ATOMIC, Size.W), 10, 3, -8, AtomicOp.CMPXCHG)
    prog = [st(Size.DW, 10, -8, 40), mov(2, 2), xadd, mov(0, 42), mov(3, 7), cmpxchg,
            ldx(Size.DW, 4, 10, -8), I(make(InsnClass.ALU64, AluOp.LSH, Source.K), 4, 0, 0, 16),
            I(make(InsnClass.ALU64, AluOp.OR, Source.X), 0, 4), I(make(InsnClass.ALU64, AluOp.LSH, Source.K),
                                                                   2, 0, 0, 8),
            I(make(InsnClass.ALU64, AluOp.OR, Source.X), 0, 2), EXIT]
    # r2 fetched 40; cmpxchg saw 42 == r0, stored 7 and put 42 in r0.
    assert run(prog, PACKET).r0 == 7 << 16 | 40 << 8 | 42


def test_division_never_faults() -> None:
    prog = [mov(1, 10), mov(2, 0), I(make(InsnClass.ALU64, AluOp.DIV, Source.X), 1, 2),
            I(make(InsnClass.ALU, AluOp.MOD, Source.X), 2, 2), movr(0, 1), EXIT]
    assert run(prog, PACKET).r0 == 0


# --------------------------------------------------------------------------- #
# Helpers, calls, limits
# --------------------------------------------------------------------------- #


def test_randomness_time_and_cpu_come_from_the_helper_source() -> None:
    prog = [call(7), movr(6, 0), call(5), movr(7, 0), call(8), I(make(InsnClass.ALU64, AluOp.ADD, Source.X), 0, 6),
            I(make(InsnClass.ALU64, AluOp.ADD, Source.X), 0, 7), EXIT]
    with use_helpers(FixedHelpers(random=[100, 200], clock_ns=1000, cpu=3)):
        assert run(prog, PACKET).r0 == 100 + 1000 + 3
        assert run(prog, PACKET).r0 == 200 + 1000 + 3


def test_helper_results_passed_to_a_run_answer_its_helper_calls() -> None:
    """A caller may pass the results instead of installing a source: they win over the current one."""
    prog = [call(7), movr(6, 0), call(5), movr(7, 0), call(8), I(make(InsnClass.ALU64, AluOp.ADD, Source.X), 0, 6),
            I(make(InsnClass.ALU64, AluOp.ADD, Source.X), 0, 7), EXIT]
    with use_helpers(FixedHelpers(random=[100], clock_ns=1000, cpu=3)):
        assert run(prog, PACKET, helpers=FixedHelpers(random=[5], clock_ns=70, cpu=1)).r0 == 5 + 70 + 1


def test_unsupported_helpers_are_named() -> None:
    with pytest.raises(UnsupportedHelper, match="tail_call") as info:
        run([call(12), EXIT], PACKET)
    assert info.value.helper_id == 12 and info.value.pc == 0


def test_fib_lookup_without_a_whole_params_struct_is_einval() -> None:
    """bpf_fib_lookup is modelled (scripted routes); a params size under 64 bytes is -EINVAL, as in the
    kernel, before any memory is read."""
    assert run([mov(3, 8), call(69), EXIT], PACKET).r0 == (-22) & (2**64 - 1)


def test_redirect_adjust_head_and_ringbuf() -> None:
    assert run([mov(1, 3), mov(2, 0), call(23), EXIT], PACKET).action == 4
    assert run([mov(1, 3), mov(2, 1), call(23), EXIT], PACKET).action == 0  # flags: aborted
    result = run([mov(2, 4), call(44), mov(0, 2), EXIT], PACKET)  # r1 is still the context
    assert result.packet == PACKET[4:]
    grown = run([mov(2, -2), call(44), EXIT], PACKET)
    assert grown.packet == b"\0\0" + PACKET and grown.r0 == 0
    too_far = run([mov(2, 60), call(44), EXIT], PACKET)
    assert too_far.r0 == (-22) & (2**64 - 1) and too_far.packet == PACKET
    rb = InterpMap("rb", MapType.RINGBUF, 0, 0, 4096)
    prog = [st(Size.W, 10, -4, 0x01020304), Instruction.lddw(1, 3, src=PseudoSrc.MAP_FD), movr(2, 10), add(2, -4),
            mov(3, 4), mov(4, 0), call(130), EXIT]
    run(prog, PACKET, fd_maps={3: rb})
    assert rb.records == [b"\x04\x03\x02\x01"]


def test_bpf_to_bpf_calls_have_their_own_stack_and_keep_callee_saved_registers() -> None:
    sub_call = I(make(InsnClass.JMP, JmpOp.CALL), 0, CallKind.PSEUDO_CALL, 0, 4)
    prog = [
        mov(6, 5), st(Size.DW, 10, -8, 11), mov(1, 21),
        sub_call,                                   # -> index 8
        ldx(Size.DW, 2, 10, -8),                    # caller's stack untouched
        I(make(InsnClass.ALU64, AluOp.ADD, Source.X), 0, 2),
        I(make(InsnClass.ALU64, AluOp.ADD, Source.X), 0, 6),
        EXIT,
        # subprogram: r0 = r1 * 2, clobbering r6 and its own stack slot
        mov(6, 1000), st(Size.DW, 10, -8, 77), movr(0, 1),
        I(make(InsnClass.ALU64, AluOp.MUL, Source.K), 0, 0, 0, 2), EXIT,
    ]
    assert run(prog, PACKET).r0 == 42 + 11 + 5


def test_step_limit() -> None:
    with pytest.raises(StepLimitExceeded):
        run([I(make(InsnClass.JMP, JmpOp.JA), 0, 0, -1), EXIT], PACKET, step_limit=1000)


def test_generated_programs_run_without_faults() -> None:
    rng = random.Random(1)
    for seed in range(40):
        for cpu in ("v3", "v4"):
            prog = generate(seed, cpu)
            for _ in range(3):
                pkt = random_packet(rng)
                result = run(prog.instructions, pkt)
                assert result.action <= 3 and len(result.packet) == len(pkt)


# --------------------------------------------------------------------------- #
# Compiled programs against Python state
# --------------------------------------------------------------------------- #

STATEFUL = [constructs.hash_maps, constructs.lru_and_arrays, constructs.struct_maps, constructs.globals_ops,
            constructs.int_arith, constructs.float_ops]


@pytest.mark.parametrize("prog", STATEFUL, ids=lambda p: p.name)
def test_compiled_programs_agree_with_pure_python(prog: XdpProgram) -> None:
    from tests.differential.test_constructs import HAND_PICKED

    reset_state(constructs)
    state = prog.lower().state
    packets = HAND_PICKED * 3
    expected = run_python(prog, packets)
    reset_state(constructs)
    compiled = prog.compile(prove=False)
    for packet, want in zip(packets, expected):
        action, after = run_bytecode(compiled, packet, state)
        assert (action, after, snapshot(state)) == (want.action, want.packet, want.state)
    reset_state(constructs)
