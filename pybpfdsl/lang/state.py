"""State objects declared at module level: `Global`, `HashMap`, `LruHashMap`, `Array`, `PerCpuArray` (and,
in their own modules, `RingBuf`, `LpmTrie` and the per-CPU hash maps).

Each object holds its values in Python until a program that uses it is loaded; then the runtime binds it
to the kernel map (`bind`), and every read and write from Python goes to the kernel, so control-plane
code and tests see live state. Closing the program unbinds it and copies the last kernel values back.

Two views of a value exist. The *user* view is what Python code reads and writes (`float` for float
state). The *raw* view is what programs compute with (float as its Q32.32 integer); executions of the
DSL use the `raw_*` methods.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Protocol, TypeAlias

from pybpfdsl.lang import fixed
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import FLOAT, ScalarType, as_scalar_type

ValueType: TypeAlias = "ScalarType | type[Struct]"
RawValue: TypeAlias = "int | Struct"


def shown(t: object) -> str:
    """A declared type as its user wrote it: a class by its own name (a CLI-loaded module's name is made up)."""
    return t.__name__ if isinstance(t, type) else repr(t)


class MapKind(enum.Enum):
    """Map kinds and the kernel's BPF_MAP_TYPE_* numbers (a copy: `lang` imports nothing; a test checks each
    against `pybpfdsl.bpf.abi.MapType`)."""

    HASH = 1
    ARRAY = 2
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    DEVMAP = 14
    CPUMAP = 16
    RINGBUF = 27


class KernelBacking(Protocol):
    """What the runtime provides while a program is loaded: the map's contents as raw values."""

    def lookup(self, key: RawValue) -> RawValue | None: ...
    def update(self, key: RawValue, value: RawValue) -> bool: ...
    def delete(self, key: RawValue) -> bool: ...
    def keys(self) -> Iterator[RawValue]: ...


def encode(value: RawValue, vtype: ValueType) -> bytes:
    """Host-order bytes of a raw value, as the kernel map stores it."""
    if isinstance(vtype, ScalarType):
        assert isinstance(value, int)
        return (value & ((1 << (8 * vtype.size)) - 1)).to_bytes(vtype.size, "little")
    assert isinstance(value, Struct)
    return value.to_bytes()


def decode(data: bytes, vtype: ValueType) -> RawValue:
    if isinstance(vtype, ScalarType):
        return vtype.wrap(int.from_bytes(data[:vtype.size], "little"))
    return vtype.from_bytes(data)


def type_size(vtype: ValueType) -> int:
    return vtype.size if isinstance(vtype, ScalarType) else vtype.size()


def zero_value(vtype: ValueType) -> RawValue:
    return 0 if isinstance(vtype, ScalarType) else vtype()


def _to_raw(value: object, vtype: ValueType) -> RawValue:
    if isinstance(vtype, ScalarType):
        if vtype is FLOAT:
            return fixed.from_float(float(value))  # type: ignore[arg-type]
        if isinstance(value, bool | int):
            return vtype(value)
        raise TypeError(f"expected an integer for {vtype}, got {value!r}")
    if not isinstance(value, vtype):
        raise TypeError(f"expected a {vtype.__name__}, got {value!r}")
    return value


def _scalar_raw(value: object, vtype: ScalarType) -> int:
    raw = _to_raw(value, vtype)
    assert isinstance(raw, int)
    return raw


def _to_user(raw: RawValue, vtype: ValueType) -> object:
    if vtype is FLOAT:
        assert isinstance(raw, int)
        return fixed.to_float(raw)
    return raw


class StateObject:
    """Common part of every state declaration: a name (the module variable) and an optional kernel binding."""

    kind_name = "state"

    def __init__(self) -> None:
        self.name: str | None = None
        self._backing: KernelBacking | None = None

    def bind(self, backing: KernelBacking) -> None:
        self._backing = backing

    def unbind(self) -> None:
        self._backing = None

    @property
    def bound(self) -> bool:
        return self._backing is not None

    def save(self) -> object:
        """A copy of the Python-side contents, for `restore` (tests replay executions from one state)."""
        raise NotImplementedError

    def restore(self, saved: object) -> None:
        """Put back Python-side contents taken by `save`."""
        raise NotImplementedError


class Global(StateObject):
    """A mutable scalar (`Global(u64, 0)`, `Global(float, 0.05)`), kept in the object's global data."""

    kind_name = "Global"

    def __init__(self, type_: ScalarType | type[float] | type[bool], init: int | float | bool = 0) -> None:
        super().__init__()
        scalar = as_scalar_type(type_)
        if scalar is None:
            raise TypeError(f"Global's type must be a DSL scalar type (u32, float, ...), not {type_!r}")
        type_ = scalar
        self.type = type_
        self.init_raw = _scalar_raw(init, type_)
        self._raw = self.init_raw

    def raw_get(self) -> int:
        if self._backing is not None:
            value = self._backing.lookup(0)
            assert isinstance(value, int)
            return value
        return self._raw

    def raw_set(self, raw: int) -> None:
        raw = self.type.wrap(raw) if not self.type.is_fixed else fixed.wrap64(raw)
        if self._backing is not None:
            self._backing.update(0, raw)
        else:
            self._raw = raw

    @property
    def value(self) -> int | float:
        out = _to_user(self.raw_get(), self.type)
        assert isinstance(out, int | float)
        return out

    @value.setter
    def value(self, new: int | float) -> None:
        self.raw_set(_scalar_raw(new, self.type))

    def reset(self) -> None:
        """Back to the declared initial value."""
        self.raw_set(self.init_raw)

    def save(self) -> object:
        return self.raw_get()

    def restore(self, saved: object) -> None:
        assert isinstance(saved, int)
        self.raw_set(saved)

    def __repr__(self) -> str:
        return f"Global({self.type}, value={self.value!r})"


class BpfMap(StateObject):
    """Common part of the map declarations."""

    kind: MapKind

    def __init__(self, key: ValueType | type[float] | type[bool], value: ValueType | type[float] | type[bool],
                 max_entries: int) -> None:
        super().__init__()
        declared: list[ValueType] = []
        for role, t in (("key", key), ("value", value)):
            resolved = as_scalar_type(t) or t
            if isinstance(resolved, ScalarType) or (isinstance(resolved, type) and issubclass(resolved, Struct)):
                declared.append(resolved)
            else:
                raise TypeError(f"a map {role} must be a DSL integer type or a Struct subclass, not {shown(t)}")
        if not isinstance(max_entries, int) or max_entries <= 0:
            raise TypeError(f"max_entries must be a positive integer, not {max_entries!r}")
        self.key_type: ValueType = declared[0]
        self.value_type: ValueType = declared[1]
        self.max_entries = max_entries
        self._data: dict[RawValue, RawValue] = {}

    def save(self) -> object:
        return dict(self._data)

    def restore(self, saved: object) -> None:
        assert isinstance(saved, dict)
        self._data = dict(saved)

    def _raw_key(self, key: object) -> RawValue:
        """A Python-side key as the raw key programs use (maps whose keys have other spellings override)."""
        return _to_raw(key, self.key_type)

    # Raw access, used by executions of the DSL.
    def raw_lookup(self, key: RawValue) -> RawValue | None:
        if self._backing is not None:
            return self._backing.lookup(key)
        return self._data.get(key)

    def raw_update(self, key: RawValue, value: RawValue) -> bool:
        """Insert or replace; False when the map is full (the kernel's E2BIG) or the key is out of range."""
        if self._backing is not None:
            return self._backing.update(key, value)
        if key not in self._data and len(self._data) >= self.max_entries:
            return False
        self._data[key] = value
        return True

    def raw_delete(self, key: RawValue) -> bool:
        if self._backing is not None:
            return self._backing.delete(key)
        return self._data.pop(key, None) is not None

    def raw_keys(self) -> list[RawValue]:
        if self._backing is not None:
            return list(self._backing.keys())
        return list(self._data)

    # The Python (control-plane) view.
    def __getitem__(self, key: object) -> object:
        raw = self.raw_lookup(self._raw_key(key))
        if raw is None:
            raise KeyError(key)
        return _to_user(raw, self.value_type)

    def __setitem__(self, key: object, value: object) -> None:
        if not self.raw_update(self._raw_key(key), _to_raw(value, self.value_type)):
            raise KeyError(f"cannot store key {key!r} in {self.name or 'map'}: full or out of range")

    def __delitem__(self, key: object) -> None:
        if not self.raw_delete(self._raw_key(key)):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return self.raw_lookup(self._raw_key(key)) is not None

    def get(self, key: object, default: object = None) -> object:
        raw = self.raw_lookup(self._raw_key(key))
        return default if raw is None else _to_user(raw, self.value_type)

    def keys(self) -> list[object]:
        return list(self.raw_keys())

    def items(self) -> Iterator[tuple[object, object]]:
        for k in self.raw_keys():
            raw = self.raw_lookup(k)
            if raw is not None:
                yield k, _to_user(raw, self.value_type)

    def __len__(self) -> int:
        return len(self.raw_keys())

    def clear(self) -> None:
        for k in self.raw_keys():
            self.raw_delete(k)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name or '?'}: {dict(self.items())!r})"


