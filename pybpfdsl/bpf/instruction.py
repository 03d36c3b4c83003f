"""The eBPF instruction: a frozen record of the wire fields, its codec, and its verifier-log text.

Wire layout of one 8-byte slot (little-endian, as on every host we target)::

    byte    0        1             2..3          4..7
        +--------+---------+---------------+-------------------+
        | opcode | src|dst | off (s16, LE) |   imm (s32, LE)   |
        +--------+---------+---------------+-------------------+
                  7  4 3  0

``lddw`` (LD | IMM | DW, opcode 0x18) spans two slots; the second slot has
opcode, registers and offset zero and carries the upper 32 bits of the
immediate in its ``imm``.  We keep it as *one* :class:`Instruction` with
``is_wide=True`` so that instruction indices stay "one per entity" for analyses,
while :attr:`Instruction.slots` tells how many slots it occupies: jump
offsets, relocation offsets and BTF line info all count *slots*.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.opcode import (
    ALU_OPS,
    ATOMIC_OPS,
    JMP_OPS,
    SOURCE_MASK,
    AtomicOp,
    CallKind,
    Endian,
    InsnClass,
    Kind,
    PseudoSrc,
    Size,
    Source,
    alu_op,
    classify,
    insn_class,
    jmp_op,
    size,
    source,
)

__all__ = [
    "HELPERS",
    "HELPER_IDS",
    "INSN_SIZE",
    "LDDW_OPCODE",
    "DecodeError",
    "Instruction",
    "RelocKind",
    "Relocation",
    "decode",
    "encode",
    "format_instruction",
    "helper_name",
    "slot_offsets",
]

INSN_SIZE = 8
"""Bytes per instruction slot."""
LDDW_OPCODE = 0x18
"""LD | IMM | DW: the only two-slot instruction."""

_SLOT = struct.Struct("<BBhi")


class DecodeError(ValueError):
    """The byte string is not a whole number of instruction slots."""


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} outside [{lo}, {hi}]")


@dataclass(frozen=True)
class Instruction:
    """One eBPF instruction exactly as encoded.

    Fields hold the raw encoding (signed ``off``/``imm`` as the kernel's
    ``struct bpf_insn`` declares them) so that encode(decode(b)) == b for any
    input; interpretation lives in :mod:`pybpfdsl.bpf.opcode` and in the
    properties below.
    """

    opcode: int
    """The opcode byte (class | op/mode | source/size)."""
    dst: int = 0
    """Destination register, 0-10 (4 bits on the wire)."""
    src: int = 0
    """Source register 0-10, or a pseudo tag for lddw / call (4 bits)."""
    off: int = 0
    """Signed 16-bit offset: jump distance in slots, or memory displacement."""
    imm: int = 0
    """Signed 32-bit immediate; for lddw the *low* half."""
    imm_hi: int = 0
    """lddw only: signed 32-bit ``imm`` of the second slot (upper half)."""
    is_wide: bool = False
    """True for a two-slot lddw; its second slot is folded into this record."""

    def __post_init__(self) -> None:
        _check_range("opcode", self.opcode, 0, 0xFF)
        _check_range("dst", self.dst, 0, 15)
        _check_range("src", self.src, 0, 15)
        _check_range("off", self.off, -(1 << 15), (1 << 15) - 1)
        _check_range("imm", self.imm, -(1 << 31), (1 << 31) - 1)
        _check_range("imm_hi", self.imm_hi, -(1 << 31), (1 << 31) - 1)
        if self.is_wide and self.opcode != LDDW_OPCODE:
            raise ValueError(f"only lddw (0x18) is wide, not {self.opcode:#04x}")
        if not self.is_wide and self.imm_hi:
            raise ValueError("imm_hi is only meaningful for a wide lddw")

    # ------------------------------------------------------------------ #
    # Constructors
    # ------------------------------------------------------------------ #

    @classmethod
    def lddw(cls, dst: int, value: int, src: int = 0) -> Instruction:
        """``dst = value ll``; ``value`` is taken modulo 2**64."""
        value &= (1 << 64) - 1
        return cls(
            LDDW_OPCODE,
            dst,
            src,
            0,
            _s32(value & 0xFFFFFFFF),
            _s32(value >> 32),
            is_wide=True,
        )

    # ------------------------------------------------------------------ #
    # Views
    # ------------------------------------------------------------------ #

    @property
    def slots(self) -> int:
        """Number of 8-byte slots occupied: 2 for lddw, else 1."""
        return 2 if self.is_wide else 1

    @property
    def imm64(self) -> int:
        """The 64-bit immediate of lddw as an unsigned integer.

        For single-slot instructions this is ``imm`` zero-extended, which is
        rarely what you want: ALU64/JMP sign-extend ``imm`` (see
        :attr:`imm_sext`).
        """
        return ((self.imm_hi & 0xFFFFFFFF) << 32) | (self.imm & 0xFFFFFFFF)

    @property
    def imm_sext(self) -> int:
        """``imm`` sign-extended to 64 bits, as an unsigned integer."""
        return self.imm & ((1 << 64) - 1)

    @property
    def cls(self) -> InsnClass:
        """Instruction class."""
        return insn_class(self.opcode)

    @property
    def kind(self) -> Kind:
        """Semantic kind (separates the v4 variants that share opcodes)."""
        return classify(self.opcode, self.off, self.imm)

    # ------------------------------------------------------------------ #
    # Control flow
    # ------------------------------------------------------------------ #

    @property
    def is_jump(self) -> bool:
        """Transfers control within the function (goto, gotol, if, may_goto)."""
        return self.kind in (Kind.JA, Kind.GOTOL, Kind.JCOND, Kind.MAY_GOTO)

    @property
    def is_conditional_jump(self) -> bool:
        """Jump that may fall through."""
        return self.kind in (Kind.JCOND, Kind.MAY_GOTO)

    @property
    def is_call(self) -> bool:
        """Any call: helper, bpf-to-bpf or kfunc."""
        return self.kind == Kind.CALL

    @property
    def is_helper_call(self) -> bool:
        """Call of a kernel helper by id (``imm``)."""
        return self.is_call and self.src == CallKind.HELPER

    @property
    def is_pseudo_call(self) -> bool:
        """bpf-to-bpf call; ``imm`` is the pc-relative target."""
        return self.is_call and self.src == CallKind.PSEUDO_CALL

    @property
    def is_exit(self) -> bool:
        """``exit``: return r0 to the caller."""
        return self.kind == Kind.EXIT

    @property
    def jump_offset(self) -> int | None:
        """Distance in slots from the *next* slot to the target, or None.

        gotol keeps its 32-bit distance in ``imm``; pseudo calls too.
        """
        kind = self.kind
        if kind in (Kind.JA, Kind.JCOND, Kind.MAY_GOTO):
            return self.off
        if kind == Kind.GOTOL or (kind == Kind.CALL and self.is_pseudo_call):
            return self.imm
        return None

    def jump_target(self, slot: int) -> int | None:
        """Slot index this instruction (located at ``slot``) branches/calls to.

        Targets are in *slots* because that is what the encoding counts; use
        :func:`slot_offsets` to convert between slot and list indices.
        """
        delta = self.jump_offset
        return None if delta is None else slot + self.slots + delta

    def __str__(self) -> str:
        return format_instruction(self)


def _s32(value: int) -> int:
    """Reinterpret the low 32 bits of ``value`` as a signed integer."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


