"""A compiled program loaded into the kernel, with its state objects bound to the kernel's maps.

`LoadedProgram.load` loads the object, copies the Python-side values of the program's state objects
into the kernel (so the kernel starts from the state the Python code prepared), and binds each state
object, after which `counter.value` or `table[k]` read and write the kernel. `close` copies the kernel's
values back into the state objects and unbinds them, so tests can inspect state after the program is
gone; the Python side then continues from where the kernel left off.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, SupportsBytes

from pybpfdsl.bpf.elf import VariableLocation, variable_locations
from pybpfdsl.ir.nodes import GlobalDecl, MapDecl, Program, RingBufDecl
from pybpfdsl.lang.percpu_hash import LruPerCpuHashMap, PerCpuHashMap
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import (
    Array,
    BpfMap,
    Global,
    MapKind,
    PerCpuArray,
    RawValue,
    StateObject,
    zero_value,
)
from pybpfdsl.lang.structs import Struct
from pybpfdsl.runtime.bpf_object import BpfObject, LoadError
from pybpfdsl.runtime.errors import KernelVerifierError, StateBindingError
from pybpfdsl.runtime.jit_info import jited_instruction_count, xlated_instruction_count
from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.runtime.state_binding import GlobalBacking, MapBacking, RingBufReader, sum_raw

__all__ = ["LoadedProgram", "RunResult"]

_log = logging.getLogger("pybpfdsl.runtime")

# Where the backend puts Globals: `.bss` when the initial value is 0, `.data` otherwise.
_GLOBAL_SECTIONS = (".bss", ".data")


@dataclass(frozen=True)
class RunResult:
    """One test run: the XDP action returned, the packet afterwards, and the kernel-measured average
    time per repetition in nanoseconds."""

    action: int
    packet: bytes
    duration_ns: int


class _Binding:
    """One state object and its kernel backing: copies values in and out, binds and unbinds."""

    def __init__(self, obj: StateObject, backing: MapBacking | GlobalBacking) -> None:
        self.obj = obj
        self.backing = backing

    def push(self) -> None:
        """Python-side values → kernel (the object must not be bound yet)."""
        obj, backing = self.obj, self.backing
        if isinstance(obj, Global):
            backing.update(0, obj.raw_get())
            return
        assert isinstance(obj, BpfMap) and isinstance(backing, MapBacking)
        if isinstance(obj, PerCpuArray):
            self._push_percpu(obj, backing)
            return
        if isinstance(obj, PerCpuHashMap | LruPerCpuHashMap):
            self._push_percpu_hash(obj, backing)
            return
        zero = zero_value(obj.value_type)
        for key in obj.raw_keys():
            value = obj.raw_lookup(key)
            # Kernel arrays start zeroed; writing only the rest saves a syscall per element.
            if value is None or (isinstance(obj, Array) and value == zero):
                continue
            if not backing.update(key, value):
                raise StateBindingError(f"cannot copy key {key!r} of {obj.name or 'map'} into the kernel")

    @staticmethod
    def _push_percpu(obj: PerCpuArray, backing: MapBacking) -> None:
        ncpus = backing.cpu_count()
        zero = zero_value(obj.value_type)
        per_key: dict[int, list[list[RawValue]]] = {}
        # The Python side may have simulated CPUs this machine does not have; their copies are added
        # to CPU (n mod ncpus) so that the sum over CPUs, what a counter means, is preserved.
        for cpu, copy in obj._cpu_data.items():
            for key, value in copy.items():
                assert isinstance(key, int)
                slots = per_key.setdefault(key, [[] for _ in range(ncpus)])
                slots[cpu % ncpus].append(value)
        for key, slots in per_key.items():
            values = [sum_raw(s, obj.value_type) if s else zero for s in slots]
            if not backing.store_percpu(key, values):
                raise StateBindingError(f"cannot copy element {key} of {obj.name or 'map'} into the kernel")

    @staticmethod
    def _push_percpu_hash(obj: PerCpuHashMap | LruPerCpuHashMap, backing: MapBacking) -> None:
        ncpus = backing.cpu_count()
        for key, copies in obj.cpu_copies().items():
            slots: list[list[RawValue]] = [[] for _ in range(ncpus)]
            for cpu, value in copies.items():  # simulated CPUs beyond this machine's add up, as for arrays
                slots[cpu % ncpus].append(value)
            if not backing.store_percpu(key, [sum_raw(s, obj.value_type) for s in slots]):
                raise StateBindingError(f"cannot copy key {key!r} of {obj.name or 'map'} into the kernel")

    def pull_and_unbind(self) -> None:
        """Kernel values → Python side, then unbind (the object is bound)."""
        obj, backing = self.obj, self.backing
        if isinstance(obj, Global):
            assert isinstance(backing, GlobalBacking)
            raw = backing.lookup(0)
            obj.unbind()
            obj.raw_set(raw)
            return
        assert isinstance(obj, BpfMap) and isinstance(backing, MapBacking)
        if isinstance(obj, PerCpuArray):
            ncpus = backing.cpu_count()
            pc_zero = zero_value(obj.value_type)
            copies: dict[int, dict[RawValue, RawValue]] = {cpu: {} for cpu in range(ncpus)}
            for index in range(obj.max_entries):
                per_cpu = backing.lookup_percpu(index) or []
                for cpu, cpu_value in enumerate(per_cpu):
                    if cpu_value != pc_zero:
                        copies[cpu][index] = cpu_value
            obj.unbind()
            # state.py has no public "replace all copies" operation; every CPU gets a copy (possibly
            # empty) so that per_cpu() lists as many values as it did while bound.
            obj._cpu_data.clear()
            obj._cpu_data.update(copies)
            return
        if isinstance(obj, PerCpuHashMap | LruPerCpuHashMap):
            pulled: dict[RawValue, dict[int, RawValue]] = {}
            for key in list(backing.keys()):
                values = backing.lookup_percpu(key)
                if values is not None:  # a program may delete keys between the walk and the lookup
                    pulled[key] = dict(enumerate(values))
            obj.unbind()
            obj.replace_cpu_copies(pulled)
            return
        entries: dict[RawValue, RawValue] = {}
        for key in list(backing.keys()):
            value = backing.lookup(key)
            if value is not None:  # a program may delete keys between the walk and the lookup
                entries[key] = value
        obj.unbind()
        if isinstance(obj, Array):
            # Array elements cannot be deleted through the public API; stale Python-side values must go.
            obj._data.clear()
            a_zero = zero_value(obj.value_type)
            entries = {k: v for k, v in entries.items() if v != a_zero}
        else:
            obj.clear()
        for key, stored in entries.items():
            obj.raw_update(key, stored)


def _as_bytes(packet: object) -> bytes:
    if isinstance(packet, bytes | bytearray | memoryview):
        return bytes(packet)
    if isinstance(packet, SupportsBytes):
        return bytes(packet)
    raise TypeError(f"cannot run on a {type(packet).__name__}: pass bytes or an object with __bytes__")


@dataclass
class PendingReplacement:
    """A program loaded by `LoadedProgram.load_replacement`, not yet installed; `discard` drops it."""

    obj: BpfObject
    program: Program
    prog_fd: int
    bindings: list[_Binding]
    state: dict[str, StateObject]

    def discard(self) -> None:
        """Unload the replacement (maps it shares with the running program are untouched)."""
        self.obj.close()


class LoadedProgram:
    """A program in the kernel plus the bindings of its state objects; use `load` to create one.

    Usable as a context manager; `close` (idempotent) copies kernel state back and unloads.
    """

    def __init__(self, obj: BpfObject, program: Program, prog_fd: int, bindings: list[_Binding]) -> None:
        """Internal: use `load`."""
        self._obj = obj
        self.program = program
        self._fd = prog_fd
        self._bindings = bindings
        self._jited: int | None = None
        self._jited_known = False
        self._ringbufs: list[RingBuf[Struct]] = []  # bound to kernel ring buffers by `load`
        # The CompiledProgram this was loaded from (set by XdpProgram.load): what attach's gates check.
        self.compiled: Any = None

    @classmethod
    def load(cls, elf: bytes, program: Program, state: Mapping[str, StateObject],
             source_lines: Mapping[int, str] | None = None) -> LoadedProgram:
        """Load `elf` (compiled from `program`) and bind the state objects `program` uses.

        `state` maps each `MapDecl`/`GlobalDecl` name to its state object (extra entries are ignored).
        The kernel starts from the objects' current Python-side values. Raises `KernelVerifierError`
        when the verifier rejects the program (`source_lines`, line number → text, improve its
        message), `LoadError` for other load failures, and `StateBindingError` when a state object is
        missing, of the wrong kind, does not match the object's map, or is already bound.
        """
        wanted = _check_state(program, state)
        wanted_ringbufs = _check_ringbufs(program, state)
        try:
            obj = BpfObject.load(elf, program.name)
        except LoadError as exc:
            if exc.verifier_log.strip():
                raise KernelVerifierError(program.name, log=exc.log, errno=exc.errno,
                                          source_lines=source_lines) from exc
            raise
        bound: list[_Binding] = []
        try:
            prog_fd = _program_fd(obj, program.name)
            bindings = _make_bindings(obj, elf, program, wanted)
            for b in bindings:
                b.push()
            for b in bindings:
                b.obj.bind(b.backing)
                bound.append(b)
            ringbufs = _bind_ringbufs(obj, wanted_ringbufs)
        except BaseException:
            for b in bound:
                b.obj.unbind()
            obj.close()
            raise
        loaded = cls(obj, program, prog_fd, bindings)
        loaded._ringbufs = ringbufs
        return loaded

    # Running

    def run(self, packet: object, repeat: int = 1) -> RunResult:
        """Run the program `repeat` times on `packet` (bytes, or anything with `__bytes__`) with
        BPF_PROG_TEST_RUN; state changes land in the kernel maps, visible through the state objects."""
        self._ensure_open()
        result = run_xdp(self._fd, _as_bytes(packet), repeat)
        return RunResult(result.action, result.packet, result.duration_ns)

    @property
    def fd(self) -> int:
        """The program's file descriptor (owned by this object)."""
        self._ensure_open()
        return self._fd

    @property
    def xlated_insns(self) -> int:
        """Instruction slots of the kernel's translated program (after verifier rewrites)."""
        self._ensure_open()
        return xlated_instruction_count(self._fd)

    @property
    def jited_insns(self) -> int | None:
        """Host machine instructions of the JIT image; None without JIT, without a readable image,
        without capstone, or on an architecture the disassembler is not configured for."""
        self._ensure_open()
        if not self._jited_known:
            try:
                self._jited = jited_instruction_count(self._fd)
            except (ModuleNotFoundError, NotImplementedError) as exc:
                _log.debug("no JIT instruction count: %s", exc)
                self._jited = None
            self._jited_known = True
        return self._jited

    @property
    def bpf_object(self) -> BpfObject:
        """The underlying libbpf object (for maps the state objects do not cover)."""
        self._ensure_open()
        return self._obj

    # Lifetime

    @property
    def closed(self) -> bool:
        """Whether `close` has run."""
        return self._obj.closed

    def _ensure_open(self) -> None:
        if self._obj.closed:
            raise ValueError(f"program {self.program.name!r} is closed")

    def close(self) -> None:
        """Copy kernel state back into the state objects, unbind them and unload (idempotent).

        Every object is unbound even if copying one fails; the first failure is raised afterwards.
        """
        if self._obj.closed:
            return
        first_error: BaseException | None = None
        for b in self._bindings:
            try:
                b.pull_and_unbind()
            except Exception as exc:
                b.obj.unbind()
                if first_error is None:
                    first_error = exc
        self._bindings = []
        for rb in self._ringbufs:  # records left in the kernel move to the Python side
            try:
                rb.unbind_ringbuf()
            except Exception as exc:  # unbound anyway, re-raised below
                if first_error is None:
                    first_error = exc
        self._ringbufs = []
        self._obj.close()
        if first_error is not None:
            raise first_error

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        # A forgotten close() would leave state objects bound to maps that vanish with the object.
        try:
            self.close()
        except Exception as exc:
            _log.debug("closing program %r in __del__ failed: %s", self.program.name, exc)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<LoadedProgram {self.program.name!r} {state}>"

    # Hot swap (used by `Attachment.replace`): load a replacement next to this program, reusing kernel
    # maps, then take it over in place, so this object and its state objects stay valid.

    def bound_state(self) -> list[tuple[StateObject, MapBacking | GlobalBacking]]:
        """The state objects bound to this program's maps, with their kernel backings."""
        self._ensure_open()
        return [(b.obj, b.backing) for b in self._bindings]

    def load_replacement(self, elf: bytes, program: Program, state: Mapping[str, StateObject], *,
                         reuse_maps: Mapping[str, int], keep: Collection[str],
                         source_lines: Mapping[int, str] | None = None) -> PendingReplacement:
        """Load `elf` (compiled from `program`) with the maps in `reuse_maps` (map or section name →
        fd of this program's map) reused, and prepare bindings without binding anything yet.

        Python-side values are copied into the new maps except for the declarations named in `keep`
        (their reused kernel maps already hold the state). State objects bound to this program may be
        used again; a Global read for copying gives its live kernel value. Raises like `load`; on any
        failure nothing has changed here. Finish with `install` or `PendingReplacement.discard`.
        """
        self._ensure_open()
        wanted = _check_state(program, state, rebinding={id(b.obj) for b in self._bindings})
        names = {id(obj): decl.name for decl, obj in wanted}
        try:
            obj = BpfObject.load(elf, program.name, reuse_maps=reuse_maps)
        except LoadError as exc:
            if exc.verifier_log.strip():
                raise KernelVerifierError(program.name, log=exc.log, errno=exc.errno,
                                          source_lines=source_lines) from exc
            raise
        try:
            prog_fd = _program_fd(obj, program.name)
            bindings = _make_bindings(obj, elf, program, wanted)
            for b in bindings:
                if names[id(b.obj)] not in keep:
                    b.push()
        except BaseException:
            obj.close()
            raise
        return PendingReplacement(obj, program, prog_fd, bindings, dict(state))

    def install(self, pending: PendingReplacement) -> None:
        """Make `pending` this object's program, once the caller has switched the interface to
        `pending.prog_fd`: its state objects are bound to the new maps (values already there), objects
        the new program does not use get the kernel's last values and are unbound, and the previous
        libbpf object is closed (maps shared with the new one live on)."""
        self._ensure_open()
        first_error: BaseException | None = None
        moving = {id(b.obj) for b in pending.bindings}
        for b in self._bindings:
            if id(b.obj) in moving:
                continue
            try:
                b.pull_and_unbind()
            except Exception as exc:  # keep going, re-raised below
                b.obj.unbind()
                first_error = first_error or exc
        for b in pending.bindings:
            b.obj.bind(b.backing)
        for rb in self._ringbufs:  # records already in the kernel move to the Python side
            try:
                rb.unbind_ringbuf()
            except Exception as exc:  # re-raised below
                first_error = first_error or exc
        ringbufs = _bind_ringbufs(pending.obj, _check_ringbufs(pending.program, pending.state))
        old = self._obj
        self._obj, self.program, self._fd = pending.obj, pending.program, pending.prog_fd
        self._bindings, self._ringbufs = pending.bindings, ringbufs
        self._jited, self._jited_known = None, False
        old.close()
        if first_error is not None:
            raise first_error


