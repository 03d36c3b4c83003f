"""A bytecode interpreter for XDP programs, executing the semantics table of :mod:`pybpfdsl.bpf.semantics`.

Values in registers are 64-bit unsigned ints (scalars), :class:`Pointer`\\ s ``(region, offset)`` or
:class:`InterpMap` handles (what ``lddw rX, map`` loads).  Every piece of memory a program can reach is
a :class:`Region`: the packet, one stack per call frame, the XDP context, each map value and each
global-data section.  Keeping pointers symbolic rather than as addresses is what lets the interpreter
check every access exactly (a :class:`BytecodeFault` names the instruction) and lets a map value
pointer alias the stored value: a store through it changes the map.

Where a program needs a pointer as a number (comparison with a scalar, arithmetic other than +/-
scalar, a narrow store), it uses a fixed fake address per region, so pointers into the same region
still compare by offset (``data + k > data_end``) and a non-NULL pointer compares unequal to 0.

Helper results for randomness, time and the CPU number are inputs, not meaning: a run takes them from
the :class:`HelperResults` its caller passes, or else from :data:`HELPER_RESULTS` (which the package
points at the DSL's helper source, so pure Python, the IR interpreter and this interpreter share one).
The interpreter knows nothing of the DSL's Python state objects: copying them into a run's maps and
back is :mod:`pybpfdsl.state_transfer`'s job.

Long because the machine, its memory model (regions, pointers, maps) and the helpers it models share
one state and are read together; the arithmetic is :mod:`pybpfdsl.bpf.semantics`'s, not repeated here.
"""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, NamedTuple, Protocol, TypeAlias

from pybpfdsl.bpf.abi import (
    ARRAY_MAP_TYPES,
    LRU_MAP_TYPES,
    STACK_SIZE,
    XDP_MD_SIZE,
    Helper,
    MapType,
    UpdateFlag,
    XdpAction,
    XdpMd,
)
from pybpfdsl.bpf.instruction import HELPERS, Instruction, Relocation, RelocKind, slot_offsets
from pybpfdsl.bpf.opcode import AluOp, AtomicOp, InsnClass, Kind, PseudoSrc, Size, alu_op, size
from pybpfdsl.bpf.semantics import (
    INT_OPS,
    REDIRECT_BROADCAST,
    REDIRECT_MAP_FLAGS,
    alu,
    alu_operand,
    atomic,
    jump_taken,
    load_value,
    reads_source,
    redirect_map,
    store_value,
)

if TYPE_CHECKING:
    from pybpfdsl.bpf.elf import BpfElf

__all__ = [
    "ArrayElements",
    "BytecodeFault",
    "BytecodeImage",
    "ExecutionResult",
    "HELPER_RESULTS",
    "HelperHook",
    "HelperResults",
    "InterpMap",
    "MapType",
    "Pointer",
    "Region",
    "StepLimitExceeded",
    "UnsupportedHelper",
    "XdpContext",
    "link_program",
    "run",
]

MASK64 = (1 << 64) - 1
XDP_PACKET_HEADROOM = 256  # BPF_PROG_TEST_RUN puts the packet this far into its buffer
XDP_FRAME_END = 3520  # and ends its frame this far after the packet's start (4 KiB less headroom, skb_shared_info)
XDP_FRAME_SIZE = 40  # xdp_adjust_head keeps this much headroom for struct xdp_frame
ETH_HLEN = 14
DEFAULT_STEP_LIMIT = 1_000_000
MAX_CALL_DEPTH = 8

EINVAL, ENOENT, EEXIST, E2BIG, EAGAIN, EFAULT = 22, 2, 17, 7, 11, 14
RINGBUF_RECORD_HEADER = 8  # the kernel's per-record header in a ring buffer
RINGBUF_FLAGS = 3  # BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP: bpf_ringbuf_output refuses any other bit


class BytecodeFault(Exception):
    """The program did something the kernel's verifier would have prevented (or the model lacks)."""

    def __init__(self, pc: int, message: str) -> None:
        super().__init__(f"insn {pc}: {message}")
        self.pc = pc
        self.message = message


