"""Lowering the typed SSA IR (`pybpfdsl.ir.nodes.Program`) to an llvmlite module for the BPF target.

The module holds one XDP function `i32 name(ptr ctx)` in section "xdp", the `license` global, one
BTF-defined map per `MapDecl` and one global variable per `GlobalDecl` (`.bss` or `.data`), all with the
debug metadata that LLVM turns into BTF and line info (see `backend.debuginfo`).

Register representation: integers are iN, bool is i1, float (Q32.32) is its raw i64, a map-value
reference is `ptr` (null when absent), a Struct aggregate is an LLVM literal struct of its fields in
declaration order. In memory (maps, globals, helper arguments) bool takes one byte and Structs use their C
layout (`Struct.fields()` offsets).

Each instruction lowers itself (`Instr.execute`, `Terminator.transfer`): its arithmetic is `lang.arith` /
`lang.fixed` over the LLVM instance of their algebra (`_LlvmValues` on `backend.llvm_algebra`, where
the optimisation barriers of products and quotients live), its effects and control flow are the
`nodes.Effects` and `nodes.Control` methods of `_FunctionLowering`. Code that touches packet memory is
shaped for the kernel verifier: every packet load is preceded by its own bounds check on the very
pointer it dereferences, and offsets are bounded before they are added to the packet pointer.

Long because each effect's code shape (helper-argument slots, packet guards, memory layouts) is what the
kernel verifier accepts, explained where it is emitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llvmlite import ir

from pybpfdsl.backend import barriers, block_layout, fib_lookup, packet_store, printk
from pybpfdsl.backend.debuginfo import (
    CHAR,
    S32,
    S64,
    U8,
    U16,
    U32,
    U64,
    ArrayTypeDesc,
    DebugInfoBuilder,
    DebugScope,
    FieldDesc,
    ScalarTypeDesc,
    StructTypeDesc,
    TypeDesc,
)
from pybpfdsl.backend.llvm_algebra import LlvmAlgebra
from pybpfdsl.backend.llvm_algebra import int_constant as _int_constant
from pybpfdsl.backend.object_emit import BPF_DATALAYOUT, BPF_TRIPLE
from pybpfdsl.backend.packet_facts import Checked, PacketFacts
from pybpfdsl.backend.packet_offsets import OffsetPlan
from pybpfdsl.bpf.abi import REQUIRED_MAP_FLAGS, Helper, UpdateFlag, XdpAction
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg
from pybpfdsl.ir.types import IRType, MapValueRef, StructType
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.state import MapKind
from pybpfdsl.lang.types import ScalarType

__all__ = ["MAX_ACCESS_WIDTH", "MAX_PACKET_OFFSET", "BackendError", "llvm_type", "lower_program", "type_desc"]

_I1 = ir.IntType(1)
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_PTR = ir.PointerType()

#: Largest packet offset a program may use; larger offsets count as out of bounds. The verifier only
#: learns a packet range from `p + k <= data_end` if p's largest variable offset plus k stays within
#: 0xFFFF, so offsets are bounded first, with room for the access width. XDP's linear packet data is
#: at most a page, so no real packet is affected. It is a power of two minus one, so that masking
#: bounds an offset in one instruction.
from pybpfdsl.lang.headers import MAX_PACKET_OFFSET  # noqa: E402 - kept beside its explanation

#: Widest access the bound above leaves room for.
MAX_ACCESS_WIDTH = 0xFFFF - MAX_PACKET_OFFSET


_S8 = ScalarTypeDesc("__s8", 8, True)
_S16 = ScalarTypeDesc("__s16", 16, True)


class BackendError(Exception):
    """The backend met IR it cannot lower (a bug in the frontend or a pass, or an unsupported construct)."""


# --------------------------------------------------------------------------- #
# Types
# --------------------------------------------------------------------------- #


def _scalar_llvm_type(t: ScalarType) -> ir.IntType:
    """Register type: i1 for bool, the raw i64 for float, iN for integers."""
    if t.is_bool:
        return _I1
    return ir.IntType(t.bits)


def _memory_type(t: ScalarType) -> ir.IntType:
    """In-memory type: like the register type, except bool takes a byte."""
    return ir.IntType(8 * t.size)


def llvm_type(t: IRType) -> ir.Type:
    """The LLVM register type of an IR type."""
    if isinstance(t, ScalarType):
        return _scalar_llvm_type(t)
    if isinstance(t, StructType):
        return ir.LiteralStructType([_scalar_llvm_type(f.type) for f in t.cls.fields()])
    if isinstance(t, MapValueRef):
        return _PTR
    raise BackendError(f"no LLVM type for IR type {t!r}")


def _scalar_desc(t: ScalarType) -> ScalarTypeDesc:
    if t.is_bool:
        return U8
    if t.is_fixed:
        return S64  # the raw Q32.32 integer
    table = {
        (8, False): U8, (16, False): U16, (32, False): U32, (64, False): U64,
        (8, True): _S8, (16, True): _S16, (32, True): S32, (64, True): S64,
    }
    try:
        return table[(t.bits, t.signed)]
    except KeyError:
        raise BackendError(f"no BTF type for {t}") from None


def type_desc(t: ScalarType | StructType) -> TypeDesc:
    """The BTF description of a map key/value or global type (C layout for Structs)."""
    if isinstance(t, ScalarType):
        return _scalar_desc(t)
    fields = tuple(FieldDesc(f.name, _scalar_desc(f.type), f.offset) for f in t.cls.fields())
    return StructTypeDesc(t.cls.__name__, fields, t.cls.size())


def _memory_size(t: ScalarType | StructType) -> int:
    return t.size if isinstance(t, ScalarType) else t.cls.size()


# --------------------------------------------------------------------------- #
# Module-level declarations
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _ModuleState:
    """The LLVM globals of the program's state, by IR name."""

    maps: dict[str, ir.GlobalVariable]
    globals: dict[str, ir.GlobalVariable]


