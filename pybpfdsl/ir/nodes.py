"""The typed SSA IR: values, instructions, blocks with parameters (instead of phis) and the program.

Instructions are frozen records. A block ends in one terminator; values flow into a block through its
parameters, passed by the jumps that reach it. Every instruction carries the Python source line it came
from, which the backend turns into BTF line info.

Each operation is declared in one class: its operands and result are its fields, its type rule is its
`check` method (`check.check_program` calls it) and its text form is its `syntax` string (the printer
writes it and the parser reads it, through `syntax.py`). Its meaning is a method too: a pure operation
`evaluate`s over `Values` (the DSL's arithmetic algebra, `lang.algebra`, plus struct aggregates and a
choice between values), an operation with effects `perform`s through one method of `Effects`, and a
terminator `transfer`s through one method of `Control`. The IR interpreter, the LLVM lowering and the Z3
encoding each implement the three protocols and run an instruction with one call (`Instr.execute`), so a
new operation is one class here plus, if it has effects, one `Effects` method, which mypy then asks of
every execution. Long because it declares every operation, each with its rule and its meaning beside its
fields, and the protocols those meanings are written against.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import ClassVar, Protocol, TypeAlias, TypeVar

from pybpfdsl.ir.types import IRType, MapValueRef, StructType
from pybpfdsl.lang import arith, fixed
from pybpfdsl.lang.algebra import Algebra
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.state import MapKind
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, i32, i64, int_type, u32, u64


@dataclass(frozen=True)
class Value:
    """An SSA value: defined once, by an instruction or as a block parameter."""

    id: int
    type: IRType
    hint: str = ""

    def __str__(self) -> str:
        return f"%{self.hint}.{self.id}" if self.hint else f"%{self.id}"

    def __hash__(self) -> int:
        # Ids are unique within a function, so the id alone hashes well; the generated hash of (id, type,
        # hint) hashed the type's fields on every dict lookup, which was a third of the optimiser's time.
        return hash(self.id)


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


V = TypeVar("V")  # a value of an execution: a bit vector of the algebra, or a struct aggregate or reference
B = TypeVar("B")  # a truth value of the algebra


class Values(Algebra[V, B], Protocol[V, B]):
    """What a pure operation's meaning (`PureInstr.evaluate`) is written with: the DSL's bit-vector
    algebra, and the IR's values that are not bit vectors (struct aggregates, map-value references)."""

    def truth(self, bit: V) -> B:
        """A DSL bool (a 1-bit value) as a truth value."""
        ...

    def choose(self, cond: B, if_true: V, if_false: V) -> V:
        """`if_true` where `cond` holds, else `if_false`: values of any one IR type."""
        ...

    def make_struct(self, t: StructType, fields: Sequence[V]) -> V:
        """An aggregate of type `t` from its fields' values, in declaration order."""
        ...

    def extract_field(self, t: StructType, aggregate: V, index: int) -> V:
        """Field number `index` (declaration order) of an aggregate of type `t`."""
        ...


class Effects(Protocol[V]):
    """What an operation with effects does, in one execution: one method per operation, given the
    instruction and its operands' values (`EffectInstr.perform` calls it). The packet, maps, globals,
    helpers and ring buffers are each execution's own (a bytearray and state objects, Z3 arrays, BPF
    helper calls), so their meaning is stated here once per execution, and a missing one is a type error."""

    def packet_len(self, op: PacketLen) -> V: ...
    def in_bounds(self, op: InBounds, offset: V) -> V: ...
    def load_packet(self, op: LoadPacket, offset: V) -> V: ...
    def store_packet(self, op: StorePacket, offset: V, value: V) -> None: ...
    def map_lookup(self, op: MapLookup, key: V) -> V: ...
    def is_null(self, op: IsNull, ref: V) -> V: ...
    def load_value(self, op: LoadValue, ref: V) -> V: ...
    def store_value(self, op: StoreValue, ref: V, value: V) -> None: ...
    def map_update(self, op: MapUpdate, key: V, value: V) -> V: ...
    def map_delete(self, op: MapDelete, key: V) -> V: ...
    def load_global(self, op: LoadGlobal) -> V: ...
    def store_global(self, op: StoreGlobal, value: V) -> None: ...
    def call_helper(self, op: CallHelper) -> V: ...
    def ringbuf_output(self, op: RingbufOutput, record: V) -> V: ...
    def redirect(self, op: Redirect, ifindex: V) -> V: ...
    def redirect_map(self, op: RedirectMap, key: V) -> V: ...
    def fib_lookup(self, op: FibLookup, dst: V, ifindex: V) -> V: ...
    def trace_printk(self, op: TracePrintk, args: list[V]) -> V: ...
    def adjust_packet(self, op: AdjustPacket, delta: V) -> V: ...


