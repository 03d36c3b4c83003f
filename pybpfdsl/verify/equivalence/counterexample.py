"""A model of the failed query as concrete inputs, replayed in both interpreters, side by side.

The model gives the packet (its length and bytes), the initial entries of every map the programs
looked at, the initial bytes of `.bss`/`.data` (the globals) and the helper results in call order.
`Replayer`s run those inputs through the reference interpreters — the IR interpreter and the bytecode
interpreter for a compiled program, the bytecode interpreter twice for two objects — so the report
shows what each really does, not just what the solver claims; `reproduced` says whether they differ,
and the prover reports a counterexample only when they do. The `report` module renders it (the record does not
know its renderings, so that module and this one do not import each other).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import z3

from pybpfdsl.bpf.abi import STACK_SIZE, XdpAction, XdpMd
from pybpfdsl.bpf.faults import BytecodeFault, StepLimitExceeded, UnsupportedHelper
from pybpfdsl.bpf.helper_results import FIB_ROUTES, NOT_FORWARDED
from pybpfdsl.bpf.interpreter import ExecutionResult, XdpContext, run
from pybpfdsl.bpf.memory import InterpMap, Region
from pybpfdsl.bpf.semantics import REDIRECT_MAP_FLAGS
from pybpfdsl.lang.fib import Route, use_routes
from pybpfdsl.verify.equivalence import fib, redirect
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram
from pybpfdsl.verify.equivalence.divergence import LineFacts, diverging_line
from pybpfdsl.verify.equivalence.observe import Difference
from pybpfdsl.verify.equivalence.paths import Outcome
from pybpfdsl.verify.equivalence.symbolic_state import BOUNDED_KEY_TYPES, Inputs, Term
from pybpfdsl.verify.subject import Subject

_CTX_INPUTS = (XdpMd.INGRESS_IFINDEX, XdpMd.RX_QUEUE_INDEX, XdpMd.EGRESS_IFINDEX)
"""The xdp_md fields a counterexample gives, in XdpContext's order."""


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
    """What one interpreter did with the counterexample's inputs: the action, the packet and the state
    afterwards (every map's entries, each global-data section's bytes, each ring buffer's records), or
    the error that ended the run (`fault_line`: the source line of a faulting instruction). `replayed`
    is false when the interpreter could not run the inputs at all (a helper it does not model, its step
    limit, state bound to a loaded program): such a run confirms nothing."""

    action: int | None
    packet: bytes = b""
    maps: dict[str, dict[bytes, bytes]] = field(default_factory=dict)
    sections: dict[str, bytes] = field(default_factory=dict)
    rings: dict[str, list[bytes]] = field(default_factory=dict)
    error: str = ""
    replayed: bool = True
    fault_line: int = 0
    redirect: int | None = None
    """Where XDP_REDIRECT goes (bpf_redirect's interface, bpf_redirect_map's element: `redirect`'s
    number; seen only with the action XDP_REDIRECT)."""

    def outputs(self, arrays: dict[str, int]) -> dict[str, object]:
        """What an observer compares, by output (`action`, `packet`, `map NAME`, `global data SECTION`,
        `ring buffer NAME`; `fault` alone for a run that ended in an error). An array's zero elements
        are left out, so an array compares equal however many of its elements a run listed."""
        if self.error:
            return {"fault": True}
        out: dict[str, object] = {"action": self.action, "packet": self.packet}
        if self.action == XdpAction.REDIRECT:
            out["redirect target"] = self.redirect
        for name, entries in self.maps.items():
            if name in arrays:
                entries = {k: v for k, v in entries.items() if any(v)}
            out[f"map {name}"] = entries
        for name, data in self.sections.items():
            out[f"global data {name}"] = data
        for name, records in self.rings.items():
            out[f"ring buffer {name}"] = records
        return out