class HashMap(BpfMap):
    """A hash table: `HashMap(u32, u64, max_entries=1024)`."""

    kind = MapKind.HASH
    kind_name = "HashMap"


class LruHashMap(BpfMap):
    """A hash table that evicts the least recently used entry when full (the kernel's LRU is approximate)."""

    kind = MapKind.LRU_HASH
    kind_name = "LruHashMap"

    def raw_update(self, key: RawValue, value: RawValue) -> bool:
        if self._backing is None:
            if key in self._data:
                del self._data[key]  # an update makes the entry the most recently used, as in the kernel
            elif len(self._data) >= self.max_entries:
                self._data.pop(next(iter(self._data)))
        return super().raw_update(key, value)

    def raw_lookup(self, key: RawValue) -> RawValue | None:
        value = super().raw_lookup(key)
        if self._backing is None and value is not None:
            self._data[key] = self._data.pop(key)  # most recently used goes last
        return value


def _array_size(kind: str, size: int | None, max_entries: int | None) -> int:
    """An array's element count, given positionally or as `size=` or, as for the other maps (and the
    kernel's map definitions), `max_entries=`: exactly one of them."""
    if size is not None and max_entries is None:
        return size
    if max_entries is not None and size is None:
        return max_entries
    raise TypeError(f"give {kind} its number of elements once: `{kind}(u64, 16)` or `{kind}(u64, max_entries=16)`")


