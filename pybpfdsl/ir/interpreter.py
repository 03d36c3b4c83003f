"""The IR interpreter: the reference execution of a program, outside the kernel.

State lives in the program's state objects (their raw views), helper results come from a
`HelperSource`, and the packet is a bytearray. Anything the IR's rules forbid at run time (an unguarded
packet load, a load through a null reference) raises `IRRuntimeError`: it means the compiler is wrong.

Each instruction runs itself (`Instr.execute`, `Terminator.transfer`) with this module's `nodes.Values`
(`lang.algebra`'s Python ints) and the machine as its `nodes.Effects` and `nodes.Control`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import MapValueRef, StructType
from pybpfdsl.lang import fib, printk, xdp_frame
from pybpfdsl.lang.actions import XdpAction
from pybpfdsl.lang.algebra import IntAlgebra, pattern
from pybpfdsl.lang.headers import MAX_PACKET_OFFSET
from pybpfdsl.lang.helpers import HelperSource, current_helpers
from pybpfdsl.lang.redirect import RedirectTarget, after_miss
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import BpfMap, Global, RawValue
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType, i64, int_type

DEFAULT_STEP_LIMIT = 1_000_000


class IRRuntimeError(Exception):
    """The program did something the IR forbids; a compiler bug, not a user error."""


@dataclass(frozen=True)
class IRResult:
    action: int
    packet: bytes
    steps: int
    redirect: RedirectTarget | None = None
    """Where XDP_REDIRECT goes, as the run's last redirect call set it."""


@dataclass(frozen=True)
class _Ref:
    """A non-null map-value reference: which map and key it points into."""

    map_name: str
    key: RawValue


Cell = int | Struct | _Ref | None


@dataclass
class Environment:
    """The state objects by name, and the source of helper results."""

    maps: Mapping[str, BpfMap]
    globals: Mapping[str, Global]
    helpers: HelperSource | None = None
    ringbufs: Mapping[str, RingBuf[Any]] = field(default_factory=dict)


_HELPERS: dict[n.Helper, Callable[[HelperSource], int]] = {
    n.Helper.PRANDOM_U32: lambda h: h.prandom_u32() & 0xFFFFFFFF,
    n.Helper.KTIME_GET_NS: lambda h: h.ktime_get_ns() & ((1 << 64) - 1),
    n.Helper.SMP_PROCESSOR_ID: lambda h: h.cpu_id() & 0xFFFFFFFF,
}


def _typed(v: n.Value, x: Any) -> Any:
    """An operand's bit pattern as its type's representation (what the state objects hold)."""
    return v.type.wrap(x) if isinstance(v.type, ScalarType) else x


class _ConcreteValues(IntAlgebra):
    """`nodes.Values` on Python values: scalars as bit patterns (`IntAlgebra`), structs as `Struct`
    objects (fields in their types' representation), references as `_Ref` or None."""

    def truth(self, bit: Any) -> bool:
        return bool(bit)

    def choose(self, cond: bool, if_true: Any, if_false: Any) -> Any:
        return if_true if cond else if_false

    def make_struct(self, t: StructType, fields: Sequence[Any]) -> Any:
        return t.cls.of_raw(*fields)

    def extract_field(self, t: StructType, aggregate: Any, index: int) -> Any:
        f = t.cls.fields()[index]
        return pattern(getattr(aggregate, f.name), f.type.bits)


_VALUES: n.Values[Any, bool] = _ConcreteValues()


