"""Ground truth for the equivalence prover: single-instruction mutants of real objects, with the kernel
as the oracle.

Each subject is a compiled BPF object: an example of ours (`fn.compile(prove=False)`) or a clang-built
XDP program (the C corpus's accepted programs and `c/*.c` next to this file). Each mutant changes one
instruction (`mutants.edits`, the kinds a buggy compiler makes) and keeps the slot layout, so it is
patched back into the ELF and libbpf loads it with its maps and globals. Original and mutant then run
in the kernel (`BPF_PROG_TEST_RUN`) on the same packets from the same map and global state, set before
every run; a mutant is *kernel-different* when some packet gives a different action, output packet,
map contents, global bytes or ring-buffer records. `prove_objects` must then answer "counterexample":
a "proven" there is a false proof. A counterexample on a mutant the kernel did not tell apart is
replayed in the kernel from its own packet and state; where the kernel still agrees it is a false
counterexample, unless the program reads helper results (random numbers, the clock) the kernel cannot
be made to return, and then it is "unconfirmed".

Programs that call `bpf_get_prandom_u32` or `bpf_ktime_get_ns` are nondeterministic in the kernel: a
difference is only believed when it survives repeated runs (see `_confirm`).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import importlib
import os
import random
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.interpreter import run
from pybpfdsl.bpf.memory import InterpMap
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, Source, make
from pybpfdsl.lang.helpers import use_helpers
from pybpfdsl.runtime.bpf_object import BpfObject, LoadError
from pybpfdsl.runtime.kernel_map import KernelMap
from pybpfdsl.runtime.kernel_run import ETH_HLEN, run_xdp
from pybpfdsl.runtime.libbpf import RING_BUFFER_SAMPLE_FN, get_ring_buffer_lib
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram, load_program
from pybpfdsl.verify.equivalence.counterexample import Counterexample, ScriptedHelpers
from pybpfdsl.verify.equivalence.prove import ProofResult, prove_objects
from pybpfdsl.verify.equivalence.symbolic_state import MapShape
from tests.verify.corpus.mutants import patch_section
from tests.verify.equivalence.mutants import edits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HERE_C = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")

PROOF_BUDGET = 60_000_000
"""The budget of each mutant's proof, in Z3 resource units (`verify/equivalence/budget.py`): the one
place it is set. Less than the compile-time budget: these programs are small, and an "unknown" is
reported, not hidden."""

NONDETERMINISTIC_HELPERS = frozenset({5, 7, 125})  # ktime_get_ns, get_prandom_u32, ktime_get_boot_ns
REPEATS = 24
"""Runs of each side on a packet where a nondeterministic program seems to differ."""

_PERCPU = frozenset({5, 6, 10})
_HASHES = frozenset({1, 5, 9, 10})
_ARRAYS = frozenset({2, 6})
_RINGBUF = 27
_SMALL_ARRAY = 64  # arrays up to this size are set and read whole; larger ones at the keys that matter


def prove(original: bytes, mutant: bytes, function: str) -> ProofResult:
    """The verdict under test: `prove_objects` with the harness's budget."""
    return prove_objects(original, mutant, function, budget=PROOF_BUDGET)


# --------------------------------------------------------------------------- #
# Subjects and mutants
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Subject:
    """One compiled program: `function` names it in `elf`."""

    name: str
    origin: str  # "example" or "clang"
    elf: bytes
    function: str


def example_subjects(names: Collection[str] | None = None) -> list[Subject]:
    """Every `@xdp` program of `examples/` (or those `names` lists), compiled without the proof or the
    safety verdict: a subject is its bytes."""
    out: list[Subject] = []
    for path in sorted(glob.glob(os.path.join(ROOT, "examples", "*.py"))):
        module_name = f"examples.{os.path.basename(path)[:-3]}"
        if module_name.endswith(("__init__", "demo")):
            continue
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if getattr(value, "__pybpfdsl_program__", False) and value.__module__ == module_name \
                    and (names is None or value.name in names):
                compiled = value.compile(prove=False, verify=False)
                out.append(Subject(compiled.name, "example", compiled.elf, compiled.name))
    return out


def c_sources() -> list[str]:
    """The clang subjects: the C corpus's programs the kernel accepts, and this folder's `c/*.c`."""
    from tests.verify.corpus.c_corpus import sources

    ours = sorted(glob.glob(os.path.join(HERE_C, "*.c")))
    return [p for p in sources() if os.path.basename(p).startswith("ok_")] + ours


