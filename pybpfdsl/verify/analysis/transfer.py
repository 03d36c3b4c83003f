"""Transfer functions: the abstract effect of one instruction, one function per instruction kind.

Each function takes the state before the instruction and returns ``(successor index, state)`` pairs
(a conditional jump returns up to two, refined for its edge; ``exit`` none). Violations go to the
sink; after a violation the analysis continues as if the instruction had done the least surprising
thing (a load yields an unknown scalar, a bad store is dropped) so later errors are still reported.

Long because the instruction set has some thirty kinds, each with its own rule and its own messages, and
they share the pointer and scalar helpers at the top; a split by kind would scatter those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from pybpfdsl.bpf.abi import Helper, MapType, XdpMd
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import (
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Kind,
    Source,
    alu_op,
    classify,
    insn_class,
    jmp_op,
    size,
    source,
)
from pybpfdsl.verify.analysis import cache as cc
from pybpfdsl.verify.analysis import helper_signatures as hp
from pybpfdsl.verify.analysis import locks as lk
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.abstract_state import (
    FP,
    Frame,
    State,
    restart_checked_length,
    unlink_null_id,
    unlink_packet_id,
)
from pybpfdsl.verify.analysis.checks import BPF_MAX_VAR_OFF, Code, Sink, check_access, exit_value_finding
from pybpfdsl.verify.analysis.values import (
    AT_END,
    BEYOND_END,
    MAY_END,
    UNINIT,
    CtxPtr,
    MapInfo,
    MapPtr,
    MapValue,
    MapValueOrNull,
    OneOf,
    PacketEnd,
    PacketMeta,
    PacketPtr,
    ScalarValue,
    StackPtr,
    Uninit,
    Unknown,
    Value,
    alternatives,
    is_pointer,
    join_values,
    offsettable,
    reach,
)
from pybpfdsl.verify.domains.scalar import Scalar

__all__ = ["Env", "step"]

# Exact caches over the (immutable) scalar domain: fixpoint iteration re-evaluates the same operations.
_alu = cc.alu
_refine = cc.refine
_const = cc.const
_add = cc.add

# Instruction decoding is cached by opcode fields (``Instruction.kind`` re-classifies on every access).
_kind = lru_cache(maxsize=None)(classify)
_cls = lru_cache(maxsize=None)(insn_class)
_source = lru_cache(maxsize=None)(source)
_alu_op = lru_cache(maxsize=None)(alu_op)
_jmp_op = lru_cache(maxsize=None)(jmp_op)
_size = lru_cache(maxsize=None)(size)

Succ = list[tuple[int, State]]
TOP = ScalarValue(Scalar.top())

# Enum members the hot paths compare with, looked up once: on Python 3.11 each ``Kind.X`` is a call through
# the enum metaclass' ``__getattr__`` hook (about 0.25 microseconds), and the analysis steps millions of times.
_MOV, _MOVSX, _SDIV, _END, _BSWAP, _ADDR_SPACE_CAST, _LDX_SX = (
    Kind.MOV, Kind.MOVSX, Kind.SDIV, Kind.END, Kind.BSWAP, Kind.ADDR_SPACE_CAST, Kind.LDX_SX)
_NBYTES = tuple(size(op).bytes for op in range(256))
"""A load's or store's width in bytes, by opcode (``size(opcode).bytes``, looked up once)."""
_ADD, _SUB, _ALU32, _K = AluOp.ADD, AluOp.SUB, InsnClass.ALU, Source.K
_JEQ, _JNE = JmpOp.JEQ, JmpOp.JNE
_NOT_POINTERS = frozenset({ScalarValue, Uninit, Unknown, OneOf})
"""The value classes :func:`.values.is_pointer` says no to: the classes are final, so ``type(v) not in`` this
set is that test without building the union of four classes it passes to ``isinstance`` at every call."""
_OFFSET_POINTERS = frozenset({PacketPtr, StackPtr, MapValue, CtxPtr, PacketMeta})
"""The pointers with an offset that :func:`_ptr_add` moves (final classes, see :data:`_NOT_POINTERS`)."""


@dataclass
class Env:
    """What the transfer functions need besides the state: the code and what its lddw's refer to."""

    insns: tuple[Instruction, ...]
    slot_to_index: dict[int, int]
    index_to_slot: list[int]
    map_refs: dict[int, tuple[MapInfo, int | None]] = field(default_factory=dict)
    """lddw index → (map, None) for a map pointer, (map, offset) for a pointer into its value."""
    check_division: bool = False
    allow_uninit_stack: bool = False
    """Reads of never-written stack give an unknown number (the kernel's rule for privileged loaders)."""
    thresholds: tuple[int, ...] = ()
    """Widening thresholds: the constants the program compares against (and their neighbours)."""
    call_entry: dict[int, int] = field(default_factory=dict)
    """bpf-to-bpf call → the entry of its callee's copy (see ``calls.expand``)."""
    return_to: dict[int, int] = field(default_factory=dict)
    """``exit`` of a callee's copy → the instruction after its call."""
    global_calls: dict[int, tuple[str, tuple[str, ...] | None, bool]] = field(default_factory=dict)
    """Call of a global function → its name, argument kinds ('ctx', 'scalar', 'mem:N', 'other'; see calls.py) and
    whether it may move the packet (then the caller's packet pointers are invalid after the call)."""
    inner_maps: dict[str, MapInfo] = field(default_factory=dict)
    """Map of maps (by name) → its inner map's definition (what its lookups give after the NULL check)."""
    callback_exits: set[int] = field(default_factory=set)
    """``exit`` of a bpf_loop callback's copy: it returns 0 (continue) or 1 (stop) to the helper."""
    global_root: bool = False
    """The code analysed is a global function: its exit returns a number to some caller, not an XDP action."""
    readonly: dict[str, bytes] = field(default_factory=dict)
    """Read-only global data (``.rodata`` sections, by name) → its bytes in the object. libbpf freezes such a map
    once filled, and the kernel reads a load from it at a constant offset as the number stored there
    (``bpf_map_direct_read``): a branch on it is decided, and the code behind the other edge never verified."""
    devmap: bool = False
    """The program runs from a devmap entry (section ``xdp/devmap``, the kernel's BPF_XDP_DEVMAP): its
    context also has ``egress_ifindex``, the 4 bytes at offset 20."""

    kinds: tuple[Kind, ...] = ()
    decoded: tuple[tuple[Transfer, tuple[int, ...], AluInsn | JmpInsn | None], ...] = field(
        default=(), init=False, repr=False)
    """Per instruction: its transfer function, the registers it reads (see :func:`step`) and, for
    ALU instructions and conditional jumps, their fields, decoded once: ``step`` runs hundreds of
    thousands of times per program."""

    def __post_init__(self) -> None:
        self.kinds = tuple(i.kind for i in self.insns)
        self.decoded = tuple(_decode(self, i, insn, kind)
                             for i, (insn, kind) in enumerate(zip(self.insns, self.kinds, strict=True)))
        if not self.thresholds:
            consts = {0}
            for insn in self.insns:
                if _kind(insn.opcode, insn.off, insn.imm) == Kind.JCOND and _source(insn.opcode) == Source.K:
                    for d in (-1, 0, 1):
                        consts.add(insn.imm + d)
                        consts.add((insn.imm + d) & 0xFFFFFFFF)
                        consts.add((insn.imm + d) & ((1 << 64) - 1))
            self.thresholds = tuple(sorted(consts))

    def target(self, idx: int, insn: Instruction) -> int:
        slot = insn.jump_target(self.index_to_slot[idx])
        if slot is None or slot not in self.slot_to_index:
            return -1
        return self.slot_to_index[slot]


def _read(s: State, r: int, idx: int, sink: Sink) -> Value:
    v = s.regs[r]
    if isinstance(v, Uninit):
        sink.report(Code.UNINIT_REG, idx, f"r{r} is read before it is written", r)
    return v


