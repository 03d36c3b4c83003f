"""IR → Z3: symbolic execution of an IR program over the shared symbolic state.

Each path runs the IR's blocks in order; a `Branch` on a symbolic condition forks (see `paths`). The
meaning of every instruction is that of `ir.interpreter` (the reference execution): in particular a
`LoadPacket` outside an established `InBounds`, or a load through a null or stale map reference, ends
the path as `ir_error` — the IR's precondition is violated there, which `prove` reports separately.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import MapValueRef, StructType
from pybpfdsl.lang import printk
from pybpfdsl.lang.actions import XdpAction
from pybpfdsl.lang.headers import ETH_HLEN as MIN_PACKET
from pybpfdsl.lang.headers import MAX_PACKET_OFFSET
from pybpfdsl.lang.types import ScalarType
from pybpfdsl.verify.equivalence import fib, redirect, symbolic_state
from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.ir_values import (
    IRVal,
    Ref,
    decode_value,
    encode_value,
    field_of,
    memory_size,
    merge_value,
    merged_condition,
    select_value,
    term_of,
)
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
from pybpfdsl.verify.equivalence.symbolic_state import Effects, Inputs, MapShape, Term, bv_to_bytes, bytes_to_bv
from pybpfdsl.verify.equivalence.z3_algebra import Z3Algebra, bool_bv, is_true, resize

MAX_IR_STEPS = 200_000
"""Programs with more paths than this are explored with state merging."""


@dataclass
class IRState:
    block: str
    values: dict[n.Value, IRVal]
    effects: Effects
    trace: list[TraceItem] = field(default_factory=list)
    steps: int = 0
    guarded: bool = False
    """The instruction about to run had its guard forked off already (it now holds on this path)."""
    packet: Term = None
    """The packet array after this path's stores (None: never written, the input's)."""
    packet_writes: tuple[Term, ...] = ()
    """The offsets this path stored to, which the proof compares with the other side's packet."""
    head: Term = None
    """Where the packet starts now, from where it started (adjust_packet moves it; None: 0). Offsets and
    the packet array count from the original start, as the bytecode encoding's do."""
    end: Term = None
    """Where the packet ends now, from the original start (None: the input's length)."""

    def fork(self) -> IRState:
        return IRState(self.block, dict(self.values), self.effects.copy(), list(self.trace), self.steps,
                       packet=self.packet, packet_writes=self.packet_writes, head=self.head, end=self.end)


