"""Disassembly in the kernel verifier's syntax.

The kernel log is what users of this project read when a program is
rejected, so our listings use the same notation (``r1 = *(u32 *)(r1 +0)``,
``if r2 > r3 goto pc+5``, ``call bpf_map_lookup_elem#1``) and the same
``N: (op) text`` listing lines; text can then be matched line by line against
a verifier log.  Two deliberate extensions:

* Relocated lddw shows the symbol (``r1 = map[acl] ll``); the kernel only
  ever sees the patched fd/pointer.  Every lddw ends in `` ll`` (as in
  llvm-objdump) so the two-slot instruction stands out.
* Encodings the kernel would reject are printed as ``invalid ...`` rather than
  the kernel's ``BUG_xx`` so that decoding arbitrary bytes never raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pybpfdsl.bpf.instruction import (
    Instruction,
    Relocation,
    RelocKind,
    helper_name,
    slot_offsets,
)
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
    insn_class,
    jmp_op,
    size,
    source,
)

__all__ = ["disassemble", "format_instruction", "format_listing"]

_UNSIGNED = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
_SIGNED = {Size.W: "s32", Size.H: "s16", Size.B: "s8", Size.DW: "s64"}

RelocationsArg = Mapping[int, Relocation] | Iterable[Relocation] | None


def _reloc_map(relocations: RelocationsArg) -> dict[int, Relocation]:
    if relocations is None:
        return {}
    if isinstance(relocations, Mapping):
        return dict(relocations)
    return {r.insn_index: r for r in relocations}


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


def disassemble(
    insns: Sequence[Instruction],
    relocations: RelocationsArg = None,
    helper_names: bool = True,
) -> list[str]:
    """Verifier-log text for each instruction (one string per list entry).

    ``relocations`` (from :class:`pybpfdsl.bpf.elf.ElfProgram`) are matched by
    ``insn_index``; ``helper_names=False`` prints ``call unknown#N`` style
    for helpers, which is stable across kernel versions.
    """
    relocs = _reloc_map(relocations)
    return [format_instruction(insn, relocs.get(i), helper_names) for i, insn in enumerate(insns)]


def format_listing(
    insns: Sequence[Instruction],
    relocations: RelocationsArg = None,
    helper_names: bool = True,
) -> list[str]:
    """Kernel-style listing lines, ``<slot>: (<opcode hex>) <text>``.

    The index is the *slot* index (lddw advances it by two), as in the
    verifier log, so that ``pc+N`` offsets can be followed by eye.
    """
    texts = disassemble(insns, relocations, helper_names)
    return [
        f"{slot}: ({insn.opcode:02x}) {text}"
        for slot, insn, text in zip(slot_offsets(insns), insns, texts, strict=True)
    ]
