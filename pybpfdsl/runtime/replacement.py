"""Which state a replacement program takes over from the running one.

A map (or ring buffer) of the same name and type is reused, contents and all; a Global keeps its
value when the replacement's `.bss`/`.data` section puts its variables at the same places as the running
program's (the whole section is reused), and is copied from the running program's current value
otherwise. A declaration of the same name with a different type refuses the replacement
(`IncompatibleReplacement`) before anything is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pybpfdsl.bpf.elf import variable_locations
from pybpfdsl.ir.nodes import GlobalDecl, MapDecl, Program, RingBufDecl
from pybpfdsl.runtime.attach_errors import IncompatibleReplacement
from pybpfdsl.runtime.loaded import LoadedProgram
from pybpfdsl.runtime.state_binding import GlobalBacking

__all__ = ["ReplacementPlan", "plan_replacement"]

_SECTIONS: Final = (".bss", ".data")

_Decl = MapDecl | GlobalDecl | RingBufDecl


@dataclass(frozen=True)
class ReplacementPlan:
    """`reuse`: the running program's maps the replacement loads with (map or section name → fd);
    `keep`: the declarations whose kernel contents stay (their Python-side values are not pushed)."""

    reuse: dict[str, int]
    keep: frozenset[str]


def _describe(decl: _Decl) -> str:
    if isinstance(decl, MapDecl):
        return f"a {decl.kind.name} map {decl.key_type} → {decl.value_type} with {decl.max_entries} entries"
    if isinstance(decl, GlobalDecl):
        return f"a Global of type {decl.type}"
    return f"a RingBuf of {decl.record} records ({decl.size} bytes)"


def _same(a: _Decl, b: _Decl) -> bool:
    if isinstance(a, MapDecl) and isinstance(b, MapDecl):
        return (a.kind, a.key_type, a.value_type, a.max_entries) == (b.kind, b.key_type, b.value_type,
                                                                     b.max_entries)
    if isinstance(a, GlobalDecl) and isinstance(b, GlobalDecl):
        return a.type == b.type
    if isinstance(a, RingBufDecl) and isinstance(b, RingBufDecl):
        return (a.record, a.size) == (b.record, b.size)
    return False


def _decls(program: Program) -> dict[str, _Decl]:
    decls: list[_Decl] = [*program.maps, *program.globals, *program.ringbufs]
    return {d.name: d for d in decls}


def _section_of(map_name: str) -> str | None:
    for section in _SECTIONS:
        if map_name == section or map_name.endswith(section):
            return section
    return None


def plan_replacement(loaded: LoadedProgram, new: Program, new_elf: bytes, ifname: str) -> ReplacementPlan:
    """What replacing `loaded` by `new` (compiled to `new_elf`) on `ifname` reuses; raises
    `IncompatibleReplacement` on a same-name type mismatch."""
    old_decls = _decls(loaded.program)
    kernel_maps = loaded.bpf_object.maps
    reuse: dict[str, int] = {}
    keep: set[str] = set()
    for name, decl in _decls(new).items():
        old = old_decls.get(name)
        if old is None:
            continue
        if not _same(old, decl):
            raise IncompatibleReplacement(new.name, ifname, name, _describe(old), _describe(decl))
        if not isinstance(decl, GlobalDecl):
            info = kernel_maps.get(name)
            if info is not None:
                reuse[name] = info.fd
                keep.add(name)
    # Global-data sections: reused (contents and all) when the variables sit at the same places.
    old_layout: dict[str, dict[str, tuple[int, int]]] = {}
    for obj, backing in loaded.bound_state():
        if isinstance(backing, GlobalBacking) and obj.name is not None:
            section = _section_of(backing.section_map.name)
            if section is not None:
                old_layout.setdefault(section, {})[obj.name] = (backing.offset, backing.type.size)
    new_layout: dict[str, dict[str, tuple[int, int]]] = {}
    for name, loc in variable_locations(new_elf, _SECTIONS).items():
        new_layout.setdefault(loc.section, {})[name] = (loc.offset, loc.size)
    for section, variables in new_layout.items():
        info = loaded.bpf_object.find_section_map(section)
        if info is not None and old_layout.get(section) == variables:
            reuse[section] = info.fd
            keep.update(variables)
    return ReplacementPlan(reuse, frozenset(keep))