class IREncoder:
    """Runs one IR program symbolically against `inputs`."""

    def __init__(self, program: n.Program, inputs: Inputs) -> None:
        self.program = program
        self.inputs = inputs
        self.blocks = {b.name: b for b in program.blocks}
        self.shapes: dict[str, MapShape] = {}
        for m in program.maps:
            shape = inputs.layout.maps.get(m.name)
            if shape is None:
                raise Unsupported(f"map {m.name} is not in the object")
            self.shapes[m.name] = shape
        self.flow = ControlFlow.of(program.entry.name, self._successors)
        self.pauses: frozenset[str] = frozenset()
        self.live = _live_values(program)
        self.used = _used_values(program)

    # -- driver --------------------------------------------------------------------------------

    def run(self, budget: Budget | None = None, merge_after: int | None = MERGE_AFTER_PATHS) -> Exploration:
        """Every path of the program, merged where paths meet past `merge_after` paths (see
        `paths.explore_merging`)."""
        return explore_merging(lambda merge, max_paths: self._run(budget, merge, max_paths), merge_after)

    def _run(self, budget: Budget | None, merge: bool, max_paths: int = 20_000) -> Exploration:
        """Every path of the program; with `merge`, paths meeting at a block are merged (see `paths`)."""
        start = IRState(self.program.entry.name, {}, self.inputs.initial_effects())
        self.pauses = self.flow.joins if merge else frozenset()
        merging = Merging(self.flow, _locate, self.merge_states) if merge else None
        return explore(start, self.step, self.inputs.assumptions, merging, max_paths=max_paths, budget=budget)

    def merge_states(self, a: IRState, b: IRState, when: Term) -> IRState | None:
        """`a` where `when` holds, else `b` (both at the same place); None when the effects cannot merge."""
        effects = a.effects.merged(b.effects, when)
        if effects is None:
            return None
        # Dead values are dropped (never read again); inside a block (resuming after a guard), the values
        # defined earlier in the block are kept too.
        live = self.live[a.block] if a.steps == 0 else None
        values: dict[n.Value, IRVal] = {}
        # In the states' order, not the set's: a value's hash is its hint's (a string, salted per
        # process), and the order the merged terms are built in decides their Z3 ids, which order the
        # solver's work. In a set's order the units of a proof changed with PYTHONHASHSEED.
        for key in [*a.values, *(k for k in b.values if k not in a.values)]:
            if live is not None and key not in live:
                continue
            mine, theirs = a.values.get(key), b.values.get(key)
            if mine is None or theirs is None:
                found = mine if theirs is None else theirs  # defined on one side only: not read past here
                if found is not None:
                    values[key] = found
                continue
            value = merge_value(when, mine, theirs)
            if value is None:
                return None
            values[key] = value
        packet = None
        if a.packet is not None or b.packet is not None:
            packet = z3.If(when, self._packet(a), self._packet(b))
        writes = (*a.packet_writes, *(p for p in b.packet_writes if not any(p.eq(q) for q in a.packet_writes)))
        head = end = None
        if a.head is not None or b.head is not None:
            head = z3.If(when, self._head(a), self._head(b))
        if a.end is not None or b.end is not None:
            end = z3.If(when, self._end(a), self._end(b))
        return IRState(a.block, values, effects, merge_traces(a.trace, b.trace, when), a.steps, a.guarded,
                       packet, writes, head, end)

    def _head(self, s: IRState) -> Term:
        return z3.BitVecVal(0, 64) if s.head is None else s.head

    def _end(self, s: IRState) -> Term:
        return self.inputs.length if s.end is None else s.end

    def _at(self, s: IRState, offset: Term) -> Term:
        """A packet offset as an index of the packet array (which counts from the original start)."""
        return offset if s.head is None else s.head + offset

    def _packet(self, s: IRState) -> Term:
        """The packet array as path `s` has left it."""
        return self.inputs.packet if s.packet is None else s.packet

    def _successors(self, name: str) -> list[str]:
        term = self.blocks[name].terminator
        return [e.target for e in term.edges()] if term is not None else []

    def step(self, s: IRState) -> Outcome | Fork[IRState]:
        """Run `s` to the end of its block, or to the first instruction that may fail."""
        block = self.blocks[s.block]
        while True:
            for index, instr in enumerate(block.instrs):
                if index < s.steps:  # resuming after a fork inside this block
                    continue
                s.steps = index + 1
                self._note_line(s, instr.line)
                forked = self.execute(s, instr)
                if forked is not None:
                    return forked
            s.steps = 0
            term = block.terminator
            self._note_line(s, term.line if term else 0)
            if term is None:
                raise Unsupported(f"block {block.name} has no terminator")
            ended = term.transfer(_Path(self, s), s.values.__getitem__)
            if ended is not None:
                return ended
            block = self.blocks[s.block]
            if len(s.trace) > MAX_IR_STEPS:
                raise Unsupported("IR path too long: a loop without a bound?")

    @staticmethod
    def _note_line(s: IRState, line: int) -> None:  # consecutive instructions of one line: one entry
        if line and (not s.trace or s.trace[-1] != line):
            s.trace.append(line)

    def _enter(self, s: IRState, e: n.Edge) -> None:
        target = self.blocks[e.target]
        incoming = [s.values[a] for a in e.args]
        for param, value in zip(target.params, incoming):
            s.values[param] = value
        s.block = e.target
        s.steps = 0

    def _guard(self, s: IRState, ok: Term, why: str) -> Fork[IRState] | None:
        """Fork off an `ir_error` outcome unless `ok` is trivially true; the caller continues under `ok`."""
        if s.guarded:
            s.guarded = False
            return None
        ok = z3.simplify(ok)
        if z3.is_true(ok):
            return None
        error = Outcome("ir_error", None, s.effects, tuple(s.trace), reason=why)
        good = s.fork()
        good.steps = s.steps - 1  # re-run the instruction on the good side, where the guard now holds
        good.guarded = True
        return Fork([(z3.Not(ok), error), (ok, good)])

    # -- instructions ----------------------------------------------------------------------------

    def execute(self, s: IRState, i: n.Instr) -> Fork[IRState] | None:
        """Run `i` on path `s`; a Fork when a guard splits the path first (see `_guard`)."""
        effects = _Path(self, s)
        out = i.execute(_VALUES, effects, s.values.__getitem__)
        if effects.split is not None:
            return effects.split
        result = i.result
        if result is not None:
            s.values[result] = out
        return None

    def _in_bounds(self, s: IRState, offset: Term, width: int) -> Term:
        if s.head is None and s.end is None:
            return z3.And(z3.ULE(offset, MAX_PACKET_OFFSET), z3.ULE(offset + width, self.inputs.length))
        return z3.And(z3.ULE(offset, MAX_PACKET_OFFSET), z3.ULE(offset + width, self._end(s) - self._head(s)))

    def _live(self, s: IRState, ref: Ref) -> Fork[IRState] | None:
        ok = z3.And(ref.found, s.effects.present(self.shapes[ref.map_name], ref.key))
        return self._guard(s, ok, f"access through a null or stale reference into map {ref.map_name}")

    def _store_value(self, s: IRState, ref: Ref, value: IRVal, f: str | None, add: bool) -> None:
        shape = self.shapes[ref.map_name]
        decl = self.program.map_decl(ref.map_name)
        offset, t = field_of(decl.value_type, f)
        parts = bv_to_bytes(s.effects.value(shape, ref.key), shape.value_size)
        if add:
            old = decode_value(parts[offset:offset + memory_size(t)], t)
            value = term_of(old) + term_of(value)
        parts[offset:offset + memory_size(t)] = encode_value(value, t)
        s.effects.write_value(shape, ref.key, bytes_to_bv(parts))

    def _update(self, s: IRState, m: str, key: IRVal, value: IRVal) -> Term:
        shape, decl = self.shapes[m], self.program.map_decl(m)
        k = bytes_to_bv(encode_value(key, decl.key_type))
        val = bytes_to_bv(encode_value(value, decl.value_type))
        if shape.is_array:
            ok = z3.ULT(k, z3.BitVecVal(shape.max_entries, k.size()))
            s.effects.insert(self.inputs, shape, k, val, ok)
            return z3.If(ok, z3.BitVecVal(0, 64), z3.BitVecVal(-7, 64))  # -E2BIG, as Array.raw_update
        fits = s.effects.fits(shape, k)  # a full hash map refuses a new key, as `BpfMap.raw_update` does
        s.effects.insert(self.inputs, shape, k, val, fits)
        return z3.If(fits, z3.BitVecVal(0, 64), z3.BitVecVal(-7, 64))

    def _delete(self, s: IRState, m: str, key: IRVal) -> Term:
        shape, decl = self.shapes[m], self.program.map_decl(m)
        if shape.is_array:
            return z3.BitVecVal(-2, 64)  # Array.raw_delete refuses; the interpreter says -ENOENT
        k = bytes_to_bv(encode_value(key, decl.key_type))
        found = s.effects.present(shape, k)
        s.effects.remove(shape, k)
        return z3.If(found, z3.BitVecVal(0, 64), z3.BitVecVal(-2, 64))

    def _global(self, name: str) -> tuple[str, int, ScalarType]:
        decl = self.program.global_decl(name)
        where = self.inputs.layout.variables.get(name)
        if where is None:
            raise Unsupported(f"global {name} is not in the object's data sections")
        return where[0], where[1], decl.type

    def _helper(self, s: IRState, h: n.Helper) -> Term:
        if h is n.Helper.PRANDOM_U32:
            return s.effects.next_helper(self.inputs, "prandom")
        if h is n.Helper.KTIME_GET_NS:
            return s.effects.next_helper(self.inputs, "ktime")
        return self.inputs.cpu



