"""A model of the failed query as concrete inputs, replayed in both interpreters, side by side.

The model gives the packet (its length and bytes), the initial entries of every map the programs
looked at, the initial bytes of `.bss`/`.data` (the globals) and the helper results in call order.
`Replayer`s run those inputs through the reference interpreters — the IR interpreter and the bytecode
interpreter for a compiled program, the bytecode interpreter twice for two objects — so the report
shows what each really does, not just what the solver claims; `reproduced` says whether they differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import z3

from pybpfdsl.bpf.interpreter import BytecodeFault, InterpMap, run
from pybpfdsl.lang.helpers import use_helpers
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram
from pybpfdsl.verify.equivalence.observe import Difference
from pybpfdsl.verify.equivalence.paths import Outcome
from pybpfdsl.verify.equivalence.state import Inputs, Term

if TYPE_CHECKING:
    from pybpfdsl.program import CompiledProgram

_ACTIONS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) // 2} bytes)"


class ScriptedHelpers:
    """Helper results from a counterexample, in call order (0 once a stream runs out)."""

    def __init__(self, prandom: Sequence[int], ktime: Sequence[int], cpu: int) -> None:
        self._prandom, self._ktime, self._cpu = list(prandom), list(ktime), cpu
        self._i = self._j = 0

    def prandom_u32(self) -> int:
        value = self._prandom[self._i] if self._i < len(self._prandom) else 0
        self._i += 1
        return value

    def ktime_get_ns(self) -> int:
        value = self._ktime[self._j] if self._j < len(self._ktime) else 0
        self._j += 1
        return value

    def cpu_id(self) -> int:
        return self._cpu


@dataclass
class Run:
    """What one interpreter did with the counterexample's inputs (bytes shown in hex)."""

    action: int | None
    packet: bytes = b""
    maps: dict[str, dict[str, str]] = field(default_factory=dict)
    sections: dict[str, str] = field(default_factory=dict)
    rings: dict[str, list[str]] = field(default_factory=dict)
    error: str = ""

    def rows(self) -> dict[str, str]:
        if self.error:
            return {"error": self.error}
        out = {"action": f"{_ACTIONS.get(self.action or 0, '?')} ({self.action})",
               "packet": _short(self.packet.hex()) or "(empty)"}
        for name, entries in self.maps.items():
            out[f"map {name}"] = ", ".join(f"{k}: {v}" for k, v in entries.items()) or "{}"
        for name, data in self.sections.items():
            out[f"section {name}"] = data
        for name, records in self.rings.items():
            out[f"ring buffer {name}"] = ", ".join(records) or "[]"
        return out