def _check_state(program: Program, state: Mapping[str, StateObject],
                 rebinding: Collection[int] = ()) -> list[tuple[MapDecl | GlobalDecl, StateObject]]:
    """Pair each declaration with its state object, checking kinds before anything is loaded.
    Objects whose id() is in `rebinding` may already be bound (a hot swap moves them)."""
    out: list[tuple[MapDecl | GlobalDecl, StateObject]] = []
    decls: list[MapDecl | GlobalDecl] = [*program.maps, *program.globals]
    for decl in decls:
        obj = state.get(decl.name)
        if obj is None:
            raise StateBindingError(f"program {program.name!r} uses {decl.name!r}, but no state object "
                                    "of that name was given")
        if isinstance(decl, MapDecl):
            if not isinstance(obj, BpfMap) or obj.kind is not decl.kind:
                raise StateBindingError(f"{decl.name!r} is a {decl.kind.name} map in the program but the "
                                        f"state object is {obj!r}")
        elif not isinstance(obj, Global) or obj.type != decl.type:
            raise StateBindingError(f"{decl.name!r} is a Global of type {decl.type} in the program but "
                                    f"the state object is {obj!r}")
        if obj.bound and id(obj) not in rebinding:
            raise StateBindingError(f"{decl.name!r} is already bound to a loaded program; close that "
                                    "program first")
        out.append((decl, obj))
    return out