R = TypeVar("R")  # what a terminator leads to in an execution
_In = TypeVar("_In", contravariant=True)
_Out = TypeVar("_Out", covariant=True)


class Control(Protocol[_In, _Out]):
    """What a block's terminator does in one execution (`Terminator.transfer` calls its method): go to
    another block, or leave the program. Each execution has its own idea of going on (the interpreter
    picks an edge, the Z3 encoding forks a path, the LLVM lowering emits a branch)."""

    def jump(self, term: Jump) -> _Out: ...
    def branch(self, term: Branch, cond: _In) -> _Out: ...
    def leave(self, term: Return, action: _In) -> _Out: ...


Operand: TypeAlias = "Callable[[Value], V]"
"""How an execution hands an operation its operands' values."""


def _scalar(v: Value) -> ScalarType:
    if not isinstance(v.type, ScalarType):
        raise TypeError(f"{v} must be a scalar, is {v.type}")
    return v.type


def _struct(v: Value) -> StructType:
    if not isinstance(v.type, StructType):
        raise TypeError(f"{v} must be a struct, is {v.type}")
    return v.type


class TypeRules(Protocol):
    """What an instruction's `check` may ask about the program while the checker runs (implemented by
    `rules.ProgramRules`; declared here so that this module needs nothing from the checker)."""

    def expect(self, cond: bool, message: str) -> None: ...
    def scalar(self, v: Value) -> ScalarType: ...
    def same(self, a: IRType, b: IRType, what: str) -> None: ...
    def map_decl(self, name: str) -> MapDecl: ...
    def global_decl(self, name: str) -> GlobalDecl: ...
    def ringbuf_decl(self, name: str) -> RingBufDecl: ...
    def value_slot_type(self, ref: Value, field_name: str | None) -> IRType: ...

@dataclass(frozen=True, kw_only=True)
class Instr(abc.ABC):
    """Base of all instructions; `line` is the Python source line (0 when none).

    An instruction's result is its `out` field, if it has one; its operands are its other Value fields
    (and tuples of Values), in declaration order, so each instruction is declared by its fields alone.
    `syntax` is its text after `%out: type = ` (see `syntax.py`); `check` raises `IRError` when the
    operand and result types break its rule.
    """

    syntax: ClassVar[str]
    line: int = 0

    def check(self, rules: TypeRules) -> None:
        raise NotImplementedError(f"{type(self).__name__} declares no type rule")

    @abc.abstractmethod
    def execute(self, ops: Values[V, B], effects: Effects[V], get: Operand[V]) -> V | None:
        """Run the instruction in an execution: its result's value (None when it has none)."""

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


@dataclass(frozen=True, kw_only=True)
class PureInstr(Instr):
    """An operation without effects: its result is a function of its operands, over `Values`."""

    def execute(self, ops: Values[V, B], effects: Effects[V], get: Operand[V]) -> V | None:
        return self.evaluate(ops, get)

    @abc.abstractmethod
    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        """The result's value, from the operands' values (`get`)."""