class _Machine:
    def __init__(self, program: n.Program, packet: bytes, env: Environment) -> None:
        self.program = program
        self.packet = bytearray(packet)
        self.before = bytearray(xdp_frame.HEADROOM)  # the frame's bytes before the packet
        self.where = (0, len(self.packet))  # the packet's start and end, from its original start
        self.env = env
        self.helpers = env.helpers or current_helpers()
        self.values: dict[n.Value, Cell] = {}
        self.action = 0
        self.redirect_target: RedirectTarget | None = None
        self.redirect_index: int | None = None  # the kernel's bpf_redirect_info.tgt_index

    def get(self, v: n.Value) -> Cell:
        try:
            return self.values[v]
        except KeyError:
            raise IRRuntimeError(f"{v} read before it was defined") from None

    def map(self, name: str) -> BpfMap:
        return self.env.maps[name]

    @staticmethod
    def live_ref(v: n.Value, x: Cell) -> _Ref:
        if not isinstance(x, _Ref):
            raise IRRuntimeError(f"{v} is a null map-value reference")
        return x

    def load_value_at(self, ref: _Ref, field_name: str | None) -> int | Struct:
        value = self.map(ref.map_name).raw_lookup(ref.key)
        if value is None:
            raise IRRuntimeError(f"map {ref.map_name} lost key {ref.key} under a live reference")
        if field_name is None:
            return value
        assert isinstance(value, Struct)
        out = getattr(value, field_name)
        assert isinstance(out, int)
        return out

    def store_value_at(self, ref: _Ref, field_name: str | None, new: int | Struct, add: bool) -> None:
        m = self.map(ref.map_name)
        decl = self.program.map_decl(ref.map_name)
        if field_name is None:
            if add:
                assert isinstance(decl.value_type, ScalarType) and isinstance(new, int)
                old = self.load_value_at(ref, None)
                assert isinstance(old, int)
                new = decl.value_type.wrap(old + new)
            m.raw_update(ref.key, new)
            return
        old_struct = self.load_value_at(ref, None)
        assert isinstance(old_struct, Struct) and isinstance(new, int)
        ftype = next(f.type for f in old_struct.fields() if f.name == field_name)
        values = {f.name: getattr(old_struct, f.name) for f in old_struct.fields()}
        values[field_name] = ftype.wrap(values[field_name] + new) if add else new
        m.raw_update(ref.key, type(old_struct).of_raw(**values))

    def check_bounds(self, offset: int, width: int) -> bool:
        return offset <= MAX_PACKET_OFFSET and offset + width <= len(self.packet)

    def operand(self, v: n.Value) -> Any:
        """`v`'s value as the operations see it: a scalar as its bit pattern (`lang.algebra`)."""
        x = self.get(v)
        return pattern(x, v.type.bits) if isinstance(x, int) and isinstance(v.type, ScalarType) else x

    def execute(self, i: n.Instr) -> None:
        out = i.execute(_VALUES, self, self.operand)
        result = i.result
        if result is not None:
            # Cells hold a scalar in its type's representation (signed types as signed ints), as the state does.
            self.values[result] = _typed(result, out)

    # -- control (`nodes.Control`): the edge taken, or None once an action is set ---------------

    def jump(self, term: n.Jump) -> n.Edge | None:
        return term.to

    def branch(self, term: n.Branch, cond: Cell) -> n.Edge | None:
        return term.if_true if cond else term.if_false

    def leave(self, term: n.Return, action: Cell) -> n.Edge | None:
        if not isinstance(action, int):
            raise IRRuntimeError(f"{term.value} is not a scalar")
        self.action = action & 0xFFFFFFFF
        return None

    # -- effects (`nodes.Effects`): operands arrive as bit patterns, `typed` turns them into state values --

    def packet_len(self, op: n.PacketLen) -> Any:
        return len(self.packet)

    def in_bounds(self, op: n.InBounds, offset: Any) -> Any:
        return int(self.check_bounds(offset, op.width))

    def load_packet(self, op: n.LoadPacket, offset: Any) -> Any:
        w = op.width
        if not self.check_bounds(offset, w):
            raise IRRuntimeError(f"packet load of {w} bytes at {offset} outside a {len(self.packet)}-byte packet")
        return int.from_bytes(self.packet[offset:offset + w], "big" if op.big_endian else "little")

    def store_packet(self, op: n.StorePacket, offset: Any, value: Any) -> None:
        w = op.width
        if not self.check_bounds(offset, w):
            raise IRRuntimeError(f"packet store of {w} bytes at {offset} outside a {len(self.packet)}-byte packet")
        self.packet[offset:offset + w] = (value & ((1 << 8 * w) - 1)).to_bytes(w, "big")

    def map_lookup(self, op: n.MapLookup, key: Any) -> Any:
        key = _typed(op.key, key)
        return _Ref(op.map_name, key) if self.map(op.map_name).raw_lookup(key) is not None else None

    def is_null(self, op: n.IsNull, ref: Any) -> Any:
        return int(ref is None)

    def load_value(self, op: n.LoadValue, ref: Any) -> Any:
        return self.load_value_at(self.live_ref(op.ref, ref), op.field_name)

    def store_value(self, op: n.StoreValue, ref: Any, value: Any) -> None:
        self.store_value_at(self.live_ref(op.ref, ref), op.field_name, _typed(op.value, value), op.atomic_add)

    def map_update(self, op: n.MapUpdate, key: Any, value: Any) -> Any:
        updated = self.map(op.map_name).raw_update(_typed(op.key, key), _typed(op.value, value))
        return 0 if updated else -7  # -E2BIG when full, as the kernel

    def map_delete(self, op: n.MapDelete, key: Any) -> Any:
        return 0 if self.map(op.map_name).raw_delete(_typed(op.key, key)) else -2  # -ENOENT

    def load_global(self, op: n.LoadGlobal) -> Any:
        return self.env.globals[op.name].raw_get()

    def store_global(self, op: n.StoreGlobal, value: Any) -> None:
        glob = self.env.globals[op.name]
        new_raw = _typed(op.value, value)
        glob.raw_set(glob.raw_get() + new_raw if op.atomic_add else new_raw)

    def call_helper(self, op: n.CallHelper) -> Any:
        return _HELPERS[op.helper](self.helpers)

    def ringbuf_output(self, op: n.RingbufOutput, record: Any) -> Any:
        assert isinstance(record, Struct)
        return int(self.env.ringbufs[op.map_name].raw_output(record))

    def redirect(self, op: n.Redirect, ifindex: Any) -> Any:
        self.redirect_target = RedirectTarget(None, ifindex & 0xFFFFFFFF)
        self.redirect_index = ifindex & 0xFFFFFFFF
        return int(XdpAction.REDIRECT)

    def redirect_map(self, op: n.RedirectMap, key: Any) -> Any:
        if self.map(op.map_name).raw_lookup(key) is None:
            # The kernel forgets the target: an XDP_REDIRECT returned now goes to the last index's device.
            self.redirect_target = after_miss(self.redirect_index)
            return op.miss
        self.redirect_target = RedirectTarget(op.map_name, key)
        self.redirect_index = key
        return int(XdpAction.REDIRECT)

    def fib_lookup(self, op: n.FibLookup, dst: Any, ifindex: Any) -> Any:
        return fib.lookup(dst, ifindex)

    def trace_printk(self, op: n.TracePrintk, args: list[Any]) -> Any:
        text = printk.render(op.fmt, list(args))
        print(text)
        return len(text)

    def adjust_packet(self, op: n.AdjustPacket, delta: Any) -> Any:
        where = xdp_frame.moved(*self.where, delta, head=op.head)
        if where is None:
            return 0
        if op.head:
            shift = where[0] - self.where[0]
            if shift < 0:
                self.packet[:0] = self.before[len(self.before) + shift:]
                del self.before[len(self.before) + shift:]
            else:
                self.before += self.packet[:shift]
                del self.packet[:shift]
        else:
            change = where[1] - self.where[1]
            if change < 0:
                del self.packet[len(self.packet) + change:]
            else:
                self.packet += bytes(change)  # the kernel clears what the packet grows into
        self.where = where
        return 1

    def run(self, step_limit: int) -> IRResult:
        blocks = {b.name: b for b in self.program.blocks}
        block = self.program.entry
        steps = 0
        while True:
            for instr in block.instrs:
                self.execute(instr)
                steps += 1
            term = block.terminator
            steps += 1
            if steps > step_limit:
                raise IRRuntimeError(f"more than {step_limit} steps: a loop does not terminate")
            if term is None:
                raise IRRuntimeError(f"block {block.name} has no terminator")
            edge = term.transfer(self, self.get)
            if edge is None:
                return IRResult(self.action, bytes(self.packet), steps, self.redirect_target)
            target = blocks[edge.target]
            incoming = [self.get(a) for a in edge.args]
            for param, value in zip(target.params, incoming):
                self.values[param] = value
            block = target


def run_program(program: n.Program, packet: bytes, env: Environment,
                step_limit: int = DEFAULT_STEP_LIMIT) -> IRResult:
    """Run `program` on `packet` against the state in `env`; returns the action and the packet after."""
    return _Machine(program, packet, env).run(step_limit)


__all__ = ["Environment", "IRResult", "IRRuntimeError", "run_program", "MapValueRef", "i64", "int_type"]
