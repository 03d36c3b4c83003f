"""BPF object files (FILE.o, clang's or ours) in `disasm`, `maps` and `run`: the object loaded into the kernel
through libbpf, as any loader would, and its maps and global variables shown as table rows.

An object carries no Python types, so keys and values are shown as numbers when they are 1, 2, 4 or 8
bytes (little-endian, as the kernel stores them) and as hex otherwise; global variables are found by
their symbols in `.bss`, `.data` and `.rodata`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pybpfdsl.bpf.abi import ARRAY_MAP_TYPES
from pybpfdsl.cli_commands.common import EXIT_FAILURE, EXIT_USAGE, CliError, ObjectFile
from pybpfdsl.cli_commands.kernel_query import KernelQueryError, read_map
from pybpfdsl.cli_commands.state_view import DEFAULT_ROW_LIMIT, StateEntry

if TYPE_CHECKING:
    from pybpfdsl.runtime.bpf_object import BpfObject

__all__ = ["loaded_object", "object_state", "raw_value", "xdp_program_of"]

_DATA_SECTIONS = (".bss", ".data", ".rodata")


def raw_value(raw: bytes) -> int | str:
    """A key or value without a type: a little-endian number if it has a number's size, else hex."""
    if len(raw) in (1, 2, 4, 8):
        return int.from_bytes(raw, "little")
    return raw.hex()


def xdp_program_of(obj: ObjectFile, section: str | None) -> ObjectFile:
    """The program `run` tests: the one --section names, else the object's first XDP program."""
    from dataclasses import replace

    from pybpfdsl.verify.analysis.api import is_xdp_section

    if section is None:
        first = next((p for p in obj.elf.programs.values() if is_xdp_section(p.section)), None)
        if first is None:
            have = ", ".join(obj.elf.programs)
            raise CliError(f"{obj.path}: no XDP program in the object (its program sections: {have}); "
                           "`run` tests XDP programs", EXIT_USAGE)
        return replace(obj, program=first)
    if not is_xdp_section(obj.program.section):
        raise CliError(f"{obj.path}: program {obj.program.name!r} is in section {obj.program.section!r}, not an "
                       "XDP program; `run` tests XDP programs (sections 'xdp', 'xdp/...', 'xdp.frags')",
                       EXIT_USAGE)
    return obj


def _object_name(obj: ObjectFile) -> str:
    # libbpf prefixes global-data map names with it (truncated): keep it short and plain.
    return re.sub(r"[^A-Za-z0-9_]", "_", obj.path.stem)[:15] or "obj"


@contextmanager
def loaded_object(obj: ObjectFile) -> Iterator[BpfObject]:
    """The object loaded into the kernel (maps created, every program verified), closed afterwards."""
    from pybpfdsl.runtime.bpf_object import BpfObject, LoadError

    try:
        loaded = BpfObject.load(obj.data, _object_name(obj), log_level=0)
    except LoadError as exc:
        why = str(exc)
        if not exc.verifier_log:  # libbpf refused before the kernel verifier: its own reasons
            why += "".join(f"\n{line.strip()}" for line in _libbpf_reasons(exc.log))
        raise CliError(f"{obj.path}: {why}", EXIT_FAILURE) from None
    try:
        yield loaded
    finally:
        loaded.close()


_REASON = re.compile(r"fail|missing|unrecogni|error|invalid|unsupported|not supported|cannot|can't", re.I)


def _libbpf_reasons(log: str, keep: int = 4) -> list[str]:
    """The last lines of libbpf's log that say why it gave up (its log is mostly progress notes)."""
    return [line for line in log.splitlines() if _REASON.search(line)][-keep:]


def _kind(type_name: str, key_size: int, value_size: int, max_entries: int, map_type: int) -> str:
    if map_type in ARRAY_MAP_TYPES:
        return f"{type_name}({value_size} B, {max_entries})"
    return f"{type_name}({key_size} B -> {value_size} B, {max_entries})"


def _variables(obj: ObjectFile) -> dict[str, tuple[str, int, int]]:
    """Global variables: name -> (section, offset, size)."""
    from pybpfdsl.bpf.elf import ElfError, variable_locations

    try:
        found = variable_locations(obj.data, _DATA_SECTIONS)
    except ElfError:
        return {}
    return {name: (loc.section, loc.offset, loc.size) for name, loc in found.items()}


def object_state(obj: ObjectFile, loaded: BpfObject, show_all: bool = False,
                 limit: int = DEFAULT_ROW_LIMIT) -> list[StateEntry]:
    """The object's global variables (by symbol), then its maps (by name, entries as stored)."""
    from pybpfdsl.runtime.kernel_map import KernelMap

    entries: list[StateEntry] = []
    variables = _variables(obj)
    data_maps: set[str] = set()
    for section in _DATA_SECTIONS:
        info = loaded.find_section_map(section)
        if info is None:
            continue
        data_maps.add(info.name)
        raw = KernelMap.from_info(info).lookup(bytes(4)) or b""
        mine = sorted((off, name, size) for name, (sec, off, size) in variables.items() if sec == section)
        if not mine:  # only static variables (no symbols): the section as one value
            entries.append(StateEntry(section, f"Global({len(raw)} B, {section})", [(None, raw.hex())]))
            continue
        for off, name, size in mine:
            value = raw_value(raw[off:off + size])
            entries.append(StateEntry(name, f"Global({size} B, {section})", [(None, value)]))
    for name, info in loaded.maps.items():
        if info.name in data_maps:
            continue
        try:
            contents = read_map(info.fd, name, limit + 1)
        except KernelQueryError as exc:
            raise CliError(str(exc)) from None
        entry = StateEntry(name, _kind(contents.type_name, info.key_size, info.value_size, info.max_entries,
                                       info.type))
        zero = bytes(info.value_size)
        for key, values in contents.entries:
            if info.type in ARRAY_MAP_TYPES and not show_all and all(v == zero for v in values):
                entry.hidden += 1
                continue
            if len(entry.rows) >= limit:
                entry.hidden += 1
                continue
            shown: object = [raw_value(v) for v in values] if contents.percpu else raw_value(values[0])
            entry.rows.append((raw_value(key), shown))
        if entry.hidden:
            entry.note = (f"{entry.hidden} zero elements not shown" if info.type in ARRAY_MAP_TYPES
                          and not show_all else f"{entry.hidden} more entries not shown")
        entries.append(entry)
    return entries