@dataclass(frozen=True, kw_only=True)
class EffectInstr(Instr):
    """An operation that reads or changes the packet or the state, or calls a helper: its one `Effects`
    method does it."""

    def execute(self, ops: Values[V, B], effects: Effects[V], get: Operand[V]) -> V | None:
        return self.perform(effects, get)

    @abc.abstractmethod
    def perform(self, effects: Effects[V], get: Operand[V]) -> V | None:
        """Call this operation's `Effects` method with the operands' values."""


@dataclass(frozen=True)
class Const(PureInstr):
    """A scalar constant (raw Q32.32 integer for float)."""

    syntax: ClassVar[str] = "const {value:const}"
    out: Value
    value: int

    def check(self, rules: TypeRules) -> None:
        t = rules.scalar(self.out)
        ok = (-(1 << 63) <= self.value < (1 << 63)) if t.is_fixed else t.wrap(self.value) == self.value
        rules.expect(ok, f"constant {self.value} does not fit {t}")

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        return ops.const(self.value, _scalar(self.out).bits)


@dataclass(frozen=True)
class Binary(PureInstr):
    """`lhs op rhs`; both operands and the result have one type (float: fixed-point add/sub/mul)."""

    syntax: ClassVar[str] = "{op} {lhs}, {rhs}"
    out: Value
    op: BinOp
    lhs: Value
    rhs: Value

    def check(self, rules: TypeRules) -> None:
        t = rules.scalar(self.out)
        rules.same(self.lhs.type, t, "operand type")
        rules.same(self.rhs.type, t, "operand type")
        if t.is_fixed:
            rules.expect(self.op in (BinOp.ADD, BinOp.SUB, BinOp.MUL), f"{self.op.value} on float")
        elif t.is_bool:
            rules.expect(self.op in (BinOp.AND, BinOp.OR, BinOp.XOR), f"{self.op.value} on bool")
        else:
            rules.expect(t.bits in (32, 64), f"arithmetic on {t}: promote to 32 or 64 bits first")

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        return arith.binary_in(ops, self.op, _scalar(self.out), get(self.lhs), get(self.rhs))


@dataclass(frozen=True)
class FixedDivInt(PureInstr):
    """A float divided by a 64-bit signed integer, truncated toward zero; division by zero gives 0."""

    syntax: ClassVar[str] = "fixed_div_int {lhs}, {rhs}"
    out: Value
    lhs: Value
    rhs: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, FLOAT, "result")
        rules.same(self.lhs.type, FLOAT, "dividend")
        rules.same(self.rhs.type, i64, "divisor")

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        return fixed.divide_by_integer(ops, get(self.lhs), get(self.rhs))


@dataclass(frozen=True)
class IntQuotient(PureInstr):
    """Two i64 integers divided, giving a float (`lang.fixed.divide_integers`): exact when |rhs| <= 2**32,
    saturating when the whole part does not fit the float range. Also `x / 1e9` for an integer `x`."""

    syntax: ClassVar[str] = "int_quotient {lhs}, {rhs}"
    out: Value
    lhs: Value
    rhs: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, FLOAT, "result")
        rules.same(self.lhs.type, i64, "dividend")
        rules.same(self.rhs.type, i64, "divisor")

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        return fixed.divide_integers(ops, get(self.lhs), get(self.rhs))


@dataclass(frozen=True)
class Compare(PureInstr):
    """`lhs op rhs` → bool, signed or unsigned by the operands' type."""

    syntax: ClassVar[str] = "cmp {op} {lhs}, {rhs}"
    out: Value
    op: CmpOp
    lhs: Value
    rhs: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, BOOL, "comparison result")
        rules.same(self.lhs.type, self.rhs.type, "compared types")
        rules.scalar(self.lhs)

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        return ops.bool_value(arith.compare_in(ops, self.op, _scalar(self.lhs), get(self.lhs), get(self.rhs)))