class Array(BpfMap):
    """A fixed-size array indexed 0..size-1, every element present and zero at first: `Array(u64, 16)`
    (or `Array(u64, max_entries=16)`, the name the other maps use)."""

    kind = MapKind.ARRAY
    kind_name = "Array"

    def __init__(self, value: ValueType, size: int | None = None, *, max_entries: int | None = None) -> None:
        from pybpfdsl.lang.types import u32

        super().__init__(u32, value, _array_size(self.kind_name, size, max_entries))

    def raw_lookup(self, key: RawValue) -> RawValue | None:
        assert isinstance(key, int)
        if not 0 <= key < self.max_entries:
            return None
        if self._backing is not None:
            return self._backing.lookup(key)
        return self._data.get(key, zero_value(self.value_type))

    def raw_update(self, key: RawValue, value: RawValue) -> bool:
        assert isinstance(key, int)
        if not 0 <= key < self.max_entries:
            return False
        return super().raw_update(key, value)

    def raw_delete(self, key: RawValue) -> bool:
        return False  # array elements cannot be deleted (the kernel says EINVAL)

    def raw_keys(self) -> list[RawValue]:
        return list(range(self.max_entries))

    def clear(self) -> None:
        """Zero every element: what a freshly loaded program sees. (Elements cannot be deleted, as in
        the kernel, so the map's delete-every-key `clear` would leave an array as it was.)"""
        if self.bound:
            zero = zero_value(self.value_type)
            for key in range(self.max_entries):
                self.raw_update(key, zero)
        else:
            self._data.clear()  # absent elements read as zero


