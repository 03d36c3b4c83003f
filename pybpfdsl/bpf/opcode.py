"""eBPF opcode fields and the tables that give them meaning.

The opcode is the first byte of every 8-byte instruction slot.  Its low three
bits are always the instruction *class*; the remaining five bits are split in
one of two ways depending on that class::

    arithmetic and jumps (ALU, ALU64, JMP, JMP32)

      msb                      lsb
      +----------------+---+-----+
      |   operation    | s |class|      s = source: K (imm) or X (src reg)
      +----------------+---+-----+
       7             4   3  2   0

    loads and stores (LD, LDX, ST, STX)

      msb                      lsb
      +--------+-------+---------+
      |  mode  | size  |  class  |
      +--------+-------+---------+
       7     5  4    3  2       0

The numeric values are the kernel's (``include/uapi/linux/bpf.h`` and
``Documentation/bpf/standardization/instruction-set.rst``).  They are part of
the ABI, so they are spelled out as literals here rather than derived.

Several "v4" instructions reuse an existing opcode and are told apart by the
``off`` or ``imm`` field (sign-extending ``movsx``, ``sdiv``/``smod``,
``bswap``, ``gotol``); :func:`classify` at the bottom folds those cases into a
single :class:`Kind` so that consumers (disassembler, interpreter, verifier,
SMT encoding) can dispatch on one value instead of re-deriving the rules.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ALU_OPS",
    "ATOMIC_OPS",
    "CLASS_MASK",
    "JMP_OPS",
    "MODE_MASK",
    "OP_MASK",
    "SIZE_BYTES",
    "SIZE_MASK",
    "SOURCE_MASK",
    "AluOp",
    "AluOpInfo",
    "AtomicOp",
    "AtomicOpInfo",
    "CallKind",
    "Endian",
    "InsnClass",
    "JmpOp",
    "JmpOpInfo",
    "Kind",
    "Mode",
    "PseudoSrc",
    "Size",
    "Source",
    "alu_op",
    "classify",
    "insn_class",
    "jmp_op",
    "make",
    "mode",
    "size",
    "source",
]

CLASS_MASK = 0x07
"""Bits 0-2: instruction class (every opcode)."""
SOURCE_MASK = 0x08
"""Bit 3: operand source (ALU/JMP classes)."""
OP_MASK = 0xF0
"""Bits 4-7: operation (ALU/JMP classes)."""
SIZE_MASK = 0x18
"""Bits 3-4: access size (load/store classes)."""
MODE_MASK = 0xE0
"""Bits 5-7: addressing mode (load/store classes)."""


class InsnClass(enum.IntEnum):
    """Instruction class, ``opcode & 0x07``."""

    LD = 0x00  #: non-standard loads: 64-bit immediate, legacy packet access
    LDX = 0x01  #: load from memory into a register
    ST = 0x02  #: store an immediate to memory
    STX = 0x03  #: store a register to memory; atomics
    ALU = 0x04  #: 32-bit arithmetic (upper half of dst zeroed)
    JMP = 0x05  #: 64-bit comparisons, call, exit
    JMP32 = 0x06  #: 32-bit comparisons (``w`` registers)
    ALU64 = 0x07  #: 64-bit arithmetic

    @property
    def is_alu(self) -> bool:
        """ALU or ALU64: the operation/source layout applies."""
        return self in (InsnClass.ALU, InsnClass.ALU64)

    @property
    def is_jump(self) -> bool:
        """JMP or JMP32: the operation/source layout applies."""
        return self in (InsnClass.JMP, InsnClass.JMP32)


class Size(enum.IntEnum):
    """Memory access width for load/store classes, ``opcode & 0x18``."""

    W = 0x00  #: 4 bytes (word)
    H = 0x08  #: 2 bytes (half word)
    B = 0x10  #: 1 byte
    DW = 0x18  #: 8 bytes (double word)

    @property
    def bytes(self) -> int:
        """Width in bytes."""
        return SIZE_BYTES[self]


SIZE_BYTES: Mapping[Size, int] = MappingProxyType({Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8})
"""Access width in bytes for each :class:`Size`."""


class Mode(enum.IntEnum):
    """Addressing mode for load/store classes, ``opcode & 0xe0``.

    0xa0 and 0xe0 are unassigned; :func:`mode` returns ``None`` for them.
    """

    IMM = 0x00  #: immediate (only ``lddw``: LD | IMM | DW)
    ABS = 0x20  #: legacy skb load at a constant offset (``ld_abs``)
    IND = 0x40  #: legacy skb load at a register-relative offset (``ld_ind``)
    MEM = 0x60  #: regular memory access ``*(size *)(reg + off)``
    MEMSX = 0x80  #: v4 sign-extending load (LDX only)
    ATOMIC = 0xC0  #: atomic read-modify-write (STX only; op in ``imm``)


class Source(enum.IntEnum):
    """Second operand of ALU/JMP instructions, ``opcode & 0x08``."""

    K = 0x00  #: the 32-bit immediate, sign-extended to 64 bits for ALU64/JMP
    X = 0x08  #: the source register


class Endian(enum.IntEnum):
    """For ALU END the source bit selects the byte order instead."""

    TO_LE = 0x00  #: convert to little-endian (truncate/zero-extend on LE hosts)
    TO_BE = 0x08  #: convert to big-endian (byte swap on LE hosts)


class AluOp(enum.IntEnum):
    """Arithmetic operation for ALU/ALU64, ``opcode & 0xf0``."""

    ADD = 0x00  #: dst += src
    SUB = 0x10  #: dst -= src
    MUL = 0x20  #: dst *= src
    DIV = 0x30  #: dst /= src, unsigned; off=1: signed (v4 ``sdiv``)
    OR = 0x40  #: dst |= src
    AND = 0x50  #: dst &= src
    LSH = 0x60  #: dst <<= src (shift count masked to the operand width)
    RSH = 0x70  #: dst >>= src, logical
    NEG = 0x80  #: dst = -dst (source ignored)
    MOD = 0x90  #: dst %= src, unsigned; off=1: signed (v4 ``smod``)
    XOR = 0xA0  #: dst ^= src
    MOV = 0xB0  #: dst = src; off=8/16/32: sign-extend from that width (v4)
    ARSH = 0xC0  #: dst >>= src, arithmetic (sign-filling)
    END = 0xD0  #: byte-order conversion; imm = width 16/32/64


class JmpOp(enum.IntEnum):
    """Jump operation for JMP/JMP32, ``opcode & 0xf0``."""

    JA = 0x00  #: goto pc+off (JMP), gotol pc+imm (JMP32, v4)
    JEQ = 0x10  #: if dst == src
    JGT = 0x20  #: if dst > src, unsigned
    JGE = 0x30  #: if dst >= src, unsigned
    JSET = 0x40  #: if dst & src
    JNE = 0x50  #: if dst != src
    JSGT = 0x60  #: if dst > src, signed
    JSGE = 0x70  #: if dst >= src, signed
    CALL = 0x80  #: call helper / subprogram / kfunc (see :class:`CallKind`)
    EXIT = 0x90  #: return r0
    JLT = 0xA0  #: if dst < src, unsigned
    JLE = 0xB0  #: if dst <= src, unsigned
    JSLT = 0xC0  #: if dst < src, signed
    JSLE = 0xD0  #: if dst <= src, signed
    JCOND = 0xE0  #: may_goto (kernel 6.9+, src=0): bounded-loop escape hatch


class AtomicOp(enum.IntEnum):
    """Operation of an STX | ATOMIC instruction, stored in ``imm``.

    The low bit ``FETCH`` asks for the old memory value to be written back to
    ``src``; XCHG and CMPXCHG always fetch.
    """

    ADD = 0x00  #: lock *(dst + off) += src
    OR = 0x40  #: lock *(dst + off) |= src
    AND = 0x50  #: lock *(dst + off) &= src
    XOR = 0xA0  #: lock *(dst + off) ^= src
    FETCH_ADD = 0x01  #: src = atomic_fetch_add(dst + off, src)
    FETCH_OR = 0x41  #: src = atomic_fetch_or(dst + off, src)
    FETCH_AND = 0x51  #: src = atomic_fetch_and(dst + off, src)
    FETCH_XOR = 0xA1  #: src = atomic_fetch_xor(dst + off, src)
    XCHG = 0xE1  #: src = xchg(dst + off, src)
    CMPXCHG = 0xF1  #: r0 = cmpxchg(dst + off, r0, src)
    LOAD_ACQ = 0x100  #: dst = load_acquire(src + off) (kernel 6.15+)
    STORE_REL = 0x110  #: store_release(dst + off, src) (kernel 6.15+)

    @property
    def fetches(self) -> bool:
        """Whether ``src`` (or r0 for CMPXCHG) receives the old value."""
        return bool(self & ATOMIC_FETCH) and self < AtomicOp.LOAD_ACQ


ATOMIC_FETCH = 0x01
"""Modifier bit of :class:`AtomicOp`: return the old value."""


class PseudoSrc(enum.IntEnum):
    """Meaning of ``src`` in ``lddw`` (LD | IMM | DW): what the imm refers to."""

    NONE = 0  #: plain 64-bit constant
    MAP_FD = 1  #: imm = map fd; loads the map pointer
    MAP_VALUE = 2  #: imm = map fd, next imm = offset into the map's value
    BTF_ID = 3  #: imm = BTF id of a kernel variable
    FUNC = 4  #: imm = instruction offset of a BPF function (callback)
    MAP_IDX = 5  #: like MAP_FD but imm indexes fd_array
    MAP_IDX_VALUE = 6  #: like MAP_VALUE but imm indexes fd_array


class CallKind(enum.IntEnum):
    """Meaning of ``src`` in JMP | CALL."""

    HELPER = 0  #: imm = helper function id
    PSEUDO_CALL = 1  #: bpf-to-bpf call, imm = pc-relative offset of the callee
    KFUNC = 2  #: imm = BTF id of a kernel function


# --------------------------------------------------------------------------- #
# Semantic tables: symbols and properties per operation.  The disassembler
# reads the symbols; interpreters and the SMT encoding read the flags.
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class AluOpInfo:
    """Static facts about one :class:`AluOp`."""

    mnemonic: str  #: LLVM/cilium-style name ("add", "rsh", ...)
    symbol: str  #: operator in verifier-log syntax ("+=", ">>=", ...)
    signed_symbol: str | None = None  #: operator for the off=1 signed variant
    unary: bool = False  #: only reads dst (NEG) or dst and imm (END)
    divides: bool = False  #: divisor 0 is defined (div -> 0, mod -> dst kept)


ALU_OPS: Mapping[AluOp, AluOpInfo] = MappingProxyType(
    {
        AluOp.ADD: AluOpInfo("add", "+="),
        AluOp.SUB: AluOpInfo("sub", "-="),
        AluOp.MUL: AluOpInfo("mul", "*="),
        AluOp.DIV: AluOpInfo("div", "/=", "s/=", divides=True),
        AluOp.OR: AluOpInfo("or", "|="),
        AluOp.AND: AluOpInfo("and", "&="),
        AluOp.LSH: AluOpInfo("lsh", "<<="),
        AluOp.RSH: AluOpInfo("rsh", ">>="),
        AluOp.NEG: AluOpInfo("neg", "neg", unary=True),
        AluOp.MOD: AluOpInfo("mod", "%=", "s%=", divides=True),
        AluOp.XOR: AluOpInfo("xor", "^="),
        AluOp.MOV: AluOpInfo("mov", "="),
        AluOp.ARSH: AluOpInfo("arsh", "s>>="),
        AluOp.END: AluOpInfo("end", "endian", unary=True),
    }
)
"""Per-operation facts for ALU/ALU64."""


@dataclass(frozen=True)
class JmpOpInfo:
    """Static facts about one conditional :class:`JmpOp`."""

    mnemonic: str  #: "jeq", "jsgt", ...
    symbol: str  #: comparison in verifier-log syntax ("==", "s>", ...)
    signed: bool = False  #: compares as two's-complement
    negation: JmpOp | None = None  #: the condition that is true exactly when not


JMP_OPS: Mapping[JmpOp, JmpOpInfo] = MappingProxyType(
    {
        JmpOp.JEQ: JmpOpInfo("jeq", "==", negation=JmpOp.JNE),
        JmpOp.JNE: JmpOpInfo("jne", "!=", negation=JmpOp.JEQ),
        JmpOp.JGT: JmpOpInfo("jgt", ">", negation=JmpOp.JLE),
        JmpOp.JGE: JmpOpInfo("jge", ">=", negation=JmpOp.JLT),
        JmpOp.JLT: JmpOpInfo("jlt", "<", negation=JmpOp.JGE),
        JmpOp.JLE: JmpOpInfo("jle", "<=", negation=JmpOp.JGT),
        JmpOp.JSGT: JmpOpInfo("jsgt", "s>", signed=True, negation=JmpOp.JSLE),
        JmpOp.JSGE: JmpOpInfo("jsge", "s>=", signed=True, negation=JmpOp.JSLT),
        JmpOp.JSLT: JmpOpInfo("jslt", "s<", signed=True, negation=JmpOp.JSGE),
        JmpOp.JSLE: JmpOpInfo("jsle", "s<=", signed=True, negation=JmpOp.JSGT),
        # JSET has no single-opcode negation.
        JmpOp.JSET: JmpOpInfo("jset", "&"),
    }
)
"""Conditional jumps only (JA, CALL, EXIT, JCOND are not comparisons)."""


@dataclass(frozen=True)
class AtomicOpInfo:
    """Static facts about one :class:`AtomicOp`."""

    name: str  #: "add", "xchg", ...
    alu: AluOp | None  #: arithmetic applied to memory, None for xchg/cmpxchg


ATOMIC_OPS: Mapping[AtomicOp, AtomicOpInfo] = MappingProxyType(
    {
        AtomicOp.ADD: AtomicOpInfo("add", AluOp.ADD),
        AtomicOp.OR: AtomicOpInfo("or", AluOp.OR),
        AtomicOp.AND: AtomicOpInfo("and", AluOp.AND),
        AtomicOp.XOR: AtomicOpInfo("xor", AluOp.XOR),
        AtomicOp.FETCH_ADD: AtomicOpInfo("add", AluOp.ADD),
        AtomicOp.FETCH_OR: AtomicOpInfo("or", AluOp.OR),
        AtomicOp.FETCH_AND: AtomicOpInfo("and", AluOp.AND),
        AtomicOp.FETCH_XOR: AtomicOpInfo("xor", AluOp.XOR),
        AtomicOp.XCHG: AtomicOpInfo("xchg", None),
        AtomicOp.CMPXCHG: AtomicOpInfo("cmpxchg", None),
        AtomicOp.LOAD_ACQ: AtomicOpInfo("load_acquire", None),
        AtomicOp.STORE_REL: AtomicOpInfo("store_release", None),
    }
)
"""Per-operation facts for STX | ATOMIC."""

MOVSX_WIDTHS = (8, 16, 32)
"""Valid ``off`` values of a sign-extending MOV (bits of the source kept)."""
BSWAP_WIDTHS = (16, 32, 64)
"""Valid ``imm`` values of END/bswap (bits converted)."""
SIGNED_DIV_OFF = 1
"""``off`` value turning DIV/MOD into sdiv/smod."""
ADDR_SPACE_CAST_OFF = 1
"""``off`` value turning ALU64 MOV X into ``addr_space_cast`` (arena)."""


# --------------------------------------------------------------------------- #
# Field accessors
# --------------------------------------------------------------------------- #


@functools.cache  # 256 opcodes: decoding is on every interpreter and verifier step
def insn_class(opcode: int) -> InsnClass:
    """Class of ``opcode``; always defined (three bits, eight classes)."""
    return InsnClass(opcode & CLASS_MASK)


@functools.cache  # 256 opcodes: decoding is on every interpreter and verifier step
def size(opcode: int) -> Size:
    """Access size of a load/store ``opcode``; always defined (two bits)."""
    return Size(opcode & SIZE_MASK)


@functools.cache  # 256 opcodes: decoding is on every interpreter and verifier step
def mode(opcode: int) -> Mode | None:
    """Addressing mode of a load/store ``opcode``, None if unassigned."""
    try:
        return Mode(opcode & MODE_MASK)
    except ValueError:
        return None


@functools.cache  # 256 opcodes: decoding is on every interpreter and verifier step
def source(opcode: int) -> Source:
    """Operand source of an ALU/JMP ``opcode``."""
    return Source(opcode & SOURCE_MASK)


@functools.cache  # 256 opcodes: decoding is on every interpreter and verifier step
def alu_op(opcode: int) -> AluOp | None:
    """Operation of an ALU/ALU64 ``opcode``; None for 0xe0/0xf0."""
    try:
        return AluOp(opcode & OP_MASK)
    except ValueError:
        return None


@functools.cache  # 256 opcodes: decoding is on every interpreter and verifier step
def jmp_op(opcode: int) -> JmpOp | None:
    """Operation of a JMP/JMP32 ``opcode``; None for 0xf0."""
    try:
        return JmpOp(opcode & OP_MASK)
    except ValueError:
        return None


def make(
    cls: InsnClass,
    op: AluOp | JmpOp | Mode | None = None,
    src: Source | Endian | Size | None = None,
) -> int:
    """Compose an opcode byte.

    ``make(InsnClass.ALU64, AluOp.ADD, Source.X)`` -> 0x0f;
    ``make(InsnClass.LDX, Mode.MEM, Size.W)`` -> 0x61.
    """
    return int(cls) | int(op or 0) | int(src or 0)


# --------------------------------------------------------------------------- #
# Instruction kinds: one value per distinct semantic, with the v4 variants
# that share an opcode separated out.
# --------------------------------------------------------------------------- #


class Kind(enum.Enum):
    """What an instruction does, independent of operand width and source."""

    ALU = "alu"  #: binary arithmetic (op from the opcode)
    SDIV = "sdiv"  #: signed division / modulo (DIV/MOD with off=1)
    NEG = "neg"  #: dst = -dst
    MOV = "mov"  #: dst = src / imm
    MOVSX = "movsx"  #: dst = sign_extend(src, off bits)
    ADDR_SPACE_CAST = "addr_space_cast"  #: arena pointer conversion
    END = "end"  #: ALU END: to/from little- or big-endian
    BSWAP = "bswap"  #: ALU64 END: unconditional byte swap (v4)
    LDDW = "lddw"  #: 64-bit immediate load (two slots)
    LD_ABS = "ld_abs"  #: legacy skb load
    LD_IND = "ld_ind"  #: legacy skb load, register offset
    LDX = "ldx"  #: dst = *(size *)(src + off)
    LDX_SX = "ldx_sx"  #: dst = *(s<size> *)(src + off) (v4)
    ST = "st"  #: *(size *)(dst + off) = imm
    STX = "stx"  #: *(size *)(dst + off) = src
    ATOMIC = "atomic"  #: atomic op, see :class:`AtomicOp` in imm
    JA = "ja"  #: unconditional goto pc+off
    GOTOL = "gotol"  #: unconditional goto pc+imm (JMP32 JA, v4)
    JCOND = "jcond"  #: conditional jump (op from the opcode)
    MAY_GOTO = "may_goto"  #: JMP JCOND
    CALL = "call"  #: helper / bpf-to-bpf / kfunc call
    EXIT = "exit"  #: return
    INVALID = "invalid"  #: not a defined encoding


@functools.lru_cache(maxsize=1 << 16)  # a program has few distinct instructions; each step asks
def classify(opcode: int, off: int = 0, imm: int = 0) -> Kind:
    """Map an (opcode, off, imm) triple to its :class:`Kind`.

    Only the fields that select between instructions are checked; register
    numbers and operand ranges are the verifier's business.
    """
    cls = insn_class(opcode)
    if cls.is_alu:
        op = alu_op(opcode)
        if op is None:
            return Kind.INVALID
        if op in (AluOp.DIV, AluOp.MOD):
            return Kind.SDIV if off == SIGNED_DIV_OFF else Kind.ALU
        if op == AluOp.MOV:
            if off in MOVSX_WIDTHS and source(opcode) == Source.X:
                return Kind.MOVSX
            if off == ADDR_SPACE_CAST_OFF and cls == InsnClass.ALU64 and source(opcode) == Source.X:
                return Kind.ADDR_SPACE_CAST
            return Kind.MOV
        if op == AluOp.NEG:
            return Kind.NEG
        if op == AluOp.END:
            if cls == InsnClass.ALU64:
                # bswap only has the "K"/TO_LE encoding
                return Kind.BSWAP if source(opcode) == Source.K else Kind.INVALID
            return Kind.END
        return Kind.ALU
    if cls.is_jump:
        jop = jmp_op(opcode)
        if jop is None:
            return Kind.INVALID
        if jop == JmpOp.JA:
            return Kind.GOTOL if cls == InsnClass.JMP32 else Kind.JA
        if jop in (JmpOp.CALL, JmpOp.EXIT, JmpOp.JCOND):
            if cls == InsnClass.JMP32 or source(opcode) == Source.X:
                return Kind.INVALID
            return {JmpOp.CALL: Kind.CALL, JmpOp.EXIT: Kind.EXIT}.get(jop, Kind.MAY_GOTO)
        return Kind.JCOND
    md = mode(opcode)
    sz = size(opcode)
    if cls == InsnClass.LD:
        if md == Mode.IMM and sz == Size.DW:
            return Kind.LDDW
        if md == Mode.ABS and sz != Size.DW:
            return Kind.LD_ABS
        if md == Mode.IND and sz != Size.DW:
            return Kind.LD_IND
        return Kind.INVALID
    if cls == InsnClass.LDX:
        if md == Mode.MEM:
            return Kind.LDX
        if md == Mode.MEMSX and sz != Size.DW:
            return Kind.LDX_SX
        return Kind.INVALID
    if cls == InsnClass.ST:
        return Kind.ST if md == Mode.MEM else Kind.INVALID
    # STX
    if md == Mode.MEM:
        return Kind.STX
    # Read-modify-write atomics exist for 32 and 64 bits only; the
    # load-acquire / store-release pair (kernel 6.15+) for every size.
    if md == Mode.ATOMIC and (sz in (Size.W, Size.DW) or imm in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL)):
        return Kind.ATOMIC
    return Kind.INVALID