@dataclass(frozen=True)
class Convert(PureInstr):
    """Convert a scalar to the result's type (wrap, sign/zero extend, to/from fixed point, to bool)."""

    syntax: ClassVar[str] = "convert {value:typed}"
    out: Value
    value: Value

    def check(self, rules: TypeRules) -> None:
        rules.scalar(self.out)
        rules.scalar(self.value)

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        return arith.convert_in(ops, get(self.value), _scalar(self.value), _scalar(self.out))


@dataclass(frozen=True)
class Reinterpret(PureInstr):
    """The same 64 bits seen as another 64-bit type (u64/i64 raw bits ↔ a Q32.32 float): no conversion."""

    syntax: ClassVar[str] = "reinterpret {value:typed}"
    out: Value
    value: Value

    def check(self, rules: TypeRules) -> None:
        rules.expect(rules.scalar(self.out).bits == 64 and rules.scalar(self.value).bits == 64,
                     "reinterpret needs 64-bit types")

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        return get(self.value)  # the same 64 bits: only the IR type changes


@dataclass(frozen=True)
class Select(PureInstr):
    """`a if cond else b` without a branch."""

    syntax: ClassVar[str] = "select {cond}, {if_true}, {if_false}"
    out: Value
    cond: Value
    if_true: Value
    if_false: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.cond.type, BOOL, "select condition")
        rules.same(self.if_true.type, self.out.type, "select arm")
        rules.same(self.if_false.type, self.out.type, "select arm")

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        return ops.choose(ops.truth(get(self.cond)), get(self.if_true), get(self.if_false))


@dataclass(frozen=True)
class PacketLen(EffectInstr):
    """The packet's length in bytes (u32)."""

    syntax: ClassVar[str] = "packet_len"
    out: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, u32, "packet length")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.packet_len(self)


@dataclass(frozen=True)
class InBounds(EffectInstr):
    """bool: the `width` bytes at `offset` (u64) lie inside the packet, and `offset` is at most
    `headers.MAX_PACKET_OFFSET` (what the kernel verifier can bound)."""

    syntax: ClassVar[str] = "in_bounds {offset}, {width}"
    out: Value
    offset: Value
    width: int

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, BOOL, "in_bounds result")
        rules.same(self.offset.type, u64, "offset")
        rules.expect(self.width > 0, "width must be positive")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.in_bounds(self, get(self.offset))


@dataclass(frozen=True)
class LoadPacket(EffectInstr):
    """Read `width` bytes at `offset` as an unsigned integer, big-endian (network order) or little-endian.

    Only valid where an `InBounds` of at least this extent has been established; the interpreter checks,
    and the backend guards every load again, as the kernel verifier requires.
    """

    syntax: ClassVar[str] = "load_packet {big_endian:be|le}{width:bits} {offset}"
    out: Value
    offset: Value
    width: int
    big_endian: bool = True

    def check(self, rules: TypeRules) -> None:
        rules.expect(self.width in (1, 2, 4, 8), f"packet load width {self.width}")
        rules.same(self.offset.type, u64, "offset")
        rules.same(self.out.type, int_type(8 * self.width, False), "packet load result")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.load_packet(self, get(self.offset))


@dataclass(frozen=True)
class StorePacket(EffectInstr):
    """Write `value` (an unsigned integer of `width` bytes) at `offset`, big-endian (network order).

    Valid where `LoadPacket` of the same extent is: a dominating `InBounds` covers it. Header field
    writes and their checksum updates are emitted as loads, arithmetic and these stores.
    """

    syntax: ClassVar[str] = "store_packet be{width:bits} {offset}, {value}"
    offset: Value
    value: Value
    width: int

    def check(self, rules: TypeRules) -> None:
        rules.expect(self.width in (1, 2, 4, 8), f"packet store width {self.width}")
        rules.same(self.offset.type, u64, "offset")
        rules.same(self.value.type, int_type(8 * self.width, False), "stored value")

    def perform(self, effects: Effects[V], get: Operand[V]) -> None:
        effects.store_packet(self, get(self.offset), get(self.value))
        return None