class _Z3Values(Z3Algebra):
    """`nodes.Values` on Z3: scalars are bit-vectors, structs tuples of their fields, references `Ref`."""

    def truth(self, bit: Term) -> Term:
        return is_true(bit)

    def choose(self, cond: Term, if_true: IRVal, if_false: IRVal) -> IRVal:
        return select_value(cond, if_true, if_false)

    def make_struct(self, t: StructType, fields: Sequence[IRVal]) -> IRVal:
        return tuple(fields)

    def extract_field(self, t: StructType, aggregate: IRVal, index: int) -> IRVal:
        assert isinstance(aggregate, tuple)
        return aggregate[index]


_VALUES: n.Values[Any, Term] = _Z3Values()


@dataclass
class _Path:
    """`nodes.Effects` and `nodes.Control` on one path `s` of an `IREncoder`: reads and writes go to the
    path's symbolic state; a terminator ends the path, forks it, or leads it on (None). A guard that may
    fail splits the path: `split` is set and the operation stops there (its value is not used); it runs
    again on the side where the guard holds.

    Terms live as long here as they did in the encoder's former `match`: Z3 numbers a new term by reusing
    freed ids, and the solver's work follows that order (freeing a packet guard's condition before the
    load was built changed the units of proofs)."""

    encoder: IREncoder
    s: IRState
    split: Fork[IRState] | None = None

    def jump(self, term: n.Jump) -> Outcome | Fork[IRState] | None:
        self.encoder._enter(self.s, term.to)
        return pause(self.s) if self.s.block in self.encoder.pauses else None

    def branch(self, term: n.Branch, cond: Any) -> Outcome | Fork[IRState] | None:
        s = self.s
        taken = is_true(cond)
        yes, no = s.fork(), s.fork()
        decided = merged_condition(cond)
        if decided is not None:
            _assume(yes, decided, True)
            _assume(no, decided, False)
        self.encoder._enter(yes, term.if_true)
        self.encoder._enter(no, term.if_false)
        return Fork([(taken, yes), (z3.Not(taken), no)])

    def leave(self, term: n.Return, action: Any) -> Outcome | Fork[IRState] | None:
        s = self.s
        return Outcome("return", resize(action, 32, signed=False), s.effects, tuple(s.trace),
                       packet=s.packet, packet_writes=s.packet_writes, head=s.head, end=s.end)

    def _splits(self, fork: Fork[IRState] | None) -> bool:
        self.split = fork
        return fork is not None

    def packet_len(self, op: n.PacketLen) -> Any:
        e, s = self.encoder, self.s
        if s.head is None and s.end is None:
            return z3.Extract(31, 0, e.inputs.length)
        return z3.Extract(31, 0, e._end(s) - e._head(s))

    def in_bounds(self, op: n.InBounds, offset: Any) -> Any:
        return bool_bv(self.encoder._in_bounds(self.s, offset, op.width))

    def load_packet(self, op: n.LoadPacket, offset: Any) -> Any:
        e, w = self.encoder, op.width
        ok = e._in_bounds(self.s, offset, w)  # alive until the load is built (see the class)
        if self._splits(e._guard(self.s, ok, f"packet load of {w} bytes outside the packet")):
            return None
        at = e._at(self.s, term_of(offset))
        parts = [z3.Select(e._packet(self.s), at + k) for k in range(w)]
        return bytes_to_bv(list(reversed(parts)) if op.big_endian else parts)

    def store_packet(self, op: n.StorePacket, offset: Any, value: Any) -> None:
        e, w, s = self.encoder, op.width, self.s
        ok = e._in_bounds(s, offset, w)
        if self._splits(e._guard(s, ok, f"packet store of {w} bytes outside the packet")):
            return
        packet = e._packet(s)
        parts = bv_to_bytes(term_of(value), w)  # least significant byte first
        base = e._at(s, term_of(offset))
        for k, byte in enumerate(reversed(parts)):  # big-endian: the most significant byte first
            at = base + k
            packet = z3.Store(packet, at, byte)
            s.packet_writes = (*s.packet_writes, at)
        s.packet = packet

    def map_lookup(self, op: n.MapLookup, key: Any) -> Any:
        e = self.encoder
        bits = bytes_to_bv(encode_value(key, e.program.map_decl(op.map_name).key_type))
        return Ref(op.map_name, bits, self.s.effects.present(e.shapes[op.map_name], bits))

    def is_null(self, op: n.IsNull, ref: Any) -> Any:
        assert isinstance(ref, Ref)
        return bool_bv(z3.Not(ref.found))

    def load_value(self, op: n.LoadValue, ref: Any) -> Any:
        e = self.encoder
        assert isinstance(ref, Ref)
        if self._splits(e._live(self.s, ref)):
            return None
        decl = e.program.map_decl(ref.map_name)
        offset, field_t = field_of(decl.value_type, op.field_name)
        shape = e.shapes[ref.map_name]
        parts = bv_to_bytes(self.s.effects.value(shape, ref.key), shape.value_size)
        return decode_value(parts[offset:offset + memory_size(field_t)], field_t)

    def store_value(self, op: n.StoreValue, ref: Any, value: Any) -> None:
        assert isinstance(ref, Ref)
        if self._splits(self.encoder._live(self.s, ref)):
            return
        self.encoder._store_value(self.s, ref, value, op.field_name, op.atomic_add)

    def map_update(self, op: n.MapUpdate, key: Any, value: Any) -> Any:
        return self.encoder._update(self.s, op.map_name, key, value)

    def map_delete(self, op: n.MapDelete, key: Any) -> Any:
        return self.encoder._delete(self.s, op.map_name, key)

    def load_global(self, op: n.LoadGlobal) -> Any:
        sec, offset, t = self.encoder._global(op.name)
        return decode_value(self.s.effects.read_section(sec, offset, t.size), t)

    def store_global(self, op: n.StoreGlobal, value: Any) -> None:
        sec, offset, t = self.encoder._global(op.name)
        new = value
        if op.atomic_add:
            old = decode_value(self.s.effects.read_section(sec, offset, t.size), t)
            new = term_of(old) + term_of(new)
        self.s.effects.write_section(sec, offset, encode_value(new, t))

    def call_helper(self, op: n.CallHelper) -> Any:
        return self.encoder._helper(self.s, op.helper)

    def redirect(self, op: n.Redirect, ifindex: Any) -> Any:
        """bpf_redirect(ifindex, 0), as the bytecode encoding states it: the device `ifindex`."""
        self.s.effects.redirect = redirect.device_state(term_of(ifindex))
        return z3.BitVecVal(XdpAction.REDIRECT, 32)

    def redirect_map(self, op: n.RedirectMap, key: Any) -> Any:
        """bpf_redirect_map(map, key, miss): the element under `key` when the slot is filled, else `miss`
        (and the state the kernel leaves, `redirect.after_redirect_map`)."""
        fx, shape = self.s.effects, self.encoder.shapes[op.map_name]
        k = term_of(key)
        found = fx.present(shape, k)
        fx.redirect = redirect.after_redirect_map(shape, k, fx.value(shape, k), found, fx.redirect)
        return z3.If(found, z3.BitVecVal(XdpAction.REDIRECT, 32), z3.BitVecVal(op.miss, 32))

    def fib_lookup(self, op: n.FibLookup, dst: Any, ifindex: Any) -> Any:
        """The bpf_fib_lookup call the backend makes, answered as the bytecode's is (`fib`)."""
        status, after = fib.call(self.encoder.inputs, self.s.effects, fib.ir_params(resize(dst, 32, signed=False),
                                                                             resize(ifindex, 32, signed=False)),
                                 z3.BitVecVal(0, 32))
        return fib.ir_result(status, after)

    def trace_printk(self, op: n.TracePrintk, args: list[Any]) -> Any:
        """The trace record the bytecode encoding reads from bpf_trace_printk (its `_trace_record`): a
        digest of the format as passed (`printk.helper_bytes`, what the backend emits), then the values,
        unused ones 0."""
        if op.out in self.encoder.used:
            raise Unsupported("the result of bpf_trace_printk (not modelled)")
        digest = int.from_bytes(hashlib.blake2b(printk.helper_bytes(op.fmt), digest_size=8).digest(), "little")
        values = [term_of(a) for a in args] + [z3.BitVecVal(0, 64)] * (3 - len(args))
        self.s.effects.output(symbolic_state.TRACE_OUTPUT, z3.Concat(*reversed(values), z3.BitVecVal(digest, 64)))
        return z3.BitVecVal(0, 64)

    def adjust_packet(self, op: n.AdjustPacket, delta: Any) -> Any:
        """bpf_xdp_adjust_head/tail as the bytecode encoding states them (its `_helper`): within the
        driver's frame (`Inputs.xdp_frame`, metadata moving along), keeping an Ethernet header; bytes the
        end grows over are 0. Where the kernel refuses, nothing moves."""
        e, s = self.encoder, self.s
        head, end = e._head(s), e._end(s)
        shift = z3.SignExt(32, resize(term_of(delta), 32, signed=True))
        headroom, frame_end = e.inputs.xdp_frame()
        if op.head:
            new_head = head + shift
            metadata = e.inputs.meta_len()
            ok = z3.And(new_head - z3.If(metadata < 0, z3.BitVecVal(0, 64), metadata) >= -headroom,
                        new_head <= end - MIN_PACKET)
            s.head = z3.If(ok, new_head, head)
            return bool_bv(ok)
        new_end = end + shift
        ok = z3.And(new_end <= frame_end, new_end >= head + MIN_PACKET)
        grow = z3.simplify(shift)
        if not z3.is_bv_value(grow):
            raise Unsupported("adjust_tail by a variable amount")
        packet = e._packet(s)
        for i in range(max(grow.as_signed_long(), 0)):
            packet = z3.Store(packet, end + i, z3.If(ok, z3.BitVecVal(0, 8), z3.Select(packet, end + i)))
            s.packet_writes = (*s.packet_writes, end + i)
        s.packet = packet
        s.end = z3.If(ok, new_end, end)
        return bool_bv(ok)

    def ringbuf_output(self, op: n.RingbufOutput, record: Any) -> Any:
        e = self.encoder
        if op.out in e.used:
            raise Unsupported(f"the result of {op.map_name}.output(), which is false on a full ring (not modelled)")
        decl = e.program.ringbuf_decl(op.map_name)
        self.s.effects.output(op.map_name, bytes_to_bv(encode_value(record, decl.record)))
        return z3.BitVecVal(1, 1)