# --------------------------------------------------------------------------- #
# Codec
# --------------------------------------------------------------------------- #


def decode(data: bytes) -> list[Instruction]:
    """Decode little-endian instruction slots.

    A 0x18 slot is folded with its successor into one wide lddw only when the
    successor is a well-formed second half (all fields but ``imm`` zero).
    Otherwise -- a truncated stream or garbage -- both slots are kept as
    separate single-slot instructions, so any input decodes and re-encodes to
    the same bytes; judging validity is left to a verifier.
    """
    if len(data) % INSN_SIZE:
        raise DecodeError(f"{len(data)} bytes is not a multiple of the {INSN_SIZE}-byte slot")
    raw = [_SLOT.unpack_from(data, pos) for pos in range(0, len(data), INSN_SIZE)]
    out: list[Instruction] = []
    i = 0
    while i < len(raw):
        opcode, regs, off, imm = raw[i]
        if opcode == LDDW_OPCODE and i + 1 < len(raw):
            nxt_op, nxt_regs, nxt_off, nxt_imm = raw[i + 1]
            if nxt_op == 0 and nxt_regs == 0 and nxt_off == 0:
                out.append(Instruction(opcode, regs & 0xF, regs >> 4, off, imm, nxt_imm, is_wide=True))
                i += 2
                continue
        out.append(Instruction(opcode, regs & 0xF, regs >> 4, off, imm))
        i += 1
    return out