@dataclass(frozen=True)
class MapLookup(EffectInstr):
    """A reference to the value stored under `key`, or null."""

    syntax: ClassVar[str] = "map_lookup @{map_name}, {key}"
    out: Value
    map_name: str
    key: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.key.type, rules.map_decl(self.map_name).key_type, f"key of {self.map_name}")
        rules.same(self.out.type, MapValueRef(self.map_name), "lookup result")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.map_lookup(self, get(self.key))


@dataclass(frozen=True)
class IsNull(EffectInstr):
    syntax: ClassVar[str] = "is_null {ref}"
    out: Value
    ref: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, BOOL, "is_null result")
        rules.expect(isinstance(self.ref.type, MapValueRef), "is_null of a non-reference")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.is_null(self, get(self.ref))


@dataclass(frozen=True)
class LoadValue(EffectInstr):
    """Read a map value (or one field of a Struct value) through a non-null reference."""

    syntax: ClassVar[str] = "load_value {ref}{.field_name}"
    out: Value
    ref: Value
    field_name: str | None = None

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, rules.value_slot_type(self.ref, self.field_name), "loaded type")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.load_value(self, get(self.ref))


@dataclass(frozen=True)
class StoreValue(EffectInstr):
    """Write a map value (or one field) through a non-null reference; `atomic_add` adds instead."""

    syntax: ClassVar[str] = "{atomic_add:atomic_add|store_value} {ref}{.field_name}, {value}"
    ref: Value
    value: Value
    field_name: str | None = None
    atomic_add: bool = False

    def check(self, rules: TypeRules) -> None:
        slot = rules.value_slot_type(self.ref, self.field_name)
        rules.same(self.value.type, slot, "stored type")
        if self.atomic_add:
            rules.expect(isinstance(slot, ScalarType) and slot.bits in (32, 64), "atomic add on 32/64 bits")

    def perform(self, effects: Effects[V], get: Operand[V]) -> None:
        effects.store_value(self, get(self.ref), get(self.value))
        return None


@dataclass(frozen=True)
class MapUpdate(EffectInstr):
    """Insert or replace; result 0 on success, a negative errno otherwise (i64)."""

    syntax: ClassVar[str] = "map_update @{map_name}, {key}, {value}"
    out: Value
    map_name: str
    key: Value
    value: Value

    def check(self, rules: TypeRules) -> None:
        decl = rules.map_decl(self.map_name)
        rules.same(self.key.type, decl.key_type, f"key of {self.map_name}")
        rules.same(self.value.type, decl.value_type, f"value of {self.map_name}")
        rules.same(self.out.type, i64, "status")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.map_update(self, get(self.key), get(self.value))


@dataclass(frozen=True)
class MapDelete(EffectInstr):
    """Remove a key; result 0 if it was there, a negative errno otherwise (i64)."""

    syntax: ClassVar[str] = "map_delete @{map_name}, {key}"
    out: Value
    map_name: str
    key: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.key.type, rules.map_decl(self.map_name).key_type, f"key of {self.map_name}")
        rules.same(self.out.type, i64, "status")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.map_delete(self, get(self.key))


@dataclass(frozen=True)
class LoadGlobal(EffectInstr):
    syntax: ClassVar[str] = "load_global @{name}"
    out: Value
    name: str

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, rules.global_decl(self.name).type, f"global {self.name}")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.load_global(self)


@dataclass(frozen=True)
class StoreGlobal(EffectInstr):
    """Write a global; `atomic_add` adds instead."""

    syntax: ClassVar[str] = "{atomic_add:atomic_add_global|store_global} @{name}, {value}"
    name: str
    value: Value
    atomic_add: bool = False

    def check(self, rules: TypeRules) -> None:
        gt = rules.global_decl(self.name).type
        rules.same(self.value.type, gt, f"global {self.name}")
        if self.atomic_add:
            rules.expect(gt.bits in (32, 64) or gt.is_fixed, "atomic add on 32/64 bits")

    def perform(self, effects: Effects[V], get: Operand[V]) -> None:
        effects.store_global(self, get(self.value))
        return None