def _program_fd(obj: BpfObject, name: str) -> int:
    programs = obj.programs
    if name in programs:
        return programs[name]
    if len(programs) == 1:  # the backend may have sanitised the function name
        return next(iter(programs.values()))
    return obj.program_fd(name)  # raises KeyError naming the programs there are


def _make_bindings(obj: BpfObject, elf: bytes, program: Program,
                   wanted: list[tuple[MapDecl | GlobalDecl, StateObject]]) -> list[_Binding]:
    locations: dict[str, VariableLocation] | None = None
    bindings: list[_Binding] = []
    for decl, state_obj in wanted:
        if isinstance(decl, MapDecl):
            assert isinstance(state_obj, BpfMap)
            try:
                kmap = obj.kernel_map(decl.name)
            except KeyError:
                raise StateBindingError(f"the compiled object has no map {decl.name!r}") from None
            if kmap.map_type != decl.kind.value:
                raise StateBindingError(f"map {decl.name!r} has kernel type {kmap.map_type}, expected "
                                        f"{decl.kind.value} ({decl.kind.name})")
            try:
                backing: MapBacking | GlobalBacking = MapBacking(kmap, state_obj.key_type, state_obj.value_type)
            except ValueError as exc:
                raise StateBindingError(str(exc)) from None
        else:
            assert isinstance(state_obj, Global)
            if locations is None:
                locations = variable_locations(elf, _GLOBAL_SECTIONS)
            loc = locations.get(decl.name)
            if loc is None:
                # LLVM drops globals the code never touches; the kernel cannot see them, so the
                # Python-side value simply stays where it is.
                _log.debug("global %r is not in the object; left unbound", decl.name)
                continue
            if loc.size not in (0, decl.type.size):
                raise StateBindingError(f"global {decl.name!r} is {loc.size} bytes in the object, expected "
                                        f"{decl.type.size} ({decl.type})")
            try:
                section = obj.kernel_map(loc.section)
            except KeyError:
                raise StateBindingError(f"the object has no map for section {loc.section}") from None
            try:
                backing = GlobalBacking(section, loc.offset, decl.type)
            except ValueError as exc:
                raise StateBindingError(str(exc)) from None
        bindings.append(_Binding(state_obj, backing))
    return bindings


