"""Bytecode → Z3: symbolic execution of BPF instructions through the one semantics table.

Every ALU, jump, load/store value and atomic operation is `bpf.semantics` instantiated with `Z3_OPS`,
the very functions the concrete interpreter runs with `INT_OPS`; this module only adds what the table
leaves to a memory model: pointers, regions, maps and helpers (see `bytecode_memory`). It takes an
instruction list directly, so a caller can prove a modified program against the same IR.

Long because one encoder walks every instruction kind and every modelled helper over one path state; the
memory model is already apart (`bytecode_memory`), and the helpers are the next part to move out.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import z3

from pybpfdsl.bpf.abi import (
    STACK_SIZE,
    XDP_MD_FIELD_SIZE,
    XDP_MD_SIZE,
    Helper,
    RingbufFlag,
    UpdateFlag,
    XdpAction,
    XdpMd,
    helper_arity,
)
from pybpfdsl.bpf.instruction import Instruction, RelocKind, slot_offsets
from pybpfdsl.bpf.opcode import (
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Kind,
    PseudoSrc,
    Size,
    Source,
    alu_op,
    jmp_op,
    size,
    source,
)
from pybpfdsl.bpf.semantics import (
    REDIRECT_BROADCAST,
    REDIRECT_MAP_FLAGS,
    Z3_OPS,
    alu,
    alu_operand,
    atomic,
    jump_taken,
    load_value,
    reads_source,
    redirect_map,
    store_value,
)
from pybpfdsl.verify.equivalence import bytecode_memory as mem
from pybpfdsl.verify.equivalence import fib, redirect
from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.bytecode_memory import (
    CTX,
    PACKET,
    Fault,
    MapRef,
    Memory,
    Ptr,
    Region,
    Unset,
    Val,
    as_int,
    bv64,
)
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram
from pybpfdsl.verify.equivalence.paths import (
    MERGE_AFTER_PATHS,
    ControlFlow,
    Exploration,
    Fork,
    Merging,
    Outcome,
    TraceItem,
    Unsupported,
    explore,
    explore_merging,
    merge_traces,
    pause,
)
from pybpfdsl.verify.equivalence.symbolic_state import (
    ADDRESSES,
    MIN_PACKET_LEN,
    TRACE_OUTPUT,
    Effects,
    Inputs,
    MapShape,
    Term,
    bv_to_bytes,
    bytes_to_bv,
)

MAX_STEPS = 100_000
"""Programs with more paths than this are explored with state merging."""
MAX_CALL_DEPTH = 8
EINVAL, ENOENT, EEXIST, E2BIG, EFAULT = 22, 2, 17, 7, 14
ETH_HLEN = 14
_RINGBUF_FLAGS = RingbufFlag.NO_WAKEUP | RingbufFlag.FORCE_WAKEUP  # any other bit makes the helper fail (EINVAL)
_ADDRESS_BIAS = 1 << 40  # same-region pointers compare by offset, as the interpreter's fake addresses do
_MAX_COMPARED_OFFSET = 1 << 20
_ADDRESS_CHECK_RLIMIT = 2_000_000
"""Solver resource units for deciding whether a pointer comparison depends on the address (a few
bit-vector comparisons: they take well under a tenth of this)."""


@dataclass
class _Frame:
    return_pc: int
    saved: list[Val]


@dataclass
class BCState:
    pc: int
    regs: list[Val]
    memory: Memory
    effects: Effects
    frames: list[_Frame] = field(default_factory=list)
    trace: list[TraceItem] = field(default_factory=list)
    guarded: bool = False
    slot: int = 0
    """The slot number of the instruction being executed (for messages)."""

    def fork(self) -> BCState:
        return BCState(self.pc, list(self.regs), self.memory.copy(), self.effects.copy(),
                       [_Frame(f.return_pc, list(f.saved)) for f in self.frames], list(self.trace))


class BytecodeEncoder:
    """Runs one bytecode program symbolically against `inputs`."""

    def __init__(self, program: BytecodeProgram, inputs: Inputs, side: int | None = None) -> None:
        """`side` numbers the program among those reading `inputs` (for its own never-written stack
        bytes, `Inputs.stack_byte`); by default the next free number, so of two encoders over one
        `Inputs` the first created is side 0."""
        self.program = program
        self.side = inputs.new_side() if side is None else side
        self.insns = program.instructions
        self.inputs = inputs
        self.shapes: dict[str, MapShape] = dict(inputs.layout.maps)
        starts = slot_offsets(list(self.insns))
        self.slot_of = starts
        self.index_of_slot = {s: i for i, s in enumerate(starts)}
        self.successors = [self._successors(pc) for pc in range(len(self.insns))]
        self.live = _live_registers(self.insns, self.successors)
        self.block_of = _basic_blocks(self.successors)
        returns = {pc + 1 for pc, insn in enumerate(self.insns) if insn.kind == Kind.CALL and insn.is_pseudo_call}
        self.flow = ControlFlow.of(0, lambda b: sorted({self.block_of[t] for t in self.successors[self._last(b)]}))
        self.joins = frozenset(self.flow.joins) | frozenset(r for r in returns if r < len(self.insns))
        self.pauses: frozenset[int] = frozenset()

    def run(self, budget: Budget | None = None, merge_after: int | None = MERGE_AFTER_PATHS) -> Exploration:
        """Every path of the program, merged where paths meet past `merge_after` paths (see
        `paths.explore_merging`)."""
        return explore_merging(lambda merge, max_paths: self._run(budget, merge, max_paths), merge_after)

    def _run(self, budget: Budget | None, merge: bool, max_paths: int = 20_000) -> Exploration:
        """Every path of the program; with `merge`, paths meeting at an instruction are merged (`paths`)."""
        regs: list[Val] = [Unset("uninitialised at entry")] * 11
        regs[1] = Ptr(CTX, bv64(0))
        regs[10] = Ptr(Region("stack", depth=0), bv64(STACK_SIZE))
        memory = Memory(self.inputs.packet, unwritten=lambda frame, at: self.inputs.stack_byte(self.side, frame, at),
                        head=bv64(0), end=self.inputs.length)
        start = BCState(0, regs, memory, self.inputs.initial_effects(self.side))
        self.pauses = self.joins if merge else frozenset()
        merging = Merging(self.flow, self._locate, self.merge_states) if merge else None
        return explore(start, self.step, self.inputs.assumptions, merging, max_paths=max_paths, budget=budget)

    # -- control flow and merging --------------------------------------------------------------------

    def _successors(self, pc: int) -> list[int]:
        """Where instruction `pc` may continue (into a subprogram for a call; nowhere after `exit`)."""
        insn = self.insns[pc]
        targets: list[int | None] = []
        if insn.kind == Kind.EXIT:
            pass
        elif insn.kind in (Kind.JA, Kind.GOTOL):
            targets = [self._target(pc, insn.off if insn.kind == Kind.JA else insn.imm)]
        elif insn.kind == Kind.JCOND:
            targets = [self._target(pc, insn.off), pc + 1]
        elif insn.kind == Kind.CALL and insn.is_pseudo_call:
            targets = [self._target(pc, insn.imm), pc + 1]
        else:
            targets = [pc + 1]
        return [t for t in targets if t is not None and 0 <= t < len(self.insns)]

    def _target(self, pc: int, delta: int) -> int | None:
        return self.index_of_slot.get(self.slot_of[pc] + self.insns[pc].slots + delta)

    def _last(self, block: int) -> int:
        """The last instruction of the basic block that starts at `block`."""
        pc = block
        while pc + 1 < len(self.insns) and self.block_of[pc + 1] == block:
            pc += 1
        return pc

    def slot(self, pc: int) -> int:
        """The number a user reads for instruction `pc`: its 8-byte slot (an lddw takes two), as
        `pybpfdsl disasm`, llvm-objdump and the kernel's log count."""
        return self.slot_of[pc] if 0 <= pc < len(self.slot_of) else pc

    def _locate(self, s: BCState) -> tuple[int, int, tuple[tuple[int, ...], bool]]:
        if not 0 <= s.pc < len(self.insns):
            return s.pc, 0, ((), s.guarded)
        block = self.block_of[s.pc]
        return block, s.pc - block, (tuple(f.return_pc for f in s.frames), s.guarded)

    def merge_states(self, a: BCState, b: BCState, when: Term) -> BCState | None:
        """`a` where `when` holds, else `b` (both at one instruction in the same call frames); None when
        a live register, a spilled pointer or the effects differ in shape. Dead registers become 0."""
        live = self.live[a.pc] if 0 <= a.pc < len(self.insns) else _ALL_REGISTERS
        regs: list[Val] = []
        for r, (x, y) in enumerate(zip(a.regs, b.regs)):
            value = mem.merge_values(when, x, y) if r in live else _DEAD
            if value is None:
                return None
            regs.append(value)
        frames: list[_Frame] = []
        for fa, fb in zip(a.frames, b.frames):
            saved = [mem.merge_values(when, x, y) for x, y in zip(fa.saved, fb.saved)]
            if any(v is None for v in saved):
                return None
            frames.append(_Frame(fa.return_pc, saved))
        memory = mem.merge_memory(when, a.memory, b.memory)
        effects = a.effects.merged(b.effects, when)
        if memory is None or effects is None:
            return None
        return BCState(a.pc, regs, memory, effects, frames, merge_traces(a.trace, b.trace, when), a.guarded)

    # -- the loop ----------------------------------------------------------------------------------

    def step(self, s: BCState) -> Outcome | Fork[BCState]:
        n = len(self.insns)
        resumed = True
        while True:
            if s.pc in self.pauses and not resumed and not s.guarded:
                return pause(s)
            resumed = False
            if not 0 <= s.pc < n:
                return self._fault(s, "fell off the end of the program")
            if len(s.trace) > MAX_STEPS:
                raise Unsupported(f"a path runs more than {MAX_STEPS} instructions")
            if not s.guarded:  # a guarded re-run is the same instruction again
                s.trace.append(s.pc)
            insn = self.insns[s.pc]
            s.slot = self.slot_of[s.pc]
            try:
                result = self.execute(s, insn)
            except Fault as exc:
                return self._fault(s, str(exc))
            if result is not None:
                return result

    def _fault(self, s: BCState, why: str) -> Outcome:
        return Outcome("fault", None, s.effects, tuple(s.trace), reason=f"insn {self.slot(s.pc)}: {why}")

    def _jump(self, s: BCState, insn: Instruction, delta: int) -> int:
        target = self.index_of_slot.get(self.slot_of[s.pc] + insn.slots + delta)
        if target is None:
            raise Fault("jump into the middle of an instruction")
        return target

    def _guard(self, s: BCState, ok: Term, why: str) -> Fork[BCState] | None:
        """Fork off a fault unless `ok` is trivially true; the good side re-runs the instruction."""
        if s.guarded:
            s.guarded = False
            return None
        ok = z3.simplify(ok)
        if z3.is_true(ok):
            return None
        bad = self._fault(s, why)
        good = s.fork()
        good.guarded = True
        return Fork([(z3.Not(ok), bad), (ok, good)])

    def execute(self, s: BCState, insn: Instruction) -> Outcome | Fork[BCState] | None:
        kind = insn.kind
        if kind == Kind.EXIT:
            return self._exit(s)
        if kind in (Kind.ALU, Kind.SDIV, Kind.NEG, Kind.MOV, Kind.MOVSX, Kind.END, Kind.BSWAP):
            s.regs[insn.dst] = self._alu(s, insn)
        elif kind == Kind.LDDW:
            s.regs[insn.dst] = self._lddw(s, insn)
        elif kind in (Kind.LDX, Kind.LDX_SX):
            base = _reg(s, insn.src)
            if isinstance(base, Ptr) and base.region.kind == "ctx":
                s.regs[insn.dst] = self._ctx(s, base, insn.off, size(insn.opcode).bytes)
            else:
                loaded = self._load(s, base, insn.off, size(insn.opcode).bytes)
                if isinstance(loaded, Fork):
                    return loaded
                if isinstance(loaded, list):
                    raw = bytes_to_bv(loaded)
                    s.regs[insn.dst] = load_value(Z3_OPS, raw, size(insn.opcode), signed=kind == Kind.LDX_SX)
                else:
                    s.regs[insn.dst] = loaded
        elif kind in (Kind.ST, Kind.STX):
            value: Val = bv64(insn.imm_sext) if kind == Kind.ST else _reg(s, insn.src)
            forked = self._store(s, _reg(s, insn.dst), insn.off, size(insn.opcode).bytes, value)
            if forked is not None:
                return forked
        elif kind == Kind.ATOMIC:
            forked = self._atomic(s, insn)
            if forked is not None:
                return forked
        elif kind == Kind.JA:
            s.pc = self._jump(s, insn, insn.off)
            return None
        elif kind == Kind.GOTOL:
            s.pc = self._jump(s, insn, insn.imm)
            return None
        elif kind == Kind.JCOND:
            return self._branch(s, insn)
        elif kind == Kind.CALL:
            if insn.is_pseudo_call:
                self._call_subprogram(s, insn)
                return None  # the call set `s.pc` to the subprogram's entry
            forked = self._helper(s, insn)
            if forked is not None:
                return forked
        else:
            raise Unsupported(f"{kind.value} instructions are not encoded")
        s.pc += 1
        return None

    # -- arithmetic --------------------------------------------------------------------------------

    def _alu(self, s: BCState, insn: Instruction) -> Val:
        # A move does not read its destination (which may be unset or hold a pointer).
        dst = bv64(0) if insn.kind in (Kind.MOV, Kind.MOVSX) else _reg(s, insn.dst)
        src: Val | None = _reg(s, insn.src) if reads_source(insn) else None
        scalar_src = src is None or not isinstance(src, Ptr | MapRef)
        if not isinstance(dst, Ptr | MapRef) and scalar_src:
            return alu(Z3_OPS, insn, dst, alu_operand(Z3_OPS, insn, src))
        op = alu_op(insn.opcode)
        is64 = insn.cls == InsnClass.ALU64
        if is64 and insn.kind == Kind.MOV and src is not None:
            return src
        if not is64 and insn.kind == Kind.MOV and isinstance(src, Ptr) and insn.off == 0:
            return Ptr(src.region, src.offset, src.found, low32=True)
        if is64 and insn.kind == Kind.ALU and isinstance(dst, Ptr) and scalar_src:
            operand = alu_operand(Z3_OPS, insn, src)
            if op == AluOp.ADD:
                return Ptr(dst.region, dst.offset + operand, dst.found)
            if op == AluOp.SUB:
                return Ptr(dst.region, dst.offset - operand, dst.found)
        if is64 and op == AluOp.ADD and isinstance(src, Ptr) and not isinstance(dst, Ptr | MapRef):
            return Ptr(src.region, src.offset + dst, src.found)
        if op == AluOp.SUB and isinstance(dst, Ptr) and isinstance(src, Ptr) and dst.region.same(src.region) \
                and (not is64 or not (dst.low32 or src.low32)):
            # The region's base address cancels, also modulo 2**32 for a 32-bit subtraction.
            return alu(Z3_OPS, insn, dst.offset, src.offset)
        raise Unsupported(f"insn {self.slot(s.pc)}: arithmetic on a pointer ({insn})")

    def _lddw(self, s: BCState, insn: Instruction) -> Val:
        reloc = self.program.relocations.get(s.pc)
        if reloc is not None:
            if reloc.kind == RelocKind.MAP:
                if reloc.symbol not in self.shapes:
                    raise Unsupported(f"map {reloc.symbol} has no definition")
                return MapRef(reloc.symbol)
            if reloc.kind == RelocKind.DATA:
                if reloc.section not in self.inputs.layout.sections:
                    raise Unsupported(f"data section {reloc.section} is not modelled")
                return Ptr(Region("section", reloc.section), bv64(reloc.offset))
            raise Unsupported(f"lddw of a {reloc.kind.value} reference")
        if insn.src != PseudoSrc.NONE:
            raise Unsupported("lddw of a raw map fd")
        return bv64(insn.imm64)

    # -- memory ------------------------------------------------------------------------------------

    def _ctx(self, s: BCState, base: Ptr, off: int, count: int) -> Val:
        at = mem.concrete_offset(base, off, "context")
        if at == XdpMd.DATA_META and count == XDP_MD_FIELD_SIZE:
            # Metadata bytes before data (none in test runs); data + 1 where the driver keeps none.
            s.memory.meta_read = True
            return Ptr(PACKET, s.memory.head - self.inputs.meta_len())
        if at == XdpMd.DATA and count == XDP_MD_FIELD_SIZE:  # xdp_md's fields are u32: the kernel refuses other widths
            return Ptr(PACKET, s.memory.head)
        if at == XdpMd.DATA_END and count == XDP_MD_FIELD_SIZE:
            return Ptr(PACKET, s.memory.end)
        if at in self.inputs.ctx and count == XDP_MD_FIELD_SIZE:
            return z3.ZeroExt(32, self.inputs.ctx[at])
        raise Fault(f"invalid xdp_md access: {count} bytes at offset {at}")

    def _access_guard(self, s: BCState, ptr: Val, off: int, count: int) -> Fork[BCState] | None:
        if not isinstance(ptr, Ptr):
            raise Fault("memory access through a non-pointer")
        if ptr.low32:
            raise Unsupported("memory access through the low 32 bits of a pointer")
        if ptr.region.kind == "stack" and as_int(ptr.offset) is None:
            return self._guard(s, mem.value_bounds(ptr, off, count, STACK_SIZE),
                               f"{count}-byte stack access at a variable offset outside the frame")
        if ptr.region.kind == "value" and as_int(ptr.offset) is None:
            size = self.shapes[ptr.region.name].value_size
            inside = mem.value_bounds(ptr, off, count, size)
            return self._guard(s, inside if ptr.found is None else z3.And(ptr.found, inside),
                               f"{count}-byte access at a variable offset outside a {size}-byte value of map "
                               f"{ptr.region.name}, or through a NULL pointer")
        if ptr.found is not None:
            return self._guard(s, ptr.found, "access through a NULL map value pointer")
        if ptr.region.kind == "packet":
            if s.memory.meta_read:
                raise Unsupported("packet access in a program that reads xdp_md.data_meta (the metadata "
                                  "bytes are not modelled)")
            return self._guard(s, mem.packet_bounds(ptr, off, count, s.memory.end, s.memory.head),
                               f"{count}-byte packet access outside the packet")
        return None

    def _load(self, s: BCState, base: Val, off: int, count: int) -> list[Term] | Val | Fork[BCState]:
        if (g := self._access_guard(s, base, off, count)) is not None:
            return g
        assert isinstance(base, Ptr)
        if count == 8 and base.region.kind == "stack" and as_int(base.offset) is not None:
            at = mem.stack_offset(base, off, count)
            spilled = s.memory.spills[base.region.depth].get(at)
            if spilled is not None:
                return spilled
        return mem.read(s.memory, s.effects, self.shapes, base, off, count)

    def _store(self, s: BCState, base: Val, off: int, count: int, value: Val) -> Fork[BCState] | None:
        if (g := self._access_guard(s, base, off, count)) is not None:
            return g
        assert isinstance(base, Ptr)
        if isinstance(value, Ptr | MapRef):
            # Its address goes to memory; an 8-byte stack slot also remembers the pointer (a spill).
            address = self._address(s, value)
            mem.write(s.memory, s.effects, self.shapes, base, off, bv_to_bytes(store_value(Z3_OPS, address,
                                                                                           size_of(count)), count))
            if count == 8 and base.region.kind == "stack":
                s.memory.spills[base.region.depth][mem.stack_offset(base, off, count)] = value
            return None
        bits = store_value(Z3_OPS, value, size_of(count))
        mem.write(s.memory, s.effects, self.shapes, base, off, bv_to_bytes(bits, count))
        return None

    def _atomic(self, s: BCState, insn: Instruction) -> Fork[BCState] | None:
        sz = size(insn.opcode)
        try:
            aop = AtomicOp(insn.imm)
        except ValueError:
            raise Fault(f"unknown atomic operation {insn.imm:#x}") from None
        base = _reg(s, insn.dst)
        if (g := self._access_guard(s, base, insn.off, sz.bytes)) is not None:
            return g
        assert isinstance(base, Ptr)
        # Only cmpxchg reads r0, which often still holds a map value pointer.
        src, r0 = _reg(s, insn.src), _reg(s, 0) if aop == AtomicOp.CMPXCHG else bv64(0)
        if sz not in (Size.W, Size.DW) or aop in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL):
            raise Unsupported(f"atomic {aop.name.lower()} of {sz.bytes} bytes")
        if base.region.kind == "stack" and any(
                p < at + sz.bytes and p + 8 > at
                for at in [mem.stack_offset(base, insn.off, sz.bytes)] for p in s.memory.spills[base.region.depth]):
            raise Unsupported("atomic operation on a spilled pointer")
        # A pointer operand is used as a number: its address (the kernel lets a privileged program).
        src = self._address(s, src) if isinstance(src, Ptr | MapRef) else src
        r0 = self._address(s, r0) if isinstance(r0, Ptr | MapRef) else r0
        old = bytes_to_bv(mem.read(s.memory, s.effects, self.shapes, base, insn.off, sz.bytes))
        effect = atomic(Z3_OPS, aop, sz, old, src, r0)
        mem.write(s.memory, s.effects, self.shapes, base, insn.off, bv_to_bytes(effect.memory, sz.bytes))
        if effect.register is not None and effect.fetched is not None:
            s.regs[0 if effect.register == "r0" else insn.src] = effect.fetched
        return None

    def _address(self, s: BCState, v: Ptr | MapRef) -> Term:
        """The number a pointer stands for: its object's address (an input of this program,
        `Inputs.address`) plus its offset; 0 for a null map value pointer."""
        inputs = self.inputs
        if isinstance(v, MapRef):
            return inputs.address(self.side, f"map_{v.name}")
        r = v.region
        if r.kind == "stack":
            base = inputs.address(self.side, f"stack{s.memory.frames[r.depth]}")
        elif r.kind == "value":
            base = inputs.address(self.side, f"value_{r.name}", r.key)
        else:
            base = inputs.address(self.side, r.kind if r.kind != "section" else f"section_{r.name}")
        address = base + v.offset
        if v.low32:
            address = z3.ZeroExt(32, z3.Extract(31, 0, address))
        return address if v.found is None else z3.If(v.found, address, bv64(0))

    # -- control flow ------------------------------------------------------------------------------

    def _branch(self, s: BCState, insn: Instruction) -> Fork[BCState] | None:
        taken = self._condition(s, insn)
        target = self._jump(s, insn, insn.off)
        simple = z3.simplify(taken)
        if z3.is_true(simple) or z3.is_false(simple):
            s.pc = target if z3.is_true(simple) else s.pc + 1
            return None
        yes, no = s.fork(), s.fork()
        yes.pc, no.pc = target, s.pc + 1
        # The condition as the program computes it: z3's simplifier splits a xor into bytes, after
        # which the normal form no longer sees LLVM's |x| idiom in it (`normalize`).
        return Fork([(taken, yes), (z3.Not(taken), no)])

    def _condition(self, s: BCState, insn: Instruction) -> Term:
        dst = _reg(s, insn.dst)
        src: Val | None = _reg(s, insn.src) if source(insn.opcode) == Source.X else None
        if not isinstance(dst, Ptr | MapRef) and not isinstance(src, Ptr | MapRef):
            return jump_taken(Z3_OPS, insn, dst, alu_operand(Z3_OPS, insn, src))
        try:
            return self._pointer_condition(insn, dst, src)
        except Unsupported as exc:
            raise Unsupported(f"insn {self.slot(s.pc)}: comparison of a pointer ({insn}): {exc}") from None

    def _pointer_condition(self, insn: Instruction, dst: Val, src: Val | None) -> Term:
        """A jump's condition when an operand is a pointer (or a map). A pointer is null or an address
        the program cannot predict (`ADDRESSES`): a condition is encoded only when it is the same for
        every address the kernel may choose, else the comparison is not modelled."""
        op = jmp_op(insn.opcode)
        equality = op in (JmpOp.JEQ, JmpOp.JNE)
        if any(isinstance(v, Ptr) and v.low32 for v in (dst, src)):
            raise Unsupported("the low 32 bits of a pointer")
        if insn.cls == InsnClass.JMP32 and not equality:
            raise Unsupported("32-bit order of addresses")
        if isinstance(dst, Ptr | MapRef) and isinstance(src, Ptr | MapRef):
            return self._two_pointers(insn, op, dst, src)
        ptr = dst if isinstance(dst, Ptr | MapRef) else src
        assert isinstance(ptr, Ptr | MapRef)
        other = alu_operand(Z3_OPS, insn, None) if src is None else (dst if ptr is src else src)
        assert not isinstance(other, Ptr | MapRef | Unset)
        null = jump_taken(Z3_OPS, insn, *((bv64(0), other) if ptr is dst else (other, bv64(0))))
        nonnull = self._address_condition(insn, ptr, other, ptr is dst)
        found = ptr.found if isinstance(ptr, Ptr) else None
        return nonnull if found is None else z3.If(found, nonnull, null)

    def _address_condition(self, insn: Instruction, ptr: Ptr | MapRef, other: Term, ptr_first: bool) -> Term:
        """The condition with a non-null `ptr` (the jump's first operand if `ptr_first`) at any address
        in `ADDRESSES` (shifted by its offset; the interpreter's fake addresses lie there too, so a
        condition decided for all of them replays): the condition at the lowest one, when it is the same at
        every one."""
        offset: Term = bv64(0) if isinstance(ptr, MapRef) else ptr.offset
        constant = as_int(offset)
        if constant is not None and abs(constant) > _MAX_COMPARED_OFFSET:
            raise Unsupported("its offset is not a small constant")
        if insn.cls == InsnClass.JMP32:
            raise Unsupported("the low 32 bits of an address")
        # A variable offset (a packet's length) is bounded by the inputs' assumptions.
        base = z3.BitVec("address", 64)
        taken = jump_taken(Z3_OPS, insn, *((base + offset, other) if ptr_first else (other, base + offset)))
        at_low = z3.substitute(taken, (base, bv64(ADDRESSES[0])))
        solver = z3.Solver()
        solver.set("rlimit", _ADDRESS_CHECK_RLIMIT)
        solver.add(*self.inputs.assumptions)
        solver.add(z3.ULE(ADDRESSES[0], base), z3.ULE(base, ADDRESSES[1]), taken != at_low)
        if solver.check() != z3.unsat:
            raise Unsupported("the result depends on the address the kernel chooses" if constant is not None
                              else "its offset is not a small constant")
        return z3.simplify(at_low)

    def _two_pointers(self, insn: Instruction, op: JmpOp | None, dst: Ptr | MapRef, src: Ptr | MapRef) -> Term:
        """Two pointers: into one object they compare by offset (one base address); into different
        objects only (in)equality is known, and only for offsets inside the objects (objects do not
        overlap, but one's end may be the next one's start)."""
        if isinstance(dst, MapRef) or isinstance(src, MapRef):
            if not (isinstance(dst, MapRef) and isinstance(src, MapRef)) or op not in (JmpOp.JEQ, JmpOp.JNE):
                raise Unsupported("a map's address compared with another pointer")
            return z3.BoolVal((dst.name == src.name) == (op == JmpOp.JEQ))
        if dst.found is not None or src.found is not None:
            raise Unsupported("a pointer that may be null compared with another pointer")
        if dst.region.same(src.region) and (dst.region.key is None) == (src.region.key is None):
            return jump_taken(Z3_OPS, insn, dst.offset + _ADDRESS_BIAS, src.offset + _ADDRESS_BIAS)
        if op not in (JmpOp.JEQ, JmpOp.JNE):
            raise Unsupported("the order of two objects' addresses")
        inside = z3.And(self._inside(dst), self._inside(src))
        same_object = z3.BoolVal(False)
        a, b = dst.region, src.region
        if a.epoch != b.epoch:
            raise Unsupported("pointers into a map from before and after an update (the element may be reused)")
        if (a.kind, a.name, a.depth) == (b.kind, b.name, b.depth) and a.key is not None and b.key is not None:
            same_object = a.key == b.key  # one map's elements: the same one when the keys are equal
        equal = z3.And(same_object, dst.offset == src.offset)
        if not z3.is_true(z3.simplify(inside)):
            raise Unsupported("an offset outside its object")
        return equal if op == JmpOp.JEQ else z3.Not(equal)

    def _inside(self, ptr: Ptr) -> Term:
        """Whether `ptr`'s offset lies inside its object (before its end)."""
        r = ptr.region
        sizes = {"stack": STACK_SIZE, "ctx": XDP_MD_SIZE, "packet": MIN_PACKET_LEN}
        if r.kind == "value":
            size = self.shapes[r.name].value_size
        elif r.kind == "section":
            size = self.inputs.layout.section_size(r.name)
        else:
            size = sizes[r.kind]
        at = as_int(ptr.offset)
        return z3.BoolVal(at is not None and 0 <= at < size)

    def _exit(self, s: BCState) -> Outcome | None:
        if s.frames:
            frame = s.frames.pop()
            s.regs[6:11] = frame.saved
            for r in range(1, 6):
                s.regs[r] = Unset("after a call")
            s.memory.pop_frame()
            s.pc = frame.return_pc
            return None
        r0 = _reg(s, 0)
        if isinstance(r0, Ptr | MapRef):
            # The kernel returns the low 32 bits of the address (an input of this program, `_address`).
            r0 = self._address(s, r0)
        return Outcome("return", z3.Extract(31, 0, r0), s.effects, tuple(s.trace), packet=s.memory.packet,
                       packet_writes=s.memory.packet_writes, head=s.memory.head, end=s.memory.end)

    def _call_subprogram(self, s: BCState, insn: Instruction) -> None:
        if len(s.frames) >= MAX_CALL_DEPTH:
            raise Fault(f"call depth exceeds {MAX_CALL_DEPTH}")
        target = self._jump(s, insn, insn.imm)
        s.frames.append(_Frame(s.pc + 1, s.regs[6:11]))
        s.memory.push_frame()
        for r in (0, 6, 7, 8, 9):  # the callee gets only its arguments (and restores r6-r9 at exit)
            s.regs[r] = Unset("in a subprogram that has not written it")
        s.regs[10] = Ptr(Region("stack", depth=len(s.frames)), bv64(STACK_SIZE))
        s.pc = target

    # -- helpers -----------------------------------------------------------------------------------

    def _map(self, v: Val) -> MapShape:
        if not isinstance(v, MapRef):
            raise Fault("helper expected a map argument")
        return self.shapes[v.name]

    def _bytes(self, s: BCState, v: Val, count: int) -> list[Term]:
        if not isinstance(v, Ptr):
            raise Fault("helper expected a pointer argument")
        if v.region.kind == "packet" or v.found is not None:
            raise Unsupported("helper argument in packet memory or a map value")
        return mem.read(s.memory, s.effects, self.shapes, v, 0, count)

    def _scalar(self, v: Val, what: str) -> int:
        value = None if isinstance(v, Ptr | MapRef) else as_int(v)
        if value is None:
            raise Unsupported(f"{what} must be a constant")
        return value

    def _helper(self, s: BCState, insn: Instruction) -> Fork[BCState] | None:
        r = s.regs
        fx = s.effects
        helper = insn.imm
        for arg in _HELPER_ARGUMENTS.get(helper, ()):
            _reg(s, arg)
        result: Val
        if helper == Helper.MAP_LOOKUP_ELEM:
            shape = self._map(r[1])
            key = bytes_to_bv(self._bytes(s, r[2], shape.key_size))
            found = fx.present(shape, key)
            result = Ptr(Region("value", shape.name, key=key, epoch=fx.epochs.get(shape.name, 0)), bv64(0), found)
        elif helper == Helper.MAP_UPDATE_ELEM:
            shape = self._map(r[1])
            key = bytes_to_bv(self._bytes(s, r[2], shape.key_size))
            value = bytes_to_bv(self._bytes(s, r[3], shape.value_size))
            flags = self._scalar(r[4], "map update flags") & (2**64 - 1)
            result = self._update(self.inputs, fx, shape, key, value, flags)
        elif helper == Helper.MAP_DELETE_ELEM:
            shape = self._map(r[1])
            key = bytes_to_bv(self._bytes(s, r[2], shape.key_size))
            if shape.is_array:
                result = bv64(-EINVAL)
            else:
                result = z3.If(fx.present(shape, key), bv64(0), bv64(-ENOENT))
                fx.remove(shape, key)
        elif helper == Helper.KTIME_GET_NS:
            result = fx.next_helper(self.inputs, "ktime")
        elif helper == Helper.GET_PRANDOM_U32:
            result = z3.ZeroExt(32, fx.next_helper(self.inputs, "prandom"))
        elif helper == Helper.GET_SMP_PROCESSOR_ID:
            result = z3.ZeroExt(32, self.inputs.cpu)
        elif helper == Helper.REDIRECT:  # any flag makes it XDP_ABORTED (and leaves the target)
            flags = _scalar_arg(r[2])
            ok = flags == 0
            result = z3.If(ok, bv64(XdpAction.REDIRECT), bv64(XdpAction.ABORTED))
            fx.redirect = z3.If(ok, redirect.device_state(z3.Extract(31, 0, _scalar_arg(r[1]))), fx.redirect)
        elif helper == Helper.REDIRECT_MAP:  # (map, u64 key, u64 flags)
            result = self._redirect_map(s)
        elif helper == Helper.TRACE_PRINTK:  # (fmt, fmt_size, up to 3 arguments)
            fx.output(TRACE_OUTPUT, self._trace_record(s))
            result = Unset("the result of bpf_trace_printk, the length of the text it wrote (not modelled)")
        elif helper == Helper.CSUM_DIFF:  # (from, from_size, to, to_size, seed)
            result = self._csum_diff(s)
        elif helper == Helper.FIB_LOOKUP:  # (ctx, params, int plen, u32 flags)
            result = self._fib_lookup(s)
        elif helper in (Helper.XDP_ADJUST_HEAD, Helper.XDP_ADJUST_TAIL, Helper.XDP_LOAD_BYTES):
            return self._packet_helper(s, helper)
        elif helper == Helper.RINGBUF_OUTPUT:
            shape = self._map(r[1])
            count = self._scalar(r[3], "ring buffer record size")
            if self._scalar(r[4], "ring buffer output flags") & ~_RINGBUF_FLAGS:
                result = bv64(-EINVAL)
            else:
                fx.output(shape.name, bytes_to_bv(self._bytes(s, r[2], count)))
                # It fails when the ring is full, which is not modelled: two programs logging the same
                # records lose the same ones, but one that reads the result could act on a failure.
                result = Unset("the result of bpf_ringbuf_output, which fails on a full ring (not modelled)")
        else:
            raise Unsupported(f"helper {helper} is not modelled")
        r[0] = result
        for i in range(1, 6):  # caller-saved: the verifier forbids reading them after a call
            r[i] = Unset("after a call")
        return None

    def _redirect_map(self, s: BCState) -> Term:
        """bpf_redirect_map: the map's element under the key's low 32 bits decides (`semantics.redirect_map`);
        the elements are the map's inputs. Broadcasting to a whole device map is not modelled."""
        r, fx = s.regs, s.effects
        shape = self._map(r[1])
        if shape.map_type not in REDIRECT_MAP_FLAGS or shape.key_size != 4:
            raise Unsupported(f"bpf_redirect_map on map {shape.name} (type {shape.map_type})")
        key = z3.Extract(31, 0, _scalar_arg(r[2]))
        flags = _scalar_arg(r[3])
        if REDIRECT_MAP_FLAGS[shape.map_type] & REDIRECT_BROADCAST:
            constant = as_int(flags)
            if constant is None or constant & REDIRECT_BROADCAST:
                raise Unsupported("bpf_redirect_map with BPF_F_BROADCAST or variable flags on a device map")
        found = fx.present(shape, key)
        result, bad = redirect_map(Z3_OPS, shape.map_type, flags, found)
        after = redirect.after_redirect_map(shape, key, fx.value(shape, key), found, fx.redirect)
        fx.redirect = z3.If(bad, fx.redirect, after)
        return result

    def _fib_lookup(self, s: BCState) -> Term:
        """bpf_fib_lookup: the struct on the stack answered and written back as `fib` models it; a
        `plen` below its size is -EINVAL with nothing read or written."""
        r = s.regs
        if not (isinstance(r[1], Ptr) and r[1].region.kind == "ctx" and as_int(r[1].offset) == 0):
            raise Fault("bpf_fib_lookup expects the context")
        if self._scalar(r[3], "bpf_fib_lookup's plen") & 0xFFFFFFFF < fib.PARAMS_SIZE:
            return bv64(-EINVAL)
        params = r[2]
        if not isinstance(params, Ptr) or params.region.kind != "stack":
            raise Unsupported("bpf_fib_lookup's params outside the stack")
        before = mem.read(s.memory, s.effects, self.shapes, params, 0, fib.PARAMS_SIZE)
        status, after = fib.call(self.inputs, s.effects, before, z3.Extract(31, 0, _scalar_arg(r[4])))
        mem.write(s.memory, s.effects, self.shapes, params, 0, after)
        return z3.SignExt(32, status)  # an int

    def _trace_record(self, s: BCState) -> Term:
        """What bpf_trace_printk writes to the trace, as a fixed-width record: a digest of its format
        (which must be constant) and the arguments the format converts (unused ones 0)."""
        r = s.regs
        count = self._scalar(r[2], "bpf_trace_printk's format size")
        ptr = r[1]
        if not isinstance(ptr, Ptr) or ptr.found is not None or ptr.region.kind == "packet" or not 0 < count <= 512:
            raise Unsupported("bpf_trace_printk's format is not constant memory")
        parts = [z3.simplify(b) for b in mem.read(s.memory, s.effects, self.shapes, ptr, 0, count)]
        if not all(z3.is_bv_value(b) for b in parts):
            raise Unsupported("bpf_trace_printk's format is not constant")
        fmt = bytes(b.as_long() for b in parts)
        text = fmt.split(b"\0", 1)[0]
        converted = len(re.findall(rb"%[^%]", text.replace(b"%%", b"")))
        if b"\0" not in fmt or converted > 3 or b"%s" in text or b"%p" in text:
            raise Unsupported("bpf_trace_printk with this format (not modelled)")
        digest = int.from_bytes(hashlib.blake2b(fmt, digest_size=8).digest(), "little")
        args = [_scalar_arg(_reg(s, 3 + i)) if i < converted else bv64(0) for i in range(3)]
        return z3.Concat(*reversed(args), z3.BitVecVal(digest, 64))

    def _csum_diff(self, s: BCState) -> Term:
        """bpf_csum_diff as the kernel computes it (6.12 and later, checked on 6.18 x86-64): one's
        complement sums of the 32-bit words (`csum_partial`; a size that is not whole words ends in a
        16- and an 8-bit piece), the difference of the two, folded to 16 bits."""
        r = s.regs
        sizes = [self._scalar(r[2], "bpf_csum_diff's from_size") & 0xFFFFFFFF,
                 self._scalar(r[4], "bpf_csum_diff's to_size") & 0xFFFFFFFF]
        words: list[list[Term]] = []
        for ptr, count in ((r[1], sizes[0]), (r[3], sizes[1])):
            if count == 0:
                words.append([])
                continue
            if not isinstance(ptr, Ptr) or ptr.found is not None or ptr.low32:
                raise Unsupported("bpf_csum_diff of memory that may be null")
            if ptr.region.kind == "packet" and s.memory.meta_read:
                raise Unsupported("packet access in a program that reads xdp_md.data_meta (the metadata "
                                  "bytes are not modelled)")
            data = mem.read(s.memory, s.effects, self.shapes, ptr, 0, count)
            # 32-bit words, then a 16-bit and an 8-bit rest (csum_partial adds each zero-extended).
            whole = count & ~3
            pieces = [bytes_to_bv(data[i:i + 4]) for i in range(0, whole, 4)]
            if count & 2:
                pieces.append(z3.ZeroExt(16, bytes_to_bv(data[whole:whole + 2])))
            if count & 1:
                pieces.append(z3.ZeroExt(24, data[count - 1]))
            words.append(pieces)
        seed = z3.Extract(31, 0, _scalar_arg(r[5]))
        source, target = words
        if source and target:
            ret = _csum_add(_csum_partial(target, seed), ~_csum_partial(source, z3.BitVecVal(0, 32)))
        elif target:
            ret = _csum_partial(target, seed)
        elif source:
            ret = ~_csum_partial(source, ~seed)
        else:
            ret = seed
        return z3.ZeroExt(48, _csum_fold(ret))

    def _packet_helper(self, s: BCState, helper: int) -> Fork[BCState]:
        """The helpers that move or copy the packet; each succeeds or fails (an errno in r0) depending
        on the packet and the frame, so the path forks (both sides are states after the call)."""
        r = s.regs
        if not (isinstance(r[1], Ptr) and r[1].region.kind == "ctx" and as_int(r[1].offset) == 0):
            raise Fault("the helper expects the context")
        m = s.memory
        head, end = m.head, m.end
        if helper == Helper.XDP_LOAD_BYTES:  # (ctx, u32 offset, buf, u32 len)
            offset = z3.ZeroExt(32, z3.Extract(31, 0, _scalar_arg(r[2])))
            count = self._scalar(r[4], "the length bpf_xdp_load_bytes copies") & 0xFFFFFFFF
            buffer = r[3]
            if not isinstance(buffer, Ptr) or buffer.region.kind == "packet" or buffer.found is not None:
                raise Unsupported("bpf_xdp_load_bytes into packet memory or a map value")
            if count > 0xFFFF:
                return self._after_helper(s, [(z3.BoolVal(True), bv64(-EFAULT), None)])
            at = head + offset
            ok = z3.And(z3.ULE(offset, 0xFFFF), z3.ULE(at + count, end))

            def copy(t: BCState) -> None:
                parts = [z3.Select(t.memory.packet, at + i) for i in range(count)]
                mem.write(t.memory, t.effects, self.shapes, buffer, 0, parts)

            return self._after_helper(s, [(ok, bv64(0), copy),
                                          (z3.And(z3.Not(ok), z3.UGT(offset, 0xFFFF)), bv64(-EFAULT), None),
                                          (z3.And(z3.Not(ok), z3.ULE(offset, 0xFFFF)), bv64(-EINVAL), None)])
        delta = z3.SignExt(32, z3.Extract(31, 0, _scalar_arg(r[2])))  # the helpers take an int
        headroom, frame_end = self.inputs.xdp_frame()
        if helper == Helper.XDP_ADJUST_HEAD:  # (ctx, int delta): keep the headroom and an Ethernet header
            new_head = head + delta
            metadata = self.inputs.meta_len()  # moved along; -1 (none) takes no room
            ok = z3.And(new_head - z3.If(metadata < 0, bv64(0), metadata) >= -headroom, new_head <= end - ETH_HLEN)

            def move_head(t: BCState) -> None:
                t.memory.head = new_head

            return self._after_helper(s, [(ok, bv64(0), move_head), (z3.Not(ok), bv64(-EINVAL), None)])
        # xdp_adjust_tail(ctx, int delta): within the frame, keeping an Ethernet header; grown bytes are 0
        new_end = end + delta
        ok = z3.And(new_end <= frame_end, new_end >= head + ETH_HLEN)
        grow = as_int(delta)
        if grow is None:
            raise Unsupported("bpf_xdp_adjust_tail by a variable amount")

        def move_end(t: BCState) -> None:
            for i in range(max(grow, 0)):
                t.memory.packet = z3.Store(t.memory.packet, end + i, z3.BitVecVal(0, 8))
                t.memory.packet_writes = (*t.memory.packet_writes, end + i)
            t.memory.end = new_end

        return self._after_helper(s, [(ok, bv64(0), move_end), (z3.Not(ok), bv64(-EINVAL), None)])

    def _after_helper(self, s: BCState, cases: list[tuple[Term, Term, Callable[[BCState], None] | None]]
                      ) -> Fork[BCState]:
        """The states after a helper call, one per case (condition, r0, what else the case does);
        cases whose condition is trivially false are left out."""
        alternatives: list[tuple[Term, BCState | Outcome]] = []
        for condition, result, effect in cases:
            condition = z3.simplify(condition)
            if z3.is_false(condition):
                continue
            t = s.fork()
            if effect is not None:
                effect(t)
            t.regs[0] = result
            for i in range(1, 6):
                t.regs[i] = Unset("after a call")
            t.pc += 1
            alternatives.append((condition, t))
        return Fork(alternatives)

    @staticmethod
    def _update(inputs: Inputs, fx: Effects, shape: MapShape, key: Term, value: Term, flags: int) -> Term:
        if flags not in tuple(UpdateFlag):
            return bv64(-EINVAL)
        exists = fx.present(shape, key)
        if shape.is_array:
            if flags == UpdateFlag.NOEXIST:
                return z3.If(exists, bv64(-EEXIST), bv64(-E2BIG))
            fx.insert(inputs, shape, key, value, exists)
            return z3.If(exists, bv64(0), bv64(-E2BIG))
        fits = fx.fits(shape, key)  # the kernel checks the flags first, then takes room for a new key
        if flags == UpdateFlag.ANY:
            fx.insert(inputs, shape, key, value, fits)
            return z3.If(fits, bv64(0), bv64(-E2BIG))
        if flags == UpdateFlag.NOEXIST:
            fx.insert(inputs, shape, key, value, z3.And(z3.Not(exists), fits))
            return z3.If(exists, bv64(-EEXIST), z3.If(fits, bv64(0), bv64(-E2BIG)))
        fx.insert(inputs, shape, key, value, exists)
        return z3.If(exists, bv64(0), bv64(-ENOENT))


