"""The typed SSA IR: values, instructions, blocks with parameters (instead of phis) and the program.

Instructions are frozen records. A block ends in one terminator; values flow into a block through its
parameters, passed by the jumps that reach it. Every instruction carries the Python source line it came
from, which the backend turns into BTF line info.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import TypeAlias

from pybpfdsl.ir.types import IRType, MapValueRef, StructType
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.state import MapKind
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, i64, u32, u64


@dataclass(frozen=True)
class Value:
    """An SSA value: defined once, by an instruction or as a block parameter."""

    id: int
    type: IRType
    hint: str = ""

    def __str__(self) -> str:
        return f"%{self.hint}.{self.id}" if self.hint else f"%{self.id}"


class Helper(enum.Enum):
    """Kernel helpers the IR calls, with their BPF helper numbers."""

    PRANDOM_U32 = 7
    KTIME_GET_NS = 5
    SMP_PROCESSOR_ID = 8


HELPER_RESULT: dict[Helper, ScalarType] = {
    Helper.PRANDOM_U32: u32,
    Helper.KTIME_GET_NS: u64,
    Helper.SMP_PROCESSOR_ID: u32,
}


_OPERAND_FIELDS: dict[type, tuple[str, ...]] = {}


def _operand_fields(cls: type) -> tuple[str, ...]:
    """The fields of an instruction class that may hold operands: every field but `out` and `line`, in
    order (fields holding names, widths or flags are skipped when read, by their value's type)."""
    names = _OPERAND_FIELDS.get(cls)
    if names is None:
        names = _OPERAND_FIELDS[cls] = tuple(f.name for f in fields(cls) if f.name not in ("out", "line"))
    return names


@dataclass(frozen=True, kw_only=True)
class Instr:
    """Base of all instructions; `line` is the Python source line (0 when none).

    An instruction's result is its `out` field, if it has one; its operands are its other Value fields
    (and tuples of Values), in declaration order, so each instruction is declared by its fields alone.
    """

    line: int = 0

    @property
    def result(self) -> Value | None:
        out = getattr(self, "out", None)
        return out if isinstance(out, Value) else None

    def operands(self) -> tuple[Value, ...]:
        found: list[Value] = []
        for name in _operand_fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, Value):
                found.append(value)
            elif isinstance(value, tuple):
                found.extend(v for v in value if isinstance(v, Value))
        return tuple(found)


@dataclass(frozen=True)
class Const(Instr):
    """A scalar constant (raw Q32.32 integer for float)."""

    out: Value
    value: int


@dataclass(frozen=True)
class Binary(Instr):
    """`lhs op rhs`; both operands and the result have one type (float: fixed-point add/sub/mul)."""

    out: Value
    op: BinOp
    lhs: Value
    rhs: Value


@dataclass(frozen=True)
class FixedDivInt(Instr):
    """A float divided by a 64-bit signed integer, truncated toward zero; division by zero gives 0."""

    out: Value
    lhs: Value
    rhs: Value


@dataclass(frozen=True)
class IntQuotient(Instr):
    """Two i64 integers divided, giving a float (`lang.fixed.quotient`): exact when |rhs| <= 2**32."""

    out: Value
    lhs: Value
    rhs: Value


@dataclass(frozen=True)
class Compare(Instr):
    """`lhs op rhs` → bool, signed or unsigned by the operands' type."""

    out: Value
    op: CmpOp
    lhs: Value
    rhs: Value


@dataclass(frozen=True)
class Convert(Instr):
    """Convert a scalar to the result's type (wrap, sign/zero extend, to/from fixed point, to bool)."""

    out: Value
    value: Value


@dataclass(frozen=True)
class Reinterpret(Instr):
    """The same 64 bits seen as another 64-bit type (u64/i64 raw bits ↔ a Q32.32 float): no conversion."""

    out: Value
    value: Value


@dataclass(frozen=True)
class Select(Instr):
    """`a if cond else b` without a branch."""

    out: Value
    cond: Value
    if_true: Value
    if_false: Value


@dataclass(frozen=True)
class PacketLen(Instr):
    """The packet's length in bytes (u32)."""

    out: Value


@dataclass(frozen=True)
class InBounds(Instr):
    """bool: the `width` bytes at `offset` (u64) lie inside the packet, and `offset` is at most
    `headers.MAX_PACKET_OFFSET` (what the kernel verifier can bound)."""

    out: Value
    offset: Value
    width: int


@dataclass(frozen=True)
class LoadPacket(Instr):
    """Read `width` bytes at `offset` as an unsigned integer, big-endian (network order) or little-endian.

    Only valid where an `InBounds` of at least this extent has been established; the interpreter checks,
    and the backend guards every load again, as the kernel verifier requires.
    """

    out: Value
    offset: Value
    width: int
    big_endian: bool = True


@dataclass(frozen=True)
class MapLookup(Instr):
    """A reference to the value stored under `key`, or null."""

    out: Value
    map_name: str
    key: Value