@dataclass
class Counterexample:
    kind: str
    packet: bytes
    maps: dict[str, dict[bytes, bytes]]
    sections: dict[str, bytes]
    prandom: list[int]
    ktime: list[int]
    cpu: int
    differing: list[str]
    labels: tuple[str, str]
    lines_a: list[int]
    lines_b: list[int]
    source_file: str = ""
    runs: tuple[Run, Run] | None = None
    stacks: dict[int, list[bytes]] = field(default_factory=dict)
    """Per bytecode program (`Inputs.stack_byte`'s side), what each stack frame holds before it is
    written (frames in creation order, 512 bytes each, byte i at r10 - 512 + i)."""

    @property
    def reproduced(self) -> bool:
        """Both interpreters ran and their observable results differ."""
        if self.runs is None:
            return False
        a, b = self.runs
        return a.rows() != b.rows()

    @property
    def diverging_line(self) -> int:
        """The first source line where the two executions part (the last one when they never do)."""
        for x, y in zip(self.lines_a, self.lines_b):
            if x != y:
                return x
        longer = self.lines_a if len(self.lines_a) >= len(self.lines_b) else self.lines_b
        shorter = self.lines_b if longer is self.lines_a else self.lines_a
        if len(longer) > len(shorter):
            return longer[len(shorter)]
        return self.lines_a[-1] if self.lines_a else 0

    def source_line(self) -> str:
        line = self.diverging_line
        if not self.source_file or not line:
            return f"line {line}"
        try:
            text = Path(self.source_file).read_text(encoding="utf-8").splitlines()[line - 1].strip()
        except (OSError, IndexError):
            text = ""
        return f"{self.source_file}:{line}: {text}"

    def report(self) -> str:
        out = [f"counterexample ({self.kind}): {', '.join(self.differing) or 'see below'}",
               f"  packet ({len(self.packet)} bytes): {_short(self.packet.hex()) or '(empty)'}"]
        for name, entries in self.maps.items():
            if entries:
                out.append(f"  initial map {name}: " + ", ".join(f"{k.hex()}: {v.hex()}" for k, v in entries.items()))
        for name, data in self.sections.items():
            out.append(f"  initial {name}: {data.hex()}")
        for side, frames in self.stacks.items():
            for frame, data in enumerate(frames):
                shown = ", ".join(f"r10{i - 512}: {b:02x}" for i, b in enumerate(data) if b)
                name = "bytecode" if self.labels[0] == "IR" else self.labels[side]
                out.append(f"  never-written stack ({name}, frame {frame}): "
                           f"{_short(shown) or 'zeros'}")
        if self.prandom or self.ktime:
            out.append(f"  helper results: prandom={self.prandom} ktime={self.ktime} cpu={self.cpu}")
        if self.runs is not None:
            a, b = (r.rows() for r in self.runs)
            width = max([len(v) for v in a.values()] + [len(self.labels[0]), 10])
            out.append(f"  {'':22} {self.labels[0]:<{width}} | {self.labels[1]}")
            for key in dict.fromkeys([*a, *b]):
                mark = " " if a.get(key) == b.get(key) else "*"
                out.append(f"{mark} {key:22} {a.get(key, '-'):<{width}} | {b.get(key, '-')}")
            out.append(f"  replay {'reproduces' if self.reproduced else 'does NOT reproduce'} the difference")
        out.append(f"  diverges at {self.source_line()}")
        return "\n".join(out)


class Replayer(Protocol):
    labels: tuple[str, str]

    def replay(self, cex: Counterexample) -> tuple[Run, Run]: ...


def _value(model: z3.ModelRef, term: Term) -> int:
    v = model.eval(term, model_completion=True)
    if z3.is_true(v):
        return 1
    if z3.is_false(v):
        return 0
    out: int = v.as_long()
    return out


def _bytes_of(model: z3.ModelRef, term: Term, count: int) -> bytes:
    return _value(model, term).to_bytes(count, "little")


def _active(model: z3.ModelRef, outcomes: Sequence[Outcome]) -> Outcome | None:
    for o in outcomes:
        if z3.is_true(model.eval(o.condition, model_completion=True)):
            return o
    return None


def extract(model: z3.ModelRef, inputs: Inputs, kind: str, diffs: list[Difference], outcomes_a: Sequence[Outcome],
            outcomes_b: Sequence[Outcome], labels: tuple[str, str], replay: object) -> Counterexample:
    """Concrete inputs from `model`, replayed with `replay` when it is a `Replayer`."""
    length = _value(model, inputs.length)
    packet = bytes(_value(model, z3.Select(inputs.packet, z3.BitVecVal(i, 64))) for i in range(length))
    active_a, active_b = _active(model, outcomes_a), _active(model, outcomes_b)
    maps: dict[str, dict[bytes, bytes]] = {}
    for name, shape in inputs.layout.maps.items():
        if shape.is_ringbuf:
            continue
        keys = {_value(model, k) for o in (active_a, active_b) if o is not None for k in o.effects.seen.get(name, ())}
        entries: dict[bytes, bytes] = {}
        for k in sorted(keys):
            key = z3.BitVecVal(k, 8 * shape.key_size)
            present = (shape.is_array and k < shape.max_entries) or (
                not shape.is_array and _value(model, z3.Select(inputs.present[name], key)) == 1)
            if present:
                entries[k.to_bytes(shape.key_size, "little")] = _bytes_of(
                    model, z3.Select(inputs.values[name], key), shape.value_size)
        if name in inputs.rooms:  # other entries take the room the model says is gone
            _fill(entries, keys, shape.key_size, shape.value_size,
                  shape.max_entries - _value(model, inputs.rooms[name]) - len(entries))
        maps[name] = entries
    sections = {name: bytes(_value(model, b) for b in data) for name, data in inputs.sections.items()
                if not name.startswith(".rodata")}
    prandom = [_value(model, v) for v in inputs.streams["prandom"]]
    ktime = [_value(model, v) for v in inputs.streams["ktime"]]
    differing = list(dict.fromkeys(d.label for d in diffs if z3.is_true(model.eval(d.differs, model_completion=True))))
    if kind == "ir_error":
        bad = next((o for o in [*outcomes_a, *outcomes_b] if o.kind == "ir_error"
                    and z3.is_true(model.eval(o.condition, model_completion=True))), None)
        differing = [bad.reason if bad is not None else "IR error"]
    lines_a = _lines(active_a, replay, 0, model)
    lines_b = _lines(active_b, replay, 1, model)
    cex = Counterexample(kind, packet, maps, sections, prandom, ktime, _value(model, inputs.cpu), differing, labels,
                         lines_a, lines_b, getattr(replay, "source_file", ""), stacks=_stacks(model, inputs))
    if isinstance(replay, CompiledReplayer | ObjectReplayer):
        cex.runs = replay.replay(cex)
    return cex