@dataclass
class Counterexample:
    """Concrete inputs on which the solver says the two programs differ, and what each really did with
    them (`runs`). `maps` holds the initial entries of the keys the programs looked at (every other key
    absent; in an array, listed in `arrays` with its size, zero)."""

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
    arrays: dict[str, int] = field(default_factory=dict)
    """Array maps (name → number of elements): an element not listed is zero."""
    filled: dict[str, frozenset[bytes]] = field(default_factory=dict)
    """Keys of the entries in `maps` that only take up a hash map's room (zero values under keys the
    programs did not look at): reports count them instead of listing them."""
    ctx: XdpContext = field(default_factory=XdpContext)
    """The `xdp_md` fields a program may read besides its pointers (interface and queue numbers)."""
    facts: tuple[LineFacts, LineFacts] = (LineFacts(), LineFacts())
    """Each side's lines and the lines that write each output (for `diverging_line`)."""
    routes: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    """bpf_fib_lookup's answers (destination, status, egress ifindex, smac, dmac), as `fib.routes`: the
    routing table the replays run with."""
    sections_b: dict[str, bytes] = field(default_factory=dict)
    """The second program's initial global data where it differs from `sections` (two objects whose
    initial `.data` differs: each starts from its own)."""

    def start(self, side: int) -> dict[str, bytes]:
        """The global data (writable sections) program `side` starts from."""
        return self.sections | self.sections_b if side == 1 else self.sections

    def _changed(self, name: str, x: bytes, y: bytes) -> tuple[bytes, bytes]:
        """Two runs' final bytes of section `name`, 0 on both where neither run changed a byte from where
        it started (only programs that start apart, `sections_b`, have such bytes that differ)."""
        sx, sy = self.sections.get(name), self.sections_b.get(name)
        if sx is None or sy is None or len({len(x), len(y), len(sx), len(sy)}) != 1:
            return x, y
        kept = [x[i] != sx[i] or y[i] != sy[i] for i in range(len(x))]
        return (bytes(c if k else 0 for c, k in zip(x, kept)), bytes(c if k else 0 for c, k in zip(y, kept)))

    def _outputs(self) -> tuple[dict[str, object], dict[str, object]]:
        """Both runs' outputs (`Run.outputs`), global data as `_changed` has it."""
        assert self.runs is not None
        a, b = (r.outputs(self.arrays) for r in self.runs)
        for name in self.sections_b:
            key = f"global data {name}"
            x, y = a.get(key), b.get(key)
            if isinstance(x, bytes) and isinstance(y, bytes):
                a[key], b[key] = self._changed(name, x, y)
        return a, b

    def differing_outputs(self) -> list[str]:
        """The outputs (`Run.outputs`' names) on which the two runs differ; [] without runs."""
        if self.runs is None:
            return []
        a, b = self._outputs()
        return [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]

    @property
    def reproduced(self) -> bool:
        """Both interpreters ran the inputs and they confirm the solver: the IR run breaks the IR's rules
        (`kind` "ir_error"), or the two runs' observable results differ."""
        if self.runs is None or not all(r.replayed for r in self.runs):
            return False
        if self.kind == "ir_error":
            return self.runs[0].error.startswith("IR error")
        return bool(self.differing_outputs())

    def replay_note(self) -> str:
        """What the replay showed, in a sentence (for a verdict that cannot be a counterexample)."""
        if self.runs is None:
            return "the inputs were not replayed in the interpreters"
        for label, r in zip(self.labels, self.runs):
            if not r.replayed:
                return f"the {label} interpreter could not run the inputs ({r.error})"
        if self.reproduced:
            return "the replay in the interpreters reproduces the difference"
        a, b = self.runs
        if self.kind == "ir_error":
            return f"the IR interpreter runs the inputs without breaking the IR's rules (it returns {action_name(a)})"
        if a.error and b.error:
            return f"both interpreters stop with an error ({a.error}; {b.error})"
        return (f"replayed in the interpreters, both runs agree: {action_name(a)}, the same packet, maps, "
                "globals and ring-buffer records")

    @property
    def diverging_line(self) -> int:
        """The first source line where the two executions differ (see `divergence.diverging_line`)."""
        outputs = self.differing_outputs() or [_output_of(label) for label in self.differing]
        if self.runs is not None:  # a global-data section's differing bytes, one by one
            a, b = self.runs
            for name in [k for k in a.sections if k in b.sections]:  # in order: a set's follows the hash seed
                x, y = self._changed(name, a.sections[name], b.sections[name])
                if len(x) == len(y) and x != y and f"global data {name}" in outputs:
                    outputs.remove(f"global data {name}")
                    outputs += [f"global data {name}+{i}" for i in range(len(x)) if x[i] != y[i]]
        fault = next((r.fault_line for r in self.runs or () if r.fault_line), 0)
        return diverging_line(self.lines_a, self.lines_b, self.facts, outputs, fault)

    def source_line(self) -> str:
        line = self.diverging_line
        if not self.source_file or not line:
            return f"line {line}"
        return f"{self.source_file}:{line}: {self.source_text(line)}"

    def source_text(self, line: int) -> str:
        try:
            return Path(self.source_file).read_text(encoding="utf-8").splitlines()[line - 1].strip()
        except (OSError, IndexError, UnicodeDecodeError):
            return ""