def _check_ringbufs(program: Program, state: Mapping[str, StateObject]) -> list[tuple[RingBufDecl, RingBuf[Struct]]]:
    """Pair each ring-buffer declaration with its RingBuf, checking it before anything is loaded."""
    out: list[tuple[RingBufDecl, RingBuf[Struct]]] = []
    for decl in program.ringbufs:
        obj = state.get(decl.name)
        if not isinstance(obj, RingBuf) or obj.record is not decl.record.cls or obj.size != decl.size:
            raise StateBindingError(f"{decl.name!r} is a RingBuf of {decl.record.cls.__name__} records "
                                    f"({decl.size} bytes) in the program but the state object is {obj!r}")
        if obj.bound:
            raise StateBindingError(f"{decl.name!r} is already bound to a loaded program; close that "
                                    "program first")
        out.append((decl, obj))
    return out


def _bind_ringbufs(obj: BpfObject, wanted: list[tuple[RingBufDecl, RingBuf[Struct]]]) -> list[RingBuf[Struct]]:
    """Attach a libbpf ring-buffer reader to each RingBuf (all or none)."""
    bound: list[RingBuf[Struct]] = []
    try:
        for decl, rb in wanted:
            try:
                kmap = obj.kernel_map(decl.name)
            except KeyError:
                raise StateBindingError(f"the compiled object has no ring buffer {decl.name!r}") from None
            if kmap.map_type != MapKind.RINGBUF.value:
                raise StateBindingError(f"map {decl.name!r} has kernel type {kmap.map_type}, expected "
                                        f"{MapKind.RINGBUF.value} (RINGBUF)")
            rb.bind_ringbuf(RingBufReader(kmap.fd, rb.record, decl.name))
            bound.append(rb)
    except BaseException:
        for rb in bound:
            rb.unbind_ringbuf()
        raise
    return bound