def _fill(entries: dict[bytes, bytes], used: set[int], key_size: int, value_size: int, count: int) -> None:
    """Add `count` entries (zero values) under the smallest keys the programs did not look at."""
    k = 0
    while count > 0:
        if k not in used:
            entries[k.to_bytes(key_size, "little")] = bytes(value_size)
            count -= 1
        k += 1


def _stacks(model: z3.ModelRef, inputs: Inputs) -> dict[int, list[bytes]]:
    """The never-written stack bytes the model chose, as frame images per program (zeros elsewhere)."""
    images: dict[int, list[bytearray]] = {}
    for (side, frame, offset), byte in inputs.stack.items():
        frames = images.setdefault(side, [])
        while len(frames) <= frame:
            frames.append(bytearray(512))
        frames[frame][offset] = _value(model, byte)
    return {side: [bytes(f) for f in frames] for side, frames in images.items()}


def _lines(outcome: Outcome | None, replay: object, side: int, model: z3.ModelRef) -> list[int]:
    if outcome is None:
        return []
    to_line = getattr(replay, "line_maps", (None, None))[side]
    trace = outcome.trace_under(lambda t: z3.is_true(model.eval(t, model_completion=True)))
    raw = list(trace) if to_line is None else [to_line(i) for i in trace]
    out: list[int] = []
    for line in raw:
        if line and (not out or out[-1] != line):
            out.append(line)
    return out


# --------------------------------------------------------------------------- #
# Replay in the interpreters
# --------------------------------------------------------------------------- #


def run_bytecode(program: BytecodeProgram, cex: Counterexample, side: int = 0) -> Run:
    """Run `program` (bytecode program number `side` of the proof) in the bytecode interpreter on the
    counterexample's inputs."""
    maps: dict[str, InterpMap] = {}
    for shape in program.layout.maps.values():
        m = InterpMap(shape.name, shape.map_type, shape.key_size, shape.value_size, shape.max_entries)
        for k, v in cex.maps.get(shape.name, {}).items():
            m.update(k, v)
        maps[shape.name] = m
    for name, init in program.layout.sections.items():
        data = cex.sections.get(name, init if isinstance(init, bytes) else bytes(init))
        maps[name] = InterpMap.section(name, data, readonly=name.startswith(".rodata"))
    helpers = ScriptedHelpers(cex.prandom, cex.ktime, cex.cpu)
    try:
        with use_helpers(helpers):
            result = run(list(program.instructions), cex.packet, relocations=program.relocations, maps=maps,
                         stacks=cex.stacks.get(side, ()))
    except BytecodeFault as exc:
        return Run(None, error=f"fault: {exc}")
    return Run(result.action, result.packet,
               {s.name: {k.hex(): bytes(r.data).hex() for k, r in maps[s.name].entries.items()}
                for s in program.layout.maps.values() if not s.is_ringbuf},
               {name: bytes(maps[name].entries[InterpMap.index_key(0)].data).hex()
                for name in program.layout.sections if not name.startswith(".rodata")},
               {s.name: [r.hex() for r in maps[s.name].records] for s in program.layout.maps.values() if s.is_ringbuf})