def _locate(s: IRState) -> tuple[str, int, bool]:
    return s.block, s.steps, s.guarded


def _used_values(program: n.Program) -> set[n.Value]:
    """Every value some instruction or terminator reads."""
    used: set[n.Value] = set()
    for block in program.blocks:
        for instr in block.instrs:
            used.update(instr.operands())
        term = block.terminator
        if term is not None:
            used.update(term.operands())
    return used


def _live_values(program: n.Program) -> dict[str, set[n.Value]]:
    """The values live on entry to each block, its parameters included (bound by the incoming edge):
    those used there, or later before being defined again."""
    uses: dict[str, set[n.Value]] = {}
    defs: dict[str, set[n.Value]] = {}
    successors: dict[str, list[str]] = {}
    for block in program.blocks:
        defined: set[n.Value] = set()
        used: set[n.Value] = set()
        reads = [list(i.operands()) for i in block.instrs]
        term = block.terminator
        if term is not None:
            reads.append(list(term.operands()))
        for read, instr in zip(reads, [*block.instrs, None]):
            used.update(v for v in read if v not in defined)
            if instr is not None and instr.result is not None:
                defined.add(instr.result)
        uses[block.name], defs[block.name] = used, defined
        successors[block.name] = [e.target for e in term.edges()] if term is not None else []
    live = {name: set(u) for name, u in uses.items()}
    params = {b.name: set(b.params) for b in program.blocks}
    changed = True
    while changed:
        changed = False
        for block in reversed(program.blocks):
            out: set[n.Value] = set()
            for succ in successors[block.name]:
                out |= live[succ] - params[succ]  # a successor's parameters are bound on the way there
            new = uses[block.name] | (out - defs[block.name])
            if new != live[block.name]:
                live[block.name] = new
                changed = True
    return live