@dataclass(frozen=True)
class MakeStruct(PureInstr):
    syntax: ClassVar[str] = "make_struct {fields}"
    out: Value
    fields: tuple[Value, ...]

    def check(self, rules: TypeRules) -> None:
        rules.expect(isinstance(self.out.type, StructType), "make_struct result")
        assert isinstance(self.out.type, StructType)
        declared = self.out.type.cls.fields()
        rules.expect(len(self.fields) == len(declared), "field count")
        for v, f in zip(self.fields, declared):
            rules.same(v.type, f.type, f"field {f.name}")

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        return ops.make_struct(_struct(self.out), [get(f) for f in self.fields])


@dataclass(frozen=True)
class ExtractField(PureInstr):
    syntax: ClassVar[str] = "extract {aggregate}.{field_name}"
    out: Value
    aggregate: Value
    field_name: str

    def check(self, rules: TypeRules) -> None:
        rules.expect(isinstance(self.aggregate.type, StructType), "extract from a non-struct")
        assert isinstance(self.aggregate.type, StructType)
        found = [x for x in self.aggregate.type.cls.fields() if x.name == self.field_name]
        rules.expect(bool(found), f"no field {self.field_name}")
        rules.same(self.out.type, found[0].type, f"field {self.field_name}")

    def evaluate(self, ops: Values[V, B], get: Operand[V]) -> V:
        t = _struct(self.aggregate)
        index = [f.name for f in t.cls.fields()].index(self.field_name)
        return ops.extract_field(t, get(self.aggregate), index)


@dataclass(frozen=True)
class CallHelper(EffectInstr):
    syntax: ClassVar[str] = "call {helper}"
    out: Value
    helper: Helper

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, HELPER_RESULT[self.helper], f"{self.helper.name} result")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.call_helper(self)


@dataclass(frozen=True)
class RingbufOutput(EffectInstr):
    """Append `record` to ring buffer `map_name`; the result is true when written, false when full."""

    syntax: ClassVar[str] = "ringbuf_output @{map_name}, {record}"
    out: Value
    map_name: str
    record: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.record.type, rules.ringbuf_decl(self.map_name).record, f"record of ring buffer {self.map_name}")
        rules.same(self.out.type, BOOL, "ringbuf_output result")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.ringbuf_output(self, get(self.record))


@dataclass(frozen=True)
class Redirect(EffectInstr):
    """bpf_redirect(ifindex, 0): the target of the next XDP_REDIRECT is interface `ifindex`; the result is
    the action XDP_REDIRECT."""

    syntax: ClassVar[str] = "redirect {ifindex}"
    out: Value
    ifindex: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.ifindex.type, u32, "interface index")
        rules.same(self.out.type, u32, "redirect action")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.redirect(self, get(self.ifindex))


@dataclass(frozen=True)
class RedirectMap(EffectInstr):
    """bpf_redirect_map(map, key, miss): XDP_REDIRECT to the slot `key` of a DEVMAP or CPUMAP when it is
    filled (the slot is the target), else the action `miss` (0-3, the flags' low two bits)."""

    syntax: ClassVar[str] = "redirect_map @{map_name}, {key}, miss {miss}"
    out: Value
    map_name: str
    key: Value
    miss: int

    def check(self, rules: TypeRules) -> None:
        decl = rules.map_decl(self.map_name)
        rules.expect(decl.kind in (MapKind.DEVMAP, MapKind.CPUMAP), f"{self.map_name} is a DEVMAP or CPUMAP")
        rules.expect(0 <= self.miss <= 3, "the miss action is one of XDP_ABORTED..XDP_TX")
        rules.same(self.key.type, u32, f"key of {self.map_name}")
        rules.same(self.out.type, u32, "redirect action")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.redirect_map(self, get(self.key))