_ALL_REGISTERS = frozenset(range(11))
_DEAD = Unset("dead")
"""A register no later instruction reads before writing it (what a merge leaves in it)."""


def _csum_partial(words: list[Term], seed: Term) -> Term:
    """The kernel's csum_partial of 32-bit words and a seed: their sum with end-around carry (so 0
    only when every addend is 0, else the sum's remainder modulo 2**32 - 1 in [1, 2**32 - 1])."""
    total = z3.ZeroExt(32, seed)
    for w in words:
        total = total + z3.ZeroExt(32, w)
    m = z3.BitVecVal(0xFFFFFFFF, 64)
    return z3.Extract(31, 0, z3.If(total == 0, z3.BitVecVal(0, 64), z3.URem(total - 1, m) + 1))


def _csum_add(a: Term, b: Term) -> Term:
    """csum_add: a 32-bit sum with the carry added back."""
    total = a + b
    return total + z3.If(z3.ULT(total, b), z3.BitVecVal(1, 32), z3.BitVecVal(0, 32))


def _csum_fold(value: Term) -> Term:
    """csum_from32to16: the two 16-bit halves added with end-around carry."""
    rotated = z3.RotateLeft(value, 16)
    return z3.Extract(31, 16, value + rotated)


def _scalar_arg(v: Val) -> Term:
    """A helper's scalar argument (a pointer where a number belongs is not modelled)."""
    if isinstance(v, Ptr | MapRef | Unset):
        raise Unsupported("a pointer passed where the helper takes a number")
    return v