class PerCpuArray(Array):
    """An array with one copy of each element per CPU. A program sees its own CPU's copy.

    From Python, `m[i]` is the sum over CPUs (what a counter means), `m.per_cpu(i)` the list, and
    `m[i] = v` stores `v` on CPU 0 and zero elsewhere, so that `m[i] == v` afterwards.
    """

    kind = MapKind.PERCPU_ARRAY
    kind_name = "PerCpuArray"

    def __init__(self, value: ValueType, size: int | None = None, *, max_entries: int | None = None) -> None:
        super().__init__(value, size, max_entries=max_entries)
        self.current_cpu = 0  # which CPU's copy pure-Python executions touch (pybpfdsl.testing sets it)
        self._cpu_data: dict[int, dict[RawValue, RawValue]] = {}

    def save(self) -> object:
        return {cpu: dict(values) for cpu, values in self._cpu_data.items()}

    def clear(self) -> None:
        """Zero every element on every CPU."""
        if self.bound:
            zero = zero_value(self.value_type)
            for key in range(self.max_entries):
                self[key] = zero  # item assignment writes every CPU's copy
        else:
            self._data.clear()
            self._cpu_data.clear()

    def restore(self, saved: object) -> None:
        assert isinstance(saved, dict)
        self._cpu_data = {cpu: dict(values) for cpu, values in saved.items()}

    def _copy(self, cpu: int) -> dict[RawValue, RawValue]:
        return self._cpu_data.setdefault(cpu, {})

    def raw_lookup(self, key: RawValue) -> RawValue | None:
        assert isinstance(key, int)
        if not 0 <= key < self.max_entries:
            return None
        if self._backing is not None:
            return self._backing.lookup(key)
        return self._copy(self.current_cpu).get(key, zero_value(self.value_type))

    def raw_update(self, key: RawValue, value: RawValue) -> bool:
        assert isinstance(key, int)
        if not 0 <= key < self.max_entries:
            return False
        if self._backing is not None:
            return self._backing.update(key, value)
        self._copy(self.current_cpu)[key] = value
        return True

    def per_cpu(self, key: int) -> list[object]:
        """The value of element `key` on every CPU that has one (Python-side: CPUs that ran the program)."""
        backing = self._backing
        if backing is not None and hasattr(backing, "lookup_percpu"):
            values: list[RawValue] = backing.lookup_percpu(key)
            return [_to_user(v, self.value_type) for v in values]
        cpus = sorted(self._cpu_data) or [0]
        return [_to_user(self._copy(c).get(key, zero_value(self.value_type)), self.value_type) for c in cpus]

    def __getitem__(self, key: object) -> object:
        assert isinstance(key, int)
        if not 0 <= key < self.max_entries:
            raise KeyError(key)
        values = self.per_cpu(key)
        if isinstance(self.value_type, ScalarType):
            total = sum(v for v in values if isinstance(v, int | float))
            return total
        return values

    def __setitem__(self, key: object, value: object) -> None:
        assert isinstance(key, int)
        backing = self._backing
        raw = _to_raw(value, self.value_type)
        if backing is not None and hasattr(backing, "update_percpu"):
            backing.update_percpu(key, raw)
            return
        for cpu in list(self._cpu_data) or [0]:
            self._copy(cpu)[key] = raw if cpu == 0 else zero_value(self.value_type)
        self._copy(0)[key] = raw