def action_name(run: Run) -> str:
    if run.error:
        return run.error
    return f"{_ACTIONS.get(run.action if run.action is not None else -1, '?')} ({run.action})"


_ACTIONS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}


def _output_of(label: str) -> str:
    """The output a solver label (`observe.Difference`) is about: `global data .bss+3` → `global data .bss`."""
    if label.startswith("global data "):
        return label.rsplit("+", 1)[0]
    if label.startswith("ring buffer "):
        return " ".join(label.split(" ")[:3])
    return label


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
    filled: dict[str, frozenset[bytes]] = {}
    for name, shape in inputs.layout.maps.items():
        if shape.is_ringbuf:
            continue
        keys = {_value(model, k) for o in (active_a, active_b) if o is not None for k in o.effects.seen.get(name, ())}
        entries: dict[bytes, bytes] = {}
        for k in sorted(keys):
            key = z3.BitVecVal(k, 8 * shape.key_size)
            bounded = shape.is_array or shape.map_type in BOUNDED_KEY_TYPES  # no key from max_entries on
            present = (not bounded or k < shape.max_entries) and (
                shape.is_array or _value(model, z3.Select(inputs.present[name], key)) == 1)
            if present:
                entries[k.to_bytes(shape.key_size, "little")] = _bytes_of(
                    model, z3.Select(inputs.values[name], key), shape.value_size)
        if name in inputs.rooms:  # other entries take the room the model says is gone
            looked = set(entries)
            _fill(entries, keys, shape.key_size, shape.value_size,
                  shape.max_entries - _value(model, inputs.rooms[name]) - len(entries))
            filled[name] = frozenset(entries.keys() - looked)
        maps[name] = entries
    sections = {name: bytes(_value(model, b) for b in data) for name, data in inputs.sections.items()
                if not name.startswith(".rodata")}
    sections_b = {name: bytes(_value(model, b) for b in data) for name, data in inputs.apart.items()
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
                         lines_a, lines_b, getattr(replay, "source_file", ""), stacks=_stacks(model, inputs),
                         arrays={name: s.max_entries for name, s in inputs.layout.maps.items() if s.is_array},
                         filled=filled, ctx=XdpContext(*(_value(model, inputs.ctx[off]) for off in _CTX_INPUTS)),
                         facts=getattr(replay, "facts", (LineFacts(), LineFacts())), sections_b=sections_b,
                         routes=fib.routes(model, inputs))
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
            frames.append(bytearray(STACK_SIZE))
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
            if shape.map_type in REDIRECT_MAP_FLAGS:  # user space fills these; programs only read them
                m.entries[k] = Region("map_value", f"{shape.name}[{k.hex()}]", bytearray(v))
            else:
                m.update(k, v)
        maps[shape.name] = m
    for name, init in program.layout.sections.items():
        data = cex.start(side).get(name, init if isinstance(init, bytes) else bytes(init))
        maps[name] = InterpMap.section(name, data, readonly=name.startswith(".rodata"))
    helpers = ScriptedHelpers(cex.prandom, cex.ktime, cex.cpu)
    try:
        with _scripted_fib(cex):
            result = run(list(program.instructions), cex.packet, relocations=program.relocations, maps=maps,
                         stacks=cex.stacks.get(side, ()), ctx=cex.ctx, helpers=helpers)
    except (UnsupportedHelper, StepLimitExceeded) as exc:  # the interpreter's limits, not the program's
        return Run(None, error=f"not replayed: {exc}", replayed=False)
    except BytecodeFault as exc:
        return Run(None, error=f"fault: {exc}", fault_line=program.line_of(exc.pc))
    return Run(result.action, result.packet,
               {s.name: {k: bytes(r.data) for k, r in maps[s.name].entries.items()}
                for s in program.layout.maps.values() if not s.is_ringbuf},
               {name: bytes(maps[name].entries[InterpMap.index_key(0)].data)
                for name in program.layout.sections if not name.startswith(".rodata")},
               {s.name: list(maps[s.name].records) for s in program.layout.maps.values() if s.is_ringbuf},
               redirect=_redirect_target(result))