class UnsupportedHelper(BytecodeFault):
    """A call of a helper the interpreter does not model."""

    def __init__(self, pc: int, helper_id: int) -> None:
        name = HELPERS.get(helper_id, "?")
        super().__init__(pc, f"helper {helper_id} (bpf_{name}) is not supported by the interpreter")
        self.helper_id = helper_id


class StepLimitExceeded(BytecodeFault):
    """More instructions executed than the step limit allows."""


_HASH_TYPES = frozenset({MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH})


# --------------------------------------------------------------------------- #
# Helper results
# --------------------------------------------------------------------------- #


class HelperResults(Protocol):
    """Supplies the results of bpf_get_prandom_u32, bpf_ktime_get_ns and bpf_get_smp_processor_id, in
    the order a run asks for them. :class:`pybpfdsl.lang.helpers.HelperSource` has this shape."""

    def prandom_u32(self) -> int: ...
    def ktime_get_ns(self) -> int: ...
    def cpu_id(self) -> int: ...


class _SystemResults:
    """Real randomness, the monotonic clock and CPU 0 (what the kernel gives, approximately)."""

    def __init__(self) -> None:
        self._rng = random.SystemRandom()

    def prandom_u32(self) -> int:
        return self._rng.getrandbits(32)

    def ktime_get_ns(self) -> int:
        return time.monotonic_ns()

    def cpu_id(self) -> int:
        return 0


_SYSTEM_RESULTS = _SystemResults()


@dataclass
class HelperHook:
    """Where a run that is given no :class:`HelperResults` takes them: ``source()``, asked once per run.

    The interpreter may import nothing of the DSL, so the package (``pybpfdsl/__init__.py``) points
    :data:`HELPER_RESULTS` at :func:`pybpfdsl.lang.helpers.current_helpers`; by itself it gives the
    system's randomness and clock."""

    source: Callable[[], HelperResults] = lambda: _SYSTEM_RESULTS


HELPER_RESULTS = HelperHook()


# --------------------------------------------------------------------------- #
# Memory
# --------------------------------------------------------------------------- #

KERNEL_ADDRESSES = (0xFFFF_0000_0000_0000, (1 << 64) - (1 << 24))
"""Where the kernel's objects (context, packet, stacks, maps and their values) lie: the kernel half of
the address space of x86-64 and arm64, short of its last 16 MiB (the fixmap). The fake addresses below
stay inside, so a comparison of a pointer that the prover decides for every such address replays."""
_BASES_START = 0xFFFF_8880_0000_0000  # where x86-64's direct map starts
_BASE_SPACING = 1 << 28
_BASE_SLOTS = (KERNEL_ADDRESSES[1] - _BASE_SPACING - _BASES_START) // _BASE_SPACING
_next_base = [0]


def _fresh_base() -> int:
    # 256 MiB apart, so no offset a verified program can reach makes two regions' addresses overlap;
    # after half a million regions (a big array map has one per element) the slots are used again.
    _next_base[0] = (_next_base[0] + 1) % _BASE_SLOTS
    return _BASES_START + _next_base[0] * _BASE_SPACING


@dataclass(eq=False)
class Region:
    """A piece of memory: bytes plus the window ``[lo, hi)`` a program may touch.

    ``pointers`` remembers pointers stored with 8-byte stores (register spills), keyed by offset, so a
    later 8-byte load there gives the pointer back rather than its fake address.
    """

    kind: str
    name: str
    data: bytearray
    lo: int = 0
    hi: int = -1
    writable: bool = True
    base: int = field(default_factory=_fresh_base)
    pointers: dict[int, Pointer | InterpMap] = field(default_factory=dict)

    created: ClassVar[int] = 0
    """How many regions this process has made: a run's cost in memory copies (tests bound it)."""

    def __post_init__(self) -> None:
        Region.created += 1
        if self.hi < 0:
            self.hi = len(self.data)


class Pointer(NamedTuple):
    """A pointer: a region and a byte offset into its ``data``."""

    region: Region
    offset: int

    @property
    def address(self) -> int:
        return (self.region.base + self.offset) & MASK64