def clang_subject(path: str) -> Subject:
    """`path` built with clang (needs clang; the C corpus's flags and headers)."""
    from tests.verify.corpus.c_corpus import build, clang

    cc = clang()
    assert cc is not None, "clang is not installed"
    elf = build(path, cc)
    function = "prog" if "prog" in _function_names(elf) else _function_names(elf)[0]
    return Subject(os.path.basename(path)[:-2], "clang", elf, function)


def _function_names(elf: bytes) -> list[str]:
    return [f.name for f in BpfElf.from_bytes(elf).functions]


@dataclass(frozen=True)
class MutantObject:
    """`subject` with instruction `index` of its section replaced (`kind`, `description`)."""

    subject: Subject
    kind: str
    index: int
    description: str
    elf: bytes

    @property
    def name(self) -> str:
        return f"{self.subject.name}@{self.index}:{self.kind}"


def mutants_of(subject: Subject) -> list[MutantObject]:
    """Every single-instruction mutant of the subject's section (extended kinds included)."""
    bpf = BpfElf.from_bytes(subject.elf)
    section = bpf.program(subject.function).section
    insns = list(bpf.program(section).instructions)
    out: list[MutantObject] = []
    for e in edits(insns, extended=True):
        if insns[e.index].kind == Kind.LDDW or e.insn.slots != insns[e.index].slots:
            continue  # a relocated wide load would no longer match its relocation
        changed = list(insns)
        changed[e.index] = e.insn
        out.append(MutantObject(subject, e.kind, e.index, e.description, patch_section(subject.elf, section, changed)))
    return out