def _routes(cex: Counterexample) -> list[Route]:
    """The counterexample's bpf_fib_lookup answers as the scripted table pure Python and the IR
    interpreter read (one /32 route per destination asked)."""
    return [Route(f"{ipaddress.IPv4Address(dst)}/32", egress, smac, dmac, status)
            for dst, status, egress, smac, dmac in cex.routes]


@contextlib.contextmanager
def _scripted_fib(cex: Counterexample) -> Iterator[None]:
    """The bytecode interpreter's bpf_fib_lookup answering from the counterexample's routes."""
    table = {dst: (status, egress, smac, dmac) for dst, status, egress, smac, dmac in cex.routes}
    saved = FIB_ROUTES.lookup
    FIB_ROUTES.lookup = lambda dst, ifindex: table.get(dst, (NOT_FORWARDED, ifindex, 0, 0))
    try:
        yield
    finally:
        FIB_ROUTES.lookup = saved


def _redirect_target(result: ExecutionResult) -> int | None:
    """Where the run's XDP_REDIRECT goes, numbered as the encoding numbers it (`redirect`)."""
    if result.redirect_element is not None:
        m, key, value = result.redirect_element
        return redirect.element_target(m.map_type, m.name, key, value)
    return result.redirect_ifindex


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

    def __init__(self, subject: Subject, bytecode: BytecodeProgram) -> None:
        self.subject = subject
        self.bytecode = bytecode
        self.source_file = subject.program.source_file
        self.line_maps = (None, bytecode.line_of)
        self.facts = (LineFacts.of_ir(subject.program, dict(bytecode.layout.variables)),
                      LineFacts.of_bytecode(bytecode))

    def replay(self, cex: Counterexample) -> tuple[Run, Run]:
        return self.run_ir(cex), run_bytecode(self.bytecode, cex)

    def run_ir(self, cex: Counterexample) -> Run:
        from pybpfdsl.ir.interpreter import Environment, IRRuntimeError, run_program
        from pybpfdsl.lang.ringbuf import RingBuf
        from pybpfdsl.lang.state import BpfMap, Global, decode, encode

        state = self.subject.state
        if any(getattr(o, "bound", False) for o in state.values()):
            return Run(None, error="state objects are bound to a loaded program; not replayed", replayed=False)
        program = self.subject.program
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
                with use_routes(_routes(cex)):
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
                        entries[encode(key, map_obj.key_type)] = encode(value, map_obj.value_type)
                maps[m.name] = entries
            sections = {}
            for sec in self.bytecode.layout.sections:
                if sec.startswith(".rodata"):
                    continue
                data = bytearray(cex.sections.get(sec, b""))
                for gname, (gsec, off, _) in variables.items():
                    g_obj = state.get(gname)
                    if gsec == sec and isinstance(g_obj, Global):
                        data[off:off + g_obj.type.size] = encode(g_obj.raw_get(), g_obj.type)
                sections[sec] = bytes(data)
            rings = {}
            for r in program.ringbufs:
                ring_obj = state[r.name]
                assert isinstance(ring_obj, RingBuf)
                rings[r.name] = [rec.to_bytes() for rec in ring_obj.records]
        return Run(result.action, result.packet, maps, sections, rings)


class ObjectReplayer:
    """Replays two bytecode programs in the bytecode interpreter."""

    labels = ("A", "B")

    def __init__(self, a: BytecodeProgram, b: BytecodeProgram) -> None:
        self.a, self.b = a, b
        self.source_file = a.source_file
        self.line_maps = (a.line_of, b.line_of)
        self.facts = (LineFacts.of_bytecode(a), LineFacts.of_bytecode(b))

    def replay(self, cex: Counterexample) -> tuple[Run, Run]:
        return run_bytecode(self.a, cex, 0), run_bytecode(self.b, cex, 1)