@dataclass(frozen=True)
class FibLookup(EffectInstr):
    """bpf_fib_lookup for IPv4 destination `dst` (host order) arriving on `ifindex`: a record of the
    language's `FibResult` type (status, egress interface, source and destination MAC)."""

    syntax: ClassVar[str] = "fib_lookup {dst}, {ifindex}"
    out: Value
    dst: Value
    ifindex: Value

    def check(self, rules: TypeRules) -> None:
        rules.same(self.dst.type, u32, "destination address")
        rules.same(self.ifindex.type, u32, "ingress interface")
        rules.expect(isinstance(self.out.type, StructType) and self.out.type.cls.__name__ == "FibResult",
                     "fib_lookup gives a FibResult")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.fib_lookup(self, get(self.dst), get(self.ifindex))


@dataclass(frozen=True)
class AdjustPacket(EffectInstr):
    """bool: bpf_xdp_adjust_head (`head`) or bpf_xdp_adjust_tail moved the packet's start or end by
    `delta` bytes (i32) inside its frame (`lang.xdp_frame`); false when the kernel refused, and nothing
    moved. Offsets count from the packet's start as it is now: bounds tests made before prove nothing after."""

    syntax: ClassVar[str] = "adjust_packet {head:head|tail} {delta}"
    out: Value
    delta: Value
    head: bool

    def check(self, rules: TypeRules) -> None:
        rules.same(self.out.type, BOOL, "adjust result")
        rules.same(self.delta.type, i32, "adjust delta")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.adjust_packet(self, get(self.delta))


@dataclass(frozen=True)
class TracePrintk(EffectInstr):
    """bpf_trace_printk(format, size, args...): `print` in a program. The format (`lang.printk`'s, without
    its NUL) is written as hex after an `x` so the text stays one word; `args` are 64-bit values, one per
    conversion. The result is what the helper returns (the length written)."""

    syntax: ClassVar[str] = "trace_printk {fmt_hex} ({args})"
    out: Value
    fmt_hex: str
    args: tuple[Value, ...]

    @property
    def fmt(self) -> str:
        return bytes.fromhex(self.fmt_hex[1:]).decode()

    @staticmethod
    def hex_of(fmt: str) -> str:
        return "x" + fmt.encode().hex()

    def check(self, rules: TypeRules) -> None:
        rules.expect(self.fmt_hex.startswith("x") and len(self.args) <= 3, "a printk format and at most 3 values")
        for a in self.args:
            rules.expect(a.type in (u64, i64), "a printk value is 64 bits")
        rules.same(self.out.type, i64, "trace_printk result")

    def perform(self, effects: Effects[V], get: Operand[V]) -> V:
        return effects.trace_printk(self, [get(a) for a in self.args])


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
class Terminator(abc.ABC):
    """Base of the block-ending instructions; `syntax` and `check` as for `Instr` (the checker tests the
    edges' arguments against their targets' parameters itself)."""

    syntax: ClassVar[str]
    line: int = 0

    def edges(self) -> tuple[Edge, ...]:
        return ()

    def check(self, rules: TypeRules) -> None:  # noqa: B027 - a jump has no rule of its own
        pass

    def operands(self) -> tuple[Value, ...]:
        """The values it reads: its own (a branch's condition, the returned action), then its edges'."""
        own = tuple(x for x in (getattr(self, name) for name in _operand_fields(type(self))) if isinstance(x, Value))
        return own + tuple(a for e in self.edges() for a in e.args)

    @abc.abstractmethod
    def transfer(self, control: Control[V, R], get: Operand[V]) -> R:
        """Call this terminator's `Control` method with its operands' values."""


@dataclass(frozen=True)
class Jump(Terminator):
    syntax: ClassVar[str] = "jump {to}"
    to: Edge

    def edges(self) -> tuple[Edge, ...]:
        return (self.to,)

    def transfer(self, control: Control[V, R], get: Operand[V]) -> R:
        return control.jump(self)