def _reg(s: BCState, r: int) -> Val:
    """Register `r` as an instruction reads it; reading one the kernel leaves uninitialised is
    something its verifier rejects, so the proof cannot say what the program does."""
    value = s.regs[r]
    if isinstance(value, Unset):
        raise Unsupported(f"insn {s.slot} reads r{r}, which is uninitialised ({value.why}): "
                          "the kernel verifier rejects such a program")
    return value


_MODELLED_HELPERS = frozenset({
    Helper.MAP_LOOKUP_ELEM, Helper.MAP_UPDATE_ELEM, Helper.MAP_DELETE_ELEM, Helper.KTIME_GET_NS, Helper.TRACE_PRINTK,
    Helper.GET_PRANDOM_U32, Helper.GET_SMP_PROCESSOR_ID, Helper.REDIRECT, Helper.CSUM_DIFF, Helper.REDIRECT_MAP,
    Helper.XDP_ADJUST_HEAD, Helper.XDP_ADJUST_TAIL, Helper.RINGBUF_OUTPUT, Helper.XDP_LOAD_BYTES, Helper.FIB_LOOKUP,
})
_HELPER_ARGUMENTS = {int(h): tuple(range(1, helper_arity(h) + 1)) for h in _MODELLED_HELPERS}
"""The argument registers `BytecodeEncoder._helper` reads, by helper id."""