class ArrayElements(MutableMapping[bytes, Region]):
    """The elements of an array map, by 4-byte little-endian index: every index is present, and each
    element's region is made the first time it is asked for (copy on first touch), from ``initial``
    (index -> value bytes; zeros when None). A run then costs what it touches, not the array's size.

    ``made`` holds the elements made so far: the only ones whose bytes can differ from ``initial``.
    """

    def __init__(self, owner: InterpMap, initial: Callable[[int], bytes] | None = None) -> None:
        self._owner = owner
        self.initial = initial
        self.made: dict[bytes, Region] = {}

    def _index(self, key: object) -> int | None:
        if not isinstance(key, bytes | bytearray) or len(key) != 4:
            return None
        index = int.from_bytes(key, "little")
        return index if index < self._owner.max_entries else None

    def __getitem__(self, key: bytes) -> Region:
        region = self.made.get(key)
        if region is None:
            index = self._index(key)
            if index is None:
                raise KeyError(key)
            owner = self._owner
            value = bytes(owner.value_size) if self.initial is None else self.initial(index)
            region = self.made[bytes(key)] = owner._region(bytes(key), value)
        return region

    def __setitem__(self, key: bytes, region: Region) -> None:
        if self._index(key) is None:
            raise KeyError(key)
        self.made[bytes(key)] = region

    def __delitem__(self, key: bytes) -> None:
        raise KeyError(f"array elements cannot be deleted ({key.hex()})")

    def __contains__(self, key: object) -> bool:
        return self._index(key) is not None

    def __iter__(self) -> Iterator[bytes]:
        return (InterpMap.index_key(i) for i in range(self._owner.max_entries))

    def __len__(self) -> int:
        return self._owner.max_entries


@dataclass(eq=False)
class InterpMap:
    """A map: keys are bytes, each value is a :class:`Region` that value pointers point into.

    Arrays (and global-data sections, which are one-element arrays) hold every element from the start,
    as :class:`ArrayElements` that are copied in when first touched; hash maps keep insertion order,
    which for LRU maps is recency order.  Ring buffers collect records.
    """

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    entries: MutableMapping[bytes, Region] = field(default_factory=dict)
    records: list[bytes] = field(default_factory=list)
    ringbuf_used: int = 0  # bytes taken by records nobody has consumed yet (ring buffers only)
    readonly: bool = False
    base: int = field(default_factory=_fresh_base)

    def __post_init__(self) -> None:
        if self.map_type in ARRAY_MAP_TYPES and not self.entries:
            self.entries = ArrayElements(self)

    @staticmethod
    def index_key(index: int) -> bytes:
        return index.to_bytes(4, "little")

    def _region(self, key: bytes, value: bytes) -> Region:
        return Region("map_value", f"{self.name}[{key.hex()}]", bytearray(value), writable=not self.readonly)

    @classmethod
    def section(cls, name: str, contents: bytes, readonly: bool = False) -> InterpMap:
        """A global-data section as libbpf presents it: an array map of one element."""
        m = cls(name, MapType.ARRAY, 4, len(contents), 1, readonly=readonly)
        m.entries[cls.index_key(0)].data[:] = contents
        return m

    def value(self, key: bytes) -> bytes | None:
        """Current value bytes stored under ``key``."""
        region = self.entries.get(key)
        return None if region is None else bytes(region.data)

    def lookup(self, key: bytes) -> Region | None:
        region = self.entries.get(key)
        if region is not None and self.map_type in LRU_MAP_TYPES:
            self.entries[key] = self.entries.pop(key)  # most recently used goes last
        return region

    def update(self, key: bytes, value: bytes, flags: int = UpdateFlag.ANY) -> int:
        """bpf_map_update_elem: 0 or a negative errno, as the kernel returns it."""
        if flags not in (UpdateFlag.ANY, UpdateFlag.NOEXIST, UpdateFlag.EXIST):
            return -EINVAL
        exists = key in self.entries
        if self.map_type in ARRAY_MAP_TYPES:
            if not exists:
                return -E2BIG
            if flags == UpdateFlag.NOEXIST:
                return -EEXIST
            self.entries[key].data[:] = value  # arrays update in place: pointers see the new value
            return 0
        if self.map_type not in _HASH_TYPES:
            return -EINVAL
        if flags == UpdateFlag.NOEXIST and exists:
            return -EEXIST
        if flags == UpdateFlag.EXIST and not exists:
            return -ENOENT
        if not exists and len(self.entries) >= self.max_entries:
            if self.map_type not in LRU_MAP_TYPES:
                return -E2BIG
            self.entries.pop(next(iter(self.entries)))
        # The kernel's hash maps link in a new element; pointers to the old one keep the old bytes.
        self.entries.pop(key, None)
        self.entries[key] = self._region(key, value)
        return 0

    def delete(self, key: bytes) -> int:
        if self.map_type not in _HASH_TYPES:
            return -EINVAL
        return 0 if self.entries.pop(key, None) is not None else -ENOENT