def _scalar_of(v: Value) -> Scalar:
    return v.value if isinstance(v, ScalarValue) else Scalar.top()


def _write_dst(s: State, r: int, v: Value, idx: int, sink: Sink) -> State:
    if r == FP:
        sink.report(Code.WRITE_R10, idx, "r10 (the frame pointer) is read-only", FP)
        return s
    return s.set_reg(r, v, idx)


def _sized(nbytes: int) -> ScalarValue:
    return _SIZED[nbytes]


_SIZED = {n: ScalarValue(cc.sized(n)) for n in (1, 2, 4, 8)}
"""Any number of 1, 2, 4 or 8 bytes (values are immutable: one object serves every load)."""


# --------------------------------------------------------------------------- #
# ALU
# --------------------------------------------------------------------------- #


def _offset_ok(off: Scalar) -> bool:
    return off.s64.lo > -BPF_MAX_VAR_OFF and off.s64.hi < BPF_MAX_VAR_OFF


def _ptr_add(s: State, idx: int, ptr: Value, delta: Scalar, sink: Sink, regs: tuple[int, ...]) -> tuple[State, Value]:
    """``ptr + delta``: the pointer types the kernel allows arithmetic on, with bounded offsets."""
    if not _offset_ok(delta):
        sink.report(Code.POINTER_ARITH, idx, f"pointer arithmetic with an unbounded scalar ({ScalarValue(delta)})",
                    *regs)
        return s, TOP
    t = type(ptr)
    if t in _OFFSET_POINTERS:
        off = _add(ptr.off, delta)  # type: ignore[union-attr]
        if not _offset_ok(off):
            # The kernel bounds the resulting offset too ("pointer offset 536870912 is not allowed").
            sink.report(Code.POINTER_ARITH, idx, f"pointer offset {ScalarValue(off)} would reach the kernel's "
                        f"bound of {BPF_MAX_VAR_OFF}", *regs)
            return s, TOP
    if t is PacketPtr:
        assert isinstance(ptr, PacketPtr)
        c = delta.const_value
        if c is not None and not ptr.end:
            signed = c - (1 << 64) if c >= 1 << 63 else c
            return s, PacketPtr(off, ptr.pid, ptr.delta + signed)
        # A variable offset, or a constant added to a pointer compared past packet_end (the kernel's range
        # of the sum is 0, not the packet length checked through other pointers): a new id, nothing proven.
        # The kernel's new id keeps the pointer's fixed offset apart from the new variable part (its
        # ``dst_reg->off = ptr_reg->off``): the base moves by the variable part only, so an access below
        # the pointer (``*(u8 *)(p - 1)``) is still measured from the fixed offset.
        s = unlink_packet_id(s, idx)
        return s.with_range(idx, 0), PacketPtr(off, idx, ptr.delta if c is None else 0)
    if t is StackPtr:
        return s, StackPtr(off)
    if t is MapValue:
        assert isinstance(ptr, MapValue)
        return s, MapValue(ptr.map, off, ptr.lid)
    if t is CtxPtr:
        return s, CtxPtr(off)
    if t is PacketMeta:
        return s, PacketMeta(off)
    if isinstance(ptr, MapValueOrNull):
        sink.report(Code.POINTER_ARITH, idx, f"arithmetic on {ptr} before its NULL check", *regs)
    else:
        sink.report(Code.POINTER_ARITH, idx, f"pointer arithmetic on {ptr} is not allowed", *regs)
    return s, TOP


def _alu_pointer(s: State, idx: int, insn: Instruction, op: AluOp, dv: Value, sv: Value, sink: Sink) -> State:
    regs = (insn.dst,) if _source(insn.opcode) is _K else (insn.dst, insn.src)
    if _cls(insn.opcode) is _ALU32:
        if op is _SUB and not isinstance(dv, MapValueOrNull):
            # The kernel lets privileged programs take a 32-bit difference (pkt_end - pkt: the length);
            # the result is a meaningless-but-harmless number.
            return _write_dst(s, insn.dst, _sized(4), idx, sink)
        sink.report(Code.POINTER_ARITH, idx, "32-bit arithmetic on a pointer is not allowed", *regs)
        return _write_dst(s, insn.dst, TOP, idx, sink)
    not_pointers = _NOT_POINTERS
    if op is _ADD and type(dv) not in not_pointers and type(sv) is ScalarValue:
        s, out = _ptr_add(s, idx, dv, sv.value, sink, regs)
    elif op is _ADD and type(sv) not in not_pointers and type(dv) is ScalarValue:
        s, out = _ptr_add(s, idx, sv, dv.value, sink, regs)
    elif op is _SUB and type(dv) not in not_pointers and type(sv) is ScalarValue:
        s, out = _ptr_add(s, idx, dv, cc.neg(sv.value), sink, regs)
    elif op is _SUB and type(dv) not in not_pointers and type(sv) not in not_pointers:
        # The kernel lets privileged programs subtract any two pointers (``data_end - data`` is the
        # packet length); the result is an unknown number.
        out = TOP
    else:
        sink.report(Code.POINTER_ARITH, idx, f"{op.name.lower()} on pointer operands ({dv}, {sv}) is not allowed",
                    *regs)
        out = TOP
    return _write_dst(s, insn.dst, out, idx, sink)


def _alu_unknown(s: State, idx: int, insn: Instruction, op: AluOp, dv: Value, sv: Value, sink: Sink) -> State:
    """ALU on a register whose type differs between paths (:class:`Unknown`): a pointer on some.

    The kernel checks each path with its own type, so the operation must be allowed on every type
    the register may have; we no longer know which, so only what is allowed on any pointer and any
    scalar passes: a 32-bit subtraction (a meaningless number for privileged loaders). Everything
    else is refused as the kernel refuses it on the pointer's path (``&=`` on a pointer, 32-bit
    pointer arithmetic, arithmetic on a packet end or a map pointer).
    """
    regs = (insn.dst,) if _source(insn.opcode) == Source.K else (insn.dst, insn.src)
    if _cls(insn.opcode) == InsnClass.ALU and op == AluOp.SUB:
        return _write_dst(s, insn.dst, _sized(4), idx, sink)
    if _cls(insn.opcode) == InsnClass.ALU64 and isinstance(dv, Unknown) and dv.offsettable \
            and isinstance(sv, ScalarValue) and op in (AluOp.ADD, AluOp.SUB):
        far = dv.reach + max(abs(sv.value.s64.lo), abs(sv.value.s64.hi))
        if far < BPF_MAX_VAR_OFF:
            # Allowed on each path (pointer +- a bounded number; number +- number): still unknown.
            return _write_dst(s, insn.dst, Unknown(True, far), idx, sink)
    which = [r for r, v in ((insn.dst, dv), (insn.src, sv)) if isinstance(v, Unknown) and r in regs]
    width = "32-bit " if _cls(insn.opcode) == InsnClass.ALU else ""
    sink.report(Code.POINTER_ARITH, idx,
                f"{width}{op.name.lower()} on r{which[0]}, which is a pointer on some paths and a different "
                f"type on others: the kernel checks each path and refuses this operation on a pointer", *regs)
    return _write_dst(s, insn.dst, TOP, idx, sink)


@dataclass(frozen=True, slots=True)
class AluInsn:
    """An ALU instruction decoded (once per program, see :attr:`Env.decoded`)."""

    op: AluOp
    is32: bool
    kind: Kind
    imm: ScalarValue | None
    """The immediate operand, or None when the source register is the operand."""
    plain: bool
    """Arithmetic on two numbers with nothing else to check (see :func:`alu`): not a move, byte
    swap or cast, nor a division by a register (which ``check_division`` checks)."""