def _assume(s: IRState, decided: tuple[Term, bool], taken: bool) -> None:
    """Rewrite `s`'s values under the branch side just taken, where the merge condition `w` of the
    flag it tested is known: the values merged at the same join, `If(w, a, b)`, become the arm this
    path has.

    `m.get(k)` merges the lookup's paths into (found, value-or-default); the bytecode branches on the
    pointer and loads the value itself. Without this, every product or quotient of the value had
    different operands on the two sides for inputs off the path (`If(present, v, 0) - t` against
    `v - t`), and none of them merged: the per-source token bucket stayed "unknown". Only the values'
    outermost selects are rewritten: substituting `w` inside every term made new terms the other
    paths do not share (the token-bucket examples' proofs cost 30-100% more units)."""
    w, polarity = decided
    arm = 1 if polarity == taken else 2

    def pick(t: Term) -> Term:
        return t.arg(arm) if z3.is_app_of(t, z3.Z3_OP_ITE) and t.arg(0).eq(w) else t

    def rewrite(x: IRVal) -> IRVal:
        if isinstance(x, Ref):
            return Ref(x.map_name, pick(x.key), pick(x.found))
        if isinstance(x, tuple):
            return tuple(pick(v) for v in x)
        return pick(x)

    s.values = {k: rewrite(v) for k, v in s.values.items()}


__all__ = ["IREncoder", "MapValueRef", "Ref", "decode_value", "encode_value"]