Value: TypeAlias = "int | Pointer | InterpMap"


def _address(v: Value) -> int:
    """The number a value stands for when used as a scalar."""
    if isinstance(v, int):
        return v
    if isinstance(v, Pointer):
        return v.address
    return v.base


def _s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


@dataclass(frozen=True)
class XdpContext:
    """The non-pointer fields of ``struct xdp_md`` (BPF_PROG_TEST_RUN without ctx_in: loopback, queue 0)."""

    ingress_ifindex: int = 1
    rx_queue_index: int = 0
    egress_ifindex: int = 0


# --------------------------------------------------------------------------- #
# Programs: linking and reference resolution
# --------------------------------------------------------------------------- #


def link_program(elf: BpfElf, name: str) -> tuple[list[Instruction], dict[int, Relocation]]:
    """The program ``name`` followed by ``.text`` (its subprograms), calls patched to pc-relative.

    Returns the instructions and the relocations that remain (map and data references), keyed by the
    index into the returned list.
    """
    main = elf.program(name)
    text = elf.text
    parts = [main] if text is None or not text.instructions or text is main else [main, text]
    insns: list[Instruction] = []
    base_index: dict[str, int] = {}
    base_slot: dict[str, int] = {}
    for part in parts:
        base_index[part.section] = len(insns)
        base_slot[part.section] = sum(i.slots for i in insns)
        insns.extend(part.instructions)
    starts = slot_offsets(insns)
    relocs: dict[int, Relocation] = {}
    for part in parts:
        for r in part.relocations:
            index = base_index[part.section] + r.insn_index
            if r.kind == RelocKind.CALL and r.section in base_slot:
                target = base_slot[r.section] + r.offset // 8
                call = insns[index]
                insns[index] = Instruction(call.opcode, call.dst, call.src, call.off, target - (starts[index] + 1))
            else:
                relocs[index] = r
    return insns, relocs


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
    """A program decoded once for any number of runs: each instruction's kind and slot."""

    def __init__(self, insns: Sequence[Instruction]) -> None:
        self.insns = insns
        self.kinds = [insn.kind for insn in insns]
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
        steps = 0
        n = len(self.insns)
        while True:
            if not 0 <= self.pc < n:
                raise self.fault(f"fell off the program (pc {self.pc} of {n})")
            steps += 1
            if steps > self.step_limit:
                raise StepLimitExceeded(self.pc, f"step limit {self.step_limit} exceeded")
            insn = self.insns[self.pc]
            kind = self.kinds[self.pc]
            if kind == Kind.EXIT:
                if not self.frames:
                    r0 = _address(self.regs[0])
                    return ExecutionResult(r0 & 0xFFFFFFFF, bytes(self.packet.data[self.packet.lo:self.packet.hi]),
                                           r0, steps, self.maps, self.redirect_ifindex, self.redirect_element)
                self._return()
                continue
            handler = _HANDLERS.get(kind)
            if handler is None:
                raise self.fault(f"{kind.value} instructions ({insn.opcode:#04x}) are not supported")
            next_pc = handler(self, insn)
            self.pc = self.pc + 1 if next_pc is None else next_pc

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
        helper = _HELPER_IMPLS.get(insn.imm)
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

    # ----------------------------------------------------------------- helpers

    def map_arg(self, v: Value) -> InterpMap:
        if not isinstance(v, InterpMap):
            raise self.fault("helper expected a map argument")
        return v

    def read_bytes(self, ptr: Value, nbytes: int) -> bytes:
        region, at = self._locate(ptr, 0, nbytes, write=False)
        return bytes(region.data[at:at + nbytes])


