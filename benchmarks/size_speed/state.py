"""A program's state, read the same way from either object and either execution: every global variable
by name (its bytes) and every map by name (its entries, sorted). Names, not offsets, so the DSL's layout
and clang's may differ while the state still compares equal; types and sizes must match, which the
comparison checks too (a variable of another size differs)."""

from __future__ import annotations

from collections.abc import Mapping

from pybpfdsl.bpf.elf import DATA_SECTIONS, BpfElf
from pybpfdsl.bpf.memory import InterpMap
from pybpfdsl.runtime.bpf_object import BpfObject

State = dict[str, bytes | tuple[tuple[bytes, bytes], ...]]
"""Variable name -> its bytes; map name -> its (key, value) entries, sorted by key."""

_ZERO = (0).to_bytes(4, "little")


def variables(elf: bytes) -> dict[str, tuple[str, int, int]]:
    """Global variable -> (section, offset, size)."""
    return {name: (loc.section, loc.offset, loc.size)
            for name, loc in BpfElf.from_bytes(elf).variable_locations(DATA_SECTIONS).items()}


def map_names(elf: bytes) -> list[str]:
    return list(BpfElf.from_bytes(elf).maps)


# -- the bytecode interpreter's maps --


def interp_state(elf: bytes, maps: Mapping[str, InterpMap]) -> State:
    out: State = {}
    for name, (section, offset, size) in variables(elf).items():
        contents = maps[section].value(_ZERO) if section in maps else None
        if contents is not None:
            out[name] = contents[offset:offset + size]
    for name in map_names(elf):
        m = maps[name]
        out[name] = tuple(sorted((k, bytes(r.data)) for k, r in m.entries.items()))
    return out


def seed_interp(elf: bytes, maps: Mapping[str, InterpMap], globals_init: Mapping[str, int],
                map_init: tuple[tuple[str, bytes, bytes], ...]) -> None:
    where = variables(elf)
    for name, value in globals_init.items():
        section, offset, size = where[name]
        region = maps[section].entries[_ZERO]
        region.data[offset:offset + size] = value.to_bytes(size, "little", signed=value < 0)
    for map_name, key, entry in map_init:
        assert maps[map_name].update(key, entry) == 0


# -- a loaded kernel object --


def kernel_state(elf: bytes, obj: BpfObject) -> State:
    out: State = {}
    sections: dict[str, bytes] = {}
    for name, (section, offset, size) in variables(elf).items():
        if section not in sections:
            contents = obj.kernel_map(section).lookup(_ZERO)
            sections[section] = contents or b""
        out[name] = sections[section][offset:offset + size]
    for name in map_names(elf):
        m = obj.kernel_map(name)
        entries = []
        for key in list(m.keys()):
            value = m.lookup(key)
            if value is not None:
                entries.append((key, value))
        out[name] = tuple(sorted(entries))
    return out


def seed_kernel(elf: bytes, obj: BpfObject, globals_init: Mapping[str, int],
                map_init: tuple[tuple[str, bytes, bytes], ...]) -> None:
    where = variables(elf)
    for name, value in globals_init.items():
        section, offset, size = where[name]
        m = obj.kernel_map(section)
        contents = bytearray(m.lookup(_ZERO) or b"")
        contents[offset:offset + size] = value.to_bytes(size, "little", signed=value < 0)
        m.update(_ZERO, bytes(contents))
    for map_name, key, entry in map_init:
        obj.kernel_map(map_name).update(key, entry)


def differences(ours: State, theirs: State, skip: tuple[str, ...] = ()) -> list[str]:
    """What differs, one line per name (missing names included); `skip` names are not compared."""
    lines = []
    for name in sorted(set(ours) | set(theirs)):
        if name in skip:
            continue
        a, b = ours.get(name), theirs.get(name)
        if a != b:
            lines.append(f"{name}: ours {a!r} != C {b!r}")
    return lines
