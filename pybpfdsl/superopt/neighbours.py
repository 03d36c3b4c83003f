"""The greedy step's moves (before the chain): rewrites of a window that are cheaper when they hold.

Each function proposes, for one kind of redundancy clang leaves, the candidates a proof may accept: drop
an instruction; store a register known to hold a constant as an immediate; K2's memory exchange (two
immediate stores to adjacent bytes as one twice as wide, a 64-bit constant stored as two 32-bit
immediates, a constant store into the bytes of an earlier one folded into its value); two byte loads as
one wider load; a constant or a zero extension a pair computes as one instruction; sign extension as one
instruction (BPF v4); a register copy folded into its definition or its readers; a pointer made only to
be dereferenced folded into the offsets; and a branch window's cheaper jumps. None is trusted: the
search tests and proves each (`window_check`), so a move may offer what is wrong under the window's
liveness and the proof refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import (
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Kind,
    Mode,
    Size,
    Source,
    alu_op,
    jmp_op,
    mode,
    size,
    source,
)
from pybpfdsl.superopt.window_semantics import ends_in_branch
from pybpfdsl.superopt.windows import transfer, written_registers
from pybpfdsl.verify.analysis.liveness import registers_of

__all__ = ["neighbours", "shifted_values"]


def _fits_imm(value: int, nbytes: int) -> int | None:
    """The signed imm32 whose sign extension stores ``value`` at ``nbytes`` bytes, if there is one."""
    bits = nbytes * 8
    value &= (1 << bits) - 1
    for imm in (value if value < 1 << 31 else value - (1 << 32), value - (1 << bits)):
        if -(1 << 31) <= imm < 1 << 31 and (imm & ((1 << bits) - 1)) == value:
            return imm
    return None


def neighbours(code: tuple[Instruction, ...], known: Mapping[int, int]) -> list[tuple[Instruction, ...]]:
    """The cheaper rewrites tried before the chain, in a fixed order: drop one instruction; store a
    register known to hold a constant as an immediate; merge two immediate stores to adjacent bytes of
    one base into one twice as wide."""
    branch = ends_in_branch(code)
    # The jump's forms first: the greedy step takes the first proven one, and they remove the most.
    out: list[tuple[Instruction, ...]] = _branch_forms(code, known) if branch else []
    out += [code[:i] + code[i + 1:] for i in range(len(code) - branch)]
    facts = dict(known)
    for i, insn in enumerate(code):
        if insn.kind == Kind.STX and insn.src in facts:
            n = size(insn.opcode).bytes
            imm = _fits_imm(facts[insn.src], n)
            if imm is not None:
                st = Instruction(InsnClass.ST | Mode.MEM | size(insn.opcode), insn.dst, 0, insn.off, imm)
                out.append((*code[:i], st, *code[i + 1:]))
        facts = transfer(insn, facts)
    for i in range(len(code) - 1):
        a, b = code[i], code[i + 1]
        if a.kind != Kind.ST or b.kind != Kind.ST or a.dst != b.dst or size(a.opcode) != size(b.opcode):
            continue
        n = size(a.opcode).bytes
        if n == 8 or abs(a.off - b.off) != n:
            continue
        lo, hi = (a, b) if a.off < b.off else (b, a)
        value = (lo.imm & ((1 << 8 * n) - 1)) | (hi.imm & ((1 << 8 * n) - 1)) << 8 * n
        imm = _fits_imm(value, 2 * n)
        wide = {2: Size.H, 4: Size.W, 8: Size.DW}[2 * n]
        if imm is not None:
            out.append((*code[:i], Instruction(InsnClass.ST | Mode.MEM | wide, a.dst, 0, lo.off, imm), *code[i + 2:]))
    out += _wider_loads(code)
    out += _wider_stores(code)
    out += _wider_copies(code)
    out += _remainders(code)
    out += _split_constant_stores(code, known)
    out += _overwrites_folded(code, known)
    out += _sign_extensions(code)
    out += _zero_extensions_folded(code)
    out += _folded_pairs(code, known)
    out += _copies_removed(code)
    out += _offsets_folded(code)
    out += _atomic_adds(code)
    return out


def _atomic_add(store: Instruction, addend: int, fetch: bool = False) -> Instruction:
    return Instruction(InsnClass.STX | Mode.ATOMIC | size(store.opcode), store.dst, addend, store.off,
                       AtomicOp.FETCH_ADD if fetch else AtomicOp.ADD)


def _fetch_adds(code: tuple[Instruction, ...], i: int, k: int, j: int, st: Instruction, x: int,
                add: Instruction) -> list[tuple[Instruction, ...]]:
    """``x = *(rB +o); y = x; y += K (or z); *(rB +o) = y`` as ``x = K (or z); x = fetch_add(rB +o, x)``."""
    copy = next((m for m in range(i + 1, k) if code[m].opcode == InsnClass.ALU64 | AluOp.MOV | Source.X
                 and code[m].dst == add.dst and code[m].src == x), None)
    if copy is None:
        return []
    if source(add.opcode) == Source.K:
        first = _mov_constant(x, add.imm_sext)
    else:
        first = Instruction(InsnClass.ALU64 | AluOp.MOV | Source.X, x, add.src)
    if first is None:
        return []
    return [(*code[:i], *code[i + 1:copy], first, *code[copy + 1:k], *code[k + 1:j], _atomic_add(st, x, True),
             *code[j + 1:])]


def _atomic_adds(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """A cell loaded, added to and stored back as one atomic add (clang's ``stats->packets++`` and
    ``stats->bytes += len`` on a map value): ``x = *(u64 *)(rB +o); x += y; *(u64 *)(rB +o) = x`` as
    ``lock *(u64 *)(rB +o) += y`` (two slots fewer), ``y += x`` stored from y likewise, and ``x += K`` as
    ``x = K; lock *(u64 *)(rB +o) += x`` (one fewer). 32-bit cells too; the atomic has no byte or half-word
    form. Offered wherever the shape matches: the proof refuses it where x is live after, or where something
    between changes the cell, rB or y; the gate, where rB is not a map value or the stack."""
    out: list[tuple[Instruction, ...]] = []
    for j, st in enumerate(code):
        if st.kind != Kind.STX or mode(st.opcode) != Mode.MEM or size(st.opcode) not in (Size.W, Size.DW) \
                or st.off % size(st.opcode).bytes:
            continue
        for i in range(j):
            ld = code[i]
            if ld.kind != Kind.LDX or mode(ld.opcode) != Mode.MEM or size(ld.opcode) != size(st.opcode) \
                    or ld.src != st.dst or ld.off != st.off or ld.dst in (st.dst, 10):
                continue
            x = ld.dst
            for k in range(i + 1, j):
                add = code[k]
                if add.kind != Kind.ALU or alu_op(add.opcode) != AluOp.ADD or add.dst != st.src:
                    continue
                if source(add.opcode) == Source.K and add.dst == x:
                    mov = _mov_constant(x, add.imm_sext)
                    if mov is not None:
                        out.append((*code[:i], *code[i + 1:k], mov, *code[k + 1:j], _atomic_add(st, x), *code[j + 1:]))
                elif source(add.opcode) == Source.X and x in (add.dst, add.src) and add.src != add.dst:
                    addend = add.src if add.dst == x else add.dst
                    out.append((*code[:i], *code[i + 1:k], *code[k + 1:j], _atomic_add(st, addend), *code[j + 1:]))
                elif add.dst != x and add.src != x:
                    # x kept, the sum made in a copy (``y = x; y += K; store y``): the fetching add leaves the
                    # old value in x, two slots fewer.
                    out += _fetch_adds(code, i, k, j, st, x, add)
    return out


def _store_imm(store: Instruction, imm: int, nbytes: int | None = None, off: int | None = None) -> Instruction:
    """``store`` (ST or STX) as an immediate store of ``imm``, at its width or ``nbytes``, at its offset or ``off``."""
    sz = size(store.opcode) if nbytes is None else {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}[nbytes]
    return Instruction(InsnClass.ST | Mode.MEM | sz, store.dst, 0, store.off if off is None else off, imm)


def _split_constant_stores(code: tuple[Instruction, ...], known: Mapping[int, int]) -> list[tuple[Instruction, ...]]:
    """A 64-bit store of a register holding a constant no immediate holds (an lddw's) as two 32-bit
    immediate stores, the constant's definition dropped: ``r1 = 0x200000001 ll; *(u64 *)(r10 -8) = r1`` is
    3 slots, ``*(u32 *)(r10 -8) = 1; *(u32 *)(r10 -4) = 2`` 2 (K2's memory exchange; the proof decides
    whether the register was dead, the stack check whether the halves are aligned)."""
    out: list[tuple[Instruction, ...]] = []
    facts = dict(known)
    for i, insn in enumerate(code):
        if insn.kind == Kind.STX and size(insn.opcode) == Size.DW and insn.src in facts \
                and _fits_imm(facts[insn.src], 8) is None and -(1 << 15) <= insn.off + 4 < 1 << 15:
            value = facts[insn.src]
            lo, hi = _fits_imm(value, 4), _fits_imm(value >> 32, 4)
            assert lo is not None and hi is not None  # any 32 bits fit a 32-bit store's immediate
            halves = (_store_imm(insn, lo, 4), _store_imm(insn, hi, 4, insn.off + 4))
            d = _last_writer(code, insn.src, i)
            if d is not None and code[d].kind in (Kind.LDDW, Kind.MOV) and code[d].dst == insn.src:
                out.append((*code[:d], *code[d + 1:i], *halves, *code[i + 1:]))
        facts = transfer(insn, facts)
    return out


def _overwrites_folded(code: tuple[Instruction, ...], known: Mapping[int, int]) -> list[tuple[Instruction, ...]]:
    """A constant store followed by a store of a constant into some of its bytes, as one store of the
    final bytes: ``*(u64 *)(r10 -72) = 0; ...; *(u8 *)(r10 -72) = 2`` as ``*(u64 *)(r10 -72) = 2`` where the
    value fits the immediate (K2's memory exchange with a new value operand). Nothing between them may read
    memory or move the base; whether another base aliased the bytes is the proof's to decide."""
    out: list[tuple[Instruction, ...]] = []
    facts = dict(known)
    for i, a in enumerate(code):
        value_a = a.imm if a.kind == Kind.ST else facts.get(a.src) if a.kind == Kind.STX else None
        facts = transfer(a, facts)
        if value_a is None:
            continue
        m = size(a.opcode).bytes
        after = dict(facts)
        for j in range(i + 1, len(code)):
            b = code[j]
            value_b = b.imm if b.kind == Kind.ST else after.get(b.src) if b.kind == Kind.STX else None
            n = size(b.opcode).bytes if b.kind in (Kind.ST, Kind.STX) else 0
            if value_b is not None and b.dst == a.dst and a.off <= b.off and b.off + n <= a.off + m:
                shift = 8 * (b.off - a.off)
                mask = ((1 << 8 * n) - 1) << shift
                merged = (value_a & ((1 << 8 * m) - 1) & ~mask) | (value_b << shift & mask)
                imm = _fits_imm(merged, m)
                if imm is not None:
                    out.append((*code[:i], _store_imm(a, imm), *code[i + 1:j], *code[j + 1:]))
                break
            if b.kind in (Kind.LDX, Kind.LDX_SX, Kind.ATOMIC, Kind.CALL) or a.dst in registers_of(b)[1]:
                break
            after = transfer(b, after)
    return out


_SIGN_SHIFTS = {32: 32, 48: 16, 56: 8}
"""Shift amount of a ``<<= s; s>>= s`` pair -> the width it sign-extends from."""


def _sign_extensions(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """Sign extension in one instruction (BPF v4, kernels 6.6 on): ``r1 <<= 32; r1 s>>= 32`` as
    ``r1 = (s32)r1``, and a load followed by the extension of its width as a sign-extending load
    (``r2 = *(u32 *)(r10 -4); r2 = (s32)r2`` as ``r2 = *(s32 *)(r10 -4)``)."""
    out: list[tuple[Instruction, ...]] = []
    for i in range(len(code) - 1):
        a, b = code[i], code[i + 1]
        if a.opcode == InsnClass.ALU64 | AluOp.LSH | Source.K and b.opcode == InsnClass.ALU64 | AluOp.ARSH | Source.K \
                and a.dst == b.dst and a.imm == b.imm and a.imm in _SIGN_SHIFTS:
            out.append((*code[:i], Instruction(_MOV64_X, a.dst, a.dst, _SIGN_SHIFTS[a.imm]), *code[i + 2:]))
        if a.kind == Kind.LDX and b.kind == Kind.MOVSX and b.dst == b.src == a.dst and a.src != a.dst \
                and size(a.opcode).bytes * 8 == b.off:
            load = Instruction(InsnClass.LDX | Mode.MEMSX | size(a.opcode), a.dst, a.src, a.off)
            out.append((*code[:i], load, *code[i + 2:]))
    return out


_LOW_HALF_OPS = (AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.OR, AluOp.AND, AluOp.XOR, AluOp.LSH)
"""Operations whose low 32 bits depend only on their operands' low 32 bits (a left shift by less than 32)."""


def _scalar_before(code: Sequence[Instruction], reg: int, at: int) -> bool:
    """``reg`` holds a number, not a pointer, on entry to ``code[at]``, as the window itself shows: its
    last write before is a narrow load, a constant, a 32-bit operation or one the kernel allows on
    numbers only. (The kernel refuses 32-bit arithmetic on a pointer, even where the result would be
    the same: ``r2 -= r1; w2 = w2`` of two packet pointers must stay as it is.)"""
    p = _last_writer(code, reg, at)
    if p is None:
        return False
    w = code[p]
    k, op = w.kind, alu_op(w.opcode)
    return (k == Kind.LDX and size(w.opcode).bytes < 4) or k in (Kind.END, Kind.BSWAP, Kind.LDX_SX) \
        or (k in (Kind.ALU, Kind.MOV, Kind.NEG) and w.cls == InsnClass.ALU) \
        or (k == Kind.MOV and source(w.opcode) == Source.K) \
        or (k == Kind.ALU and op not in (AluOp.ADD, AluOp.SUB, None))


def _zero_extensions_folded(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """A zero extension ``wX = wX`` folded into the instruction that set ``rX``: ``r1 = r0; w1 = w1`` as
    ``w1 = w0``, ``r1 = K; w1 = w1`` as ``w1 = K``, and ``r6 += r7; w6 = w6`` as ``w6 += w7`` where the
    operands are numbers (`_scalar_before`)."""
    out: list[tuple[Instruction, ...]] = []
    for j, z in enumerate(code):
        if z.opcode != InsnClass.ALU | AluOp.MOV | Source.X or z.dst != z.src:
            continue
        x = z.dst
        p = _last_writer(code, x, j)
        if p is None or any(x in registers_of(code[i])[0] for i in range(p + 1, j)):
            continue
        d = code[p]
        op = alu_op(d.opcode)
        k_src = source(d.opcode) == Source.K
        if d.cls != InsnClass.ALU64 or d.kind not in (Kind.MOV, Kind.ALU) or op is None or d.dst != x:
            continue
        if d.kind == Kind.MOV:
            if not k_src and any(d.src in registers_of(code[i])[1] for i in range(p + 1, j)):
                continue
            new = Instruction(InsnClass.ALU | AluOp.MOV | source(d.opcode), x, d.src, 0, d.imm)
        elif op in _LOW_HALF_OPS and _scalar_before(code, x, p) and (k_src or _scalar_before(code, d.src, p)) \
                and not (op == AluOp.LSH and (not k_src or not 0 <= d.imm < 32)):
            new = Instruction(InsnClass.ALU | op | source(d.opcode), x, d.src, 0, d.imm)
        else:
            continue
        out.append((*code[:p], new, *code[p + 1:j], *code[j + 1:]))
    return out


def _rebased(insn: Instruction, x: int, add: int, base: int) -> Instruction | None:
    """``insn``, which reads ``x``, addressing through ``base`` what it addressed through ``x + add`` (the
    constant moved into its offset); None unless ``x`` is only its load's or store's address base and the new
    offset fits in 16 bits. Both offset folds below share it."""
    kind = insn.kind
    base_src = kind in (Kind.LDX, Kind.LDX_SX) and insn.src == x
    base_dst = kind in (Kind.ST, Kind.STX) and insn.dst == x and (kind == Kind.ST or insn.src != x)
    off = insn.off + add
    if not (base_src or base_dst) or not -(1 << 15) <= off < 1 << 15:
        return None
    return Instruction(insn.opcode, base if base_dst else insn.dst, base if base_src else insn.src, off, insn.imm,
                       insn.imm_hi, insn.is_wide)


def _offsets_folded(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """A pointer made only to be dereferenced, folded into the accesses' offsets: ``r4 = r1; r4 += 23;
    r3 = *(u8 *)(r4 +0)`` as ``r3 = *(u8 *)(r1 +23)``, where every read of ``r4`` before its next write
    is an address base (the proof decides whether ``r4`` was dead after)."""
    out: list[tuple[Instruction, ...]] = []
    for q, mov in enumerate(code):
        if mov.opcode != _MOV64_X or mov.src == mov.dst:
            continue
        x, y = mov.dst, mov.src
        p = next((i for i in range(q + 1, len(code)) if x in registers_of(code[i])[1]), None)
        if p is None or code[p].opcode != InsnClass.ALU64 | AluOp.ADD | Source.K or x in registers_of(code[p])[0][1:]:
            continue
        add = code[p].imm
        body = list(code)
        used = False
        for k in range(p + 1, len(code)):
            insn = code[k]
            reads, writes = registers_of(insn)
            if x in reads:
                moved = _rebased(insn, x, add, y)
                store = moved is not None and moved.kind in (Kind.ST, Kind.STX)
                if moved is None or \
                        any(y in registers_of(code[i])[1] for i in range(q + 1, k + 1) if i != k or store):
                    used = False
                    break
                body[k] = moved
                used = True
            if x in writes:
                break
        if used:
            out.append(tuple(b for i, b in enumerate(body) if i not in (p, q)))
    out += _added_offsets_folded(code)
    return out


def _added_offsets_folded(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """A pointer moved by a constant only to be dereferenced: ``r4 += 6; r2 = *(u16 *)(r4 +0)`` as
    ``r2 = *(u16 *)(r4 +6)``, where every read of ``r4`` after the add (before its next write) is an address
    base (the proof decides whether the moved ``r4`` was dead after)."""
    out: list[tuple[Instruction, ...]] = []
    for p, insn in enumerate(code):
        if insn.opcode != InsnClass.ALU64 | AluOp.ADD | Source.K or insn.dst == 10:
            continue
        x, add = insn.dst, insn.imm
        body = list(code)
        used = False
        for k in range(p + 1, len(code)):
            cur = code[k]
            reads, writes = registers_of(cur)
            if x in reads:
                moved = _rebased(cur, x, add, x)
                if moved is None:
                    used = False
                    break
                body[k] = moved
                used = True
            if x in writes:
                break
        if used:
            out.append(tuple(b for i, b in enumerate(body) if i != p))
    return out


_MOV64_X = InsnClass.ALU64 | AluOp.MOV | Source.X


def _read_only_substitute(insn: Instruction, old: int, new: int) -> Instruction | None:
    """``insn`` reading ``new`` where it reads ``old``, if it reads ``old`` only where a register is
    read and not written (a source operand, an address base, a compared register); None otherwise."""
    k = insn.kind
    dst, src = insn.dst, insn.src
    x = source(insn.opcode) == Source.X
    reads_src = k in (Kind.LDX, Kind.LDX_SX) or (x and k in (Kind.ALU, Kind.SDIV, Kind.MOV, Kind.MOVSX))
    if reads_src and src == old and (dst != old or k in (Kind.LDX, Kind.LDX_SX, Kind.MOV, Kind.MOVSX)):
        src = new  # (a load or move does not read its destination: ``r1 = *(u8 *)(r1 -1)`` reads r1 once)
    elif k == Kind.ST and dst == old:
        dst = new
    elif k in (Kind.STX, Kind.JCOND):
        dst = new if dst == old else dst
        src = new if x and src == old else src
    if old in registers_of(Instruction(insn.opcode, dst, src, insn.off, insn.imm, insn.imm_hi, insn.is_wide))[0]:
        return None
    return Instruction(insn.opcode, dst, src, insn.off, insn.imm, insn.imm_hi, insn.is_wide)


def _copies_removed(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """A register copy ``rB = rA`` dropped: its later readers read ``rA`` instead (up to where either is
    written), or the instruction that set ``rA`` sets ``rB`` directly (``rA = *(u32 *)(..); rB = rA``).
    The proof decides whether the register that no longer gets the value was dead."""
    out: list[tuple[Instruction, ...]] = []
    for j, mov in enumerate(code):
        if mov.opcode != _MOV64_X or mov.src == mov.dst:
            continue
        a, b = mov.src, mov.dst
        # Forward: readers of rB read rA.
        body = list(code)
        ok = True
        for k in range(j + 1, len(code)):
            reads, writes = registers_of(code[k])
            if b in reads:
                sub = _read_only_substitute(code[k], b, a)
                if sub is None:
                    ok = False
                    break
                body[k] = sub
            if a in writes or b in writes:
                break
        if ok and a != 10:
            out.append(tuple(body[:j] + body[j + 1:]))
        # Backward: the definition of rA writes rB.
        i = _last_writer(code, a, j)
        if i is None:
            continue
        d = code[i]
        pure = d.kind in (Kind.LDX, Kind.LDX_SX, Kind.LDDW) or (d.kind == Kind.MOV and (
            source(d.opcode) == Source.K or d.src != a))
        between = code[i + 1:j]
        if pure and not any(a in registers_of(x)[0] or b in registers_of(x)[0] or b in registers_of(x)[1]
                            for x in between):
            renamed = Instruction(d.opcode, b, d.src, d.off, d.imm, d.imm_hi, d.is_wide)
            out.append((*code[:i], renamed, *between, *code[j + 1:]))
    return out


_SWAPPED = {JmpOp.JEQ: JmpOp.JEQ, JmpOp.JNE: JmpOp.JNE, JmpOp.JSET: JmpOp.JSET, JmpOp.JGT: JmpOp.JLT,
            JmpOp.JLT: JmpOp.JGT, JmpOp.JGE: JmpOp.JLE, JmpOp.JLE: JmpOp.JGE, JmpOp.JSGT: JmpOp.JSLT,
            JmpOp.JSLT: JmpOp.JSGT, JmpOp.JSGE: JmpOp.JSLE, JmpOp.JSLE: JmpOp.JSGE}
"""``a op b`` is ``b op' a``."""


def _jump_k(jump: Instruction, op: JmpOp, dst: int, value: int, cls: InsnClass | None = None) -> Instruction | None:
    """``if dst op value`` in the class of ``jump`` (or ``cls``), if ``value`` fits its immediate (sign-extended
    to 64 bits by JMP, compared on 32 bits by JMP32)."""
    cls = cls if cls is not None else jump.cls
    value &= (1 << 64) - 1
    if cls != InsnClass.JMP32 and (1 << 31) <= value < (1 << 64) - (1 << 31):
        return None
    return Instruction(cls | op | Source.K, dst, 0, jump.off, _signed32(value & 0xFFFFFFFF))


def _last_writer(body: Sequence[Instruction], reg: int, before: int | None = None) -> int | None:
    end = len(body) if before is None else before
    for i in range(end - 1, -1, -1):
        if reg in registers_of(body[i])[1]:
            return i
    return None


def _without(body: Sequence[Instruction], *drop: int | None) -> tuple[Instruction, ...]:
    return tuple(insn for i, insn in enumerate(body) if i not in drop)


def _branch_forms(code: tuple[Instruction, ...], known: Mapping[int, int]) -> list[tuple[Instruction, ...]]:
    """Cheaper forms of a branch window (the jump stays last and keeps its target): compare with an
    immediate where a register holds a constant (swapping the operands if it is the first one); jump on
    a bit test (``r2 = r1; r2 &= 4; if r2 != 0`` as ``if r1 & 4``); compare 32 bits where the value compared
    was zero-extended for it (``w1 = w1; if r1 > 7`` as ``if w1 > 7``) or shifted up by 32 to be compared
    with 0 (``r3 = r2; r3 <<= 32; if r3 s< 0`` as ``if w2 s< 0``). The setup the new jump no longer
    reads is dropped here, or by the next step where the proof allows."""
    body, jump = code[:-1], code[-1]
    op = jmp_op(jump.opcode)
    if op is None or op not in _SWAPPED:
        return []
    facts = dict(known)
    for insn in body:
        facts = transfer(insn, facts)
    forms: list[tuple[tuple[Instruction, ...], Instruction | None]] = []
    if source(jump.opcode) == Source.X:
        if jump.src in facts:
            forms.append((body, _jump_k(jump, op, jump.dst, facts[jump.src])))
        if jump.dst in facts and jump.src != 10:
            forms.append((body, _jump_k(jump, _SWAPPED[op], jump.src, facts[jump.dst])))
    else:
        p = _last_writer(body, jump.dst)
        w = body[p] if p is not None else None
        if op == JmpOp.JNE and jump.imm == 0 and w is not None and w.kind == Kind.ALU \
                and w.opcode == InsnClass.ALU64 | AluOp.AND | Source.K and w.dst == jump.dst:
            q = _last_writer(body, jump.dst, p)
            m = body[q] if q is not None else None
            if q is not None and m is not None and m.opcode == InsnClass.ALU64 | AluOp.MOV | Source.X \
                    and m.src != 10 and _last_writer(body, m.src) in (None, *range(q)):
                forms.append((_without(body, p, q), _jump_k(jump, JmpOp.JSET, m.src, w.imm & ((1 << 64) - 1))))
            forms.append((_without(body, p), _jump_k(jump, JmpOp.JSET, jump.dst, w.imm & ((1 << 64) - 1))))
        if jump.cls == InsnClass.JMP and w is not None and w.opcode == InsnClass.ALU | AluOp.MOV | Source.X \
                and w.src == w.dst == jump.dst and alu_op(w.opcode) == AluOp.MOV:
            forms.append((_without(body, p), _jump_k(jump, op, jump.dst, jump.imm, InsnClass.JMP32)))
            forms.append((body, _jump_k(jump, op, jump.dst, jump.imm, InsnClass.JMP32)))
        if jump.cls == InsnClass.JMP and jump.imm == 0 and w is not None \
                and w.opcode == InsnClass.ALU64 | AluOp.LSH | Source.K and w.imm == 32:
            # Clang's test of a 32-bit value's sign: ``r3 = r2; r3 <<= 32; if r3 s< 0``. Shifted up by 32,
            # a register compares with 0 as its low half does: ``if w2 s< 0``.
            forms.append((_without(body, p), _jump_k(jump, op, jump.dst, 0, InsnClass.JMP32)))
            q = _last_writer(body, jump.dst, p)
            m = body[q] if q is not None else None
            if q is not None and m is not None and m.opcode == _MOV64_X and m.src != 10 \
                    and _last_writer(body, m.src) in (None, *range(q)):
                forms.append((_without(body, p, q), _jump_k(jump, op, m.src, 0, InsnClass.JMP32)))
    return [(*b, j) for b, j in forms if j is not None]


def _mov_constant(dst: int, value: int) -> Instruction | None:
    """``dst = value`` in one slot: ALU64 mov (imm sign-extended) or ALU mov (zero-extended), if either fits."""
    value &= (1 << 64) - 1
    if value < 1 << 31 or value >= (1 << 64) - (1 << 31):
        return Instruction(InsnClass.ALU64 | AluOp.MOV | Source.K, dst, 0, 0, _signed32(value & 0xFFFFFFFF))
    if value < 1 << 32:
        return Instruction(InsnClass.ALU | AluOp.MOV | Source.K, dst, 0, 0, _signed32(value))
    return None


def _signed32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def _folded_pairs(code: tuple[Instruction, ...], known: Mapping[int, int]) -> list[tuple[Instruction, ...]]:
    """Two adjacent instructions as one: a constant the pair computes as one move (``r1 = 8; r1 <<= 2``),
    and a 64-bit shift pair that clears the upper half as a 32-bit move (``r1 <<= 32; r1 >>= 32``)."""
    out: list[tuple[Instruction, ...]] = []
    facts = dict(known)
    for i in range(len(code) - 1):
        a, b = code[i], code[i + 1]
        after = transfer(b, transfer(a, facts))
        if b.kind not in (Kind.ST, Kind.STX) and b.dst in after:
            mov = _mov_constant(b.dst, after[b.dst])
            if mov is not None:
                out.append((*code[:i], mov, *code[i + 2:]))
        if a.dst == b.dst and a.kind == b.kind == Kind.ALU and a.cls == b.cls == InsnClass.ALU64 \
                and (a.opcode & ~0x08, b.opcode & ~0x08) == (InsnClass.ALU64 | AluOp.LSH, InsnClass.ALU64 | AluOp.RSH) \
                and a.imm == b.imm == 32 and not (a.opcode | b.opcode) & Source.X:
            out.append((*code[:i], Instruction(InsnClass.ALU | AluOp.MOV | Source.X, a.dst, a.dst), *code[i + 2:]))
        facts = transfer(a, facts)
    return out


_WIDER = {1: Size.H, 2: Size.W, 4: Size.DW}
_RSH64_K = InsnClass.ALU64 | AluOp.RSH | Source.K


def shifted_values(code: Sequence[Instruction]) -> list[dict[int, tuple[int, int]]]:
    """Per instruction, what each register holds on entry to it as (origin, shift): the value made by
    instruction ``origin`` (or, negative, held on entry to the window by register ``-1 - origin``) shifted
    right by ``shift`` bits. Copies keep a register's pair and a 64-bit right shift by a constant adds to
    its shift; any other write makes a new origin."""
    vals = {r: (-1 - r, 0) for r in range(11)}
    out = []
    for i, insn in enumerate(code):
        out.append(dict(vals))
        if insn.opcode == _MOV64_X and insn.off == 0:
            vals[insn.dst] = vals[insn.src]
        elif insn.opcode == _RSH64_K and 0 < insn.imm < 64:
            origin, shift = vals[insn.dst]
            vals[insn.dst] = (origin, shift + insn.imm)
        else:
            for r in written_registers(insn):
                vals[r] = (i, 0)
    return out


def _wider_stores(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """Two register stores of ``n`` adjacent bytes of one base, the higher storing the lower's value shifted
    right by ``8 * n`` bits, as one store twice as wide of the lower's value (clang's byte-wise copy of a MAC
    address or a 32-bit field: ``*(u8 *)(r7 +4) = r1; r1 >>= 8; *(u8 *)(r7 +5) = r1`` as ``*(u16 *)(r7 +4) =
    r1``), made where either store was; the shifts left dead go in a later step. Whether a load between
    them saw the bytes moved is the proof's to decide, whether the stack allows the width `stack_safe`'s."""
    out: list[tuple[Instruction, ...]] = []
    vals = shifted_values(code)
    stores = [(i, insn) for i, insn in enumerate(code)
              if insn.kind == Kind.STX and mode(insn.opcode) == Mode.MEM and size(insn.opcode).bytes in _WIDER]
    for i, lo in stores:
        n = size(lo.opcode).bytes
        value = vals[i][lo.src]
        for j, hi in stores:
            if size(hi.opcode).bytes != n or hi.off != lo.off + n or vals[j][hi.dst] != vals[i][lo.dst] \
                    or vals[j][hi.src] != (value[0], value[1] + 8 * n):
                continue
            wide = InsnClass.STX | Mode.MEM | _WIDER[n]
            out.append(tuple(Instruction(wide, lo.dst, lo.src, lo.off) if k == i else insn
                             for k, insn in enumerate(code) if k != j))
            # At the higher store's place, from a register holding the lower's value there (if one does).
            src = next((r for r in range(10) if vals[j][r] == value), None)
            if src is not None:
                out.append(tuple(Instruction(wide, hi.dst, src, lo.off) if k == j else insn
                                 for k, insn in enumerate(code) if k != i))
    return out


def _wider_copies(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """Two copies of ``n`` bytes each, from adjacent bytes of one base to adjacent bytes of another, as one
    copy twice as wide: ``r2 = *(u8 *)(r1 +4); *(u8 *)(r1 +10) = r2; r2 = *(u8 *)(r1 +5); *(u8 *)(r1 +11) =
    r2`` as ``r2 = *(u16 *)(r1 +4); *(u16 *)(r1 +10) = r2`` (a load at least ``n`` wide stored with ``n``
    bytes copies its low ``n``). Whether the first store changed what the second load read (the two bases
    may alias) is the proof's to decide; whether the registers loaded were dead after, too."""
    out: list[tuple[Instruction, ...]] = []
    vals = shifted_values(code)
    loads = {i: insn for i, insn in enumerate(code) if insn.kind == Kind.LDX and mode(insn.opcode) == Mode.MEM}
    copies = [(i, j, code[i], st) for j, st in enumerate(code)
              if st.kind == Kind.STX and mode(st.opcode) == Mode.MEM and size(st.opcode).bytes in _WIDER
              for i in loads if i < j and vals[j][st.src] == (i, 0)
              and size(code[i].opcode).bytes >= size(st.opcode).bytes]
    for i1, j1, ld1, st1 in copies:
        n = size(st1.opcode).bytes
        for i2, j2, ld2, st2 in copies:
            if size(st2.opcode).bytes != n or ld2.off != ld1.off + n or st2.off != st1.off + n \
                    or vals[i2][ld2.src] != vals[i1][ld1.src] or vals[j2][st2.dst] != vals[j1][st1.dst] \
                    or len({i1, j1, i2, j2}) < 4:
                continue
            wide_ld = Instruction(InsnClass.LDX | Mode.MEM | _WIDER[n], ld1.dst, ld1.src, ld1.off)
            wide_st = Instruction(InsnClass.STX | Mode.MEM | _WIDER[n], st1.dst, st1.src, st1.off)
            new = {i1: wide_ld, j1: wide_st}
            out.append(tuple(new.get(k, insn) for k, insn in enumerate(code) if k not in (i2, j2)))
    return out


def _wider_loads(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """Two loads of adjacent bytes from one base (clang's byte-by-byte reads of a 16-bit field), and what
    combines them, replaced by one load twice as wide into any register the span writes."""
    out: list[tuple[Instruction, ...]] = []
    loads = [(i, insn) for i, insn in enumerate(code) if insn.kind == Kind.LDX]
    for a, (i, x) in enumerate(loads):
        for j, y in loads[a + 1:]:
            n = size(x.opcode).bytes
            if x.src != y.src or size(y.opcode).bytes != n or abs(x.off - y.off) != n or n not in _WIDER:
                continue
            writes = sorted({w.dst for w in code[i:j + 4] if w.kind not in (Kind.ST, Kind.STX)})
            for end in range(j + 1, min(j + 4, len(code)) + 1):
                for dst in writes:
                    load = Instruction(InsnClass.LDX | Mode.MEM | _WIDER[n], dst, x.src, min(x.off, y.off))
                    out.append((*code[:i], load, *code[end:]))
    return out




def _remainders(code: tuple[Instruction, ...]) -> list[tuple[Instruction, ...]]:
    """A remainder clang computes by dividing a copy by a constant: ``t = x; t /= K; t *= K; x -= t`` as ``x %= K``
    (3 slots fewer); the proof decides whether ``t`` was dead after. (Where the copy is zero-extended first, or
    the divisor a register, Z3 does not decide the equality within 20M units: not offered.)"""
    out: list[tuple[Instruction, ...]] = []
    for m in range(3, len(code)):
        copy, div, mul, sub = code[m - 3:m + 1]
        x, t = sub.dst, sub.src
        if sub.opcode == InsnClass.ALU64 | AluOp.SUB | Source.X and x != t \
                and copy.opcode == _MOV64_X and copy.off == 0 and (copy.dst, copy.src) == (t, x) \
                and div.opcode == InsnClass.ALU64 | AluOp.DIV | Source.K and div.off == 0 \
                and mul.opcode == InsnClass.ALU64 | AluOp.MUL | Source.K and div.dst == mul.dst == t \
                and div.imm == mul.imm:
            mod = Instruction(InsnClass.ALU64 | AluOp.MOD | Source.K, x, 0, 0, div.imm)
            out.append((*code[:m - 3], mod, *code[m + 1:]))
    return out
