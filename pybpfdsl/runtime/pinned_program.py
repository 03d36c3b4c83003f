"""A program another process pinned (`attach(..., pin=PATH)`): its maps, opened by id, and state objects
bound to them, so that this process reads and writes the running program's state with the DSL's types.

The pin may be the link `attach` pinned, the program itself, or a map of it. The program's maps are the
ones the kernel lists for it (`bpf_prog_info.map_ids`), named as libbpf named them (at most 15
characters; a global-data section as `<object prefix>.bss`). State objects are paired with maps by name
and checked by kind and sizes; a Global is a `GlobalBacking` into its section at the offset the
program's object gives.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self

from pybpfdsl.bpf.elf import variable_locations
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import BpfMap, Global, StateObject
from pybpfdsl.runtime import links
from pybpfdsl.runtime.bpf_object import _map_matches_section
from pybpfdsl.runtime.errors import StateBindingError
from pybpfdsl.runtime.kernel_map import KernelMap
from pybpfdsl.runtime.libbpf import BpfProgInfo, _find_library, get_libbpf
from pybpfdsl.runtime.state_binding import GlobalBacking, MapBacking

__all__ = ["PinnedProgram", "PinnedState", "find_pinned_programs", "open_pinned_program", "pin_kind",
           "program_source"]

_ENOENT: Final = 2
_GLOBAL_SECTIONS: Final = (".bss", ".data")
_NAME_LEN: Final = 15  # the kernel keeps 15 characters of a program's or map's name


class _MapInfo(ctypes.Structure):
    """The head of `struct bpf_map_info` (linux/bpf.h): what naming and sizing a map needs."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
    ]


@functools.cache
def _map_get_fd_by_id() -> ctypes._NamedFuncPointer:
    get_libbpf()  # LibbpfMissing, said plainly, first
    fn = _find_library().bpf_map_get_fd_by_id
    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_uint32]
    return fn


def _fdinfo(fd: int) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def pin_kind(path: str) -> str | None:
    """What is pinned at `path`: "map", "link", "program", another kind's name, or None when nothing
    can be opened there."""
    try:
        fd = links.obj_get(path)
    except OSError:
        return None
    try:
        info = _fdinfo(fd)
    finally:
        os.close(fd)
    return next((kind for kind in ("map", "link", "prog") if f"{kind}_type" in info), "object").replace(
        "prog", "program")


def _program_fd(path: str) -> int:
    """A program fd for the pin at `path`: the program, a link's program, or (a map) the one program
    that uses it among those pinned links point at."""
    try:
        fd = links.obj_get(path)
    except OSError as exc:
        why = "nothing is pinned there" if exc.errno == _ENOENT else os.strerror(exc.errno or 0)
        raise StateBindingError(f"cannot open the pin {path}: {why}") from None
    info = _fdinfo(fd)
    if "prog_type" in info:
        return fd
    try:
        if "link_type" in info:
            return links.prog_get_fd_by_id(links.link_info(fd).prog_id)
    finally:
        os.close(fd)
    raise StateBindingError(f"{path} is a pinned {'map' if 'map_type' in info else 'object'}, not a program or "
                            "the link `attach(pin=...)` made; give the link's pin path")


def _map_ids(prog_fd: int) -> list[int]:
    lib = get_libbpf()
    info = BpfProgInfo()
    lib.obj_get_info_by_fd(prog_fd, info)
    count = int(info.nr_map_ids)
    ids = (ctypes.c_uint32 * max(count, 1))()
    info = BpfProgInfo()
    info.nr_map_ids = count
    info.map_ids = ctypes.addressof(ids)
    lib.obj_get_info_by_fd(prog_fd, info)
    return [int(ids[i]) for i in range(min(count, int(info.nr_map_ids)))]


@dataclass
class PinnedProgram:
    """A pinned program's id and name and its maps by libbpf's name, each fd owned here (`close`)."""

    path: str
    prog_id: int
    name: str
    maps: dict[str, KernelMap] = field(default_factory=dict)

    def close(self) -> None:
        maps, self.maps = self.maps, {}
        for m in maps.values():
            os.close(m.fd)

    def section_map(self, section: str) -> KernelMap | None:
        return next((m for name, m in self.maps.items() if _map_matches_section(name, section)), None)


def open_pinned_program(path: str) -> PinnedProgram:
    """Open the program pinned at `path` (or whose link is) and every map it uses."""
    prog_fd = _program_fd(path)
    try:
        prog = links.prog_info(prog_fd)
        ids = _map_ids(prog_fd)
    finally:
        os.close(prog_fd)
    out = PinnedProgram(path, prog.id, prog.name)
    try:
        for map_id in ids:
            fd = int(_map_get_fd_by_id()(map_id))
            if fd < 0:
                raise StateBindingError(f"cannot open map {map_id} of program {prog.name!r}: {os.strerror(-fd)}")
            info = _MapInfo()
            get_libbpf().obj_get_info_by_fd(fd, info)
            name = info.name.decode(errors="replace")
            out.maps[name] = KernelMap(fd, int(info.key_size), int(info.value_size), int(info.type), name=name)
    except BaseException:
        out.close()
        raise
    return out