def _scalar(v: Value) -> int:
    return _address(v)


def _errno(value: int) -> int:
    return value & MASK64


def _h_lookup(m: _Machine, args: list[Value]) -> Value:
    mp = m.map_arg(args[0])
    region = mp.lookup(m.read_bytes(args[1], mp.key_size))
    return 0 if region is None else Pointer(region, 0)


def _h_update(m: _Machine, args: list[Value]) -> Value:
    mp = m.map_arg(args[0])
    key = m.read_bytes(args[1], mp.key_size)
    value = m.read_bytes(args[2], mp.value_size)
    if mp.readonly:
        return _errno(-EINVAL)
    return _errno(mp.update(key, value, _scalar(args[3])))


def _h_delete(m: _Machine, args: list[Value]) -> Value:
    mp = m.map_arg(args[0])
    return _errno(mp.delete(m.read_bytes(args[1], mp.key_size)))


def _h_ktime(m: _Machine, args: list[Value]) -> Value:
    return m.helpers.ktime_get_ns() & MASK64


def _h_prandom(m: _Machine, args: list[Value]) -> Value:
    return m.helpers.prandom_u32() & 0xFFFFFFFF


def _h_cpu(m: _Machine, args: list[Value]) -> Value:
    return m.helpers.cpu_id() & 0xFFFFFFFF


def _h_redirect(m: _Machine, args: list[Value]) -> Value:
    if _scalar(args[1]):
        return XdpAction.ABORTED  # bpf_xdp_redirect rejects every flag
    m.redirect_ifindex = m.redirect_index = _scalar(args[0]) & 0xFFFFFFFF
    m.redirect_element = None
    return XdpAction.REDIRECT


def _h_redirect_map(m: _Machine, args: list[Value]) -> Value:
    """bpf_redirect_map: the element under the key's low 32 bits decides (`semantics.redirect_map`); a
    miss leaves the device numbered by the last index, as the kernel's redirect state does."""
    mp = m.map_arg(args[0])
    if mp.map_type not in REDIRECT_MAP_FLAGS or mp.key_size != 4:
        raise UnsupportedHelper(m.pc, Helper.REDIRECT_MAP)
    key, flags = _scalar(args[1]) & 0xFFFFFFFF, _scalar(args[2])
    if flags & REDIRECT_BROADCAST & REDIRECT_MAP_FLAGS[mp.map_type]:
        raise UnsupportedHelper(m.pc, Helper.REDIRECT_MAP)  # every device of the map: not modelled
    indexed = key < mp.max_entries or mp.map_type == MapType.DEVMAP_HASH
    element = mp.entries.get(key.to_bytes(4, "little")) if indexed else None
    action, kept = redirect_map(INT_OPS, mp.map_type, flags, element is not None)
    if kept:
        return action
    if element is not None:
        m.redirect_element, m.redirect_ifindex, m.redirect_index = (mp, key, bytes(element.data)), None, key
    else:  # the index stays
        m.redirect_element, m.redirect_ifindex = None, m.redirect_index
    return action


def _h_adjust_head(m: _Machine, args: list[Value]) -> Value:
    raw = _scalar(args[1]) & 0xFFFFFFFF
    delta = raw - (1 << 32) if raw >> 31 else raw  # the helper takes an int
    pkt = m.packet
    new_lo = pkt.lo + delta
    if new_lo < XDP_FRAME_SIZE or new_lo > pkt.hi - ETH_HLEN:
        return _errno(-EINVAL)
    pkt.lo = new_lo
    pkt.pointers.clear()
    return 0


def _h_adjust_tail(m: _Machine, args: list[Value]) -> Value:
    raw = _scalar(args[1]) & 0xFFFFFFFF
    delta = raw - (1 << 32) if raw >> 31 else raw  # the helper takes an int
    pkt = m.packet
    new_hi = pkt.hi + delta
    if new_hi > XDP_PACKET_HEADROOM + XDP_FRAME_END or new_hi < pkt.lo + ETH_HLEN:
        return _errno(-EINVAL)
    if new_hi > len(pkt.data):
        pkt.data.extend(bytes(new_hi - len(pkt.data)))
    if delta > 0:  # the kernel clears what the packet grows into
        pkt.data[pkt.hi:new_hi] = bytes(delta)
    pkt.hi = new_hi
    pkt.pointers.clear()
    return 0


