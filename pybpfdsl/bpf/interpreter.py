"""The bytecode interpreter's machine: runs an XDP program instruction by instruction, executing the
semantics table of :mod:`pybpfdsl.bpf.semantics`.

One :class:`_Machine` is one execution: registers, call frames, the packet, the context and the stacks
(regions of :mod:`pybpfdsl.bpf.memory`), the maps it is given. Each instruction kind has a method; every
memory access is checked against its region, and anything the kernel's verifier would have refused is a
:class:`~pybpfdsl.bpf.faults.BytecodeFault` that names the instruction. Helper calls go to the models in
:mod:`pybpfdsl.bpf.helper_calls`; random numbers, time and the CPU number come from
:mod:`pybpfdsl.bpf.helper_results`. Programs of an ELF object are linked by :mod:`pybpfdsl.bpf.linking`
and kept ready to run by :mod:`pybpfdsl.bpf.image`.

The interpreter knows nothing of the DSL's Python state objects: copying them into a run's maps and
back is :mod:`pybpfdsl.state_transfer`'s job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pybpfdsl.bpf.abi import STACK_SIZE, XDP_MD_SIZE, XdpMd
from pybpfdsl.bpf.faults import BytecodeFault, StepLimitExceeded, UnsupportedHelper
from pybpfdsl.bpf.helper_calls import HELPER_CALLS
from pybpfdsl.bpf.helper_results import HELPER_RESULTS, HelperResults
from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind, slot_offsets
from pybpfdsl.bpf.memory import MASK64, XDP_PACKET_HEADROOM, InterpMap, Pointer, Region, Value
from pybpfdsl.bpf.memory import as_number as _address  # the short name the instruction methods (and a tracing test) use
from pybpfdsl.bpf.opcode import AluOp, AtomicOp, InsnClass, Kind, PseudoSrc, Size, alu_op, size
from pybpfdsl.bpf.semantics import (
    INT_OPS,
    alu,
    alu_operand,
    atomic,
    jump_taken,
    load_value,
    reads_source,
    store_value,
)

__all__ = [
    "DEFAULT_STEP_LIMIT",
    "ExecutionResult",
    "XdpContext",
    "run",
]

DEFAULT_STEP_LIMIT = 1_000_000
MAX_CALL_DEPTH = 8


def _s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


@dataclass(frozen=True)
class XdpContext:
    """The non-pointer fields of ``struct xdp_md`` (BPF_PROG_TEST_RUN without ctx_in: loopback, queue 0)."""

    ingress_ifindex: int = 1
    rx_queue_index: int = 0
    egress_ifindex: int = 0


@dataclass
class ExecutionResult:
    """What one run produced."""

    action: int
    """r0 at exit, truncated to 32 bits (what XDP reads)."""
    packet: bytes
    """The packet as the program left it (between data and data_end)."""
    r0: int
    """r0 at exit, all 64 bits (a pointer's fake address if it returned one)."""
    steps: int
    maps: Mapping[str, InterpMap]
    redirect_ifindex: int | None = None
    redirect_element: tuple[InterpMap, int, bytes] | None = None
    """Where bpf_redirect_map last sent the packet (map, key, the element's bytes then); None after
    bpf_redirect or a miss, which leave a device in `redirect_ifindex`."""


@dataclass
class _Frame:
    return_pc: int
    saved: list[Value]
    stack: Region


class _Code:
    """A program decoded once for any number of runs: each instruction's kind, handler and slot."""

    def __init__(self, insns: Sequence[Instruction]) -> None:
        self.insns = insns
        self.kinds = [insn.kind for insn in insns]
        self.handlers = [_HANDLERS.get(kind) for kind in self.kinds]  # None: EXIT, or a kind not modelled
        self.slot_of = slot_offsets(insns)
        self.index_of_slot = {s: i for i, s in enumerate(self.slot_of)}


class _Machine:
    """State of one execution.  Methods named ``_k_<kind>`` execute one instruction kind."""

    def __init__(self, code: _Code, relocs: Mapping[int, Relocation],
                 maps: Mapping[str, InterpMap], fd_maps: Mapping[int, InterpMap], fd_array: Sequence[InterpMap],
                 packet: bytes, ctx: XdpContext, step_limit: int, stacks: Sequence[bytes] = (),
                 helpers: HelperResults | None = None) -> None:
        self.insns = code.insns
        self.helpers = HELPER_RESULTS.source() if helpers is None else helpers
        self.kinds = code.kinds
        self.handlers = code.handlers
        self.relocs = relocs
        self.maps = maps
        self.fd_maps = fd_maps
        self.fd_array = fd_array
        self.step_limit = step_limit
        self.slot_of = code.slot_of
        self.index_of_slot = code.index_of_slot
        self.packet = Region("packet", "packet", bytearray(XDP_PACKET_HEADROOM) + bytearray(packet),
                             XDP_PACKET_HEADROOM)
        self.ctx = Region("ctx", "xdp_md", bytearray(XDP_MD_SIZE), writable=False)
        for off, val in ((XdpMd.INGRESS_IFINDEX, ctx.ingress_ifindex), (XdpMd.RX_QUEUE_INDEX, ctx.rx_queue_index),
                         (XdpMd.EGRESS_IFINDEX, ctx.egress_ifindex)):
            self.ctx.data[off:off + 4] = val.to_bytes(4, "little")
        self.regs: list[Value] = [0] * 11
        self.regs[1] = Pointer(self.ctx, 0)
        self.frames: list[_Frame] = []
        self.initial_stacks = stacks
        self.stacks_created = 0
        self.stack = self._new_stack()
        self.regs[10] = Pointer(self.stack, STACK_SIZE)
        self.redirect_ifindex: int | None = None
        self.redirect_index: int | None = None  # the kernel's bpf_redirect_info.tgt_index
        self.redirect_element: tuple[InterpMap, int, bytes] | None = None
        self.pc = 0

    def _new_stack(self) -> Region:
        """The next frame's stack: what `initial_stacks` says it holds before the program writes it
        (the kernel promises nothing there), zeros by default."""
        n = self.stacks_created
        self.stacks_created += 1
        initial = self.initial_stacks[n] if n < len(self.initial_stacks) else b""
        data = bytearray(initial[:STACK_SIZE]) + bytearray(max(0, STACK_SIZE - len(initial)))
        return Region("stack", f"stack{len(self.frames)}", data)

    def fault(self, message: str) -> BytecodeFault:
        return BytecodeFault(self.pc, message)

    # ----------------------------------------------------------------- main loop

    def run(self) -> ExecutionResult:
        # The loop's invariants are locals: a global or attribute lookup per step costs measurably.
        insns, kinds, handlers, exit_kind = self.insns, self.kinds, self.handlers, Kind.EXIT
        step_limit = self.step_limit
        steps = 0
        n = len(insns)
        while True:
            pc = self.pc
            if not 0 <= pc < n:
                raise self.fault(f"fell off the program (pc {pc} of {n})")
            steps += 1
            if steps > step_limit:
                raise StepLimitExceeded(pc, f"step limit {step_limit} exceeded")
            handler = handlers[pc]
            if handler is None:
                kind = kinds[pc]
                if kind is not exit_kind:
                    raise self.fault(f"{kind.value} instructions ({insns[pc].opcode:#04x}) are not supported")
                if not self.frames:
                    r0 = _address(self.regs[0])
                    return ExecutionResult(r0 & 0xFFFFFFFF, bytes(self.packet.data[self.packet.lo:self.packet.hi]),
                                           r0, steps, self.maps, self.redirect_ifindex, self.redirect_element)
                self._return()
                continue
            next_pc = handler(self, insns[pc])
            self.pc = pc + 1 if next_pc is None else next_pc  # handlers leave self.pc alone

    def _jump(self, insn: Instruction, delta: int) -> int:
        target_slot = self.slot_of[self.pc] + insn.slots + delta
        target = self.index_of_slot.get(target_slot)
        if target is None:
            raise self.fault(f"jump to slot {target_slot}, which is not an instruction start")
        return target

    # ----------------------------------------------------------------- arithmetic

    def _k_alu(self, insn: Instruction) -> int | None:
        dst = self.regs[insn.dst]
        src: Value | None = self.regs[insn.src] if reads_source(insn) else None
        if isinstance(dst, int) and (src is None or isinstance(src, int)):
            self.regs[insn.dst] = alu(INT_OPS, insn, dst, alu_operand(INT_OPS, insn, src))
        else:
            self.regs[insn.dst] = self._pointer_alu(insn, dst, src)
        return None

    def _pointer_alu(self, insn: Instruction, dst: Value, src: Value | None) -> Value:
        """ALU with a pointer operand: +/- a scalar moves the pointer, ptr - ptr is a distance."""
        op = alu_op(insn.opcode)
        is64 = insn.cls == InsnClass.ALU64
        operand = alu_operand(INT_OPS, insn, None if src is None else _address(src))
        if is64 and insn.kind == Kind.MOV and src is not None:
            return src
        if is64 and insn.kind == Kind.ALU and isinstance(dst, Pointer) and not isinstance(src, Pointer | InterpMap):
            if op == AluOp.ADD:
                return Pointer(dst.region, dst.offset + _s64(operand))
            if op == AluOp.SUB:
                return Pointer(dst.region, dst.offset - _s64(operand))
        if is64 and op == AluOp.ADD and isinstance(src, Pointer) and isinstance(dst, int):
            return Pointer(src.region, src.offset + _s64(dst))
        if is64 and op == AluOp.SUB and isinstance(dst, Pointer) and isinstance(src, Pointer) \
                and dst.region is src.region:
            return (dst.offset - src.offset) & MASK64
        # Anything else turns the pointer into a number (root may leak addresses; nothing reads them).
        return alu(INT_OPS, insn, _address(dst), operand)

    def _k_lddw(self, insn: Instruction) -> int | None:
        reloc = self.relocs.get(self.pc)
        self.regs[insn.dst] = self._reference(insn, reloc)
        return None

    def _reference(self, insn: Instruction, reloc: Relocation | None) -> Value:
        if reloc is not None:
            if reloc.kind == RelocKind.MAP:
                return self._map_named(reloc.symbol)
            if reloc.kind == RelocKind.DATA:
                return Pointer(self._section_region(reloc.section), reloc.offset)
            raise self.fault(f"lddw of {reloc.kind.value} reference {reloc.symbol!r} is not supported")
        pseudo = insn.src
        if pseudo == PseudoSrc.NONE:
            return insn.imm64
        if pseudo in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
            m = self.fd_maps.get(insn.imm)
            if m is None:
                raise self.fault(f"no map with fd {insn.imm}")
        elif pseudo in (PseudoSrc.MAP_IDX, PseudoSrc.MAP_IDX_VALUE):
            if not 0 <= insn.imm < len(self.fd_array):
                raise self.fault(f"fd_array has no entry {insn.imm}")
            m = self.fd_array[insn.imm]
        else:
            raise self.fault(f"lddw pseudo source {pseudo} is not supported")
        if pseudo in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX):
            return m
        return Pointer(self._element0(m), insn.imm_hi & 0xFFFFFFFF)

    def _map_named(self, name: str) -> InterpMap:
        m = self.maps.get(name)
        if m is None:
            raise self.fault(f"no map {name!r}")
        return m

    def _element0(self, m: InterpMap) -> Region:
        region = m.entries.get(InterpMap.index_key(0))
        if region is None:
            raise self.fault(f"map {m.name!r} has no element 0 to point into")
        return region

    def _section_region(self, section: str) -> Region:
        return self._element0(self._map_named(section))

    # ----------------------------------------------------------------- memory

    def _locate(self, base: Value, off: int, nbytes: int, write: bool) -> tuple[Region, int]:
        if not isinstance(base, Pointer):
            raise self.fault(f"memory access through a non-pointer ({_address(base):#x})")
        region, at = base.region, base.offset + off
        if at < region.lo or at + nbytes > region.hi:
            raise self.fault(f"{nbytes}-byte access at offset {at} outside {region.kind} {region.name} "
                             f"[{region.lo}, {region.hi})")
        if write and not region.writable:
            raise self.fault(f"write to read-only {region.kind} {region.name}")
        return region, at

    def _read(self, base: Value, off: int, sz: Size, signed: bool = False) -> Value:
        nbytes = sz.bytes
        if isinstance(base, Pointer) and base.region is self.ctx:
            return self._read_ctx(base.offset + off, nbytes)
        region, at = self._locate(base, off, nbytes, write=False)
        if nbytes == 8 and at in region.pointers:
            return region.pointers[at]
        raw = int.from_bytes(region.data[at:at + nbytes], "little")
        return load_value(INT_OPS, raw, sz, signed)

    def _read_ctx(self, at: int, nbytes: int) -> Value:
        pkt = self.packet
        if nbytes != 4:  # xdp_md's fields are u32: the kernel refuses other widths
            raise self.fault(f"invalid xdp_md access: {nbytes} bytes at offset {at}")
        if at in (XdpMd.DATA, XdpMd.DATA_META):
            return Pointer(pkt, pkt.lo)  # no metadata: data_meta == data
        if at == XdpMd.DATA_END:
            return Pointer(pkt, pkt.hi)
        if at < XdpMd.INGRESS_IFINDEX or at + nbytes > XDP_MD_SIZE or at % 4:
            raise self.fault(f"invalid xdp_md access: {nbytes} bytes at offset {at}")
        return int.from_bytes(self.ctx.data[at:at + nbytes], "little")

    def _write(self, base: Value, off: int, sz: Size, value: Value) -> None:
        nbytes = sz.bytes
        region, at = self._locate(base, off, nbytes, write=True)
        self._forget_pointers(region, at, nbytes)
        if nbytes == 8 and not isinstance(value, int):
            region.pointers[at] = value
        bits = store_value(INT_OPS, _address(value), sz)
        region.data[at:at + nbytes] = bits.to_bytes(nbytes, "little")

    @staticmethod
    def _forget_pointers(region: Region, at: int, nbytes: int) -> None:
        if region.pointers:
            for p in [p for p in region.pointers if p < at + nbytes and p + 8 > at]:
                del region.pointers[p]

    def _k_ldx(self, insn: Instruction) -> int | None:
        self.regs[insn.dst] = self._read(self.regs[insn.src], insn.off, size(insn.opcode))
        return None

    def _k_ldx_sx(self, insn: Instruction) -> int | None:
        self.regs[insn.dst] = self._read(self.regs[insn.src], insn.off, size(insn.opcode), signed=True)
        return None

    def _k_st(self, insn: Instruction) -> int | None:
        self._write(self.regs[insn.dst], insn.off, size(insn.opcode), insn.imm_sext)
        return None

    def _k_stx(self, insn: Instruction) -> int | None:
        self._write(self.regs[insn.dst], insn.off, size(insn.opcode), self.regs[insn.src])
        return None

    def _k_atomic(self, insn: Instruction) -> int | None:
        sz = size(insn.opcode)
        try:
            aop = AtomicOp(insn.imm)
        except ValueError:
            raise self.fault(f"unknown atomic operation {insn.imm:#x}") from None
        region, at = self._locate(self.regs[insn.dst], insn.off, sz.bytes, write=True)
        if at % sz.bytes:
            raise self.fault(f"misaligned atomic access at offset {at}")
        old = int.from_bytes(region.data[at:at + sz.bytes], "little")
        effect = atomic(INT_OPS, aop, sz, old, _address(self.regs[insn.src]), _address(self.regs[0]))
        self._forget_pointers(region, at, sz.bytes)
        region.data[at:at + sz.bytes] = effect.memory.to_bytes(sz.bytes, "little")
        if effect.register is not None and effect.fetched is not None:
            self.regs[0 if effect.register == "r0" else insn.src] = effect.fetched
        return None

    # ----------------------------------------------------------------- control flow

    def _k_ja(self, insn: Instruction) -> int | None:
        return self._jump(insn, insn.off)

    def _k_gotol(self, insn: Instruction) -> int | None:
        return self._jump(insn, insn.imm)

    def _k_jcond(self, insn: Instruction) -> int | None:
        dst = _address(self.regs[insn.dst])
        src = alu_operand(INT_OPS, insn, _address(self.regs[insn.src]))
        return self._jump(insn, insn.off) if jump_taken(INT_OPS, insn, dst, src) else None

    def _k_call(self, insn: Instruction) -> int | None:
        if insn.is_pseudo_call:
            return self._call_subprogram(insn)
        if not insn.is_helper_call:
            raise self.fault("kfunc calls are not supported")
        helper = HELPER_CALLS.get(insn.imm)
        if helper is None:
            raise UnsupportedHelper(self.pc, insn.imm)
        result = helper(self, self.regs[1:6])
        self.regs[0] = result
        for r in range(1, 6):  # caller-saved: the verifier forbids reading them after a call
            self.regs[r] = 0
        return None

    def _call_subprogram(self, insn: Instruction) -> int:
        if len(self.frames) >= MAX_CALL_DEPTH:
            raise self.fault(f"call depth exceeds {MAX_CALL_DEPTH}")
        target = self._jump(insn, insn.imm)
        self.frames.append(_Frame(self.pc + 1, self.regs[6:11], self.stack))
        self.stack = self._new_stack()
        self.regs[10] = Pointer(self.stack, STACK_SIZE)
        return target

    def _return(self) -> None:
        frame = self.frames.pop()
        # Callee-saved registers and the frame pointer are the caller's again (the kernel's JITs
        # save r6-r9 in the callee; its interpreter gives the callee a fresh register file).
        self.regs[6:11] = frame.saved
        for r in range(1, 6):
            self.regs[r] = 0
        self.stack = frame.stack
        self.pc = frame.return_pc

    # ----------------------------------------------------------------- for the helpers (helper_calls.HelperMachine)

    def read_bytes(self, ptr: Value, nbytes: int) -> bytes:
        region, at = self._locate(ptr, 0, nbytes, write=False)
        return bytes(region.data[at:at + nbytes])

    def write_bytes(self, ptr: Value, data: bytes) -> None:
        nbytes = len(data)
        region, at = self._locate(ptr, 0, nbytes, write=True)
        self._forget_pointers(region, at, nbytes)
        region.data[at:at + nbytes] = data