@functools.cache
def _btf_functions() -> tuple[ctypes._NamedFuncPointer, ctypes._NamedFuncPointer, ctypes._NamedFuncPointer]:
    get_libbpf()
    lib = _find_library()
    load, raw, free = lib.btf__load_from_kernel_by_id, lib.btf__raw_data, lib.btf__free
    load.restype, load.argtypes = ctypes.c_void_p, [ctypes.c_uint32]
    raw.restype, raw.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32)]
    free.restype, free.argtypes = None, [ctypes.c_void_p]
    return load, raw, free


def _btf_strings(btf_id: int) -> list[str]:
    """The string section of the kernel's BTF object `btf_id` (names of types, functions, files)."""
    load, raw, free = _btf_functions()
    btf = load(btf_id)
    if not btf:
        return []
    try:
        size = ctypes.c_uint32(0)
        data = ctypes.string_at(raw(btf, ctypes.byref(size)), size.value)
    finally:
        free(btf)
    hdr_len, _, _, str_off, str_len = (int.from_bytes(data[i:i + 4], "little") for i in range(4, 24, 4))
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    return [t.decode(errors="replace") for t in strings.split(b"\0") if t]


def program_source(path: str) -> tuple[str, str] | None:
    """(source file, function name) of the program pinned at `path` (or whose link is), from the line
    information its BTF carries, when the program came from a Python file that still exists."""
    prog_fd = _program_fd(path)
    try:
        info = BpfProgInfo()
        get_libbpf().obj_get_info_by_fd(prog_fd, info)
        name = bytes(info.name).split(b"\0", 1)[0].decode(errors="replace")
        btf_id = int(info.btf_id)
    finally:
        os.close(prog_fd)
    if not btf_id:
        return None
    strings = _btf_strings(btf_id)
    files = [t for t in strings if t.endswith(".py") and os.path.isfile(t)]
    functions = [t for t in strings if t.isidentifier() and t[:_NAME_LEN] == name]
    if len(set(files)) != 1 or not functions:
        return None
    return files[0], name if name in functions else functions[0]


def find_pinned_programs(name: str, roots: list[str] | None = None) -> list[str]:
    """The pins of links and programs (on the mounted bpffs, or under `roots`) whose program is named
    `name` (as the kernel keeps names: 15 characters)."""
    found: list[str] = []
    for root in roots if roots is not None else links.bpffs_mounts():
        for directory, _, files in os.walk(root):
            for f in files:
                path = os.path.join(directory, f)
                try:
                    fd = links.obj_get(path)
                except OSError:
                    continue
                try:
                    info = _fdinfo(fd)
                    if "prog_type" in info:
                        prog: links.ProgInfo | None = links.prog_info(fd)
                    elif "link_type" in info:
                        prog = links.prog_info_by_id(links.link_info(fd).prog_id)
                    else:
                        continue
                    if prog is not None and prog.name == name[:_NAME_LEN]:
                        found.append(path)
                except OSError:
                    continue
                finally:
                    os.close(fd)
    return sorted(found)


class PinnedState(Mapping[str, StateObject]):
    """State objects bound to a pinned program's maps: `state["acl"]["10.0.0.0/8"] = 1`, `state.limit.value`.

    The objects are copies of the program's declarations (the module's own stay as they were). A
    context manager; `close` unbinds them and closes the map fds."""

    def __init__(self, program: PinnedProgram, objects: dict[str, StateObject]) -> None:
        self.program = program
        self._objects = objects

    @classmethod
    def bind(cls, program: PinnedProgram, state: Mapping[str, StateObject], elf: bytes) -> PinnedState:
        """Bind copies of `state` (the program's declarations; `elf` its object, for the Globals' places)."""
        locations = variable_locations(elf, _GLOBAL_SECTIONS)
        objects: dict[str, StateObject] = {}
        for name, decl in sorted(state.items()):
            if isinstance(decl, RingBuf):
                continue  # records go to one reader: the process that loaded the program
            obj = copy.copy(decl)
            obj.unbind()
            if isinstance(obj, BpfMap):
                kmap = program.maps.get(name[:_NAME_LEN])
                if kmap is None:
                    raise StateBindingError(f"the pinned program {program.name!r} has no map {name!r} "
                                            f"(it has {', '.join(sorted(program.maps)) or 'none'})")
                if kmap.map_type != obj.kind.value:
                    raise StateBindingError(f"map {name!r} has kernel type {kmap.map_type}, but the program "
                                            f"declares a {obj.kind_name}")
                try:
                    obj.bind(MapBacking(kmap, obj.key_type, obj.value_type))
                except ValueError as exc:
                    raise StateBindingError(str(exc)) from None
            elif isinstance(obj, Global):
                loc = locations.get(name)
                section = program.section_map(loc.section) if loc is not None else None
                if loc is None or section is None:
                    continue  # compiled away: the program never reads it
                obj.bind(GlobalBacking(section, loc.offset, obj.type))
            objects[name] = obj
        return cls(program, objects)

    def __getitem__(self, name: str) -> StateObject:
        return self._objects[name]

    def __getattr__(self, name: str) -> StateObject:
        try:
            return self.__dict__["_objects"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._objects)

    def __len__(self) -> int:
        return len(self._objects)

    def close(self) -> None:
        for obj in self._objects.values():
            obj.unbind()
        self.program.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PinnedState {self.program.name!r} (id {self.program.prog_id}): {', '.join(self._objects)}>"