def _decode_alu(insn: Instruction, kind: Kind) -> AluInsn:
    op = _alu_op(insn.opcode)
    assert op is not None
    use_imm = _source(insn.opcode) == Source.K or kind in (Kind.NEG, Kind.END, Kind.BSWAP)
    plain = kind in (Kind.ALU, Kind.SDIV, Kind.NEG) and (use_imm or op not in (AluOp.DIV, AluOp.MOD))
    return AluInsn(op, _cls(insn.opcode) == InsnClass.ALU, kind, ScalarValue(_const(insn.imm_sext)) if use_imm
                   else None, plain)


S32_MAX = (1 << 31) - 1


def _linked_add(dv: ScalarValue, sv: ScalarValue, op: AluOp, is32: bool, res: Scalar) -> ScalarValue:
    """``dv op sv`` (= ``res``) where ``dv`` is linked: the kernel keeps the link through one 64-bit ``+= k``
    (``0 <= k <= S32_MAX``, a constant), remembering k; any other operation ends it."""
    c = sv.value.const_value
    if op == AluOp.ADD and not is32 and dv.plus is None and c is not None and c <= S32_MAX:
        return ScalarValue(res, dv.link, c)
    return ScalarValue(res)


def _link_copy(s: State, src: int, sv: ScalarValue, idx: int) -> tuple[State, ScalarValue]:
    """``rD = rS`` (64-bit) of a number the kernel gives a new id (one not linked yet and not a constant, or
    one with a constant added): rS and its copy linked by ``idx``, after every older link of that name ends
    (this copy, run again, links a new number)."""
    s = _unlink_scalars(s, idx)
    sv = ScalarValue(sv.value, idx)
    regs = (*s.regs[:src], sv, *s.regs[src + 1:])
    return State(regs, s.defs, s.stack, s.pkt_min, s.ranges, s.frames, s.lock), sv


def _unlink(x: Value, link: int) -> Value:
    return ScalarValue(x.value) if type(x) is ScalarValue and x.link == link else x


def _unlink_scalars(s: State, link: int) -> State:
    """``s`` with no number linked by ``link`` (spills hold no links; callers' frames may)."""
    if s.frames:
        return s.map_values(lambda x: _unlink(x, link))
    if not any(type(x) is ScalarValue and x.link == link for x in s.regs):
        return s
    return State(tuple([_unlink(x, link) for x in s.regs]), s.defs, s.stack, s.pkt_min, s.ranges, s.frames, s.lock)


def _sync_links(s: State, reg: int) -> State:
    """After a comparison bounded ``reg`` (a linked number) on an edge the kernel walks with both ways open,
    every other register of this frame linked to it becomes ``reg``'s value plus the difference of their
    constants, as the kernel's ``sync_linked_regs`` copies it (the kernel also updates spills and callers'
    registers: fewer here is only less precise)."""
    known = s.regs[reg]
    assert type(known) is ScalarValue and known.link is not None
    regs = list(s.regs)
    changed = False
    base = known.plus or 0
    for i, x in enumerate(regs):
        if i != reg and type(x) is ScalarValue and x.link == known.link:
            delta = ((x.plus or 0) - base) & ((1 << 64) - 1)
            regs[i] = ScalarValue(_add(known.value, _const(delta)), x.link, x.plus)
            changed = True
    if not changed:
        return s
    return State(tuple(regs), s.defs, s.stack, s.pkt_min, s.ranges, s.frames, s.lock)


