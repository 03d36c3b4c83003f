"""The IR interpreter: the reference execution of a program, outside the kernel.

State lives in the program's state objects (their raw views), helper results come from a
`HelperSource`, and the packet is a bytearray. Anything the IR's rules forbid at run time (an unguarded
packet load, a load through a null reference) raises `IRRuntimeError`: it means the compiler is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import MapValueRef, StructType
from pybpfdsl.lang import arith, fixed
from pybpfdsl.lang.headers import MAX_PACKET_OFFSET
from pybpfdsl.lang.helpers import HelperSource, current_helpers
from pybpfdsl.lang.state import BpfMap, Global, RawValue, RingBuf
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


class _Machine:
    def __init__(self, program: n.Program, packet: bytes, env: Environment) -> None:
        self.program = program
        self.packet = bytearray(packet)
        self.env = env
        self.helpers = env.helpers or current_helpers()
        self.values: dict[n.Value, Cell] = {}

    def get(self, v: n.Value) -> Cell:
        try:
            return self.values[v]
        except KeyError:
            raise IRRuntimeError(f"{v} read before it was defined") from None

    def int_of(self, v: n.Value) -> int:
        x = self.get(v)
        if not isinstance(x, int):
            raise IRRuntimeError(f"{v} is not a scalar")
        return x

    def map(self, name: str) -> BpfMap:
        return self.env.maps[name]

    def ref(self, v: n.Value) -> _Ref:
        x = self.get(v)
        if not isinstance(x, _Ref):
            raise IRRuntimeError(f"{v} is a null map-value reference")
        return x

    def load_value(self, ref: _Ref, field_name: str | None) -> int | Struct:
        value = self.map(ref.map_name).raw_lookup(ref.key)
        if value is None:
            raise IRRuntimeError(f"map {ref.map_name} lost key {ref.key} under a live reference")
        if field_name is None:
            return value
        assert isinstance(value, Struct)
        out = getattr(value, field_name)
        assert isinstance(out, int)
        return out

    def store_value(self, ref: _Ref, field_name: str | None, new: int | Struct, add: bool) -> None:
        m = self.map(ref.map_name)
        decl = self.program.map_decl(ref.map_name)
        if field_name is None:
            if add:
                assert isinstance(decl.value_type, ScalarType) and isinstance(new, int)
                old = self.load_value(ref, None)
                assert isinstance(old, int)
                new = decl.value_type.wrap(old + new)
            m.raw_update(ref.key, new)
            return
        old_struct = self.load_value(ref, None)
        assert isinstance(old_struct, Struct) and isinstance(new, int)
        ftype = next(f.type for f in old_struct.fields() if f.name == field_name)
        values = {f.name: getattr(old_struct, f.name) for f in old_struct.fields()}
        values[field_name] = ftype.wrap(values[field_name] + new) if add else new
        m.raw_update(ref.key, type(old_struct)(**values))

    def check_bounds(self, offset: int, width: int) -> bool:
        return offset <= MAX_PACKET_OFFSET and offset + width <= len(self.packet)

    def execute(self, i: n.Instr) -> None:
        out: Cell
        match i:
            case n.Const(value=v):
                out = v
            case n.Binary(out=o, op=op, lhs=a, rhs=b):
                assert isinstance(o.type, ScalarType)
                out = arith.binary(op, o.type, self.int_of(a), self.int_of(b))
            case n.IntQuotient(lhs=a, rhs=b):
                out = fixed.quotient(self.int_of(a), self.int_of(b))
            case n.FixedDivInt(lhs=a, rhs=b):
                out = fixed.div_int(self.int_of(a), self.int_of(b))
            case n.Compare(op=op, lhs=a, rhs=b):
                assert isinstance(a.type, ScalarType)
                out = int(arith.compare(op, a.type, self.int_of(a), self.int_of(b)))
            case n.Convert(out=o, value=v):
                assert isinstance(o.type, ScalarType) and isinstance(v.type, ScalarType)
                out = arith.convert(self.int_of(v), v.type, o.type)
            case n.Reinterpret(out=o, value=v):
                assert isinstance(o.type, ScalarType)
                out = o.type.wrap(self.int_of(v)) if not o.type.is_fixed else fixed.wrap64(self.int_of(v))
            case n.Select(cond=c, if_true=a, if_false=b):
                out = self.get(a) if self.int_of(c) else self.get(b)
            case n.PacketLen():
                out = len(self.packet)
            case n.InBounds(offset=off, width=w):
                out = int(self.check_bounds(self.int_of(off), w))
            case n.LoadPacket(offset=off, width=w, big_endian=be):
                start = self.int_of(off)
                if not self.check_bounds(start, w):
                    raise IRRuntimeError(
                        f"packet load of {w} bytes at {start} outside a {len(self.packet)}-byte packet")
                out = int.from_bytes(self.packet[start:start + w], "big" if be else "little")
            case n.MapLookup(map_name=m, key=k):
                key = self.get(k)
                assert isinstance(key, int | Struct)
                out = _Ref(m, key) if self.map(m).raw_lookup(key) is not None else None
            case n.IsNull(ref=r):
                out = int(self.get(r) is None)
            case n.LoadValue(ref=r, field_name=f):
                out = self.load_value(self.ref(r), f)
            case n.StoreValue(ref=r, value=v, field_name=f, atomic_add=add):
                new = self.get(v)
                assert isinstance(new, int | Struct)
                self.store_value(self.ref(r), f, new, add)
                return
            case n.MapUpdate(map_name=m, key=k, value=v):
                key, val = self.get(k), self.get(v)
                assert isinstance(key, int | Struct) and isinstance(val, int | Struct)
                out = 0 if self.map(m).raw_update(key, val) else -7  # -E2BIG when full, as the kernel
            case n.MapDelete(map_name=m, key=k):
                key = self.get(k)
                assert isinstance(key, int | Struct)
                out = 0 if self.map(m).raw_delete(key) else -2  # -ENOENT
            case n.LoadGlobal(name=g):
                out = self.env.globals[g].raw_get()
            case n.StoreGlobal(name=g, value=v, atomic_add=add):
                glob = self.env.globals[g]
                new_raw = self.int_of(v)
                glob.raw_set(glob.raw_get() + new_raw if add else new_raw)
                return
            case n.MakeStruct(out=o, fields=fs):
                assert isinstance(o.type, StructType)
                out = o.type.cls(*(self.int_of(f) for f in fs))
            case n.ExtractField(aggregate=a, field_name=f):
                agg = self.get(a)
                assert isinstance(agg, Struct)
                out = getattr(agg, f)
            case n.CallHelper(helper=h):
                out = _HELPERS[h](self.helpers)
            case n.RingbufOutput(map_name=m, record=r):
                record = self.get(r)
                assert isinstance(record, Struct)
                out = int(self.env.ringbufs[m].raw_output(record))
            case _:
                raise IRRuntimeError(f"unknown instruction {i!r}")
        result = i.result
        assert result is not None
        self.values[result] = out

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
            match term:
                case n.Return(value=v):
                    return IRResult(self.int_of(v) & 0xFFFFFFFF, bytes(self.packet), steps)
                case n.Jump(to=e):
                    edge = e
                case n.Branch(cond=c, if_true=t, if_false=f):
                    edge = t if self.int_of(c) else f
                case _:
                    raise IRRuntimeError(f"block {block.name} has no terminator")
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
