"""Opcode tables, the instruction codec and the disassembler."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfdsl.backend.object_emit import emit_bpf_object
from pybpfdsl.bpf import opcode as op
from pybpfdsl.bpf.disasm import disassemble, format_instruction, format_listing
from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import (
    HELPER_IDS,
    HELPERS,
    DecodeError,
    Instruction,
    Relocation,
    RelocKind,
    decode,
    encode,
    helper_name,
    slot_offsets,
)
from pybpfdsl.bpf.opcode import AluOp, AtomicOp, InsnClass, JmpOp, Kind, Mode, Size, Source

I = Instruction  # noqa: E741 - keeps the expectation table readable

# --------------------------------------------------------------------------- #
# Opcode values: the kernel's numbers, checked against well-known opcode bytes
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("parts", "byte"),
    [
        ((InsnClass.LDX, Mode.MEM, Size.W), 0x61),  # ldxw
        ((InsnClass.LDX, Mode.MEM, Size.DW), 0x79),  # ldxdw
        ((InsnClass.LDX, Mode.MEMSX, Size.B), 0x91),  # ldxsb (v4)
        ((InsnClass.LD, Mode.IMM, Size.DW), 0x18),  # lddw
        ((InsnClass.ST, Mode.MEM, Size.W), 0x62),
        ((InsnClass.STX, Mode.MEM, Size.DW), 0x7B),
        ((InsnClass.STX, Mode.ATOMIC, Size.DW), 0xDB),
        ((InsnClass.STX, Mode.ATOMIC, Size.W), 0xC3),
        ((InsnClass.LD, Mode.ABS, Size.B), 0x30),
        ((InsnClass.ALU64, AluOp.MOV, Source.X), 0xBF),
        ((InsnClass.ALU, AluOp.MOV, Source.K), 0xB4),
        ((InsnClass.ALU64, AluOp.ADD, Source.K), 0x07),
        ((InsnClass.ALU64, AluOp.ADD, Source.X), 0x0F),
        ((InsnClass.ALU, AluOp.END, op.Endian.TO_BE), 0xDC),
        ((InsnClass.ALU, AluOp.END, op.Endian.TO_LE), 0xD4),
        ((InsnClass.ALU64, AluOp.END, op.Endian.TO_LE), 0xD7),  # bswap (v4)
        ((InsnClass.ALU64, AluOp.ARSH, Source.K), 0xC7),
        ((InsnClass.JMP, JmpOp.CALL, None), 0x85),
        ((InsnClass.JMP, JmpOp.EXIT, None), 0x95),
        ((InsnClass.JMP, JmpOp.JA, None), 0x05),
        ((InsnClass.JMP32, JmpOp.JA, None), 0x06),  # gotol (v4)
        ((InsnClass.JMP, JmpOp.JEQ, Source.K), 0x15),
        ((InsnClass.JMP, JmpOp.JSGT, Source.X), 0x6D),
        ((InsnClass.JMP32, JmpOp.JLT, Source.X), 0xAE),
        ((InsnClass.JMP, JmpOp.JCOND, None), 0xE5),  # may_goto
    ],
)
def test_opcode_values(parts: tuple[InsnClass, op.AluOp | op.JmpOp | Mode, Source | Size | None], byte: int) -> None:
    cls, operation, src = parts
    assert op.make(cls, operation, src) == byte
    assert op.insn_class(byte) == cls


def test_atomic_and_pseudo_values() -> None:
    assert [int(a) for a in (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR)] == [0, 0x40, 0x50, 0xA0]
    assert AtomicOp.FETCH_ADD == AtomicOp.ADD | op.ATOMIC_FETCH
    assert (AtomicOp.XCHG, AtomicOp.CMPXCHG) == (0xE1, 0xF1)
    assert AtomicOp.XCHG.fetches and AtomicOp.FETCH_XOR.fetches and not AtomicOp.ADD.fetches
    assert not AtomicOp.STORE_REL.fetches
    assert [int(p) for p in (op.PseudoSrc.MAP_FD, op.PseudoSrc.MAP_VALUE, op.PseudoSrc.BTF_ID)] == [1, 2, 3]
    assert [int(c) for c in (op.CallKind.HELPER, op.CallKind.PSEUDO_CALL, op.CallKind.KFUNC)] == [0, 1, 2]


def test_tables_are_complete_and_consistent() -> None:
    assert set(op.ALU_OPS) == set(AluOp)
    assert set(op.ATOMIC_OPS) == set(AtomicOp)
    conditional = set(JmpOp) - {JmpOp.JA, JmpOp.CALL, JmpOp.EXIT, JmpOp.JCOND}
    assert set(op.JMP_OPS) == conditional
    for jop, info in op.JMP_OPS.items():
        if info.negation is not None:  # negation is an involution, same signedness
            assert op.JMP_OPS[info.negation].negation == jop
            assert op.JMP_OPS[info.negation].signed == info.signed
    assert op.SIZE_BYTES == {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}
    assert Size.H.bytes == 2


@pytest.mark.parametrize(
    ("insn", "kind"),
    [
        (I(0x3F, 1, 2, off=1), Kind.SDIV),
        (I(0x9C, 1, 2, off=1), Kind.SDIV),  # smod32
        (I(0x3F, 1, 2), Kind.ALU),
        (I(0xBF, 1, 2, off=16), Kind.MOVSX),
        (I(0xBC, 1, 2, off=8), Kind.MOVSX),
        (I(0xBF, 1, 2, off=1), Kind.ADDR_SPACE_CAST),
        (I(0xBF, 1, 2), Kind.MOV),
        (I(0xD7, 1, imm=32), Kind.BSWAP),
        (I(0xDF, 1, imm=32), Kind.INVALID),  # ALU64 END has no TO_BE form
        (I(0xDC, 1, imm=16), Kind.END),
        (I(0x06, imm=100), Kind.GOTOL),
        (I(0x05, off=3), Kind.JA),
        (I(0xE5, off=3), Kind.MAY_GOTO),
        (I(0x81, 1, 2), Kind.LDX_SX),
        (I(0x99, 1, 2), Kind.INVALID),  # no sign-extending 64-bit load
        (I(0x8D), Kind.INVALID),  # call with the X bit
        (I(0x96), Kind.INVALID),  # exit in JMP32
        (I(0xF4), Kind.INVALID),  # ALU op 0xf0
        (I(0xD3, 1, 2, imm=0x100), Kind.ATOMIC),  # 8-bit load-acquire
        (I(0xD3, 1, 2, imm=0x1), Kind.INVALID),  # no 8-bit fetch_add
    ],
)
def test_classify(insn: Instruction, kind: Kind) -> None:
    assert insn.kind == kind


# --------------------------------------------------------------------------- #
# Instruction record and codec
# --------------------------------------------------------------------------- #


def test_field_ranges_are_checked() -> None:
    for bad in (
        {"opcode": 0x100},
        {"opcode": 0xB7, "dst": 16},
        {"opcode": 0xB7, "off": 1 << 15},
        {"opcode": 0xB7, "imm": 1 << 31},
        {"opcode": 0xB7, "imm": 1, "imm_hi": 1},
        {"opcode": 0xB7, "is_wide": True},
    ):
        with pytest.raises(ValueError):
            Instruction(**bad)  # type: ignore[arg-type]


def test_lddw_combines_two_slots() -> None:
    insn = Instruction.lddw(3, 0x1122334455667788)
    assert insn.is_wide and insn.slots == 2
    assert insn.imm64 == 0x1122334455667788
    raw = encode([insn])
    assert len(raw) == 16
    assert raw == bytes.fromhex("18030000887766550000000044332211")
    assert decode(raw) == [insn]
    assert Instruction.lddw(0, -1).imm64 == (1 << 64) - 1
    assert str(insn) == "r3 = 0x1122334455667788 ll"


def test_decode_layout() -> None:
    # r1 = *(u32 *)(r2 -8); dst in the low nibble, src in the high nibble
    raw = bytes([0x61, 0x21]) + (-8).to_bytes(2, "little", signed=True) + (0).to_bytes(4, "little")
    (insn,) = decode(raw)
    assert (insn.opcode, insn.dst, insn.src, insn.off, insn.imm) == (0x61, 1, 2, -8, 0)
    assert str(insn) == "r1 = *(u32 *)(r2 -8)"


def test_decode_rejects_partial_slot() -> None:
    with pytest.raises(DecodeError):
        decode(b"\x95" + b"\0" * 6)


def test_malformed_lddw_is_kept_slot_by_slot() -> None:
    truncated = bytes([0x18, 1, 0, 0, 5, 0, 0, 0])
    assert decode(truncated) == [Instruction(0x18, 1, imm=5)]
    assert format_instruction(decode(truncated)[0]).startswith("invalid lddw")
    # second half has a non-zero opcode: not a valid pair, both slots kept
    bad_pair = truncated + bytes([0x95, 0, 0, 0, 0, 0, 0, 0])
    insns = decode(bad_pair)
    assert len(insns) == 2 and not insns[0].is_wide
    assert encode(insns) == bad_pair


slot_bytes = st.binary(min_size=0, max_size=8 * 40).map(lambda b: b[: len(b) - len(b) % 8])


def _with_lddw_pairs(data: bytes) -> bytes:
    """Random slots, with some 0x18 opcodes followed by a valid second half."""
    out = bytearray(data)
    for pos in range(0, len(out) - 15, 24):
        out[pos] = 0x18
        out[pos + 8 : pos + 12] = b"\0\0\0\0"
    return bytes(out)


@settings(max_examples=400, deadline=None)
@given(st.one_of(slot_bytes, slot_bytes.map(_with_lddw_pairs)))
def test_random_streams_round_trip_and_disassemble(data: bytes) -> None:
    insns = decode(data)
    assert encode(insns) == data
    assert sum(i.slots for i in insns) == len(data) // 8
    texts = disassemble(insns)
    assert len(texts) == len(insns) and all(texts)
    listing = format_listing(insns)
    assert [line.split(":")[0] for line in listing] == [str(s) for s in slot_offsets(insns)]
    for i, insn in enumerate(insns):  # control-flow helpers never raise
        insn.jump_target(i)
        assert isinstance(insn.is_exit, bool)


@given(
    st.integers(0, 255).filter(lambda o: o != 0x18),
    st.integers(0, 15),
    st.integers(0, 15),
    st.integers(-(1 << 15), (1 << 15) - 1),
    st.integers(-(1 << 31), (1 << 31) - 1),
)
def test_single_slot_fields_round_trip(opcode: int, dst: int, src: int, off: int, imm: int) -> None:
    insn = Instruction(opcode, dst, src, off, imm)
    assert decode(encode([insn])) == [insn]


@given(st.integers(0, 15), st.integers(0, 15), st.integers(0, (1 << 64) - 1))
def test_lddw_round_trip(dst: int, src: int, value: int) -> None:
    insn = Instruction.lddw(dst, value, src)
    assert decode(encode([insn])) == [insn]
    assert insn.imm64 == value


def test_control_flow_helpers() -> None:
    prog = [
        Instruction.lddw(1, 7),  # slot 0-1
        I(0x15, 1, off=2),  # slot 2: if r1 == 0 goto pc+2 -> slot 5
        I(0x85, imm=5),  # slot 3: call helper 5
        I(0x85, src=1, imm=-4),  # slot 4: bpf-to-bpf call pc-4 -> slot 1
        I(0x06, imm=-6),  # slot 5: gotol pc-6 -> slot 0
        I(0x95),  # slot 6
    ]
    slots = slot_offsets(prog)
    assert slots == [0, 2, 3, 4, 5, 6]
    targets = [insn.jump_target(s) for insn, s in zip(prog, slots, strict=True)]
    assert targets == [None, 5, None, 1, 0, None]
    assert [i.is_jump for i in prog] == [False, True, False, False, True, False]
    assert prog[1].is_conditional_jump and not prog[4].is_conditional_jump
    assert prog[2].is_helper_call and not prog[2].is_pseudo_call
    assert prog[3].is_call and prog[3].is_pseudo_call
    assert prog[5].is_exit


def test_helper_table() -> None:
    expected = {
        1: "map_lookup_elem",
        2: "map_update_elem",
        3: "map_delete_elem",
        4: "probe_read",
        5: "ktime_get_ns",
        6: "trace_printk",
        7: "get_prandom_u32",
        8: "get_smp_processor_id",
        12: "tail_call",
        23: "redirect",
        44: "xdp_adjust_head",
        51: "redirect_map",
        65: "xdp_adjust_tail",
        130: "ringbuf_output",
        131: "ringbuf_reserve",
        132: "ringbuf_submit",
    }
    for number, name in expected.items():
        assert HELPERS[number] == name
        assert HELPER_IDS[name] == number
    assert len(HELPERS) >= 20
    assert helper_name(1) == "bpf_map_lookup_elem"
    assert helper_name(100000) is None


# --------------------------------------------------------------------------- #
# Disassembly text: one case per formatting branch, kernel syntax
# --------------------------------------------------------------------------- #

DISASM_CASES = [
    (I(0x61, 1, 1), "r1 = *(u32 *)(r1 +0)"),
    (I(0x69, 2, 10, off=-6), "r2 = *(u16 *)(r10 -6)"),
    (I(0x81, 1, 2, off=4), "r1 = *(s32 *)(r2 +4)"),
    (I(0x91, 3, 2), "r3 = *(s8 *)(r2 +0)"),
    (I(0x63, 10, 1, off=-4), "*(u32 *)(r10 -4) = r1"),
    (I(0x72, 10, off=-1, imm=-3), "*(u8 *)(r10 -1) = -3"),
    (I(0x2D, 2, 3, off=5), "if r2 > r3 goto pc+5"),
    (I(0xAE, 2, 3, off=-2), "if w2 < w3 goto pc-2"),
    (I(0x15, 0, off=11), "if r0 == 0x0 goto pc+11"),
    (I(0x65, 1, off=1, imm=-1), "if r1 s> 0xffffffff goto pc+1"),
    (I(0x45, 1, off=1, imm=8), "if r1 & 0x8 goto pc+1"),
    (I(0x05, off=-3), "goto pc-3"),
    (I(0x06, imm=70000), "gotol pc+70000"),
    (I(0xE5, off=4), "may_goto pc+4"),
    (I(0xB4, 0, imm=2), "w0 = 2"),
    (I(0xB7, 0, imm=-1), "r0 = -1"),
    (I(0x0F, 0, 1), "r0 += r1"),
    (I(0x1C, 3, 4), "w3 -= w4"),
    (I(0xC7, 1, imm=56), "r1 s>>= 56"),
    (I(0x87, 1), "r1 = -r1"),
    (I(0x84, 1), "w1 = -w1"),
    (I(0x3F, 1, 2, off=1), "r1 s/= r2"),
    (I(0x97, 1, off=1, imm=3), "r1 s%= 3"),
    (I(0x3F, 1, 2), "r1 /= r2"),
    (I(0xBC, 0, 1, off=8), "w0 = (s8)w1"),
    (I(0xBF, 0, 1, off=32), "r0 = (s32)r1"),
    (I(0xBF, 1, 2, off=1, imm=1), "r1 = addr_space_cast(r2, 0, 1)"),
    (I(0xDC, 1, imm=16), "r1 = be16 r1"),
    (I(0xD4, 1, imm=32), "r1 = le32 r1"),
    (I(0xD7, 1, imm=64), "r1 = bswap64 r1"),
    (I(0x85, imm=1), "call bpf_map_lookup_elem#1"),
    (I(0x85, imm=9999), "call unknown#9999"),
    (I(0x85, src=1, imm=7), "call pc+7"),
    (I(0x85, src=2, imm=1234), "call kernel-function#1234"),
    (I(0x95), "exit"),
    (I(0xDB, 1, 2, imm=0x00), "lock *(u64 *)(r1 +0) += r2"),
    (I(0xC3, 1, 2, off=8, imm=0x40), "lock *(u32 *)(r1 +8) |= r2"),
    (I(0xDB, 1, 2, imm=0x01), "r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)"),
    (I(0xC3, 1, 2, imm=0xA1), "r2 = atomic_fetch_xor((u32 *)(r1 +0), r2)"),
    (I(0xDB, 1, 2, imm=0xE1), "r2 = atomic64_xchg((u64 *)(r1 +0), r2)"),
    (I(0xDB, 1, 2, imm=0xF1), "r0 = atomic64_cmpxchg((u64 *)(r1 +0), r0, r2)"),
    (I(0xDB, 1, 2, imm=0x77), "invalid atomic op 0x77"),
    (I(0x30, imm=12), "r0 = *(u8 *)skb[12]"),
    (I(0x48, src=6, imm=2), "r0 = *(u16 *)skb[r6 + 2]"),
    (Instruction.lddw(1, 0x10), "r1 = 0x10 ll"),
    (I(0x18, 1, 1, imm=5, imm_hi=0, is_wide=True), "r1 = map[fd:5] ll"),
    (I(0x18, 1, 2, imm=5, imm_hi=16, is_wide=True), "r1 = map_value[fd:5]+16 ll"),
    (I(0xF4), "invalid opcode 0xf4"),
]


@pytest.mark.parametrize(("insn", "text"), DISASM_CASES)
def test_disassembly_text(insn: Instruction, text: str) -> None:
    assert format_instruction(insn) == text


def test_listing_uses_slot_indices_and_relocations() -> None:
    prog = [Instruction.lddw(1, 0), I(0x85, imm=1), I(0x95)]
    relocs = [Relocation(0, 0, "acl", RelocKind.MAP, ".maps")]
    assert format_listing(prog, relocs) == [
        "0: (18) r1 = map[acl] ll",
        "2: (85) call bpf_map_lookup_elem#1",
        "3: (95) exit",
    ]
    assert disassemble(prog, {0: relocs[0]}, helper_names=False)[:2] == ["r1 = map[acl] ll", "call unknown#1"]
    data = Relocation(0, 0, ".rodata", RelocKind.DATA, ".rodata", offset=16)
    assert disassemble(prog, [data])[0] == "r1 = map_value[.rodata]+16 ll"


# --------------------------------------------------------------------------- #
# Code LLVM emits (through llvmlite): decode, round-trip, disassemble
# --------------------------------------------------------------------------- #

V3_IR = r"""
@g32 = global i32 0, section ".bss", align 4
define i32 @f(ptr %p, i32 %a, i32 %b) section "tc" {
entry:
  %h = load i16, ptr %p
  %sw = call i16 @llvm.bswap.i16(i16 %h)
  %z = zext i16 %sw to i32
  %old = atomicrmw or ptr @g32, i32 %a seq_cst
  %c = icmp ugt i32 %a, %b
  br i1 %c, label %yes, label %no
yes:
  %s = add i32 %z, %old
  ret i32 %s
no:
  %d = udiv i32 %a, %b
  ret i32 %d
}
declare i16 @llvm.bswap.i16(i16)
"""

V4_IR = r"""
@g = global i64 0, section ".bss", align 8
define i64 @f(ptr %p, i64 %a, i64 %b, i32 %c) section "tc" {
entry:
  %b8 = load i8, ptr %p
  %s8 = sext i8 %b8 to i64
  %ph = getelementptr i8, ptr %p, i64 2
  %v16 = load i16, ptr %ph
  %s16 = sext i16 %v16 to i64
  %pw = getelementptr i8, ptr %p, i64 4
  %v32 = load i32, ptr %pw
  %s32 = sext i32 %v32 to i64
  %q = sdiv i64 %a, %b
  %r = srem i64 %s32, %s8
  %tr = trunc i64 %b to i8
  %mx = sext i8 %tr to i64
  %sw = call i64 @llvm.bswap.i64(i64 %a)
  %old = atomicrmw add ptr @g, i64 %a seq_cst
  %x = atomicrmw xchg ptr @g, i64 %s16 seq_cst
  %cx = cmpxchg ptr @g, i64 %s16, i64 %q seq_cst seq_cst
  %cv = extractvalue {i64, i1} %cx, 0
  %u1 = add i64 %r, %mx
  %u2 = xor i64 %u1, %sw
  %u3 = add i64 %u2, %old
  %u4 = add i64 %u3, %x
  %u5 = add i64 %u4, %cv
  ret i64 %u5
}
declare i64 @llvm.bswap.i64(i64)
"""


def _compiled_section(ir_text: str, cpu: str) -> tuple[bytes, list[str]]:
    elf = BpfElf.from_bytes(emit_bpf_object(ir_text, cpu=cpu))
    prog = elf.program("tc")
    raw = elf.section_data("tc")
    assert raw is not None
    assert encode(prog.instructions) == raw  # byte-exact round trip
    return raw, disassemble(prog.instructions, prog.relocations)


def test_llvm_v3_code() -> None:
    _raw, text = _compiled_section(V3_IR, "v3")
    assert "r1 = *(u16 *)(r1 +0)" in text
    assert any(t.endswith("= be16 r1") or " = be16 " in t for t in text), text
    assert any(t.startswith("if w") and " > w" in t for t in text), text  # JMP32
    assert any("atomic_fetch_or((u32 *)(r" in t for t in text), text
    assert "r1 = map_value[.bss:g32] ll" in text or any("map_value[.bss:g32]" in t for t in text)
    assert text[-1] == "exit"


def test_llvm_v4_code() -> None:
    _raw, text = _compiled_section(V4_IR, "v4")
    joined = "\n".join(text)
    for needle in (
        "= *(s8 *)(r1 +0)",
        "= *(s16 *)(r1 +2)",
        "= *(s32 *)(r1 +4)",
        " s/= r",
        " s%= r",
        " = (s8)r3",
        " = bswap64 r",
        "atomic64_fetch_add((u64 *)(r",
        "atomic64_xchg((u64 *)(r",
        "r0 = atomic64_cmpxchg((u64 *)(r",
        "map_value[.bss:g] ll",
    ):
        assert needle in joined, f"{needle!r} not in\n{joined}"