def _rank(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def sampled(name: str, rate: float) -> bool:
    """Deterministic: the same names are chosen on every run and machine."""
    return _rank(name) < rate * (1 << 64)


def spread(mutants: Sequence[MutantObject], per_kind: int) -> list[MutantObject]:
    """Up to `per_kind` mutants of every kind, each from another subject where the subjects allow, chosen
    by a hash of their names (the same on every run): every kind a buggy compiler makes, in few proofs."""
    ranked = sorted(mutants, key=lambda m: _rank(m.name))
    chosen: dict[str, MutantObject] = {}
    taken: Counter[str] = Counter()
    places: set[tuple[str, str]] = set()
    for first_pass in (True, False):  # the second repeats subjects for kinds that few subjects have
        for m in ranked:
            place = (m.kind, m.subject.name)
            if taken[m.kind] >= per_kind or m.name in chosen or (first_pass and place in places):
                continue
            chosen[m.name] = m
            taken[m.kind] += 1
            places.add(place)
    return list(chosen.values())


# --------------------------------------------------------------------------- #
# Packets and states
# --------------------------------------------------------------------------- #


def packets(random_count: int = 12, seed: int = 12) -> list[bytes]:
    """A fixed set of Ethernet frames (IPv4/IPv6, TCP/UDP/ICMP, several lengths and field values, VLAN,
    ARP, IPv4 options, a bare header) and `random_count` seeded random ones."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import ARP, Dot1Q, Ether

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frames = [
        eth / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=53) / (b"q" * 12),
        eth / IP(src="10.0.0.3", dst="10.0.0.2", ttl=1) / UDP(sport=53, dport=9) / b"",
        eth / IP(src="192.168.1.7", dst="10.0.0.9") / UDP(sport=40000, dport=8080) / (b"x" * 100),
        eth / IP(src="10.1.2.3", dst="10.0.0.2") / UDP(sport=5353, dport=12345) / bytes(range(64)),
        eth / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80, flags="S"),
        eth / IP(src="172.16.0.5", dst="10.0.0.2") / TCP(sport=5555, dport=443, flags="A") / (b"y" * 200),
        eth / IP(src="10.0.0.8", dst="10.0.0.2") / TCP(sport=22, dport=22, flags="SA", window=0) / b"z",
        eth / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01\x01\x01\x00") / TCP(sport=9, dport=9),
        eth / IP(src="10.0.0.1", dst="10.0.0.2", frag=1, flags=1) / UDP(sport=7, dport=7),
        eth / IP(src="10.9.9.9", dst="10.0.0.2") / ICMP(type=8) / (b"p" * 56),
        eth / IP(src="10.9.9.9", dst="10.0.0.2", ttl=255) / ICMP(type=0, code=3),
        eth / IPv6(src="fe80::1", dst="fe80::2") / UDP(sport=1000, dport=53) / b"abc",
        eth / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=1) / TCP(sport=80, dport=8080, flags="S"),
        eth / IPv6(src="2001:db8::3", dst="2001:db8::4") / ICMPv6EchoRequest() / (b"i" * 32),
        eth / Dot1Q(vlan=10) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=53),
        eth / ARP(psrc="10.0.0.1", pdst="10.0.0.2"),
        Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff", type=0x0800),
        eth / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1234, dport=53) / (b"L" * 1400),
    ]
    out = [bytes(f) for f in frames]
    rng = random.Random(seed)
    for i in range(random_count):
        if i % 2:
            # A real frame with a few bytes changed past the Ethernet header: the parsers' odd cases.
            frame = bytearray(rng.choice(out[:15]))
            for _ in range(3):
                pos = rng.randrange(ETH_HLEN - 2, len(frame))
                frame[pos] = rng.randrange(256)
            out.append(bytes(frame))
        else:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(ETH_HLEN, 160))))
    return out


@dataclass(frozen=True)
class State:
    """Initial map entries (per map, key → value) and global-section bytes, set before a run."""

    label: str
    maps: dict[str, dict[bytes, bytes]]
    sections: dict[str, bytes]


def _pattern(size: int, word: int) -> bytes:
    """`word` in every aligned 8-byte word (narrower tails get its low bytes)."""
    out = bytearray()
    while len(out) < size:
        n = min(8, size - len(out))
        out += (word & ((1 << (8 * n)) - 1)).to_bytes(n, "little")
    return bytes(out)


def _initial_sections(program: BytecodeProgram) -> dict[str, bytes]:
    return {name: (init if isinstance(init, bytes) else bytes(init)) for name, init in program.layout.sections.items()
            if not name.startswith(".rodata")}


def _elf_sections(elf: bytes, program: BytecodeProgram) -> dict[str, bytes]:
    """Writable global sections with their ELF contents (`.data`'s initializers, `.bss` zero)."""
    from io import BytesIO

    from elftools.elf.elffile import ELFFile

    f = ELFFile(BytesIO(elf))
    out: dict[str, bytes] = {}
    for name, init in _initial_sections(program).items():
        sec = f.get_section_by_name(name)
        data = sec.data() if sec is not None and sec.header["sh_type"] != "SHT_NOBITS" else b""
        out[name] = bytes(data) if len(data) == len(init) else init
    return out


def states(program: BytecodeProgram, elf: bytes, keys: dict[str, set[bytes]], seed: int) -> list[State]:
    """The starting states of one packet: everything empty (globals as the ELF has them), then the keys
    the original touches present with small, random and large values (globals likewise)."""
    shapes = _settable(program)
    base = _elf_sections(elf, program)
    rng = random.Random(seed)
    out = [State("empty", {}, base)]
    for label, word in (("small", 1), ("random", None), ("large", (1 << 64) - 2)):
        maps = {name: {k: (_pattern(s.value_size, word) if word is not None else rng.randbytes(s.value_size))
                       for k in sorted(keys.get(name, ()))}
                for name, s in shapes.items()}
        sections = {name: (_pattern(len(data), word) if word is not None else rng.randbytes(len(data)))
                    for name, data in base.items()}
        out.append(State(label, maps, sections))
    return out


def _settable(program: BytecodeProgram) -> dict[str, MapShape]:
    return {n: s for n, s in program.layout.maps.items() if s.map_type in _HASHES | _ARRAYS}


@dataclass(eq=False)
class _TracedMap(InterpMap):
    touched: set[bytes] = field(default_factory=set)

    def lookup(self, key: bytes) -> object:  # type: ignore[override]
        self.touched.add(bytes(key))
        return super().lookup(key)

    def update(self, key: bytes, value: bytes, flags: int = 0) -> int:
        self.touched.add(bytes(key))
        return super().update(key, value, flags)

    def delete(self, key: bytes) -> int:
        self.touched.add(bytes(key))
        return super().delete(key)


def touched_keys(program: BytecodeProgram, packet: bytes) -> dict[str, set[bytes]]:
    """The map keys `program` looks up, updates or deletes on `packet` from an empty state, in the
    bytecode interpreter (only to choose which entries a state sets; the kernel stays the oracle)."""
    maps: dict[str, InterpMap] = {}
    traced: dict[str, _TracedMap] = {}
    for shape in program.layout.maps.values():
        big = shape.map_type in _ARRAYS and shape.max_entries > 4096
        t = _TracedMap(shape.name, shape.map_type, shape.key_size, shape.value_size,
                       min(shape.max_entries, 4096) if big else shape.max_entries)
        maps[shape.name] = t
        traced[shape.name] = t
    for name, init in program.layout.sections.items():
        data = init if isinstance(init, bytes) else bytes(init)
        maps[name] = InterpMap.section(name, data, readonly=name.startswith(".rodata"))
    try:
        with use_helpers(ScriptedHelpers([], [], 0)):
            run(list(program.instructions), packet, relocations=program.relocations, maps=maps)
    except Exception:  # any interpreter failure (a BytecodeFault, an unmodelled helper) only means fewer keys
        pass
    return {n: {k for k in t.touched if len(k) == t.key_size} for n, t in traced.items()}


# --------------------------------------------------------------------------- #
# The kernel
# --------------------------------------------------------------------------- #

Observation = tuple[tuple[str, bytes], ...]


class _RingDrain:
    """Collects a ring buffer's raw records (libbpf's consumer; the map fd is borrowed)."""

    def __init__(self, fd: int) -> None:
        self.records: list[bytes] = []
        self._lib = get_ring_buffer_lib()
        self._callback = RING_BUFFER_SAMPLE_FN(self._sample)
        self._rb: int | None = self._lib.new(fd, self._callback)

    def _sample(self, ctx: int | None, data: int | None, size: int) -> int:
        self.records.append(ctypes.string_at(data, size) if data else b"")
        return 0

    def take(self) -> list[bytes]:
        assert self._rb is not None
        self.records = []
        self._lib.consume(self._rb)
        out, self.records = self.records, []
        return out

    def close(self) -> None:
        rb, self._rb = self._rb, None
        if rb is not None:
            self._lib.free(rb)


class KernelRunner:
    """One object loaded in the kernel: sets a state, runs a packet, reads back what it did."""

    def __init__(self, elf: bytes, function: str) -> None:
        self.program = load_program(elf, function)
        self.obj = BpfObject.load(elf, function[:15], log_level=0)
        try:
            self.fd = self.obj.program_fd(function)
            shapes = _settable(self.program)
            self.maps = {n: (s, self.obj.kernel_map(n)) for n, s in shapes.items()}
            self.sections = {n: self.obj.kernel_map(n) for n in _initial_sections(self.program)}
            self.rings = {n: _RingDrain(self.obj.kernel_map(n).fd) for n, s in self.program.layout.maps.items()
                          if s.map_type == _RINGBUF}
        except BaseException:
            self.obj.close()
            raise
        self._dirty: dict[str, set[bytes]] = {n: set() for n in self.maps}

    def close(self) -> None:
        for r in self.rings.values():
            r.close()
        self.obj.close()

    def _put(self, m: KernelMap, shape: MapShape, key: bytes, value: bytes) -> None:
        if shape.map_type in _PERCPU:
            m.update_percpu(key, [value] * _ncpus())
        else:
            m.update(key, value)

    def _get(self, m: KernelMap, shape: MapShape, key: bytes) -> bytes | None:
        if shape.map_type in _PERCPU:
            values = m.lookup_percpu(key)
            return None if values is None else b"".join(values)
        return m.lookup(key)

    def _watched(self, name: str, shape: MapShape, state: State) -> list[bytes]:
        if shape.map_type in _ARRAYS and shape.max_entries <= _SMALL_ARRAY:
            return [i.to_bytes(4, "little") for i in range(shape.max_entries)]
        if shape.map_type in _ARRAYS:
            return sorted(k for k in self._dirty[name] | set(state.maps.get(name, {}))
                          if int.from_bytes(k, "little") < shape.max_entries)
        return sorted(self.maps[name][1].keys())

    def set_state(self, state: State, watch: dict[str, set[bytes]]) -> None:
        for name, (shape, m) in self.maps.items():
            wanted = state.maps.get(name, {})
            if shape.map_type in _HASHES:
                for k in list(m.keys()):
                    m.delete(k)
                for k, v in wanted.items():
                    self._put(m, shape, k, v)
            else:
                keys = (set(self._watched(name, shape, state)) | self._dirty[name] | set(wanted)
                        | watch.get(name, set()))
                for k in keys:
                    if int.from_bytes(k, "little") < shape.max_entries:
                        self._put(m, shape, k, wanted.get(k, bytes(shape.value_size)))
                self._dirty[name] = {k for k in keys if int.from_bytes(k, "little") < shape.max_entries}
        for name, sm in self.sections.items():
            data = state.sections.get(name)
            if data is not None and len(data) == sm.value_size:
                sm.update(bytes(4), data)
        for r in self.rings.values():
            r.take()

    def run(self, packet: bytes, state: State, watch: dict[str, set[bytes]]) -> Observation:
        """Set `state`, run `packet`, and observe action, packet, maps, globals and ring records."""
        self.set_state(state, watch)
        result = run_xdp(self.fd, packet)
        out: list[tuple[str, bytes]] = [("action", result.action.to_bytes(4, "little")), ("packet", result.packet)]
        for name, (shape, m) in sorted(self.maps.items()):
            parts = []
            for k in self._watched(name, shape, state):
                v = self._get(m, shape, k)
                if v is not None:
                    parts.append(k + v)
            out.append((f"map {name}", b"".join(parts)))
        for name, sm in sorted(self.sections.items()):
            out.append((f"global {name}", sm.lookup(bytes(4)) or b""))
        for name, r in sorted(self.rings.items()):
            out.append((f"ring {name}", b"".join(len(x).to_bytes(4, "little") + x for x in r.take())))
        return tuple(out)


def _ncpus() -> int:
    from pybpfdsl.runtime.libbpf import get_libbpf

    return int(get_libbpf().num_possible_cpus())


@contextlib.contextmanager
def pinned(cpu: int = 0) -> Iterator[None]:
    """Run on one CPU: per-CPU maps and `bpf_get_smp_processor_id` then see the same CPU every run."""
    before = os.sched_getaffinity(0)
    target = cpu if cpu in before else min(before)
    os.sched_setaffinity(0, {target})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


_SMP_PROCESSOR_ID = frozenset({8})


def _calls(program: BytecodeProgram, helpers: frozenset[int]) -> bool:
    return any(i.kind == Kind.CALL and i.is_helper_call and i.imm in helpers for i in program.instructions)


def nondeterministic(program: BytecodeProgram) -> bool:
    """Whether the program reads the clock or random numbers (its kernel runs may differ run to run)."""
    return _calls(program, NONDETERMINISTIC_HELPERS)


_CTX_INPUT_FIELDS = frozenset({12, 16, 20})  # xdp_md: ingress_ifindex, rx_queue_index, egress_ifindex


def reads_ctx_fields(program: BytecodeProgram) -> bool:
    """Whether the program may read an `xdp_md` field a kernel test run fixes (the interface and queue):
    a counterexample may choose other values, which a replay cannot set. Over-approximate: any 32-bit
    load at those offsets from a register that ever held the context (r1 at entry, or a copy)."""
    ctx_regs = {1}
    for insn in program.instructions:
        if insn.kind == Kind.MOV and insn.src in ctx_regs and insn.opcode & 0x08:
            ctx_regs.add(insn.dst)
        if insn.kind == Kind.LDX and insn.src in ctx_regs and insn.off in _CTX_INPUT_FIELDS:
            return True
    return False


def differing_fields(a: Observation, b: Observation) -> list[str]:
    return [name for (name, x), (_, y) in zip(a, b, strict=True) if x != y]


def _masked(obs: Observation, mask: dict[str, set[int]]) -> Observation:
    out = []
    for name, data in obs:
        m = mask.get(name)
        if m is None:
            out.append((name, data))
        elif -1 in m:
            out.append((name, b""))
        else:
            out.append((name, bytes(0 if i in m else x for i, x in enumerate(data))))
    return tuple(out)


def _confirm(orig: KernelRunner, mut: KernelRunner, packet: bytes, state: State, watch: dict[str, set[bytes]],
             first: tuple[Observation, Observation], random_helpers: bool) -> bool:
    """Whether a difference seen once is real. A deterministic program repeats both runs: the same two
    observations again. A nondeterministic one runs each side `REPEATS` times, interleaved; bytes that
    vary among either side's runs (timestamps) are masked, and the difference is believed only when some observation
    comes up in a quarter of one side's runs and never on the other side."""
    if not random_helpers:
        again = (orig.run(packet, state, watch), mut.run(packet, state, watch))
        if again == first:
            return True
    # Interleaved, so both sides' clock readings span the same time; a byte that varies in either
    # side's runs (a timestamp) is masked on both.
    runs_o: list[Observation] = []
    runs_m: list[Observation] = []
    for _ in range(REPEATS):
        runs_o.append(orig.run(packet, state, watch))
        runs_m.append(mut.run(packet, state, watch))
    mask: dict[str, set[int]] = {}
    for runs in (runs_o, runs_m):
        for field_i, (name, data) in enumerate(runs[0]):
            for other in runs[1:]:
                od = other[field_i][1]
                if len(od) != len(data):
                    mask.setdefault(name, set()).add(-1)
                else:
                    mask.setdefault(name, set()).update(i for i, (x, y) in enumerate(zip(data, od, strict=True))
                                                        if x != y)
    count_o = Counter(_masked(o, mask) for o in runs_o)
    count_m = Counter(_masked(m, mask) for m in runs_m)
    for obs in set(count_o) | set(count_m):
        if (count_o[obs] >= REPEATS // 4 and count_m[obs] == 0) or (count_m[obs] >= REPEATS // 4 and count_o[obs] == 0):
            return True
    return False


@dataclass(frozen=True)
class Witness:
    """A packet and starting state on which the kernel runs the two objects differently."""

    packet: bytes
    state: str
    fields: tuple[str, ...]
    original: Observation
    mutant: Observation

    def describe(self) -> str:
        o, m = dict(self.original), dict(self.mutant)
        parts = [f"packet {self.packet[:64].hex()}{'…' if len(self.packet) > 64 else ''} ({len(self.packet)} B), "
                 f"state {self.state}"]
        for f in self.fields:
            parts.append(f"{f}: original {o[f][:48].hex()} / mutant {m[f][:48].hex()}")
        return "; ".join(parts)


class Subjects:
    """Per-subject work done once: the packets, the keys each packet touches, the starting states."""

    def __init__(self, subject: Subject, frames: Sequence[bytes]) -> None:
        self.subject = subject
        self.program = load_program(subject.elf, subject.function)
        self.random_helpers = nondeterministic(self.program)
        self.cases: list[tuple[bytes, State, dict[str, set[bytes]]]] = []
        for i, packet in enumerate(frames):
            keys = touched_keys(self.program, packet)
            for s in states(self.program, subject.elf, keys, seed=i):
                self.cases.append((packet, s, keys))


def kernel_difference(prepared: Subjects, orig: KernelRunner, mut: KernelRunner) -> Witness | None:
    """The first packet and state where the kernel runs original and mutant differently, if any."""
    random_helpers = prepared.random_helpers or nondeterministic(mut.program)
    with pinned(0):
        for packet, state, keys in prepared.cases:
            o = orig.run(packet, state, keys)
            m = mut.run(packet, state, keys)
            if o != m and _confirm(orig, mut, packet, state, keys, (o, m), random_helpers):
                return Witness(packet, state.label, tuple(differing_fields(o, m)), o, m)
    return None


_STREAMS = {5: "ktime", 7: "prandom"}
"""The nondeterministic helpers whose results a counterexample gives (`Counterexample.ktime`, `prandom`)."""


def with_helper_results(elf: bytes, function: str, cex: Counterexample) -> bytes | None:
    """`elf` with each call of bpf_ktime_get_ns and bpf_get_prandom_u32 replaced by a move of the
    counterexample's result into r0 (one slot, as the call: the layout and relocations stay), so the
    kernel runs the program on the helper results the prover chose; calls the counterexample's path
    never makes stay. None where that cannot be done: a helper called from more than one place, or
    more than once, or a result no 32-bit immediate gives."""
    bpf = BpfElf.from_bytes(elf)
    section = bpf.program(function).section
    insns = list(bpf.program(section).instructions)
    for helper, stream in _STREAMS.items():
        values: list[int] = getattr(cex, stream)
        sites = [i for i, insn in enumerate(insns) if insn.kind == Kind.CALL and insn.is_helper_call
                 and insn.imm == helper]
        if not values or not sites:  # no call on the counterexample's path, or none in this program
            continue
        if len(sites) != 1 or len(values) != 1:
            return None
        value = values[0]
        if value < 2**31 or value >= 2**64 - 2**31:  # mov64 sign-extends its immediate
            insns[sites[0]] = Instruction(make(InsnClass.ALU64, AluOp.MOV, Source.K), 0, 0, 0,
                                          value if value < 2**31 else value - 2**64)
        elif value < 2**32:  # mov32 zero-extends
            insns[sites[0]] = Instruction(make(InsnClass.ALU, AluOp.MOV, Source.K), 0, 0, 0,
                                          value if value < 2**31 else value - 2**32)
        else:
            return None
    return patch_section(elf, section, insns)


def _replay_with_helper_results(prepared: Subjects, mutant_elf: bytes, cex: Counterexample, state: State,
                                keys: dict[str, set[bytes]]) -> str | None:
    """"confirmed" or "false": both objects run in the kernel on the counterexample's inputs, helper
    results included (`with_helper_results`); None when they cannot be given."""
    function = prepared.subject.function
    elves = [with_helper_results(e, function, cex) for e in (prepared.subject.elf, mutant_elf)]
    if elves[0] is None or elves[1] is None:
        return None
    runners: list[KernelRunner] = []
    try:
        for e in elves:
            runners.append(KernelRunner(e, function))
        with pinned(cex.cpu):
            differ = runners[0].run(cex.packet, state, keys) != runners[1].run(cex.packet, state, keys)
    except (LoadError, OSError) as exc:
        raise AssertionError(f"the kernel refused a program with its helper results as constants: {exc}") from exc
    finally:
        for r in runners:
            r.close()
    return "confirmed" if differ else "false"


def replay_counterexample(prepared: Subjects, orig: KernelRunner, mut: KernelRunner,
                          cex: Counterexample, mutant_elf: bytes | None = None) -> str:
    """Run the counterexample's packet and state in the kernel: "confirmed" (the kernel differs too),
    "short frame" (under 14 bytes: no XDP frame is that short), "unconfirmed" (the kernel agrees, but
    the program reads inputs the kernel cannot be made to give) or "false". Clock and random results are
    given as constants in place of the calls where that can be done (`with_helper_results`)."""
    if len(cex.packet) < ETH_HLEN:
        return "short frame"
    keys = {n: set(entries) for n, entries in cex.maps.items()}
    sections = dict(_elf_sections(prepared.subject.elf, prepared.program))
    sections.update({n: d for n, d in cex.sections.items() if n in sections and len(d) == len(sections[n])})
    maps = {n: dict(entries) for n, entries in cex.maps.items() if n in orig.maps}
    state = State("counterexample", maps, sections)
    with pinned(cex.cpu):
        o = orig.run(cex.packet, state, keys)
        m = mut.run(cex.packet, state, keys)
        if o != m and _confirm(orig, mut, cex.packet, state, keys, (o, m),
                               prepared.random_helpers or nondeterministic(mut.program)):
            return "confirmed"
    # A CPU this machine does not have (the counterexample may pick any) cannot be replayed either.
    foreign_cpu = cex.cpu not in os.sched_getaffinity(0) and any(
        _calls(p, _SMP_PROCESSOR_ID) for p in (prepared.program, mut.program))
    # Never-written stack holds whatever the kernel left there: a counterexample that reads it (the
    # prover models it as an input) cannot be replayed either.
    reads_unwritten_stack = bool(getattr(cex, "stacks", None))
    other_inputs = reads_ctx_fields(prepared.program) or reads_ctx_fields(mut.program) or foreign_cpu \
        or reads_unwritten_stack
    helpers = prepared.random_helpers or nondeterministic(mut.program)
    if helpers and not other_inputs and mutant_elf is not None:
        verdict = _replay_with_helper_results(prepared, mutant_elf, cex, state, keys)
        if verdict is not None:
            return verdict
    return "unconfirmed" if helpers or other_inputs else "false"


# --------------------------------------------------------------------------- #
# Judging one mutant
# --------------------------------------------------------------------------- #

CAUGHT = "caught"
MISSED = "missed (unknown)"
FALSE_PROVEN = "FALSE PROVEN"
FALSE_CEX = "false counterexample"
UNCONFIRMED = "unconfirmed counterexample"
AGREE_PROVEN = "proven (kernel agrees)"
AGREE_UNKNOWN = "unknown (kernel agrees)"
CRASH = "prover crashed"
REFUSED = "kernel refused"


@dataclass(frozen=True)
class Judgement:
    """One mutant: what the kernel saw, what the prover said, and what that makes the verdict."""

    name: str
    kind: str
    description: str
    outcome: str
    kernel: str  # "refused", "different", "same"
    proof: str = ""
    reason: str = ""
    witness: str = ""
    cex_check: str = ""
    seconds: float = 0.0


def judge(prepared: Subjects, mutant: MutantObject, original: KernelRunner) -> Judgement:
    """Load `mutant` (refused: set aside), compare it with `original` in the kernel, prove, classify."""
    try:
        mut = KernelRunner(mutant.elf, prepared.subject.function)
    except (LoadError, OSError, KeyError, ValueError) as exc:
        return Judgement(mutant.name, mutant.kind, mutant.description, outcome=REFUSED,
                         kernel="refused", reason=str(exc).splitlines()[0][:200])
    try:
        witness = kernel_difference(prepared, original, mut)
        try:
            result = prove(prepared.subject.elf, mutant.elf, prepared.subject.function)
        except Exception as exc:  # a crash is a finding, reported as one
            result = ProofResult("unknown", reason=f"{CRASH}: {type(exc).__name__}: {exc}")
        cex_check = ""
        if result.status == "counterexample" and result.counterexample is not None:
            cex_check = replay_counterexample(prepared, original, mut, result.counterexample, mutant.elf)
    finally:
        mut.close()
    kernel = "different" if witness is not None else "same"
    if cex_check == "confirmed":
        kernel = "different"  # the counterexample's own state showed what our packets did not
    if kernel == "different":
        outcome = {"proven": FALSE_PROVEN, "counterexample": CAUGHT}.get(result.status, MISSED)
    elif result.status == "proven":
        outcome = AGREE_PROVEN
    elif result.status == "counterexample":
        outcome = UNCONFIRMED if cex_check == "unconfirmed" else FALSE_CEX
    else:
        outcome = AGREE_UNKNOWN
    if result.reason.startswith(CRASH):
        outcome = CRASH
    return Judgement(mutant.name, mutant.kind, mutant.description, outcome=outcome,
                     kernel=kernel, proof=result.status, reason=result.reason[:300],
                     witness=witness.describe() if witness is not None else "", cex_check=cex_check,
                     seconds=result.seconds)


def judge_all(subject: Subject, chosen: Sequence[MutantObject], frames: Sequence[bytes]) -> list[Judgement]:
    """Judge each of `chosen` (mutants of `subject`) against the loaded original."""
    prepared = Subjects(subject, frames)
    original = KernelRunner(subject.elf, subject.function)
    try:
        return [judge(prepared, m, original) for m in chosen]
    finally:
        original.close()


OUTCOMES = (CAUGHT, MISSED, FALSE_PROVEN, FALSE_CEX, UNCONFIRMED, AGREE_PROVEN, AGREE_UNKNOWN, CRASH, REFUSED)


def table(judgements: Sequence[Judgement]) -> dict[str, int]:
    """The summary: mutants, kernel-refused, kernel-different, caught, missed, false proofs and
    counterexamples."""
    c = Counter(j.outcome for j in judgements)
    return {
        "mutants": len(judgements),
        "kernel_refused": c[REFUSED],
        "kernel_different": sum(j.kernel == "different" for j in judgements),
        "kernel_same": sum(j.kernel == "same" for j in judgements),
        "caught": c[CAUGHT],
        "missed_unknown": c[MISSED],
        "false_proven": c[FALSE_PROVEN],
        "false_counterexamples": c[FALSE_CEX],
        "unconfirmed_counterexamples": c[UNCONFIRMED],
        "proven_kernel_agrees": c[AGREE_PROVEN],
        "unknown_kernel_agrees": c[AGREE_UNKNOWN],
        "prover_crashed": c[CRASH],
        "caught_with_short_frame": sum(j.outcome == CAUGHT and j.cex_check == "short frame" for j in judgements),
    }