def _csum_partial(data: bytes, seed: int) -> int:
    """The kernel's csum_partial: 32-bit words (then a 16- and an 8-bit rest) and the seed added with
    end-around carry: 0 only when all are 0."""
    whole = len(data) & ~3
    total = seed + sum(int.from_bytes(data[i:i + 4], "little") for i in range(0, whole, 4))
    rest = data[whole:]
    total += int.from_bytes(rest[:len(rest) & 2], "little") + (rest[-1] if len(rest) & 1 else 0)
    return 0 if total == 0 else (total - 1) % 0xFFFFFFFF + 1


def _h_csum_diff(m: _Machine, args: list[Value]) -> Value:
    from_size, to_size = _scalar(args[1]) & 0xFFFFFFFF, _scalar(args[3]) & 0xFFFFFFFF
    seed = _scalar(args[4]) & 0xFFFFFFFF
    old = m.read_bytes(args[0], from_size) if from_size else b""
    new = m.read_bytes(args[2], to_size) if to_size else b""
    if old and new:
        ret = _csum_partial(new, seed) + (~_csum_partial(old, 0) & 0xFFFFFFFF)
        ret = (ret & 0xFFFFFFFF) + (ret >> 32)  # csum_sub: add the complement with end-around carry
    elif new:
        ret = _csum_partial(new, seed)
    elif old:
        ret = ~_csum_partial(old, ~seed & 0xFFFFFFFF) & 0xFFFFFFFF
    else:
        ret = seed
    return ((ret + ((ret << 16 | ret >> 16) & 0xFFFFFFFF)) & 0xFFFFFFFF) >> 16  # csum_from32to16


_PRINTK_CONVERSION = re.compile(rb"%([-+ 0#]*)([0-9]*)(ll|l|hh|h|z)?([diuxXc%])")


def _h_trace_printk(m: _Machine, args: list[Value]) -> Value:
    """The length of the text bpf_trace_printk writes (the text itself is not kept), for formats of
    integer conversions; -EINVAL for a format without its NUL or with more than three conversions."""
    fmt = m.read_bytes(args[0], _scalar(args[1]) & 0xFFFFFFFF)
    if b"\0" not in fmt:
        return _errno(-EINVAL)
    text = fmt.split(b"\0", 1)[0]
    values = iter(_scalar(a) for a in args[2:5])
    out: list[str] = []
    pos = 0
    try:
        for conv in _PRINTK_CONVERSION.finditer(text):
            out.append(text[pos:conv.start()].decode("latin-1"))
            pos = conv.end()
            flags, width, length, kind = (g.decode() if g else "" for g in conv.groups())
            if kind == "%":
                out.append("%")
                continue
            v = next(values)
            bits = 64 if length in ("l", "ll", "z") else 32
            v &= (1 << bits) - 1
            if kind in "di" and v >> (bits - 1):
                v -= 1 << bits
            out.append(("%" + flags + width + ("d" if kind in "diu" else kind)) % (chr(v & 0xFF) if kind == "c" else v))
    except StopIteration:
        return _errno(-EINVAL)
    rest = text[pos:]
    if b"%" in rest:
        raise UnsupportedHelper(m.pc, 6)
    return len("".join(out)) + len(rest)


def _h_xdp_load_bytes(m: _Machine, args: list[Value]) -> Value:
    offset, length = _scalar(args[1]) & 0xFFFFFFFF, _scalar(args[3]) & 0xFFFFFFFF
    pkt = m.packet
    if offset > 0xFFFF or length > 0xFFFF:
        return _errno(-EFAULT)
    if offset + length > pkt.hi - pkt.lo:
        return _errno(-EINVAL)
    region, at = m._locate(args[2], 0, length, write=True)
    m._forget_pointers(region, at, length)
    region.data[at:at + length] = pkt.data[pkt.lo + offset:pkt.lo + offset + length]
    return 0