def encode(insns: Iterable[Instruction]) -> bytes:
    """Inverse of :func:`decode`."""
    parts: list[bytes] = []
    for insn in insns:
        parts.append(_SLOT.pack(insn.opcode, insn.dst | insn.src << 4, insn.off, insn.imm))
        if insn.is_wide:
            parts.append(_SLOT.pack(0, 0, 0, insn.imm_hi))
    return b"".join(parts)


def slot_offsets(insns: Sequence[Instruction]) -> list[int]:
    """Slot index of each instruction (differs from list index after an lddw)."""
    out: list[int] = []
    slot = 0
    for insn in insns:
        out.append(slot)
        slot += insn.slots
    return out


# --------------------------------------------------------------------------- #
# Helper functions (ids and names: pybpfdsl.bpf.abi.Helper)
# --------------------------------------------------------------------------- #

HELPERS: Mapping[int, str] = MappingProxyType({int(h): h.name.lower() for h in Helper})
"""Helper id -> name without the ``bpf_`` prefix (the common subset)."""

HELPER_IDS: Mapping[str, int] = MappingProxyType({v: k for k, v in HELPERS.items()})
"""Inverse of :data:`HELPERS`."""


def helper_name(helper_id: int) -> str | None:
    """Kernel name of a helper (``bpf_map_lookup_elem``), None if not tabled."""
    name = HELPERS.get(helper_id)
    return None if name is None else f"bpf_{name}"


# --------------------------------------------------------------------------- #
# Symbolic references (filled in from ELF relocations by pybpfdsl.bpf.elf)
# --------------------------------------------------------------------------- #


class RelocKind(enum.Enum):
    """What a relocated instruction refers to; decides how loaders patch it."""

    MAP = "map"  #: lddw of a map (symbol in ``.maps`` or legacy ``maps``)
    DATA = "data"  #: lddw of global data (``.bss``/``.data``/``.rodata``...)
    CALL = "call"  #: bpf-to-bpf call of a function in an executable section
    FUNC = "func"  #: lddw of a function address (callbacks)
    EXTERN = "extern"  #: undefined symbol: ``__ksym`` / ``__kconfig`` externs
    OTHER = "other"  #: anything else (kept so nothing is silently dropped)


@dataclass(frozen=True)
class Relocation:
    """A symbol reference attached to one instruction of a program."""

    insn_index: int
    """Index into the program's instruction list (lddw counts once)."""
    slot: int
    """Slot index within the program, as the ELF relocation offset counts."""
    symbol: str
    """Map name, variable name, callee name; the section name for references
    through a section symbol (clang uses those for static variables)."""
    kind: RelocKind
    section: str
    """Section the symbol is defined in ("" if undefined)."""
    offset: int = 0
    """Byte offset of the target within ``section``: symbol value plus the
    addend clang stores in the instruction's imm (data and func references)."""
    reloc_type: int = 0
    """Raw ``R_BPF_*`` relocation type (1 = 64_64 for lddw, 10 = 64_32 for calls)."""


# --------------------------------------------------------------------------- text form
# An instruction's verifier-log text lives with the record (not in disasm.py, which lists programs) so that
# `str(insn)` needs no import back from the disassembler.

_UNSIGNED = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
_SIGNED = {Size.W: "s32", Size.H: "s16", Size.B: "s8", Size.DW: "s64"}