class Expect(enum.Enum):
    """Which way a branch usually goes (`likely(c)` / `unlikely(c)`, or a profile): a layout hint that
    changes no execution's meaning, only which successor the backend makes the fall-through."""

    LIKELY = "likely"  #: the condition usually holds: `if_true` is the hot successor
    UNLIKELY = "unlikely"  #: the condition usually fails: `if_false` is the hot successor


@dataclass(frozen=True)
class Branch(Terminator):
    """Go to `if_true` where `cond` holds, else to `if_false`; `expect` is the optional likelihood hint
    (printed `branch.likely` / `branch.unlikely`). A pass that rebuilds a branch with the same orientation
    passes it on (`expect=term.expect`); one that swaps the edges must flip it or drop it."""

    syntax: ClassVar[str] = "branch{.expect} {cond}, {if_true}, {if_false}"
    cond: Value
    if_true: Edge
    if_false: Edge
    expect: Expect | None = None

    def edges(self) -> tuple[Edge, ...]:
        return (self.if_true, self.if_false)

    def check(self, rules: TypeRules) -> None:
        rules.expect(self.cond.type == BOOL, "branch condition must be bool")

    def transfer(self, control: Control[V, R], get: Operand[V]) -> R:
        return control.branch(self, get(self.cond))


@dataclass(frozen=True)
class Return(Terminator):
    """Leave the program with an XDP action (u32)."""

    syntax: ClassVar[str] = "return {value}"
    value: Value

    def check(self, rules: TypeRules) -> None:
        rules.expect(self.value.type == u32, "return value must be u32")

    def transfer(self, control: Control[V, R], get: Operand[V]) -> R:
        return control.leave(self, get(self.value))


@dataclass
class Block:
    """A basic block: parameters, straight-line instructions, one terminator."""

    name: str
    params: list[Value] = field(default_factory=list)
    instrs: list[Instr] = field(default_factory=list)
    terminator: Terminator | None = None


@dataclass(frozen=True)
class MapDecl:
    syntax: ClassVar[str] = "map @{name}: {kind}<{key_type}, {value_type}>[{max_entries}]"
    name: str
    kind: MapKind
    key_type: ScalarType | StructType
    value_type: ScalarType | StructType
    max_entries: int


@dataclass(frozen=True)
class RingBufDecl:
    """A ring buffer of `record` structs, `size` bytes (a power of two, a multiple of the page size)."""

    syntax: ClassVar[str] = "ringbuf @{name}: {record} ({size} bytes)"
    name: str
    record: StructType
    size: int


@dataclass(frozen=True)
class GlobalDecl:
    syntax: ClassVar[str] = "global @{name}: {type} = {init:const}"
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
INSTRUCTIONS: tuple[type[Instr], ...] = (
    Const, Binary, FixedDivInt, IntQuotient, Compare, Convert, Reinterpret, Select, PacketLen, InBounds,
    LoadPacket, StorePacket, MapLookup, IsNull, LoadValue, StoreValue, MapUpdate, MapDelete, LoadGlobal, StoreGlobal,
    MakeStruct, ExtractField, CallHelper, RingbufOutput, Redirect, RedirectMap, FibLookup, TracePrintk,
    AdjustPacket,
)
"""Every instruction class: the parser reads these by their syntax (a test checks none is missing)."""
TERMINATORS: tuple[type[Terminator], ...] = (Jump, Branch, Return)
DECLARATIONS: tuple[type[MapDecl | RingBufDecl | GlobalDecl], ...] = (MapDecl, RingBufDecl, GlobalDecl)
__all__ = [
    "BOOL", "FLOAT", "Value", "Instr", "PureInstr", "EffectInstr", "Values", "Effects", "Control", "Terminator",
    "Block", "Program", "MapDecl", "GlobalDecl", "RingBufDecl", "Edge", "MapValueRef", "StructType", "INSTRUCTIONS",
    "TERMINATORS", "DECLARATIONS", "Expect",
]