@dataclass(frozen=True)
class IsNull(Instr):
    out: Value
    ref: Value


@dataclass(frozen=True)
class LoadValue(Instr):
    """Read a map value (or one field of a Struct value) through a non-null reference."""

    out: Value
    ref: Value
    field_name: str | None = None


@dataclass(frozen=True)
class StoreValue(Instr):
    """Write a map value (or one field) through a non-null reference; `atomic_add` adds instead."""

    ref: Value
    value: Value
    field_name: str | None = None
    atomic_add: bool = False


@dataclass(frozen=True)
class MapUpdate(Instr):
    """Insert or replace; result 0 on success, a negative errno otherwise (i64)."""

    out: Value
    map_name: str
    key: Value
    value: Value


@dataclass(frozen=True)
class MapDelete(Instr):
    """Remove a key; result 0 if it was there, a negative errno otherwise (i64)."""

    out: Value
    map_name: str
    key: Value


@dataclass(frozen=True)
class LoadGlobal(Instr):
    out: Value
    name: str


@dataclass(frozen=True)
class StoreGlobal(Instr):
    """Write a global; `atomic_add` adds instead."""

    name: str
    value: Value
    atomic_add: bool = False


@dataclass(frozen=True)
class MakeStruct(Instr):
    out: Value
    fields: tuple[Value, ...]


@dataclass(frozen=True)
class ExtractField(Instr):
    out: Value
    aggregate: Value
    field_name: str


@dataclass(frozen=True)
class CallHelper(Instr):
    out: Value
    helper: Helper


@dataclass(frozen=True)
class RingbufOutput(Instr):
    """Append `record` to ring buffer `map_name`; the result is true when written, false when full."""

    out: Value
    map_name: str
    record: Value


@dataclass(frozen=True)
class Edge:
    """A jump target with the values bound to its parameters."""

    target: str
    args: tuple[Value, ...] = ()

    def __str__(self) -> str:
        if not self.args:
            return f"^{self.target}"
        return f"^{self.target}(" + ", ".join(str(a) for a in self.args) + ")"


@dataclass(frozen=True, kw_only=True)
class Terminator:
    line: int = 0

    def edges(self) -> tuple[Edge, ...]:
        return ()

    def operands(self) -> tuple[Value, ...]:
        return tuple(a for e in self.edges() for a in e.args)


@dataclass(frozen=True)
class Jump(Terminator):
    to: Edge

    def edges(self) -> tuple[Edge, ...]:
        return (self.to,)


@dataclass(frozen=True)
class Branch(Terminator):
    cond: Value
    if_true: Edge
    if_false: Edge

    def edges(self) -> tuple[Edge, ...]:
        return (self.if_true, self.if_false)


@dataclass(frozen=True)
class Return(Terminator):
    """Leave the program with an XDP action (u32)."""

    value: Value


@dataclass
class Block:
    """A basic block: parameters, straight-line instructions, one terminator."""

    name: str
    params: list[Value] = field(default_factory=list)
    instrs: list[Instr] = field(default_factory=list)
    terminator: Terminator | None = None


@dataclass(frozen=True)
class MapDecl:
    name: str
    kind: MapKind
    key_type: ScalarType | StructType
    value_type: ScalarType | StructType
    max_entries: int


@dataclass(frozen=True)
class RingBufDecl:
    """A ring buffer of `record` structs, `size` bytes (a power of two, a multiple of the page size)."""

    name: str
    record: StructType
    size: int


@dataclass(frozen=True)
class GlobalDecl:
    name: str
    type: ScalarType
    init: int


@dataclass
class Program:
    """One XDP program: its function body as blocks (entry first), and the state it uses."""

    name: str
    source_file: str
    first_line: int
    blocks: list[Block]
    maps: tuple[MapDecl, ...] = ()
    globals: tuple[GlobalDecl, ...] = ()
    ringbufs: tuple[RingBufDecl, ...] = ()

    @property
    def entry(self) -> Block:
        return self.blocks[0]

    def block(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

    def map_decl(self, name: str) -> MapDecl:
        for m in self.maps:
            if m.name == name:
                return m
        raise KeyError(name)

    def ringbuf_decl(self, name: str) -> RingBufDecl:
        for r in self.ringbufs:
            if r.name == name:
                return r
        raise KeyError(name)

    def global_decl(self, name: str) -> GlobalDecl:
        for g in self.globals:
            if g.name == name:
                return g
        raise KeyError(name)

    def instruction_count(self) -> int:
        return sum(len(b.instrs) + 1 for b in self.blocks)


ResultType: TypeAlias = "ScalarType | StructType | MapValueRef"
ACTION_TYPE = u32
STATUS_TYPE = i64
__all__ = [
    "BOOL", "FLOAT", "Value", "Instr", "Terminator", "Block", "Program", "MapDecl", "GlobalDecl", "RingBufDecl", "Edge",
    "MapValueRef", "StructType",
]