def _mem(sz: Size, base: int, off: int, signed: bool = False) -> str:
    ty = (_SIGNED if signed else _UNSIGNED)[sz]
    return f"*({ty} *)(r{base} {off:+d})"


def _format_alu(insn: Instruction, kind: Kind) -> str:
    wide = insn_class(insn.opcode) == InsnClass.ALU64
    reg = "r" if wide else "w"
    dst = f"{reg}{insn.dst}"
    op = alu_op(insn.opcode)
    assert op is not None  # guaranteed by kind != INVALID
    if kind == Kind.END:
        order = "be" if insn.opcode & SOURCE_MASK == Endian.TO_BE else "le"
        return f"r{insn.dst} = {order}{insn.imm} r{insn.dst}"
    if kind == Kind.BSWAP:
        return f"r{insn.dst} = bswap{insn.imm} r{insn.dst}"
    if kind == Kind.NEG:
        return f"{dst} = -{dst}"
    if kind == Kind.ADDR_SPACE_CAST:
        imm = insn.imm & 0xFFFFFFFF
        return f"r{insn.dst} = addr_space_cast(r{insn.src}, {imm >> 16}, {imm & 0xFFFF})"
    info = ALU_OPS[op]
    sym = info.signed_symbol if kind == Kind.SDIV and info.signed_symbol else info.symbol
    if source(insn.opcode) == Source.X:
        cast = f"(s{insn.off})" if kind == Kind.MOVSX else ""
        return f"{dst} {sym} {cast}{reg}{insn.src}"
    return f"{dst} {sym} {insn.imm}"


def _format_atomic(insn: Instruction) -> str:
    sz = size(insn.opcode)
    ty = _UNSIGNED[sz]
    suffix = "64" if sz == Size.DW else ""
    where = f"(r{insn.dst} {insn.off:+d})"
    try:
        aop = AtomicOp(insn.imm)
    except ValueError:
        return f"invalid atomic op {insn.imm:#x}"
    info = ATOMIC_OPS[aop]
    if aop == AtomicOp.LOAD_ACQ:
        return f"r{insn.dst} = load_acquire(({ty} *)(r{insn.src} {insn.off:+d}))"
    if aop == AtomicOp.STORE_REL:
        return f"store_release(({ty} *){where}, r{insn.src})"
    if aop == AtomicOp.CMPXCHG:
        return f"r0 = atomic{suffix}_cmpxchg(({ty} *){where}, r0, r{insn.src})"
    if aop == AtomicOp.XCHG:
        return f"r{insn.src} = atomic{suffix}_xchg(({ty} *){where}, r{insn.src})"
    assert info.alu is not None
    if aop.fetches:
        return f"r{insn.src} = atomic{suffix}_fetch_{info.name}(({ty} *){where}, r{insn.src})"
    return f"lock *({ty} *){where} {ALU_OPS[info.alu].symbol} r{insn.src}"


def _format_lddw(insn: Instruction, reloc: Relocation | None) -> str:
    dst = f"r{insn.dst}"
    if not insn.is_wide:
        return "invalid lddw (missing second slot)"
    if reloc is not None:
        if reloc.kind == RelocKind.MAP:
            return f"{dst} = map[{reloc.symbol}] ll"
        if reloc.kind == RelocKind.DATA:
            if reloc.symbol == reloc.section:  # via section symbol: show offset
                return f"{dst} = map_value[{reloc.section}]{reloc.offset:+d} ll"
            extra = f"{insn.imm:+d}" if insn.imm else ""
            return f"{dst} = map_value[{reloc.section}:{reloc.symbol}]{extra} ll"
        if reloc.kind == RelocKind.FUNC:
            return f"{dst} = func[{reloc.symbol}] ll"
        return f"{dst} = {reloc.kind.value}[{reloc.symbol}] ll"
    try:
        pseudo = PseudoSrc(insn.src)
    except ValueError:
        return f"{dst} = {insn.imm64:#x} ll (src={insn.src})"
    if pseudo == PseudoSrc.MAP_FD:
        return f"{dst} = map[fd:{insn.imm}] ll"
    if pseudo == PseudoSrc.MAP_IDX:
        return f"{dst} = map[idx:{insn.imm}] ll"
    if pseudo == PseudoSrc.MAP_VALUE:
        return f"{dst} = map_value[fd:{insn.imm}]{insn.imm_hi:+d} ll"
    if pseudo == PseudoSrc.MAP_IDX_VALUE:
        return f"{dst} = map_value[idx:{insn.imm}]{insn.imm_hi:+d} ll"
    if pseudo == PseudoSrc.BTF_ID:
        return f"{dst} = btf_id[{insn.imm}] ll"
    if pseudo == PseudoSrc.FUNC:
        return f"{dst} = func[pc{insn.imm:+d}] ll"
    return f"{dst} = {insn.imm64:#x} ll"