@contextlib.contextmanager
def _saved(objects: Sequence[Any]) -> Iterator[None]:
    saved = [o.save() for o in objects]
    try:
        yield
    finally:
        for o, s in zip(objects, saved):
            o.restore(s)


class CompiledReplayer:
    """Replays in the IR interpreter (the program's own state objects, restored afterwards) and in the
    bytecode interpreter (the possibly modified instructions)."""

    labels = ("IR", "bytecode")

    def __init__(self, compiled: CompiledProgram, bytecode: BytecodeProgram) -> None:
        self.compiled = compiled
        self.bytecode = bytecode
        self.source_file = compiled.lowered.program.source_file
        self.line_maps = (None, bytecode.line_of)

    def replay(self, cex: Counterexample) -> tuple[Run, Run]:
        return self.run_ir(cex), run_bytecode(self.bytecode, cex)

    def run_ir(self, cex: Counterexample) -> Run:
        from pybpfdsl.ir.interpret import Environment, IRRuntimeError, run_program
        from pybpfdsl.lang.state import BpfMap, Global, RingBuf, decode, encode

        lowered = self.compiled.lowered
        state = lowered.state
        if any(getattr(o, "bound", False) for o in state.values()):
            return Run(None, error="state objects are bound to a loaded program; not replayed")
        program = lowered.program
        variables = self.bytecode.layout.variables
        with _saved(list(state.values())):
            for name, obj in state.items():
                if isinstance(obj, Global) and name in variables:
                    sec, off, _ = variables[name]
                    init = cex.sections.get(sec, b"")
                    raw = decode(init[off:off + obj.type.size], obj.type)
                    assert isinstance(raw, int)  # a global's type is scalar, so it decodes to an int
                    obj.raw_set(raw)
                elif isinstance(obj, BpfMap):
                    obj.restore({})  # empty (arrays: all zero), per-CPU copies too
                    for k, v in cex.maps.get(name, {}).items():
                        obj.raw_update(decode(k, obj.key_type), decode(v, obj.value_type))
                elif isinstance(obj, RingBuf):
                    obj.restore([])
            env = Environment(
                {k: v for k, v in state.items() if isinstance(v, BpfMap)},
                {k: v for k, v in state.items() if isinstance(v, Global)},
                ScriptedHelpers(cex.prandom, cex.ktime, cex.cpu),
                {k: v for k, v in state.items() if isinstance(v, RingBuf)},
            )
            try:
                result = run_program(program, cex.packet, env)
            except IRRuntimeError as exc:
                return Run(None, error=f"IR error: {exc}")
            maps = {}
            for m in program.maps:
                map_obj = state[m.name]
                assert isinstance(map_obj, BpfMap)
                entries = {}
                for key in map_obj.raw_keys():
                    value = map_obj.raw_lookup(key)
                    if value is not None:
                        entries[encode(key, map_obj.key_type).hex()] = encode(value, map_obj.value_type).hex()
                maps[m.name] = dict(sorted(entries.items()))
            sections = {}
            for sec in self.bytecode.layout.sections:
                if sec.startswith(".rodata"):
                    continue
                data = bytearray(cex.sections.get(sec, b""))
                for gname, (gsec, off, _) in variables.items():
                    g_obj = state.get(gname)
                    if gsec == sec and isinstance(g_obj, Global):
                        data[off:off + g_obj.type.size] = encode(g_obj.raw_get(), g_obj.type)
                sections[sec] = bytes(data).hex()
            rings = {}
            for r in program.ringbufs:
                ring_obj = state[r.name]
                assert isinstance(ring_obj, RingBuf)
                rings[r.name] = [rec.to_bytes().hex() for rec in ring_obj.records]
        return Run(result.action, result.packet, maps, sections, rings)


class ObjectReplayer:
    """Replays two bytecode programs in the bytecode interpreter."""

    labels = ("A", "B")

    def __init__(self, a: BytecodeProgram, b: BytecodeProgram) -> None:
        self.a, self.b = a, b
        self.source_file = a.source_file
        self.line_maps = (a.line_of, b.line_of)

    def replay(self, cex: Counterexample) -> tuple[Run, Run]:
        return run_bytecode(self.a, cex, 0), run_bytecode(self.b, cex, 1)
