"""`PerCpuHashMap` and `LruPerCpuHashMap`: hash maps with one value per CPU under each key, as
`PerCpuArray` is to `Array` (the kernel's BPF_MAP_TYPE_PERCPU_HASH and LRU_PERCPU_HASH).

A key is present on every CPU or on none. A program sees and changes its own CPU's copy; a key a
program inserts starts at zero on the other CPUs, as in the kernel. From Python, `m[k]` is the sum over
CPUs (a Struct value: the list of copies, as `PerCpuArray` gives), `m.per_cpu(k)` the list, and
`m[k] = v` stores `v` on CPU 0 and zero elsewhere, so that `m[k] == v` afterwards.

Pure-Python executions touch the copy of `current_cpu` (`pybpfdsl.testing.on_cpu` sets it, as for a
`PerCpuArray`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Protocol

from pybpfdsl.lang.state import BpfMap, HashMap, LruHashMap, MapKind, RawValue, ValueType, _to_raw, _to_user, zero_value
from pybpfdsl.lang.types import ScalarType

__all__ = ["LruPerCpuHashMap", "PerCpuHashMap", "PerCpuHashBacking"]


class PerCpuHashBacking(Protocol):
    """What a kernel backing of a per-CPU map adds (`runtime.state_binding.MapBacking`)."""

    def lookup_percpu(self, key: RawValue) -> list[RawValue] | None: ...
    def update_percpu(self, key: RawValue, value: RawValue) -> bool: ...


class _PerCpuHash(BpfMap):
    """The per-CPU storage both maps share: key -> {cpu: value}, in insertion (LRU: recency) order."""

    evicts: ClassVar[bool] = False

    def __init__(self, key: ValueType | type[float] | type[bool], value: ValueType | type[float] | type[bool],
                 max_entries: int) -> None:
        super().__init__(key, value, max_entries)
        self.current_cpu = 0  # which CPU's copy pure-Python executions touch (pybpfdsl.testing sets it)
        self._copies: dict[RawValue, dict[int, RawValue]] = {}

    def save(self) -> object:
        return {k: dict(v) for k, v in self._copies.items()}

    def restore(self, saved: object) -> None:
        assert isinstance(saved, dict)
        self._copies = {k: dict(v) for k, v in saved.items()}

    def cpu_copies(self) -> dict[RawValue, dict[int, RawValue]]:
        """Python-side contents: each key's values by CPU (CPUs missing hold zero). A copy."""
        return {k: dict(v) for k, v in self._copies.items()}

    def replace_cpu_copies(self, copies: dict[RawValue, dict[int, RawValue]]) -> None:
        """Set the Python-side contents (the runtime, when it unbinds the map)."""
        self._copies = {k: dict(v) for k, v in copies.items()}

    def _percpu_backing(self) -> PerCpuHashBacking | None:
        backing = self._backing
        if backing is not None and hasattr(backing, "lookup_percpu"):
            return backing  # type: ignore[return-value]
        return None

    # Raw access, used by executions of the DSL: the current CPU's copy.
    def raw_lookup(self, key: RawValue) -> RawValue | None:
        if self._backing is not None:
            return self._backing.lookup(key)
        copies = self._copies.get(key)
        if copies is None:
            return None
        if self.evicts:
            self._copies[key] = self._copies.pop(key)  # most recently used goes last
        return copies.get(self.current_cpu, zero_value(self.value_type))

    def raw_update(self, key: RawValue, value: RawValue) -> bool:
        if self._backing is not None:
            return self._backing.update(key, value)
        copies = self._copies.get(key)
        if copies is None:
            if len(self._copies) >= self.max_entries:
                if not self.evicts:
                    return False
                self._copies.pop(next(iter(self._copies)))
            self._copies[key] = {self.current_cpu: value}  # the other CPUs' copies start at zero
            return True
        copies[self.current_cpu] = value
        if self.evicts:
            self._copies[key] = self._copies.pop(key)
        return True

    def raw_delete(self, key: RawValue) -> bool:
        if self._backing is not None:
            return self._backing.delete(key)
        return self._copies.pop(key, None) is not None

    def raw_keys(self) -> list[RawValue]:
        if self._backing is not None:
            return list(self._backing.keys())
        return list(self._copies)

    # The Python (control-plane) view: every CPU's copy.
    def per_cpu(self, key: object) -> list[object]:
        """The value under `key` on each CPU (Python-side: the CPUs that ran the program, or CPU 0);
        KeyError when absent."""
        raw_key = self._raw_key(key)
        backing = self._percpu_backing()
        if backing is not None:
            values = backing.lookup_percpu(raw_key)
            if values is None:
                raise KeyError(key)
            return [_to_user(v, self.value_type) for v in values]
        copies = self._copies.get(raw_key)
        if copies is None:
            raise KeyError(key)
        cpus = sorted({cpu for c in self._copies.values() for cpu in c} | {0})
        zero = zero_value(self.value_type)
        return [_to_user(copies.get(cpu, zero), self.value_type) for cpu in cpus]

    def _total(self, values: list[object]) -> object:
        if isinstance(self.value_type, ScalarType):
            return sum(v for v in values if isinstance(v, int | float))
        return values

    def __getitem__(self, key: object) -> object:
        return self._total(self.per_cpu(key))

    def get(self, key: object, default: object = None) -> object:
        try:
            return self[key]
        except KeyError:
            return default

    def items(self) -> Iterator[tuple[object, object]]:
        for k in self.raw_keys():
            try:
                yield k, self[k]
            except KeyError:  # deleted meanwhile
                continue

    def __setitem__(self, key: object, value: object) -> None:
        raw_key, raw = self._raw_key(key), _to_raw(value, self.value_type)
        backing = self._percpu_backing()
        if backing is not None:
            if not backing.update_percpu(raw_key, raw):
                raise KeyError(f"cannot store key {key!r} in {self.name or 'map'}: full")
            return
        if raw_key not in self._copies and len(self._copies) >= self.max_entries:
            if not self.evicts:
                raise KeyError(f"cannot store key {key!r} in {self.name or 'map'}: full")
            self._copies.pop(next(iter(self._copies)))
        self._copies.pop(raw_key, None)
        self._copies[raw_key] = {0: raw}


class PerCpuHashMap(_PerCpuHash, HashMap):
    """A hash table with one value per CPU under each key: `PerCpuHashMap(u32, u64, max_entries=1024)`."""

    kind = MapKind.PERCPU_HASH
    kind_name = "PerCpuHashMap"


class LruPerCpuHashMap(_PerCpuHash, LruHashMap):
    """A per-CPU hash table that evicts the least recently used key when full (approximately, in the
    kernel, as `LruHashMap`)."""

    kind = MapKind.LRU_PERCPU_HASH
    kind_name = "LruPerCpuHashMap"
    evicts = True
