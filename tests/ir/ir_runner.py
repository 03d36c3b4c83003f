"""Running IR text: fresh state objects made from a program's declarations, and a comparable view of state.

The golden tests run parsed IR text on its own: what it needs (maps, globals, ring buffers) comes from its
declarations, not from a Python module, so a `.ir` file alone is an executable specification.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.interpreter import Environment
from pybpfdsl.ir.types import StructType
from pybpfdsl.lang import fixed
from pybpfdsl.lang.lpm_trie import Ip4Prefix, Ip6Prefix, LpmTrie
from pybpfdsl.lang.percpu_hash import LruPerCpuHashMap, PerCpuHashMap
from pybpfdsl.lang.redirect import CpuMap, DevMap
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import Array, BpfMap, Global, HashMap, LruHashMap, MapKind, PerCpuArray, StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType

_HASHES: dict[MapKind, type[HashMap | LruHashMap]] = {
    MapKind.HASH: HashMap, MapKind.LRU_HASH: LruHashMap,
    MapKind.PERCPU_HASH: PerCpuHashMap, MapKind.LRU_PERCPU_HASH: LruPerCpuHashMap}
LPM_KEYS = (Ip4Prefix, Ip6Prefix)  # the language's key records: parse IR text with these classes
_ARRAYS: dict[MapKind, type[Array]] = {MapKind.ARRAY: Array, MapKind.PERCPU_ARRAY: PerCpuArray}
_REDIRECTS: dict[MapKind, type[DevMap | CpuMap]] = {MapKind.DEVMAP: DevMap, MapKind.CPUMAP: CpuMap}


def _declared(t: ScalarType | StructType) -> ScalarType | type[Struct]:
    return t.cls if isinstance(t, StructType) else t


def _map(decl: n.MapDecl) -> BpfMap:
    if decl.kind in _ARRAYS:
        return _ARRAYS[decl.kind](_declared(decl.value_type), decl.max_entries)
    if decl.kind in _REDIRECTS:
        return _REDIRECTS[decl.kind](decl.max_entries)
    if decl.kind is MapKind.LPM_TRIE:
        return LpmTrie(_declared(decl.key_type), _declared(decl.value_type), decl.max_entries)
    return _HASHES[decl.kind](_declared(decl.key_type), _declared(decl.value_type), decl.max_entries)


def _global(decl: n.GlobalDecl) -> Global:
    init = fixed.to_float(decl.init) if decl.type.is_fixed else decl.init
    return Global(decl.type, init)


def environment_for(program: n.Program) -> Environment:
    """New, empty state objects for everything `program` declares."""
    return Environment(
        maps={d.name: _map(d) for d in program.maps},
        globals={d.name: _global(d) for d in program.globals},
        ringbufs={d.name: RingBuf(d.record.cls, d.size) for d in program.ringbufs},
    )


def state_objects(env: Environment) -> dict[str, StateObject]:
    return {**env.maps, **env.globals, **env.ringbufs}


def _plain(value: object) -> object:
    """A raw value with struct classes replaced by their names (parsed IR makes its own classes)."""
    if isinstance(value, Struct):
        return (type(value).__name__, value.values())
    return value


def snapshot(objects: Mapping[str, StateObject]) -> dict[str, Any]:
    """What each state object holds, comparable across two sets of objects of the same shape."""
    out: dict[str, Any] = {}
    for name, obj in objects.items():
        if isinstance(obj, Global):
            out[name] = obj.raw_get()
        elif isinstance(obj, RingBuf):
            out[name] = [_plain(r) for r in obj.records]
        elif isinstance(obj, PerCpuArray):
            out[name] = {cpu: sorted((_plain(k), _plain(v)) for k, v in copy.items())
                         for cpu, copy in obj.save().items()}  # type: ignore[attr-defined]
        elif isinstance(obj, BpfMap):
            out[name] = sorted((_plain(k), _plain(obj.raw_lookup(k))) for k in obj.raw_keys())
    return out