def _format_call(insn: Instruction, reloc: Relocation | None, helper_names: bool) -> str:
    if insn.src == CallKind.PSEUDO_CALL:
        if reloc is not None:
            return f"call {reloc.symbol}"
        return f"call pc{insn.imm:+d}"
    if insn.src == CallKind.KFUNC:
        name = reloc.symbol if reloc is not None else "kernel-function"
        return f"call {name}#{insn.imm}"
    if insn.src != CallKind.HELPER:
        return f"invalid call (src={insn.src})"
    name = (helper_name(insn.imm) if helper_names else None) or "unknown"
    return f"call {name}#{insn.imm}"


def _format_jump(insn: Instruction, kind: Kind) -> str:
    if kind == Kind.JA:
        return f"goto pc{insn.off:+d}"
    if kind == Kind.GOTOL:
        return f"gotol pc{insn.imm:+d}"
    if kind == Kind.MAY_GOTO:
        return f"may_goto pc{insn.off:+d}"
    op = jmp_op(insn.opcode)
    assert op is not None and op in JMP_OPS
    reg = "w" if insn_class(insn.opcode) == InsnClass.JMP32 else "r"
    sym = JMP_OPS[op].symbol
    if source(insn.opcode) == Source.X:
        rhs = f"{reg}{insn.src}"
    else:
        # The kernel prints jump immediates as unsigned hex.
        rhs = f"{insn.imm & 0xFFFFFFFF:#x}"
    return f"if {reg}{insn.dst} {sym} {rhs} goto pc{insn.off:+d}"


def format_instruction(
    insn: Instruction,
    relocation: Relocation | None = None,
    helper_names: bool = True,
) -> str:
    """One instruction as verifier-log text, without the ``N: (op)`` prefix."""
    kind = insn.kind
    if kind == Kind.INVALID:
        return f"invalid opcode {insn.opcode:#04x}"
    if kind in (
        Kind.ALU,
        Kind.SDIV,
        Kind.NEG,
        Kind.MOV,
        Kind.MOVSX,
        Kind.ADDR_SPACE_CAST,
        Kind.END,
        Kind.BSWAP,
    ):
        return _format_alu(insn, kind)
    sz = size(insn.opcode)
    if kind == Kind.LDX:
        return f"r{insn.dst} = {_mem(sz, insn.src, insn.off)}"
    if kind == Kind.LDX_SX:
        return f"r{insn.dst} = {_mem(sz, insn.src, insn.off, signed=True)}"
    if kind == Kind.ST:
        return f"{_mem(sz, insn.dst, insn.off)} = {insn.imm}"
    if kind == Kind.STX:
        return f"{_mem(sz, insn.dst, insn.off)} = r{insn.src}"
    if kind == Kind.ATOMIC:
        return _format_atomic(insn)
    if kind == Kind.LDDW:
        return _format_lddw(insn, relocation)
    if kind == Kind.LD_ABS:
        return f"r0 = *({_UNSIGNED[sz]} *)skb[{insn.imm}]"
    if kind == Kind.LD_IND:
        return f"r0 = *({_UNSIGNED[sz]} *)skb[r{insn.src} + {insn.imm}]"
    if kind == Kind.CALL:
        return _format_call(insn, relocation, helper_names)
    if kind == Kind.EXIT:
        return "exit"
    return _format_jump(insn, kind)