def _reads_writes(insn: Instruction) -> tuple[frozenset[int], frozenset[int]]:
    """The registers the encoding reads and certainly writes at `insn` (reads over-, writes
    under-approximated, so a register found dead is never read before it is written)."""
    kind = insn.kind
    x_src = source(insn.opcode) == Source.X
    if kind == Kind.EXIT:
        return frozenset({0}), frozenset()
    if kind in (Kind.ALU, Kind.SDIV, Kind.NEG, Kind.MOV, Kind.MOVSX, Kind.END, Kind.BSWAP):
        reads = set() if kind == Kind.MOV else {insn.dst}
        if reads_source(insn):
            reads.add(insn.src)
        return frozenset(reads), frozenset({insn.dst})
    if kind == Kind.LDDW:
        return frozenset(), frozenset({insn.dst})
    if kind in (Kind.LDX, Kind.LDX_SX):
        return frozenset({insn.src}), frozenset({insn.dst})
    if kind == Kind.ST:
        return frozenset({insn.dst}), frozenset()
    if kind == Kind.STX:
        return frozenset({insn.dst, insn.src}), frozenset()
    if kind == Kind.ATOMIC:
        return frozenset({insn.dst, insn.src, 0}), frozenset()
    if kind in (Kind.JA, Kind.GOTOL):
        return frozenset(), frozenset()
    if kind == Kind.JCOND:
        return frozenset({insn.dst, insn.src} if x_src else {insn.dst}), frozenset()
    if kind == Kind.CALL and not insn.is_pseudo_call and insn.imm in _HELPER_ARGUMENTS:
        return frozenset(_HELPER_ARGUMENTS[insn.imm]), frozenset(range(6))
    return _ALL_REGISTERS, frozenset()


def _live_registers(insns: tuple[Instruction, ...] | list[Instruction],
                    successors: list[list[int]]) -> list[frozenset[int]]:
    """The registers live before each instruction (backward data flow to a fixed point); r10 always."""
    effects = [_reads_writes(i) for i in insns]
    live = [frozenset({10})] * len(insns)
    changed = True
    while changed:
        changed = False
        for pc in reversed(range(len(insns))):
            reads, writes = effects[pc]
            out: set[int] = set()
            for t in successors[pc]:
                out |= live[t]
            new = frozenset(reads | (out - writes) | {10})
            if new != live[pc]:
                live[pc] = new
                changed = True
    return live


def _basic_blocks(successors: list[list[int]]) -> list[int]:
    """For each instruction, the first instruction of its basic block."""
    count = len(successors)
    leaders = {0}
    for pc, targets in enumerate(successors):
        if targets != [pc + 1]:
            leaders.update(targets)
            leaders.add(pc + 1)
    block_of: list[int] = []
    current = 0
    for pc in range(count):
        if pc in leaders:
            current = pc
        block_of.append(current)
    return block_of


def size_of(count: int) -> Size:
    return {1: Size.B, 2: Size.H, 4: Size.W, 8: Size.DW}[count]