def alu(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    info = env.decoded[idx][2]
    assert isinstance(info, AluInsn)
    op, is32, kind = info.op, info.is32, info.kind
    if info.plain:  # the common case first: arithmetic on two numbers (nothing to report reading them)
        dv = s.regs[insn.dst]
        sv = info.imm if info.imm is not None else s.regs[insn.src]
        if type(dv) is ScalarValue and type(sv) is ScalarValue:
            res = _alu(op, dv.value, sv.value, is32, kind is _SDIV)
            if dv.link is not None:
                return [(idx + 1, _write_dst(s, insn.dst, _linked_add(dv, sv, op, is32, res), idx, sink))]
            return [(idx + 1, _write_dst(s, insn.dst, ScalarValue(res), idx, sink))]
    sv = info.imm if info.imm is not None else _read(s, insn.src, idx, sink)
    if kind is _MOV:
        if not is32:
            if type(sv) is ScalarValue and info.imm is None and (sv.link is None or sv.plus is not None) and (
                    sv.link is not None or sv.value.const_value is None):
                s, sv = _link_copy(s, insn.src, sv, idx)
            return [(idx + 1, _write_dst(s, insn.dst, sv, idx, sink))]
        out = ScalarValue(cc.truncate(sv.value, 32)) if isinstance(sv, ScalarValue) else _sized(4)
        return [(idx + 1, _write_dst(s, insn.dst, out, idx, sink))]
    if kind is _MOVSX:
        out = ScalarValue(cc.movsx(_scalar_of(sv), insn.off, alu32=is32))
        return [(idx + 1, _write_dst(s, insn.dst, out, idx, sink))]
    dv = _read(s, insn.dst, idx, sink)
    if kind is _END or kind is _BSWAP:
        d = _scalar_of(dv)
        res = cc.bswap(d, insn.imm) if kind == Kind.BSWAP else cc.end(d, _source(insn.opcode) == Source.X, insn.imm)
        if is_pointer(dv):
            sink.report(Code.POINTER_ARITH, idx, "byte swap of a pointer", insn.dst)
        return [(idx + 1, _write_dst(s, insn.dst, ScalarValue(res), idx, sink))]
    if kind is _ADDR_SPACE_CAST:
        sink.report(Code.UNSUPPORTED, idx, "arena address-space casts are not supported")
        return [(idx + 1, _write_dst(s, insn.dst, TOP, idx, sink))]
    if type(dv) not in _NOT_POINTERS or type(sv) not in _NOT_POINTERS:  # (``is_pointer``, see _NOT_POINTERS)
        return [(idx + 1, _alu_pointer(s, idx, insn, op, dv, sv, sink))]
    if isinstance(dv, Unknown) or isinstance(sv, Unknown):
        return [(idx + 1, _alu_unknown(s, idx, insn, op, dv, sv, sink))]
    a, b = _scalar_of(dv), _scalar_of(sv)
    if op in (AluOp.DIV, AluOp.MOD) and env.check_division and _source(insn.opcode) == Source.X:
        divisor = b.subreg() if is32 else b
        if divisor.contains(0):
            sink.report(Code.DIV_ZERO, idx, f"divisor r{insn.src} ({sv}) may be zero", insn.src)
    res = _alu(op, a, b, is32, kind is _SDIV)
    return [(idx + 1, _write_dst(s, insn.dst, ScalarValue(res), idx, sink))]


# --------------------------------------------------------------------------- #
# Loads and stores
# --------------------------------------------------------------------------- #


def lddw(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    ref = env.map_refs.get(idx)
    if ref is not None:
        m, off = ref
        v: Value = MapPtr(m) if off is None else MapValue(m, _const(off))
    elif insn.src == 0:
        v = ScalarValue(_const(insn.imm64))
    else:
        sink.report(Code.UNSUPPORTED, idx, f"lddw with pseudo source {insn.src} and no relocation to resolve it")
        v = TOP
    return [(idx + 1, _write_dst(s, insn.dst, v, idx, sink))]


def _ctx_field(insn_off: int) -> Value:
    if insn_off == 0:
        return PacketPtr(_const(0))
    if insn_off == 4:
        return PacketEnd()
    if insn_off == 8:
        return PacketMeta(_const(0))
    return _sized(4)


def _loaded(s: State, ptr: Value, insn_off: int, nbytes: int, signed: bool) -> Value:
    t = type(ptr)
    if t is CtxPtr:
        return _ctx_field(insn_off)
    v: Value
    if t is StackPtr and (c := ptr.off.const_value) is not None:  # type: ignore[union-attr]
        cs = c - (1 << 64) if c >= 1 << 63 else c
        v = stk.read(s.stack, cs + insn_off, nbytes)
    else:
        v = _SIZED[nbytes]
    if signed:
        return ScalarValue(cc.movsx(_scalar_of(v), 8 * nbytes)) if isinstance(v, ScalarValue) else TOP
    return v




def ldx(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    nbytes = _NBYTES[insn.opcode]
    ptr = s.regs[insn.src]
    if env.devmap and isinstance(ptr, CtxPtr) and ptr.off.const_value == 0 and insn.off == XdpMd.EGRESS_IFINDEX \
            and nbytes == 4 and _kind(insn.opcode, insn.off, insn.imm) == Kind.LDX:
        return [(idx + 1, _write_dst(s, insn.dst, _sized(4), idx, sink))]
    msg, code = check_access(s, ptr, insn.off, nbytes, is_write=False, allow_uninit=env.allow_uninit_stack)
    if msg is not None:
        sink.report(code, idx, msg, insn.src)
        v: Value = _sized(nbytes)
    else:
        v = _loaded(s, ptr, insn.off, nbytes, env.kinds[idx] is _LDX_SX)
        if isinstance(ptr, CtxPtr) and isinstance(v, PacketPtr):  # ctx->data read (again): a new pointer
            s = restart_checked_length(s, idx)
        elif type(ptr) is MapValue and env.readonly and (data := env.readonly.get(ptr.map.name)) is not None:
            v = _read_only(data, ptr, insn.off, nbytes, env.kinds[idx] is _LDX_SX, v)
    return [(idx + 1, _write_dst(s, insn.dst, v, idx, sink))]


def _read_only(data: bytes, ptr: MapValue, insn_off: int, nbytes: int, signed: bool, v: Value) -> Value:
    """A load from frozen read-only data: the number stored there when the offset is constant (else ``v``)."""
    c = ptr.off.const_value
    if c is None or nbytes not in (1, 2, 4, 8):
        return v
    at = c + insn_off
    if not 0 <= at <= len(data) - nbytes:
        return v
    n = int.from_bytes(data[at:at + nbytes], "little", signed=signed)
    return ScalarValue(_const(n & ((1 << 64) - 1)))


def _store(s: State, ptr: Value, insn_off: int, nbytes: int, value: Value) -> State:
    if not isinstance(ptr, StackPtr):
        return s  # packet and map-value contents are not tracked
    c = ptr.off.const_value
    if c is not None:
        cs = c - (1 << 64) if c >= 1 << 63 else c
        return s.with_stack(stk.write(s.stack, cs + insn_off, nbytes, value))
    lo, hi = ptr.off.s64.lo + insn_off, ptr.off.s64.hi + insn_off + nbytes
    return s.with_stack(stk.write_unknown_range(s.stack, max(lo, -stk.STACK_SIZE), min(hi, 0)))


def st(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    nbytes = _NBYTES[insn.opcode]
    ptr = s.regs[insn.dst]
    if isinstance(ptr, CtxPtr):
        sink.report(Code.CTX_ACCESS, idx, "store of an immediate through the context pointer", insn.dst)
        return [(idx + 1, s)]
    msg, code = check_access(s, ptr, insn.off, nbytes, is_write=True)
    if msg is not None:
        sink.report(code, idx, msg, insn.dst)
        return [(idx + 1, s)]
    # The sign-extended immediate, untruncated: the kernel spills it so (a read truncates it).
    return [(idx + 1, _store(s, ptr, insn.off, nbytes, ScalarValue(_const(insn.imm_sext))))]


def stx(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    nbytes = _NBYTES[insn.opcode]
    ptr = s.regs[insn.dst]
    value = _read(s, insn.src, idx, sink)
    msg, code = check_access(s, ptr, insn.off, nbytes, is_write=True)
    if msg is not None:
        sink.report(code, idx, msg, insn.dst)
        return [(idx + 1, s)]
    pointer = type(value) not in _NOT_POINTERS  # (``is_pointer``, see _NOT_POINTERS)
    if pointer and not isinstance(ptr, StackPtr):
        sink.report(Code.POINTER_LEAK, idx, f"storing a pointer ({value}) into {ptr} leaks it", insn.src)
    elif nbytes < 8 and (pointer or isinstance(value, Unknown)):
        # The kernel spills pointers only whole ("invalid size of register spill", even for root); a
        # register that is a pointer on some paths is refused on those paths.
        sink.report(Code.POINTER_LEAK, idx, f"{nbytes}-byte store of r{insn.src} ({value}) to the stack: a "
                    "pointer can only be spilled whole (8 bytes)", insn.src)
    if isinstance(value, Uninit) or (pointer and nbytes < 8):
        value = TOP
    return [(idx + 1, _store(s, ptr, insn.off, nbytes, value))]


def atomic(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    nbytes = _NBYTES[insn.opcode]
    ptr = s.regs[insn.dst]
    value = _read(s, insn.src, idx, sink)
    if not isinstance(ptr, MapValue | StackPtr):
        sink.report(Code.BAD_POINTER, idx, f"atomic operation on {ptr}: only map values and the stack allow it",
                    insn.dst)
        return [(idx + 1, s)]
    for is_write in (False, True):
        msg, code = check_access(s, ptr, insn.off, nbytes, is_write=is_write,
                                 allow_uninit=env.allow_uninit_stack)
        if msg is not None:
            sink.report(code, idx, msg, insn.dst)
            return [(idx + 1, s)]
    if is_pointer(value):
        sink.report(Code.POINTER_LEAK, idx, f"atomic operation stores a pointer ({value})", insn.src)
    try:
        aop = AtomicOp(insn.imm)
    except ValueError:
        sink.report(Code.INVALID_INSN, idx, f"unknown atomic operation {insn.imm:#x}")
        return [(idx + 1, s)]
    s = _store(s, ptr, insn.off, nbytes, TOP if nbytes == 8 else _sized(nbytes))
    if aop == AtomicOp.CMPXCHG:
        _read(s, 0, idx, sink)
        s = s.set_reg(0, _sized(nbytes), idx)
    elif aop.fetches:
        s = _write_dst(s, insn.src, _sized(nbytes), idx, sink)
    return [(idx + 1, s)]


# --------------------------------------------------------------------------- #
# Jumps
# --------------------------------------------------------------------------- #


def _null_edge(s: State, v: MapValueOrNull, reg: int, is_null: bool) -> State:
    """On the edge where the lookup result is NULL (or not), every copy of it learns so."""
    # The kernel keeps the lookup's id on a value with a spin lock: it names the lock taken through it.
    lid = v.nid if v.map.lock is not None else None
    new: Value = ScalarValue(_const(0)) if is_null else MapValue(v.map, v.off, lid)
    if not is_null and v.map.map_type >= hp.INNER_MAP_TAG:  # a map of maps' entry: the inner map itself
        new = MapPtr(replace(v.map, map_type=v.map.map_type - hp.INNER_MAP_TAG))

    def fn(x: Value) -> Value:
        return new if isinstance(x, MapValueOrNull) and x.nid is not None and x.nid == v.nid else x

    if v.nid is not None and _copies_may_remain(s, reg):
        s = s.map_values(fn)
    regs = (*s.regs[:reg], new, *s.regs[reg + 1:])
    return State(regs, s.defs, s.stack, s.pkt_min, s.ranges, s.frames, s.lock)


def _copies_may_remain(s: State, reg: int) -> bool:
    """Whether a register other than ``reg``, a spill or a caller's frame may hold a lookup result (a copy of
    the one checked): else the walk over the whole state that :func:`_null_edge` makes would change ``reg``
    alone, which it sets anyway (most checks: the result is tested in the register it came back in)."""
    if s.frames:
        return True
    for i, x in enumerate(s.regs):
        if type(x) is MapValueOrNull and i != reg:
            return True
    return any(type(x) is MapValueOrNull for _, x in stk.spilled_values(s.stack))


_FLIP = {JmpOp.JGT: JmpOp.JLT, JmpOp.JGE: JmpOp.JLE, JmpOp.JLT: JmpOp.JGT, JmpOp.JLE: JmpOp.JGE,
         JmpOp.JEQ: JmpOp.JEQ, JmpOp.JNE: JmpOp.JNE}


_DECIDING = (AT_END, BEYOND_END)
"""The marks that decide a comparison with packet_end (not :data:`MAY_END`: marked on some paths only)."""

_PAST_END = {JmpOp.JGT: (True, BEYOND_END), JmpOp.JGE: (True, AT_END), JmpOp.JLT: (False, AT_END),
             JmpOp.JLE: (False, BEYOND_END)}
"""``p op packet_end``: on which edge (taken or not) ``p`` is past the end, and how far (its mark)."""


def _unmarker(pid: object) -> Callable[[Value], Value]:
    """After a check through a pointer of id ``pid`` passes: the kernel sets the range of the registers with
    that id (``find_good_pkt_pointers``: the larger of theirs and the new one), which clears their marks; a
    mark on a pointer of another id stays on the kernel's path, so it becomes :data:`MAY_END` here (our ids
    after a join are not the kernel's: no access through it, no jump decided by it)."""
    def unmark(x: Value) -> Value:
        if type(x) is not PacketPtr or not x.end:
            return x
        return PacketPtr(x.off, x.pid, x.delta, 0 if x.pid == pid else MAY_END)
    return unmark


def _packet_edge(s: State, reg: int, p: PacketPtr, op: JmpOp, taken: bool) -> State | None:
    """``p op packet_end`` (64-bit) on one edge: None if the kernel decides the jump the other way; else, where
    it implies ``p <= packet_end``, the proven range, and where ``p >= packet_end`` (``>``), ``reg``'s mark.

    The kernel marks the compared register alone (``mark_pkt_end``), then decides a comparison of it with
    packet_end by the mark (``is_pkt_ptr_branch_taken``): ``>`` and ``<=`` by BEYOND_END, ``>=`` and ``<``
    by either mark. A check that passes sets the range of every pointer with the checked one's id, which
    clears their marks; another id's mark stays, as :data:`MAY_END` here (`_unmarker`)."""
    past = _PAST_END.get(op)
    if past is None:
        return s
    past_if_taken, mark = past
    if p.end in _DECIDING and (p.end == BEYOND_END or mark == AT_END) and taken != past_if_taken:
        return None  # the kernel decides this jump: the edge where p is within the packet is not walked
    if taken == past_if_taken:
        end = max(mark, p.end) if p.end in _DECIDING else mark
        regs = (*s.regs[:reg], PacketPtr(p.off, p.pid, p.delta, end), *s.regs[reg + 1:])
        return State(regs, s.defs, s.stack, s.pkt_min, s.ranges, s.frames, s.lock)
    if s.frames or any(type(x) is PacketPtr and x.end for x in s.regs) or any(
            type(x) is PacketPtr and x.end for _, x in stk.spilled_values(s.stack)):
        s = s.map_values(_unmarker(p.pid))
    # The kernel extends the checked length of pointers at constant offsets (its id 0) only through
    # one of them: a check through a pointer with a variable offset proves nothing for them there.
    lo = p.off.const_value
    if p.pid is None and lo is not None and s.pkt_min < lo < 1 << 63:
        s = State(s.regs, s.defs, s.stack, lo, s.ranges, s.frames, s.lock)
    if p.pid is not None and s.range_of(p.pid) is not None and p.off.s64.hi <= 0xFFFF:
        s = s.with_range(p.pid, p.delta)
    return s


@dataclass(frozen=True, slots=True)
class JmpInsn:
    """A conditional jump decoded (once per program, see :attr:`Env.decoded`)."""

    op: JmpOp
    is32: bool
    imm: ScalarValue | None
    """The immediate operand, or None when the source register is the operand."""
    target: int


def _decode_jmp(env: Env, idx: int, insn: Instruction) -> JmpInsn:
    op = _jmp_op(insn.opcode)
    assert op is not None
    use_k = _source(insn.opcode) == Source.K
    return JmpInsn(op, _cls(insn.opcode) == InsnClass.JMP32, ScalarValue(_const(insn.imm_sext)) if use_k else None,
                   env.target(idx, insn))


def _branch(env: Env, idx: int, insn: Instruction, s: State, sink: Sink, taken: bool) -> State | None:
    info = env.decoded[idx][2]
    assert isinstance(info, JmpInsn)
    op, is32 = info.op, info.is32
    use_k = info.imm is not None
    dv = s.regs[insn.dst]
    sv: Value = info.imm if info.imm is not None else s.regs[insn.src]
    if type(dv) is ScalarValue and type(sv) is ScalarValue:
        r = _refine(op, is32, dv.value, sv.value, taken)
        if r is None:
            return None
        regs = list(s.regs)
        regs[insn.dst] = ScalarValue(r[0])
        if not use_k:
            regs[insn.src] = ScalarValue(r[1])
        return State(tuple(regs), s.defs, s.stack, s.pkt_min, s.ranges, s.frames, s.lock)
    if is32:
        return s
    for reg, v, other in ((insn.dst, dv, sv), (None if use_k else insn.src, sv, dv)):
        if reg is None:
            continue
        if isinstance(v, MapValueOrNull) and isinstance(other, ScalarValue) and other.value.const_value == 0 and (
                op is _JEQ or op is _JNE):
            return _null_edge(s, v, reg, is_null=(op is _JEQ) == taken)
    if isinstance(dv, PacketPtr) and isinstance(sv, PacketEnd):
        return _packet_edge(s, insn.dst, dv, op, taken)
    if isinstance(sv, PacketPtr) and isinstance(dv, PacketEnd) and op in _FLIP:
        return _packet_edge(s, insn.src, sv, _FLIP[op], taken)
    return s


def _linked_edge(s: State, insn: Instruction, by_reg: bool) -> State:
    """One edge of a comparison of numbers, the kernel's ``sync_linked_regs`` done for the source register
    and then the destination (none when the two are linked to each other: which copy would win)."""
    dv = s.regs[insn.dst]
    sv = s.regs[insn.src] if by_reg else None
    assert type(dv) is ScalarValue
    if type(sv) is ScalarValue and sv.link is not None:
        if sv.link == dv.link:
            return s
        s = _sync_links(s, insn.src)
    if dv.link is not None:
        s = _sync_links(s, insn.dst)
    return s


def jcond(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    info = env.decoded[idx][2]
    assert isinstance(info, JmpInsn)
    dv = s.regs[insn.dst]
    sv: Value = info.imm if info.imm is not None else s.regs[insn.src]
    if type(dv) is not ScalarValue or type(sv) is not ScalarValue:  # (two numbers: nothing to report)
        _read(s, insn.dst, idx, sink)
        if info.imm is None:
            _read(s, insn.src, idx, sink)
    else:
        # Two numbers (most jumps): each edge refines them (what _branch does for them, written out).
        out: Succ = []
        for t, taken in ((idx + 1, False), (info.target, True)):
            r = _refine(info.op, info.is32, dv.value, sv.value, taken)
            if r is None:
                continue
            regs = list(s.regs)
            regs[insn.dst] = ScalarValue(r[0], dv.link, dv.plus) if dv.link is not None else ScalarValue(r[0])
            if info.imm is None:
                regs[insn.src] = ScalarValue(r[1], sv.link, sv.plus) if sv.link is not None else ScalarValue(r[1])
            out.append((t, State(tuple(regs), s.defs, s.stack, s.pkt_min, s.ranges, s.frames, s.lock)))
        if len(out) == 2 and (dv.link is not None or (info.imm is None and sv.link is not None)):
            out = [(t, _linked_edge(x, insn, info.imm is None)) for t, x in out]
        return out
    out = []
    fall = _branch(env, idx, insn, s, sink, taken=False)
    if fall is not None:
        out.append((idx + 1, fall))
    jumped = _branch(env, idx, insn, s, sink, taken=True)
    if jumped is not None:
        out.append((info.target, jumped))
    return out


def ja(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    return [(env.target(idx, insn), s)]


def may_goto(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    return [(idx + 1, s), (env.target(idx, insn), s)]


def exit_(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    lk.check_unlocked(s, idx, sink, "an exit")
    back = env.return_to.get(idx)
    if back is not None and s.frames:
        if idx in env.callback_exits:
            r0 = s.regs[0]
            if not (isinstance(r0, ScalarValue) and r0.value.u64.hi <= 1):
                sink.report(Code.EXIT_VALUE, idx, f"a bpf_loop callback returns 0 (go on) or 1 (stop); r0 is {r0}", 0)
            s = s.set_reg(0, TOP, idx)  # bpf_loop returns the number of iterations it ran
        return [(back, _return(idx, s, sink))]
    if env.global_root:
        if not isinstance(s.regs[0], ScalarValue):
            sink.report(Code.EXIT_VALUE, idx, f"a global function must return a number; r0 is {s.regs[0]}", 0)
        return []
    finding = exit_value_finding(s.regs[0], [env.insns[d] for d in s.defs[0] if 0 <= d < len(env.insns)])
    if finding is not None:
        sink.report(finding[0], idx, finding[1], 0)
    return []


# --------------------------------------------------------------------------- #
# Helper calls
# --------------------------------------------------------------------------- #


def _mem_arg(s: State, v: Value, nbytes_lo: int, nbytes_hi: int, need_init: bool,
             allow_uninit: bool = False) -> str | None:
    """Whether ``v`` points at ``nbytes_hi`` accessible bytes (initialised, when read by the helper)."""
    if nbytes_hi == 0:
        return None
    if isinstance(v, StackPtr):
        lo = v.off.s64.lo
        if lo < -stk.STACK_SIZE or v.off.s64.hi + nbytes_hi > 0:
            return f"{v} with {nbytes_hi} bytes is outside the stack frame"
        if need_init and not allow_uninit and not stk.initialised(s.stack, lo, v.off.s64.hi + nbytes_hi):
            return f"the {nbytes_hi} bytes at {v} are not all initialised"
        return None
    if isinstance(v, PacketPtr | MapValue):
        msg, _ = check_access(s, v, 0, nbytes_hi, is_write=not need_init)
        return msg
    return f"{v} is not a pointer to memory"


def _type_list(types: frozenset[int]) -> str:
    return ", ".join(hp.map_type_name(t) for t in sorted(types))


def _check_args(env: Env, idx: int, helper: int, sig: hp.HelperSig, s: State,
                sink: Sink) -> tuple[State, MapInfo | None]:
    the_map: MapInfo | None = None
    for i, kind in enumerate(sig.args):
        r = i + 1
        v = s.regs[r]
        if isinstance(v, Uninit):
            sink.report(Code.HELPER_ARG, idx, f"{sig.name}: argument r{r} is uninitialised", r)
            continue
        problem: str | None = None
        if kind == hp.Arg.MAP:
            if isinstance(v, MapPtr):
                the_map = v.map
                allowed = hp.HELPER_MAP_TYPES.get(helper)
                if allowed is not None and v.map.map_type not in allowed:
                    problem = (f"map {v.map.name} is a {hp.map_type_name(v.map.map_type)} map, which {sig.name} "
                               f"does not take (it takes {_type_list(allowed)})")
            else:
                problem = f"expected a map, got {v}"
        elif kind in (hp.Arg.KEY, hp.Arg.VALUE):
            if the_map is None:
                problem = "no map argument to size this pointer by"
            else:
                n = the_map.key_size if kind == hp.Arg.KEY else the_map.value_size
                problem = _mem_arg(s, v, n, n, need_init=True, allow_uninit=env.allow_uninit_stack)
        elif kind in (hp.Arg.MEM, hp.Arg.UNINIT_MEM, hp.Arg.RW_MEM):
            sz = s.regs[r + 1]
            if not isinstance(sz, ScalarValue):
                problem = f"the size argument r{r + 1} is not a number"
            elif sz.value.u64.hi > stk.STACK_SIZE * 128:
                problem = f"the size argument r{r + 1} ({sz}) is unbounded"
            else:
                problem = _mem_arg(s, v, sz.value.u64.lo, sz.value.u64.hi, need_init=kind != hp.Arg.UNINIT_MEM,
                                   allow_uninit=env.allow_uninit_stack)
                if problem is None and kind == hp.Arg.RW_MEM:
                    problem = _mem_arg(s, v, sz.value.u64.lo, sz.value.u64.hi, need_init=False)
                if problem is None and kind != hp.Arg.MEM and isinstance(v, StackPtr):
                    base = v.off.const_value
                    nbytes = sz.value.const_value
                    if base is not None and nbytes is not None:
                        cs = base - (1 << 64) if base >= 1 << 63 else base
                        for off in range(cs, min(cs + nbytes, 0)):
                            s = s.with_stack(stk.write(s.stack, off, 1, None))
                    else:  # written somewhere in the range the pointer and size allow: all unknown now
                        lo = v.off.s64.lo
                        hi = v.off.s64.hi + sz.value.u64.hi
                        s = s.with_stack(stk.write_unknown_range(s.stack, max(lo, -stk.STACK_SIZE), min(hi, 0)))
        elif kind in (hp.Arg.SIZE, hp.Arg.SIZE_OR_ZERO):
            if not isinstance(v, ScalarValue):
                problem = f"expected a size, got {v}"
            elif kind == hp.Arg.SIZE and v.value.u64.lo == 0:
                problem = f"size {v} may be zero"
        elif kind == hp.Arg.CTX:
            if not (isinstance(v, CtxPtr) and v.off.const_value == 0):
                problem = f"expected the context pointer, got {v}"
        elif kind == hp.Arg.SCALAR and not isinstance(v, ScalarValue):
            problem = f"expected a number, got {v}"
        elif kind == hp.Arg.CALLBACK and not (isinstance(v, MapPtr) and v.map.map_type == hp.CALLBACK_TYPE):
            problem = f"expected a function of the program, got {v}"
        elif kind == hp.Arg.STACK_OR_NULL and not (
                (isinstance(v, StackPtr) and v.off.const_value is not None and v.off.s64.lo >= -stk.STACK_SIZE)
                or (isinstance(v, ScalarValue) and v.value.const_value == 0)):
            problem = f"expected a pointer into the stack at a constant offset, or 0; got {v}"
        if problem is not None:
            sink.report(Code.HELPER_ARG, idx, f"{sig.name}: argument r{r}: {problem}", r)
    return s, the_map


def _invalidate_packet(s: State) -> State:
    def fn(v: Value) -> Value:
        if isinstance(v, OneOf):
            out: Value | None = None
            for a in v.alts:
                a = fn(a)
                out = a if out is None else join_values(out, a)
            assert out is not None
            return out
        return TOP if isinstance(v, PacketPtr | PacketEnd | PacketMeta) else v

    s = s.map_values(fn)
    return State(s.regs, s.defs, s.stack, 0, (), s.frames, s.lock)


def _return(idx: int, s: State, sink: Sink) -> State:
    """The callee's ``exit``: the caller's frame comes back with r0 from the callee, r1-r5 clobbered."""
    r0 = s.regs[0]  # may be uninitialised: the kernel objects only when the caller reads it
    if isinstance(r0, StackPtr):
        sink.report(Code.BAD_POINTER, idx, f"the function returns a pointer to its own stack ({r0}), which is "
                    "gone once it returns", 0)
        r0 = TOP
    elif isinstance(r0, MapValue) and r0.map.map_type == CALLER_STACK:
        r0 = Unknown()  # the caller's own stack, seen as memory: not usable beside its tracked stack
    caller = s.frames[-1]
    regs = (r0, *(UNINIT,) * 5, *caller.regs[6:])
    defs = (frozenset((idx,)),) * 6 + caller.defs[6:]
    stack = caller.stack
    if caller.exposed < 0:
        stack = stk.write_unknown_range(stack, max(caller.exposed, -stk.STACK_SIZE), 0)
    return State(regs, defs, stack, s.pkt_min, s.ranges, s.frames[:-1], s.lock)


CALLER_STACK = -1
"""The map type of the memory a callee sees through a pointer to its caller's stack (see ``_subprogram_call``)."""
GLOBAL_ARG_MEM = -4
"""The map type of the memory a global function sees through a pointer argument (``mem:N``)."""


def _global_call(env: Env, idx: int, s: State, sink: Sink) -> Succ:
    """A call of a global function: its arguments checked against its prototype; it returns a number."""
    name, args, moves_packet = env.global_calls[idx]
    if args is None:
        sink.report(Code.UNSUPPORTED, idx, f"call of global function {name}: the object has no BTF prototype "
                    "for it, which the kernel needs to verify it")
        args = ()
    for i, kind in enumerate(args[:5]):
        r = i + 1
        v = s.regs[r]
        if isinstance(v, Uninit):
            sink.report(Code.UNINIT_REG, idx, f"r{r} (argument {i + 1} of {name}) is not set", r)
        elif kind == "ctx" and not (isinstance(v, CtxPtr) and v.off.const_value == 0):
            sink.report(Code.HELPER_ARG, idx, f"{name} takes the context pointer as argument {i + 1}; r{r} is {v}",
                        r)
        elif kind == "scalar" and not isinstance(v, ScalarValue):
            sink.report(Code.HELPER_ARG, idx, f"{name} takes a number as argument {i + 1}; r{r} is {v}", r)
        elif kind.startswith("mem:"):
            # A pointer to sizeof(*arg) bytes the function may read and write, or NULL.
            n = int(kind[4:])
            if not (isinstance(v, ScalarValue) and v.value.const_value == 0):
                problem = _mem_arg(s, v, n, n, need_init=True, allow_uninit=env.allow_uninit_stack) or _mem_arg(
                    s, v, n, n, need_init=False)
                if problem is not None:
                    sink.report(Code.HELPER_ARG, idx, f"argument {i + 1} of {name} (a pointer to {n} bytes, or "
                                f"NULL): {problem}", r)
                elif isinstance(v, StackPtr):
                    s = s.with_stack(stk.write_unknown_range(s.stack, max(v.off.s64.lo, -stk.STACK_SIZE),
                                                             min(v.off.s64.hi + n, 0)))
        elif kind == "other":
            sink.report(Code.UNSUPPORTED, idx, f"argument {i + 1} of global function {name} is a pointer to memory "
                        "of no known size: not modelled by this verifier", r)
    if moves_packet:
        s = _invalidate_packet(s)
    return [(idx + 1, s.after_call(TOP, idx))]


def _subprogram_call(env: Env, idx: int, s: State, sink: Sink) -> Succ:
    """A bpf-to-bpf call: a new frame (r1-r5 passed, its own stack and r10), the caller's saved."""
    if idx in env.global_calls:
        return _global_call(env, idx, s, sink)
    entry = env.call_entry.get(idx)
    if entry is None:
        sink.report(Code.UNSUPPORTED, idx, "this bpf-to-bpf call is not analysed (see the call's other findings)")
        return []
    return [(entry, _enter(idx, s, {r: s.regs[r] for r in range(1, 6)}, sink))]


def _enter(idx: int, s: State, args: dict[int, Value], sink: Sink) -> State:
    """The state at a callee's entry: ``args`` in its registers, its own empty stack and r10, the caller
    (``s``) saved as a frame."""
    regs: list[Value] = [UNINIT] * len(s.regs)
    exposed = 0
    for r, v in args.items():
        if isinstance(v, StackPtr):
            # The callee sees the bytes from the pointer to the top of the caller's frame as untracked
            # memory (reads give unknown numbers, pointers cannot be stored there); on return they are unknown.
            c = v.off.const_value
            off = c - (1 << 64) if c is not None and c >= 1 << 63 else c
            if off is None or off < -stk.STACK_SIZE:
                sink.report(Code.UNSUPPORTED, idx, f"r{r} passes a pointer to the caller's stack with a variable "
                            f"offset ({v}) to the function: not modelled by this verifier", r)
                v = Unknown()
            else:
                exposed = min(exposed, off)
                v = MapValue(MapInfo(f"caller's stack fp{off:+d}", CALLER_STACK, 0, max(-off, 0), 1), _const(0))
        regs[r] = v
    regs[FP] = StackPtr(_const(0))
    defs = (frozenset(), *s.defs[1:6], *(frozenset(),) * (len(s.regs) - 6))
    frame = Frame(s.regs, s.defs, s.stack, exposed)
    return State(tuple(regs), defs, stk.empty_stack(), s.pkt_min, s.ranges, (*s.frames, frame), s.lock)


def _loop_call(env: Env, idx: int, s: State, sink: Sink) -> Succ:
    """bpf_loop(n, callback, ctx, flags): the callback runs any number of times (0 included), each time
    from the same entry (r1 the index, r2 ``ctx``); it can change only what ``ctx`` points to, which is
    unknown after any run."""
    entry = env.call_entry.get(idx)
    after = call_helper(env, idx, s, sink)
    if entry is None:
        return after
    callback = _enter(idx, s, {1: TOP, 2: s.regs[3]}, sink)
    return [*after, (entry, callback)]


def unknown_helper(number: int) -> str:
    """Why a call of helper ``number``, which the table has no signature for, is refused (by name where the
    ABI knows it)."""
    try:
        name = Helper(number).kernel_name
    except ValueError:
        return f"helper #{number} is not in the helper table"
    return f"{name} (helper #{number}) is not in the helper table"


def call(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    if s.lock is not None and not (insn.is_helper_call and insn.imm in lk.LOCK_HELPERS):
        # (The kernel lets a bpf-to-bpf call through; refusing it too only refuses more.)
        lk.check_unlocked(s, idx, sink, "a function call")
    if insn.is_pseudo_call:
        return _subprogram_call(env, idx, s, sink)
    if insn.is_helper_call and insn.imm == hp.BPF_LOOP:
        return _loop_call(env, idx, s, sink)
    return call_helper(env, idx, s, sink)


def call_helper(env: Env, idx: int, s: State, sink: Sink) -> Succ:
    """A helper (or kfunc) call: its arguments checked, r1-r5 clobbered, r0 its result."""
    insn = env.insns[idx]
    if insn.is_helper_call and insn.imm in lk.LOCK_HELPERS:
        s = lk.spin_lock(s, idx, sink) if insn.imm == Helper.SPIN_LOCK else lk.spin_unlock(s, idx, sink)
        return [(idx + 1, s.after_call(UNINIT, idx))]
    if not insn.is_helper_call:
        sink.report(Code.UNSUPPORTED, idx, "kfunc calls are not supported by this verifier")
        sig = None
    else:
        sig = hp.HELPER_SIGNATURES.get(insn.imm)
        if sig is None:
            sink.report(Code.UNKNOWN_HELPER, idx, unknown_helper(insn.imm))
        elif sig.ret == hp.Ret.TAIL_CALL and s.frames:
            sink.report(Code.UNSUPPORTED, idx, "a tail call inside a bpf-to-bpf call is not modelled (the kernel "
                        "limits the stack of the frames before it)")
    ret: Value = TOP
    if sig is not None:
        key = s.regs[2]
        s, the_map = _check_args(env, idx, insn.imm, sig, s, sink)
        if sig.changes_packet:
            s = _invalidate_packet(s)
        if sig.ret == hp.Ret.MAP_VALUE_OR_NULL and the_map is not None:
            if _may_hold_lookup_results(s):
                s = unlink_null_id(s, idx)
            if the_map.map_type in hp.NO_VALUE_ACCESS_MAP_TYPES:
                # A device entry or socket: the program may test it for NULL, nothing more is modelled.
                the_map = replace(the_map, value_size=0)
            if the_map.map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
                inner = env.inner_maps.get(the_map.name)
                if inner is None:
                    sink.report(Code.UNSUPPORTED, idx, f"{the_map.name} is a map of maps whose inner map's "
                                "definition the object does not give: its lookups are not modelled", 1)
                    the_map = replace(the_map, value_size=0)
                else:
                    the_map = replace(inner, map_type=inner.map_type + hp.INNER_MAP_TAG)
            ret = MapValueOrNull(the_map, _const(0), idx)
            if insn.imm == hp.MAP_LOOKUP_ELEM and _present(s, the_map, key):
                ret = MapValue(the_map, _const(0), idx if the_map.lock is not None else None)
        elif sig.ret == hp.Ret.U32:
            ret = _sized(4)
        elif sig.ret in (hp.Ret.VOID, hp.Ret.TAIL_CALL):
            ret = UNINIT
    return [(idx + 1, s.after_call(ret, idx))]


def _may_hold_lookup_results(s: State) -> bool:
    """Whether a register or spill of ``s`` may be linked to a lookup (a result before its NULL check, or
    a value with a lock's lookup id): else :func:`.abstract_state.unlink_null_id` has nothing to unlink.
    A plain walk, several times quicker than its own test, and most calls find nothing (a map value after
    its NULL check carries no id unless its map has a spin lock)."""
    if s.frames:
        return True
    for v in s.regs:
        t = type(v)
        if t is MapValueOrNull or (t is MapValue and v.lid is not None):  # type: ignore[union-attr]
            return True
    for _, v in stk.spilled_values(s.stack):
        t = type(v)
        if t is MapValueOrNull or (t is MapValue and v.lid is not None):  # type: ignore[union-attr]
            return True
    return False


def _present(s: State, m: MapInfo, key: Value) -> bool:
    """Whether a lookup in ``m`` with ``key`` surely finds an element, as the kernel decides it (6.14 on:
    ``get_constant_map_key``): an array whose key, on the stack at a constant offset, is a known number
    below ``max_entries`` -- the slot's zero bytes from the key to the slot's end, or a spilled constant of
    exactly the key's size at the slot's start. The kernel then gives a value that is never NULL."""
    if not hp.CONSTANT_KEY_LOOKUPS or m.map_type not in hp.NEVER_NULL_MAP_TYPES or not isinstance(key, StackPtr):
        return False
    c = key.off.const_value
    if c is None:
        return False
    off = c - (1 << 64) if c >= 1 << 63 else c
    if not -stk.STACK_SIZE <= off < 0:
        return False
    i, pos = stk.slot_of(off)
    slot, n = s.stack[i], m.key_size
    if pos + n <= 8 and all(slot.zero >> b & 1 for b in range(pos, pos + n)):
        return m.max_entries > 0
    if pos != 0 or slot.size != n or not isinstance(slot.spill, ScalarValue):
        return False
    v = slot.spill.value.const_value
    return v is not None and v < 1 << 63 and v < m.max_entries


def invalid(env: Env, idx: int, insn: Instruction, s: State, sink: Sink) -> Succ:
    sink.report(Code.INVALID_INSN, idx, f"invalid or unsupported instruction (opcode {insn.opcode:#04x})")
    return []


Transfer = Callable[[Env, int, Instruction, State, Sink], Succ]

TRANSFER: dict[Kind, Transfer] = {
    Kind.ALU: alu, Kind.SDIV: alu, Kind.NEG: alu, Kind.MOV: alu, Kind.MOVSX: alu, Kind.END: alu,
    Kind.BSWAP: alu, Kind.ADDR_SPACE_CAST: alu,
    Kind.LDDW: lddw, Kind.LDX: ldx, Kind.LDX_SX: ldx, Kind.ST: st, Kind.STX: stx, Kind.ATOMIC: atomic,
    Kind.JA: ja, Kind.GOTOL: ja, Kind.JCOND: jcond, Kind.MAY_GOTO: may_goto, Kind.CALL: call, Kind.EXIT: exit_,
}


_NO_READS: tuple[int, ...] = ()
_CALL_READS = (1, 2, 3, 4, 5)


def _reads(insn: Instruction, kind: Kind) -> tuple[int, ...]:
    """The registers whose value (not just whose copy) the instruction uses."""
    x = _source(insn.opcode) == Source.X  # meaningful for ALU and jumps only (memory classes: a mode bit)
    if kind in (Kind.LDDW, Kind.JA, Kind.GOTOL, Kind.MAY_GOTO):
        return _NO_READS
    if kind == Kind.MOV:  # a 64-bit copy keeps the alternatives; a 32-bit one takes a number of each
        return (insn.src,) if x and _cls(insn.opcode) == InsnClass.ALU else _NO_READS
    if kind == Kind.MOVSX:
        return (insn.src,)
    if kind in (Kind.NEG, Kind.END, Kind.BSWAP, Kind.ST):
        return (insn.dst,)
    if kind in (Kind.LDX, Kind.LDX_SX):
        return (insn.src,)
    if kind == Kind.STX:
        return (insn.dst, insn.src)
    if kind == Kind.ATOMIC:
        return (insn.dst, insn.src, 0)
    if kind == Kind.CALL:
        return _CALL_READS
    if kind == Kind.EXIT:
        return (0,)
    return (insn.dst, insn.src) if x else (insn.dst,)


MAX_SPLIT = 32
"""States one instruction is run from when the registers it reads hold :class:`OneOf` values; past it the
rest of those registers are taken as :class:`Unknown` (a sound, coarser reading)."""


def _split(s: State, regs: tuple[int, ...]) -> list[State]:
    """``s`` once per combination of the alternatives of the registers in ``regs`` (the kernel's paths)."""
    out = [s]
    for r in dict.fromkeys(regs):
        if r > FP:
            continue
        v = s.regs[r]
        if not isinstance(v, OneOf):
            continue
        if len(out) * len(v.alts) > MAX_SPLIT:
            ok = offsettable(v)
            coarse = Unknown(ok, reach(v) if ok else 0)
            out = [replace(t, regs=(*t.regs[:r], coarse, *t.regs[r + 1:])) for t in out]
            continue
        out = [replace(t, regs=(*t.regs[:r], a, *t.regs[r + 1:])) for t in out for a in alternatives(v)]
    return out


def _decode(env: Env, idx: int, insn: Instruction, kind: Kind) -> tuple[Transfer, tuple[int, ...],
                                                                       AluInsn | JmpInsn | None]:
    """The transfer function of ``insn``, the registers it reads and its ALU or jump fields."""
    if insn.dst > FP or (insn.src > FP and kind not in (Kind.LDDW, Kind.CALL)):
        return invalid, _NO_READS, None
    fn = TRANSFER.get(kind, invalid)
    info = _decode_alu(insn, kind) if fn is alu else _decode_jmp(env, idx, insn) if fn is jcond else None
    return fn, _reads(insn, kind), info


def step(env: Env, idx: int, s: State, sink: Sink) -> Succ:
    """The successors of instruction ``idx`` from state ``s``.

    A register the instruction reads that holds a :class:`OneOf` (a different type on different paths)
    is taken apart: the instruction runs from one state per alternative, so each is checked as the
    kernel checks the path it comes from, and the successors are joined again where they meet."""
    fn, regs, _ = env.decoded[idx]
    insn = env.insns[idx]
    sregs = s.regs
    for r in regs:
        if type(sregs[r]) is OneOf:  # the value classes are final: type() is the quick test
            break
    else:
        return fn(env, idx, insn, s, sink)
    out: Succ = []
    for part in _split(s, regs):
        out.extend(fn(env, idx, insn, part, sink))
    return out