def _h_ringbuf_output(m: _Machine, args: list[Value]) -> Value:
    mp = m.map_arg(args[0])
    if _scalar(args[3]) & ~RINGBUF_FLAGS:
        return _errno(-EINVAL)
    data = m.read_bytes(args[1], _scalar(args[2]))
    # The kernel reserves the record plus its header, rounded to 8 bytes, and keeps one byte free.
    footprint = (len(data) + RINGBUF_RECORD_HEADER + 7) // 8 * 8
    if mp.ringbuf_used + footprint > mp.max_entries - 1:
        return _errno(-EAGAIN)
    mp.ringbuf_used += footprint
    mp.records.append(data)
    return 0


_HELPER_IMPLS: Mapping[int, Callable[[_Machine, list[Value]], Value]] = {
    Helper.MAP_LOOKUP_ELEM: _h_lookup,
    Helper.MAP_UPDATE_ELEM: _h_update,
    Helper.MAP_DELETE_ELEM: _h_delete,
    Helper.KTIME_GET_NS: _h_ktime,
    Helper.TRACE_PRINTK: _h_trace_printk,
    Helper.GET_PRANDOM_U32: _h_prandom,
    Helper.GET_SMP_PROCESSOR_ID: _h_cpu,
    Helper.REDIRECT: _h_redirect,
    Helper.REDIRECT_MAP: _h_redirect_map,
    Helper.CSUM_DIFF: _h_csum_diff,
    Helper.XDP_ADJUST_HEAD: _h_adjust_head,
    Helper.XDP_ADJUST_TAIL: _h_adjust_tail,
    Helper.RINGBUF_OUTPUT: _h_ringbuf_output,
    Helper.XDP_LOAD_BYTES: _h_xdp_load_bytes,
}

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


# --------------------------------------------------------------------------- #
# BPF objects
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _MapSpec:
    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int


@dataclass(frozen=True)
class BytecodeImage:
    """What running a BPF object needs, parsed once: code, references, map shapes, section contents."""

    name: str
    instructions: tuple[Instruction, ...]
    relocations: Mapping[int, Relocation]
    maps: tuple[_MapSpec, ...]
    sections: Mapping[str, bytes]
    variables: Mapping[str, tuple[str, int, int]]
    """Global variable name -> (section, offset, size)."""

    @classmethod
    def from_elf(cls, elf_bytes: bytes, name: str) -> BytecodeImage:
        return _image(elf_bytes, name)

    def fresh_maps(self) -> dict[str, InterpMap]:
        """New maps for one execution: every map empty (arrays zeroed), sections at their initial bytes."""
        out: dict[str, InterpMap] = {}
        for spec in self.maps:
            out[spec.name] = InterpMap(spec.name, spec.map_type, spec.key_size, spec.value_size, spec.max_entries)
        for sec, contents in self.sections.items():
            out[sec] = InterpMap.section(sec, contents, readonly=sec.startswith(".rodata"))
        return out

    @functools.cached_property
    def _code(self) -> _Code:
        return _Code(self.instructions)

    def run(self, packet: bytes, maps: Mapping[str, InterpMap], *, ctx: XdpContext | None = None,
            step_limit: int = DEFAULT_STEP_LIMIT, helpers: HelperResults | None = None) -> ExecutionResult:
        return _run(self._code, packet, self.relocations, maps, {}, (), ctx, step_limit, (), helpers)


@functools.lru_cache(maxsize=64)
def _image(elf_bytes: bytes, name: str) -> BytecodeImage:
    from pybpfdsl.bpf.elf import BpfElf

    elf = BpfElf.from_bytes(elf_bytes)
    insns, relocs = link_program(elf, name)
    specs = tuple(
        _MapSpec(m.name, m.map_type or 0, m.key_size or 0, m.value_size or 0, m.max_entries or 0)
        for m in elf.maps.values()
    )
    wanted = {r.section for r in relocs.values() if r.kind == RelocKind.DATA}
    sections = {sec: elf.section_contents(sec) or b"" for sec in sorted(wanted)}
    variables = {k: (v.section, v.offset, v.size) for k, v in elf.variable_locations(tuple(sections)).items()}
    return BytecodeImage(name, tuple(insns), relocs, specs, sections, variables)