_HANDLERS: Mapping[Kind, Callable[[_Machine, Instruction], int | None]] = {
    Kind.ALU: _Machine._k_alu,
    Kind.SDIV: _Machine._k_alu,
    Kind.NEG: _Machine._k_alu,
    Kind.MOV: _Machine._k_alu,
    Kind.MOVSX: _Machine._k_alu,
    Kind.END: _Machine._k_alu,
    Kind.BSWAP: _Machine._k_alu,
    Kind.LDDW: _Machine._k_lddw,
    Kind.LDX: _Machine._k_ldx,
    Kind.LDX_SX: _Machine._k_ldx_sx,
    Kind.ST: _Machine._k_st,
    Kind.STX: _Machine._k_stx,
    Kind.ATOMIC: _Machine._k_atomic,
    Kind.JA: _Machine._k_ja,
    Kind.GOTOL: _Machine._k_gotol,
    Kind.JCOND: _Machine._k_jcond,
    Kind.CALL: _Machine._k_call,
}


def run(insns: Sequence[Instruction], packet: bytes, *, relocations: Mapping[int, Relocation] | None = None,
        maps: Mapping[str, InterpMap] | None = None, fd_maps: Mapping[int, InterpMap] | None = None,
        fd_array: Sequence[InterpMap] = (), ctx: XdpContext | None = None,
        step_limit: int = DEFAULT_STEP_LIMIT, stacks: Sequence[bytes] = (),
        helpers: HelperResults | None = None) -> ExecutionResult:
    """Run an XDP program on ``packet``.

    ``relocations`` (by instruction index, as :func:`link_program` returns them) resolve lddw of maps
    and global data by name through ``maps``, in which global-data sections appear under their section
    name (``.bss``...).  Raw pseudo lddw forms resolve through ``fd_maps`` (MAP_FD / MAP_VALUE) and
    ``fd_array`` (MAP_IDX / MAP_IDX_VALUE).  Maps are updated in place.  ``stacks`` gives what the
    stack frames hold before the program writes them, in the order the run creates them (the main
    frame first, then one per bpf-to-bpf call; each up to 512 bytes, the lowest address first, so byte
    ``i`` is at ``r10 - 512 + i``); frames beyond it, and bytes past its end, hold zeros. ``helpers``
    answers the random, clock and CPU helpers (:data:`HELPER_RESULTS` when None).
    """
    return _run(_Code(insns), packet, relocations or {}, maps or {}, fd_maps or {}, fd_array, ctx, step_limit,
                stacks, helpers)


def _run(code: _Code, packet: bytes, relocations: Mapping[int, Relocation], maps: Mapping[str, InterpMap],
         fd_maps: Mapping[int, InterpMap], fd_array: Sequence[InterpMap], ctx: XdpContext | None,
         step_limit: int, stacks: Sequence[bytes], helpers: HelperResults | None) -> ExecutionResult:
    return _Machine(code, relocations, maps, fd_maps, fd_array, packet, ctx or XdpContext(), step_limit,
                    stacks, helpers).run()