def _check_names(program: n.Program) -> None:
    names = [program.name, "_license", *(m.name for m in program.maps), *(g.name for g in program.globals),
             *(r.name for r in program.ringbufs)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BackendError(f"{program.name}: the name {name!r} is used by more than one symbol")
        seen.add(name)


def _declare_license(module: ir.Module, db: DebugInfoBuilder, license: str) -> None:
    data = license.encode() + b"\0"
    ty = ir.ArrayType(_I8, len(data))
    gv = ir.GlobalVariable(module, ty, "_license")
    gv.initializer = ir.Constant(ty, bytearray(data))
    gv.section = "license"
    db.global_variable(gv, ArrayTypeDesc(CHAR, len(data)))


def _declare_state(module: ir.Module, db: DebugInfoBuilder, program: n.Program) -> _ModuleState:
    maps = {
        m.name: db.map_definition(m.name, m.kind.value, type_desc(m.key_type), type_desc(m.value_type),
                                  m.max_entries, map_flags=REQUIRED_MAP_FLAGS.get(m.kind.value, 0))
        for m in program.maps
    }
    for r in program.ringbufs:  # a ring buffer map has only a type and a size
        maps[r.name] = db.map_definition(r.name, MapKind.RINGBUF.value, None, None, r.size)
    globals_: dict[str, ir.GlobalVariable] = {}
    for g in program.globals:
        ty = _memory_type(g.type)
        gv = ir.GlobalVariable(module, ty, g.name)
        # External linkage: user space may rewrite the variable, so LLVM must not fold its initial value.
        gv.initializer = _int_constant(ty, g.init)
        gv.section = ".bss" if g.init == 0 else ".data"
        gv.align = g.type.size
        db.global_variable(gv, _scalar_desc(g.type))
        globals_[g.name] = gv
    return _ModuleState(maps, globals_)


def _source_text(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _reverse_postorder(program: n.Program) -> list[n.Block]:
    """Reachable blocks, each after all of its dominators (so operands are lowered before their uses),
    the usual successor of a hinted branch right after it and its rare path at the end (`block_layout`)."""
    try:
        return block_layout.layout(program)
    except block_layout.LayoutError as exc:
        raise BackendError(str(exc)) from None


def _check_width(width: int) -> None:
    if not 0 < width <= MAX_ACCESS_WIDTH:
        raise BackendError(f"packet access of {width} bytes: widths must be 1..{MAX_ACCESS_WIDTH}")


# --------------------------------------------------------------------------- #
# Function body
# --------------------------------------------------------------------------- #


class _LlvmValues(LlvmAlgebra):
    """`nodes.Values` on LLVM registers: a DSL bool is an `i1` (its own truth value), a struct an LLVM
    literal struct (`llvm_type`), a reference a `ptr`."""

    def truth(self, bit: ir.Value) -> ir.Value:
        return bit

    def choose(self, cond: ir.Value, if_true: ir.Value, if_false: ir.Value) -> ir.Value:
        return self.b.select(cond, if_true, if_false)

    def make_struct(self, t: StructType, fields: Sequence[ir.Value]) -> ir.Value:
        agg: ir.Value = ir.Constant(llvm_type(t), ir.Undefined)
        for index, value in enumerate(fields):
            agg = self.b.insert_value(agg, value, index)
        return agg

    def extract_field(self, t: StructType, aggregate: ir.Value, index: int) -> ir.Value:
        return self.b.extract_value(aggregate, index)



class _FunctionLowering:
    """Lowers the blocks of one program into `fn`."""

    def __init__(self, program: n.Program, fn: ir.Function, db: DebugInfoBuilder, scope: DebugScope,
                 state: _ModuleState) -> None:
        self.program = program
        self.fn = fn
        self.db = db
        self.scope = scope
        self.state = state
        self.values: dict[n.Value, ir.Value] = {}
        self.blocks: dict[str, ir.Block] = {}
        self.phis: dict[str, list[ir.PhiInstr]] = {}
        # (target block, argument values, LLVM predecessor block), added to the phis at the end because
        # a loop's back edge is lowered after its header.
        self.incoming: list[tuple[str, tuple[ir.Value, ...], ir.Block]] = []
        self.locations: dict[int, ir.DIValue] = {}
        self.abort_block: ir.Block | None = None
        self.b = ir.IRBuilder()
        self.ops = _LlvmValues(self.b)
        self.data: ir.Value = ir.Constant(_PTR, None)
        self.data_end: ir.Value = ir.Constant(_PTR, None)
        self.pointers_at_end: dict[str, tuple[ir.Value, ir.Value]] = {}
        """`data` and `data_end` as each lowered block leaves them (a move reads them again)."""
        self.masks: dict[tuple[n.Value, int], list[tuple[str, ir.Value]]] = {}
        """Each pinned mask of a value (`_masked`), with the block that made it."""
        self.key_slots: dict[str, ir.Value] = {}
        self.value_slots: dict[str, ir.Value] = {}
        self.global_addresses: dict[str, ir.Value] = {}
        self.address_homes = _address_homes(program)
        # Those blocks form a global's address themselves (`_address_homes`); the home need not dominate them.
        self.heavy_blocks = {blk.name for blk in program.blocks if any(_arithmetic_heavy(i) for i in blk.instrs)}
        self.facts = PacketFacts(program)
        self.current = program.entry.name

    # -- driver ----------------------------------------------------------------

    def lower(self) -> None:
        order = _reverse_postorder(self.program)
        prologue = self.fn.append_basic_block("entry")
        for block in order:
            self.blocks[block.name] = self.fn.append_basic_block(block.name)
        self._set_line(self.program.first_line)
        self.b.position_at_end(prologue)
        self._prologue()
        self.b.branch(self.blocks[self.program.entry.name])
        for block in order:
            self._lower_block(block)
        self._resolve_phis()

    def _set_line(self, line: int) -> None:
        """Attach `line` (the function's first line when unknown) to every instruction emitted next."""
        line = line or self.program.first_line
        loc = self.locations.get(line)
        if loc is None:
            loc = self.locations[line] = self.db.location(self.scope, line)
        self.b.debug_metadata = loc

    def _prologue(self) -> None:
        """Packet pointers from `struct xdp_md` and the stack slots for helper arguments.

        `data` and `data_end` are 32-bit context fields; the verifier turns those loads into packet
        pointers, so they are loaded once here and every packet access derives from them.
        """
        self._packet_pointers()
        # Helper arguments live in 8-byte-aligned stack slots (allocas belong in the entry block).
        for m in self.program.maps:
            self.key_slots[m.name] = self._slot(m.key_type, f"{m.name}.key")
            self.value_slots[m.name] = self._slot(m.value_type, f"{m.name}.value")
        for r in self.program.ringbufs:
            self.value_slots[r.name] = self._slot(r.record, f"{r.name}.record")

    def _packet_pointers(self) -> None:
        """`data` and `data_end` read from the context here. A program that moves the packet
        (`AdjustPacket`) reads them again after each move, and at the start of a block that a move may
        precede since its dominator (`PathFacts.moved_on_way_in`): the kernel forgets every packet
        pointer at a move, and such a block may be reached with or without one."""
        b = self.b
        ctx = self.fn.args[0]
        data32 = b.load(ctx, typ=_I32, align=4, name="data32")
        data_end32 = b.load(b.gep(ctx, [ir.Constant(_I64, 4)], source_etype=_I8), typ=_I32, align=4,
                            name="data_end32")
        self.data = b.inttoptr(b.zext(data32, _I64), _PTR, name="data")
        self.data_end = b.inttoptr(b.zext(data_end32, _I64), _PTR, name="data_end")
        if self.facts.moves_packet:  # else LLVM may compare with the zero-extended integer, not pkt_end
            self.data_end = barriers.pinned(b, self.data_end)

    def _slot(self, t: ScalarType | StructType, name: str) -> ir.Value:
        words = (_memory_size(t) + 7) // 8
        slot = self.b.alloca(ir.ArrayType(_I64, words), name=name)
        slot.align = 8
        # llvmlite gives allocas a typed pointer and then refuses stores of other types through it; the
        # LLVM text is `ptr` either way, so retype it as the opaque pointer it really is.
        slot.type = _PTR
        return slot

    def _lower_block(self, block: n.Block) -> None:
        self.current = block.name
        self.b.position_at_end(self.blocks[block.name])
        first_line = block.instrs[0].line if block.instrs else (block.terminator.line if block.terminator else 0)
        self._set_line(first_line)
        phis = []
        for p in block.params:
            phi = self.b.phi(llvm_type(p.type), name=p.hint or f"p{p.id}")
            self.values[p] = phi
            phis.append(phi)
        self.phis[block.name] = phis
        self.facts.make_shadows(self.b, block)
        for name in self.address_homes.get(block.name, ()):
            self.global_addresses[name] = barriers.pinned(self.b, self.state.globals[name])
        if self.facts.moves_packet:
            idom = self.facts.cfg.idom.get(block.name)
            if self.facts.moved_on_way_in(block.name):
                self._packet_pointers()
            elif idom is not None:
                self.data, self.data_end = self.pointers_at_end[idom]
        for instr in block.instrs:
            self._set_line(instr.line)
            self._lower_instr(instr)
        term = block.terminator
        if term is None:
            raise BackendError(f"^{block.name} has no terminator")
        self._set_line(term.line)
        self._lower_terminator(term)
        self.pointers_at_end[block.name] = (self.data, self.data_end)

    def _resolve_phis(self) -> None:
        for target, args, pred in self.incoming:
            phis = self.phis[target]
            phis = phis + self.facts.shadow_phis(target)
            if len(phis) != len(args):
                raise BackendError(f"^{target} takes {len(phis)} arguments, got {len(args)}")
            for phi, arg in zip(phis, args, strict=True):
                phi.add_incoming(arg, pred)

    # -- values ------------------------------------------------------------------

    def _get(self, v: n.Value) -> ir.Value:
        try:
            return self.values[v]
        except KeyError:
            raise BackendError(f"{self.program.name}: {v} is used before it is defined") from None

    def _set(self, v: n.Value, value: ir.Value) -> None:
        if v in self.values:
            raise BackendError(f"{self.program.name}: {v} is defined twice")
        self.values[v] = value

    @staticmethod
    def _scalar(v: n.Value) -> ScalarType:
        if not isinstance(v.type, ScalarType):
            raise BackendError(f"{v} must be a scalar, is {v.type}")
        return v.type

    # -- instructions --------------------------------------------------------------

    def _lower_instr(self, i: n.Instr) -> None:
        try:
            out = i.execute(self.ops, self, self._get)
        except ValueError as exc:  # an operation the arithmetic does not define on its type
            raise BackendError(str(exc)) from None
        result = i.result
        if result is not None:
            self._set(result, out)

    # -- effects (`nodes.Effects`), each emitted at the builder's position ----------------

    def packet_len(self, op: n.PacketLen) -> ir.Value:
        return self._packet_len()

    def in_bounds(self, op: n.InBounds, offset: ir.Value) -> ir.Value:
        return self._in_bounds(op, offset, op.width)

    def load_packet(self, op: n.LoadPacket, offset: ir.Value) -> ir.Value:
        return self._load_packet(op, offset)

    def store_packet(self, op: n.StorePacket, offset: ir.Value, value: ir.Value) -> None:
        packet_store.store(self.b, self._packet_pointer(packet_store.as_load(op)), op.width, value)

    def map_lookup(self, op: n.MapLookup, key: ir.Value) -> ir.Value:
        map_ptr, key_ptr = self._key(op.map_name, op.key, key)
        return self._call(Helper.MAP_LOOKUP_ELEM, _PTR, [map_ptr, key_ptr])

    def is_null(self, op: n.IsNull, ref: ir.Value) -> ir.Value:
        return self.b.icmp_unsigned("==", ref, ir.Constant(_PTR, None))

    def load_value(self, op: n.LoadValue, ref: ir.Value) -> ir.Value:
        ptr, t = self._value_slot(op.ref, ref, op.field_name)
        return self._load_memory(ptr, t)

    def store_value(self, op: n.StoreValue, ref: ir.Value, value: ir.Value) -> None:
        ptr, t = self._value_slot(op.ref, ref, op.field_name)
        self._store_or_add(ptr, t, value, op.atomic_add)

    def map_update(self, op: n.MapUpdate, key: ir.Value, value: ir.Value) -> ir.Value:
        map_ptr, key_ptr = self._key(op.map_name, op.key, key)
        vt = self._map_decl(op.map_name).value_type
        value_ptr = self._spill(self.value_slots[op.map_name], vt, value)
        flags = ir.Constant(_I64, UpdateFlag.ANY)
        return self._call(Helper.MAP_UPDATE_ELEM, _I64, [map_ptr, key_ptr, value_ptr, flags])

    def map_delete(self, op: n.MapDelete, key: ir.Value) -> ir.Value:
        map_ptr, key_ptr = self._key(op.map_name, op.key, key)
        return self._call(Helper.MAP_DELETE_ELEM, _I64, [map_ptr, key_ptr])

    def load_global(self, op: n.LoadGlobal) -> ir.Value:
        gv, t = self._global(op.name)
        return self._load_memory(gv, t)

    def store_global(self, op: n.StoreGlobal, value: ir.Value) -> None:
        gv, t = self._global(op.name)
        self._store_or_add(gv, t, value, op.atomic_add)

    def call_helper(self, op: n.CallHelper) -> ir.Value:
        # A helper returns its value in r0. One with a 32-bit result is declared as returning i32, as
        # clang declares it: LLVM then computes on w0 (32-bit compares, no 64-bit masks built with lddw).
        t = _scalar_llvm_type(self._scalar(op.out))
        raw = self._call(op.helper.value, _I32 if t.width <= 32 else _I64, [])
        return self._resize(raw, signed=False, to=t)

    def ringbuf_output(self, op: n.RingbufOutput, record: ir.Value) -> ir.Value:
        return self._ringbuf_output(op.map_name, op.record, record)

    def redirect(self, op: n.Redirect, ifindex: ir.Value) -> ir.Value:
        args = [self.b.zext(ifindex, _I64), ir.Constant(_I64, 0)]
        return self.b.trunc(self._call(Helper.REDIRECT, _I64, args), _I32)

    def redirect_map(self, op: n.RedirectMap, key: ir.Value) -> ir.Value:
        args = [self.state.maps[op.map_name], self.b.zext(key, _I64), ir.Constant(_I64, op.miss)]
        return self.b.trunc(self._call(Helper.REDIRECT_MAP, _I64, args), _I32)

    def fib_lookup(self, op: n.FibLookup, dst: ir.Value, ifindex: ir.Value) -> ir.Value:
        return fib_lookup.fib_lookup(self, op, dst, ifindex)

    def trace_printk(self, op: n.TracePrintk, args: list[ir.Value]) -> ir.Value:
        return printk.trace_printk(self, op, args)

    def adjust_packet(self, op: n.AdjustPacket, delta: ir.Value) -> ir.Value:
        helper = Helper.XDP_ADJUST_HEAD if op.head else Helper.XDP_ADJUST_TAIL
        status = self._call(helper, _I64, [self.fn.args[0], self.b.sext(delta, _I64)])
        self._packet_pointers()
        return self.b.icmp_signed("==", status, ir.Constant(_I64, 0))

    def _resize(self, x: ir.Value, signed: bool, to: ir.IntType) -> ir.Value:
        """Wrap to a narrower width, or extend by the source's signedness (bool i1 is unsigned)."""
        width = x.type.width
        if width == to.width:
            return x
        if width > to.width:
            return self.b.trunc(x, to)
        return self.b.sext(x, to) if signed else self.b.zext(x, to)

    # -- packet ----------------------------------------------------------------------

    def _packet_len(self) -> ir.Value:
        # Pointer difference in 64 bits: the verifier rejects 32-bit arithmetic on packet pointers. Pinned,
        # or instruction selection folds a later 32-bit `pkt.len - x` into `end - (data + x)` on the
        # pointers' 32-bit halves (`w3 += w2` on a packet pointer: "32-bit pointer arithmetic prohibited").
        b = self.b
        length = barriers.pinned(b, b.sub(b.ptrtoint(self.data_end, _I64), b.ptrtoint(self.data, _I64)))
        # The difference of two 32-bit context fields fits 32 bits: told so, LLVM widens the u32 length
        # back to 64 bits for free instead of with two shifts.
        length.set_metadata("range", b.module.add_metadata([ir.Constant(_I64, 0), ir.Constant(_I64, 1 << 32)]))
        return b.trunc(length, _I32)

    def _in_bounds(self, op: n.InBounds, offset: ir.Value, width: int) -> ir.Value:
        """offset <= MAX_PACKET_OFFSET and data + offset + width <= data_end, computed without branches.

        The pointer is formed from the masked offset, so no unbounded value is ever added to the packet
        pointer even when the first condition is false. It is opaque (one register) and noted in
        `facts`: the loads this check covers read through it without a guard of their own.
        """
        b = self.b
        _check_width(width)
        limit = ir.Constant(_I64, MAX_PACKET_OFFSET)
        in_range = b.icmp_unsigned("<=", offset, limit)
        split = self.facts.base_below(op.offset, MAX_PACKET_OFFSET)
        constant_base, constant_k = self.facts.split(op.offset)
        prior = self.facts.reaching(self.current, split[0] if split is not None else None)
        if split is not None:
            # `base + k` with a small base (a header's offset): checked from the pointer to `base`, which
            # the header's own check may have formed already, and read at constant offsets from it. The
            # same bytes: base <= limit - k, so `base + k` neither wraps nor changes under the mask.
            base, k = split
            if prior is None or prior.k != 0:
                prior = None
                added = self._added(self.facts.offset_plan(base, self.current, MAX_PACKET_OFFSET - k), base)
                base_ptr = self._opaque(b.gep(self.data, [added], source_etype=_I8))
            else:
                base_ptr = prior.start
            start = self._at(base_ptr, k)
            end = self._end(start, width, prior, k + width)
            self.facts.checked_from_base(op, base_ptr, k, start, end)
        elif constant_base is None and prior is not None and prior.k <= constant_k:
            start = self._at(prior.start, constant_k - prior.k)  # data + k, through the earlier check's register
            end = self._end(start, width, prior, constant_k + width)
            self.facts.checked(op, start, end)
        else:
            if constant_base is None:
                added = b.and_(offset, limit)
            else:
                added = self._added(self.facts.offset_plan(op.offset, self.current, MAX_PACKET_OFFSET), op.offset)
            start = self._opaque(b.gep(self.data, [added], source_etype=_I8))
            end = b.gep(start, [ir.Constant(_I64, width)], source_etype=_I8)
            self.facts.checked(op, start, end if constant_base is None else None)
        fits = b.icmp_unsigned("<=", end, self.data_end)
        return b.and_(in_range, fits)

    def _end(self, start: ir.Value, width: int, prior: Checked | None, reach: int) -> ir.Value:
        """The pointer a check of `width` bytes at `start`, reaching `reach` bytes past its base, compares
        with data_end: stepped on from `prior`'s end when that one reaches less far (opaque, so that LLVM
        keeps the step instead of forming the sum from `data` again), else `start + width`."""
        b = self.b
        if prior is not None and prior.end is not None and prior.k + prior.width < reach:
            return b.gep(self._opaque(prior.end), [ir.Constant(_I64, reach - prior.k - prior.width)],
                         source_etype=_I8)
        return b.gep(start, [ir.Constant(_I64, width)], source_etype=_I8)

    def _abort(self) -> ir.Block:
        """The shared `return XDP_ABORTED` block that failed packet guards jump to."""
        if self.abort_block is None:
            self.abort_block = self.fn.append_basic_block("packet_guard_failed")
            guard = ir.IRBuilder(self.abort_block)
            guard.debug_metadata = self.b.debug_metadata
            guard.ret(ir.Constant(_I32, XdpAction.ABORTED))
        return self.abort_block

    def _load_packet(self, i: n.LoadPacket, offset: ir.Value) -> ir.Value:
        """A packet load behind its own bounds check on the same pointer, as the verifier demands.

        The IR guarantees a dominating InBounds, so the failure path is unreachable in a well-formed
        program; LLVM removes the check when it can prove it redundant.
        """
        ptr = self._packet_pointer(i)
        ty = ir.IntType(8 * i.width)
        # Opaque, so that LLVM cannot merge two paths' loads (IPv4's protocol at +23, IPv6's at +20) into one
        # load after their join through a phi of the two addresses: each path then reads at a constant
        # offset from its checked pointer, instead of both forming the address (~3 slots per program).
        value = barriers.opaque(self.b, self.b.load(ptr, typ=ty, align=1))
        if i.big_endian and i.width > 1:
            bswap = self.fn.module.declare_intrinsic("llvm.bswap", [ty])
            value = self.b.call(bswap, [value])
        return value

    def _packet_pointer(self, i: n.LoadPacket) -> ir.Value:
        """The pointer to `i`'s bytes, behind a check the verifier sees (shared with packet stores)."""
        b = self.b
        _check_width(i.width)
        covered = self.facts.covering(self.current, i)
        planned = self.facts.planned(self.current, i) if covered is None else None
        if covered is not None:  # a dominating check tested this pointer's range already
            ptr = self._at(covered[0], covered[1])
        elif planned is not None:  # checked on every path here, through this pointer (`packet_paths`)
            ptr = self.facts.pointer(self.b, self.data, planned)
        else:
            # Guarded from the offset's variable part (`base + k`): the pointer `data + base` is tested
            # with `k + width` bytes and read at `+k`, one register for the test and the load.
            base, k = self.facts.split(i.offset)
            if base is None or k > MAX_PACKET_OFFSET:
                base, k = i.offset, 0
            start = self._get(base)
            too_far = b.icmp_unsigned(">", start, ir.Constant(_I64, MAX_PACKET_OFFSET - k))
            self._guard(too_far, "offset_ok")
            if isinstance(start, ir.Constant):
                added = start
            else:
                added = self._added(self.facts.offset_plan(base, self.current, MAX_PACKET_OFFSET - k), base)
            ptr = self._opaque(b.gep(self.data, [added], source_etype=_I8))
            end = b.gep(ptr, [ir.Constant(_I64, k + i.width)], source_etype=_I8)
            self._guard(b.icmp_unsigned(">", end, self.data_end), "packet_ok")
            ptr = self._at(ptr, k)
        return ptr

    def _added(self, plan: OffsetPlan | None, offset: n.Value) -> ir.Value:
        """What is added to `data` for the u64 `offset`, as `plan` says (`PacketFacts.offset_plan`):
        bounded in the very registers that are added, whatever LLVM makes of its computation
        (`packet_offsets`). The terms of its sum the kernel bounds itself are added as they are, a loop's
        index masked by its own largest value (`& 15` for a `range(16)` index), any other sum masked
        whole by its largest value; an offset with no plan is masked with MAX_PACKET_OFFSET (beyond it,
        the check fails anyway)."""
        if plan is None:
            return self._masked(offset, MAX_PACKET_OFFSET)
        total: ir.Value | None = None
        for t in plan.terms:
            v = self._get(t.value) if t.mask is None else self._masked(t.value, t.mask)
            total = v if total is None else self.b.add(total, v)
        if total is None or plan.k:
            k = ir.Constant(_I64, plan.k)
            total = k if total is None else self.b.add(total, k)
        return total

    def _masked(self, value: n.Value, mask: int) -> ir.Value:
        """`value & mask`, the mask a constant LLVM cannot see (`barriers.hidden`), so that no LLVM pass
        drops it for a bound it knows from elsewhere (after `off = len - 2` and a test `off <= 0x7FFF` it
        tested `len <= 0x8001` and added the unmasked `off`). One per value and mask serves the blocks
        its block dominates."""
        made = self.masks.setdefault((value, mask), [])
        for block, masked in made:
            if self.facts.cfg.dominates(block, self.current):
                return masked
        source = self.facts.defs.get(value)
        if isinstance(source, n.Convert) and isinstance(narrow := self._get(source.value).type, ir.IntType) \
                and mask < 1 << (narrow.width - 1):
            # Masked before it is widened (the value is in [0, mask] either way): a loop's counter is
            # masked in the register its loop tests, not in a second, 64-bit copy that LLVM would step
            # as another induction variable (a second loop head to the verifiers).
            low = self.b.and_(self._get(source.value), barriers.hidden(self.b, ir.Constant(narrow, mask)))
            masked = self.b.zext(low, _I64)
        else:
            masked = self.b.and_(self._get(value), barriers.hidden(self.b, ir.Constant(_I64, mask)))
        made.append((self.current, masked))
        return masked

    def _opaque(self, ptr: ir.Value) -> ir.Value:
        """`ptr`, hidden from LLVM's reassociation behind the BPF backend's passthrough intrinsic.

        The verifier learns a packet range for one pointer register (one id): the guard `ptr + w <=
        data_end` proves nothing about a second `data + offset` that LLVM might rebuild for the load.
        An opaque pointer forces the guard and the load to derive from the same register.
        """
        return barriers.opaque(self.b, ptr)

    def _guard(self, failed: ir.Value, name: str) -> None:
        cont = self.fn.append_basic_block(name)
        self.b.cbranch(failed, self._abort(), cont)
        self.b.position_at_end(cont)

    # -- memory ----------------------------------------------------------------------

    def _load_memory(self, ptr: ir.Value, t: ScalarType | StructType) -> ir.Value:
        if isinstance(t, ScalarType):
            raw = self.b.load(ptr, typ=_memory_type(t), align=t.size)
            # A stored bool byte means true when non-zero (as the reference decoding does).
            return self.b.icmp_unsigned("!=", raw, ir.Constant(raw.type, 0)) if t.is_bool else raw
        fields = [self._load_memory(self._at(ptr, f.offset), f.type) for f in t.cls.fields()]
        return self.ops.make_struct(t, fields)

    def _store_memory(self, ptr: ir.Value, t: ScalarType | StructType, value: ir.Value) -> None:
        if isinstance(t, ScalarType):
            stored = self.b.zext(value, _I8) if t.is_bool else value
            self.b.store(stored, ptr, align=t.size)
            return
        for index, f in enumerate(t.cls.fields()):
            self._store_memory(self._at(ptr, f.offset), f.type, self.b.extract_value(value, index))

    def _store_or_add(self, ptr: ir.Value, t: IRType, value: ir.Value, atomic_add: bool) -> None:
        if not isinstance(t, ScalarType | StructType):
            raise BackendError(f"cannot store a {t}")
        if not atomic_add:
            self._store_memory(ptr, t, value)
            return
        if not isinstance(t, ScalarType) or t.bits not in (32, 64):
            raise BackendError(f"atomic add on {t}: only 32- and 64-bit values")
        # The result is unused, which BPF encodes as a plain atomic add (any CPU version).
        self.b.atomic_rmw("add", ptr, value, "monotonic")

    def _at(self, ptr: ir.Value, offset: int) -> ir.Value:
        if offset == 0:
            return ptr
        return self.b.gep(ptr, [ir.Constant(_I64, offset)], source_etype=_I8)

    def _value_slot(self, ref: n.Value, ptr: ir.Value, field_name: str | None
                    ) -> tuple[ir.Value, ScalarType | StructType]:
        """Address and type of a map value (or of one of its fields) behind reference `ref` (at `ptr`)."""
        if not isinstance(ref.type, MapValueRef):
            raise BackendError(f"{ref} is not a map value reference")
        vt = self._map_decl(ref.type.map_name).value_type
        if field_name is None:
            return ptr, vt
        if not isinstance(vt, StructType):
            raise BackendError(f"field {field_name!r} of a {vt} map value")
        for f in vt.cls.fields():
            if f.name == field_name:
                return self._at(ptr, f.offset), f.type
        raise BackendError(f"{vt} has no field {field_name!r}")

    def _global(self, name: str) -> tuple[ir.GlobalVariable, ScalarType]:
        try:
            own = self.current in self.heavy_blocks or name not in self.global_addresses
            address = self.state.globals[name] if own else self.global_addresses[name]
            return address, self.program.global_decl(name).type
        except KeyError:
            raise BackendError(f"{self.program.name}: unknown global {name!r}") from None

    # -- maps and helpers -----------------------------------------------------------

    def _map_decl(self, name: str) -> n.MapDecl:
        try:
            return self.program.map_decl(name)
        except KeyError:
            raise BackendError(f"{self.program.name}: unknown map {name!r}") from None

    def _spill(self, slot: ir.Value, t: ScalarType | StructType, value: ir.Value) -> ir.Value:
        """Write a helper argument to its stack slot.

        A record goes as whole aligned words (`_store_words`): its padding comes out zero (hash maps
        compare whole keys, and the verifier refuses to pass uninitialised stack bytes to a helper), and
        LLVM gets no run of narrow field stores to merge into a wider store at an odd offset, which the
        kernel refuses as a misaligned stack access (a key of bytes, some of them constants).
        """
        if isinstance(t, StructType):
            return self._store_words(slot, t, value)
        self._store_memory(slot, t, value)
        return slot

    def _key(self, map_name: str, key: n.Value, value: ir.Value) -> tuple[ir.Value, ir.Value]:
        """The map's pointer and `key` (whose register is `value`) spilled to the map's key slot."""
        decl = self._map_decl(map_name)
        if key.type != decl.key_type:
            raise BackendError(f"key {key} of type {key.type} for map {map_name} with keys {decl.key_type}")
        return self.state.maps[map_name], self._spill(self.key_slots[map_name], decl.key_type, value)

    def _store_words(self, slot: ir.Value, t: StructType, value: ir.Value) -> ir.Value:
        """Write a Struct to an 8-byte-aligned slot in its C layout as whole, aligned 64-bit words, each
        assembled from its fields in a register (little-endian); padding comes out zero.

        Field-by-field stores let LLVM merge neighbouring constant fields into one wider store at a
        field's (smaller) alignment, which the verifier rejects as a misaligned stack access.
        """
        words: list[ir.Value | None] = [None] * ((t.cls.size() + 7) // 8)
        for index, f in enumerate(t.cls.fields()):
            bits = self._resize(self.b.extract_value(value, index), signed=False, to=_I64)
            if f.offset % 8:
                bits = self.b.shl(bits, ir.Constant(_I64, 8 * (f.offset % 8)))
            word = words[f.offset // 8]
            words[f.offset // 8] = bits if word is None else self.b.or_(word, bits)
        for w, word in enumerate(words):
            self.b.store(word if word is not None else ir.Constant(_I64, 0), self._at(slot, 8 * w), align=8)
        return slot

    def _ringbuf_output(self, name: str, record: n.Value, value: ir.Value) -> ir.Value:
        """bpf_ringbuf_output from the record's stack slot (C layout, padding zeroed); true on success."""
        try:
            decl = self.program.ringbuf_decl(name)
        except KeyError:
            raise BackendError(f"{self.program.name}: unknown ring buffer {name!r}") from None
        if record.type != decl.record:
            raise BackendError(f"record {record} of type {record.type} for ring buffer {name} of {decl.record}")
        data = self._store_words(self.value_slots[name], decl.record, value)
        size = ir.Constant(_I64, decl.record.cls.size())
        status = self._call(Helper.RINGBUF_OUTPUT, _I64, [self.state.maps[name], data, size, ir.Constant(_I64, 0)])
        return self.b.icmp_signed("==", status, ir.Constant(_I64, 0))

    def _call(self, number: int, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        """Call BPF helper `number`: the callee is the helper number cast to a function pointer."""
        fnty = ir.FunctionType(ret, [a.type for a in args])
        callee = ir.Constant(_I64, number).inttoptr(fnty.as_pointer())
        callee.function_type = fnty  # llvmlite's call reads this; only Function objects have it
        return self.b.call(callee, args)

    # -- terminators -----------------------------------------------------------------

    def _lower_terminator(self, term: n.Terminator) -> None:
        term.transfer(self, self._get)

    # -- control (`nodes.Control`) ---------------------------------------------------

    def jump(self, term: n.Jump) -> None:
        e = term.to
        self._edge(e.target, self._args(e) + self._shadow_args(0, e))
        self.b.branch(self.blocks[e.target])

    def branch(self, term: n.Branch, cond: ir.Value) -> None:
        b, t, f = self.b, term.if_true, term.if_false
        if t.target == f.target:
            # One LLVM predecessor cannot feed a phi two different values: select the arguments.
            args = tuple(
                self._get(x) if x == y else b.select(cond, self._get(x), self._get(y))
                for x, y in zip(t.args, f.args, strict=True))
            shadows = tuple(x if x is y else b.select(cond, x, y)
                            for x, y in zip(self._shadow_args(0, t), self._shadow_args(1, f), strict=True))
            self._edge(t.target, args + shadows)
            b.branch(self.blocks[t.target])
            return
        self.facts.branched(self.current, term)
        self._edge(t.target, self._args(t) + self._shadow_args(0, t))
        self._edge(f.target, self._args(f) + self._shadow_args(1, f))
        block_layout.weigh(b.cbranch(cond, self.blocks[t.target], self.blocks[f.target]), term.expect)

    def leave(self, term: n.Return, action: ir.Value) -> None:
        self.b.ret(action)

    def _edge(self, target: str, args: tuple[ir.Value, ...]) -> None:
        """Record the phi inputs of a jump from the current LLVM block (arguments dominate the jump,
        so they are already lowered)."""
        if target not in self.blocks:
            raise BackendError(f"{self.program.name}: jump to unknown block ^{target}")
        self.incoming.append((target, args, self.b.block))

    def _args(self, e: n.Edge) -> tuple[ir.Value, ...]:
        return tuple(self._get(a) for a in e.args)

    def _shadow_args(self, index: int, e: n.Edge) -> tuple[ir.Value, ...]:
        """The pointers the `index`th edge of the current block feeds the target's shadow phis."""
        return self.facts.edge_pointers(self.b, self.data, self.current, index, e.target, e.args)


# --------------------------------------------------------------------------- #
# Entry point
# --------------------------------------------------------------------------- #


def lower_program(program: n.Program, license: str = "GPL") -> ir.Module:
    """Build the llvmlite module of one XDP program (debug info finalized, ready for `emit_bpf_object`)."""
    if not program.blocks:
        raise BackendError(f"{program.name}: program has no blocks")
    _check_names(program)
    module = ir.Module(program.name)
    module.triple = BPF_TRIPLE
    module.data_layout = BPF_DATALAYOUT
    db = DebugInfoBuilder(module, program.source_file, source_text=_source_text(program.source_file))
    _declare_license(module, db, license)
    state = _declare_state(module, db, program)
    fn = ir.Function(module, ir.FunctionType(_I32, [_PTR]), program.name)
    fn.args[0].name = "ctx"
    fn.section = "xdp"
    scope = db.function(fn, program.name, program.first_line)  # also marks it nounwind
    _FunctionLowering(program, fn, db, scope, state).lower()
    db.finalize()
    return module


def _address_homes(program: n.Program) -> dict[str, list[str]]:
    """For each block, the globals whose address is formed once there and kept in a register: those
    used in more than one place, at the nearest block dominating all those uses. Left to itself, LLVM
    forms a global's address again (a 2-slot `lddw`) at every use, as rematerialising it is cheap.
    Uses in a block that multiplies or divides form the address themselves: such a block keeps many
    values live, and an address held through it pushes others onto the stack."""
    used: dict[str, list[str]] = {}
    for blk in program.blocks:
        if any(_arithmetic_heavy(i) for i in blk.instrs):
            continue
        for i in blk.instrs:
            if isinstance(i, n.LoadGlobal | n.StoreGlobal):
                used.setdefault(i.name, []).append(blk.name)
    cfg = Cfg.of(program)
    homes: dict[str, list[str]] = {}
    for name, blocks in used.items():
        if len(blocks) < 2 or any(b not in cfg.order for b in blocks):
            continue
        common = list(cfg.dominators(blocks[0]))
        for b in blocks[1:]:
            doms = set(cfg.dominators(b))
            common = [d for d in common if d in doms]
        homes.setdefault(common[0], []).append(name)
    return homes


def _arithmetic_heavy(i: n.Instr) -> bool:
    return isinstance(i, n.IntQuotient) or (isinstance(i, n.Binary) and i.op in (BinOp.MUL, BinOp.DIV, BinOp.MOD))
