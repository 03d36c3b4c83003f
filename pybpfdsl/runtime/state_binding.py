"""Kernel backings for state objects: `lang.state.KernelBacking` over a `KernelMap`.

While a program is loaded its state objects read and write the kernel through these classes. They
translate between the raw values the DSL computes with (ints, with float as its Q32.32 integer, and
`Struct` instances) and the host-order bytes the kernel stores, using `lang.state.encode`/`decode`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import math
import time
from collections.abc import Iterator, Sequence
from typing import Final

from pybpfdsl.lang.state import (
    RawValue,
    ValueType,
    decode,
    encode,
    type_size,
    zero_value,
)
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType
from pybpfdsl.runtime.kernel_map import KernelMap
from pybpfdsl.runtime.libbpf import RING_BUFFER_SAMPLE_FN, get_libbpf, get_ring_buffer_lib

__all__ = ["GlobalBacking", "MapBacking", "RingBufReader", "sum_raw"]

# Errors that mean "this update cannot be stored" (map full, key out of an array's range), which the
# state objects report as False like the pure-Python maps do; anything else is a real failure.
_REFUSED_UPDATE: Final = frozenset({errno.E2BIG, errno.ENOSPC, errno.ENOMEM})
_SECTION_KEY: Final = bytes(4)  # a global-data map has one element, at u32 key 0


def sum_raw(values: Sequence[RawValue], vtype: ValueType) -> RawValue:
    """The sum of per-CPU raw values, wrapped to the type (field-wise for a Struct)."""
    if isinstance(vtype, ScalarType):
        total = sum(v for v in values if isinstance(v, int))
        return decode(encode(total, vtype), vtype)  # wrap the way the kernel's fixed width would
    if not values:
        return zero_value(vtype)
    sums = [0] * len(vtype.fields())
    for v in values:
        assert isinstance(v, Struct)
        for i, x in enumerate(v.values()):
            sums[i] += x
    return vtype.of_raw(*sums)


def _check_size(kernel_map: KernelMap, role: str, vtype: ValueType, size: int) -> None:
    want = type_size(vtype)
    if want != size:
        raise ValueError(f"map {kernel_map.name or kernel_map.fd}: the kernel's {role} size is {size} bytes "
                         f"but {vtype!r} needs {want}")


class MapBacking:
    """A `KernelBacking` for a BPF map whose keys and values have the given DSL types.

    For per-CPU maps, `lookup` returns the sum over CPUs (field-wise for Struct values) and `update`
    stores the value on CPU 0 and zero on the others, so `lookup` returns it afterwards;
    `lookup_percpu`/`update_percpu`/`store_percpu` give per-CPU access.
    """

    def __init__(self, kernel_map: KernelMap, key_type: ValueType, value_type: ValueType) -> None:
        """Wrap `kernel_map` (borrowed, not closed here); `ValueError` if the sizes do not match."""
        _check_size(kernel_map, "key", key_type, kernel_map.key_size)
        _check_size(kernel_map, "value", value_type, kernel_map.value_size)
        self.kernel_map = kernel_map
        self.key_type = key_type
        self.value_type = value_type

    def _key(self, key: RawValue) -> bytes:
        return encode(key, self.key_type)

    def lookup(self, key: RawValue) -> RawValue | None:
        """The value under `key` (per-CPU maps: the sum over CPUs), or None if absent."""
        if self.kernel_map.is_percpu:
            values = self.lookup_percpu(key)
            return None if values is None else sum_raw(values, self.value_type)
        data = self.kernel_map.lookup(self._key(key))
        return None if data is None else decode(data, self.value_type)

    def update(self, key: RawValue, value: RawValue) -> bool:
        """Insert or replace; False when the kernel refuses for lack of room or an out-of-range key."""
        if self.kernel_map.is_percpu:
            return self.update_percpu(key, value)
        try:
            self.kernel_map.update(self._key(key), encode(value, self.value_type))
        except OSError as exc:
            if exc.errno in _REFUSED_UPDATE:
                return False
            raise
        return True

    def delete(self, key: RawValue) -> bool:
        """Remove `key`; False if it was absent or the map cannot delete (arrays)."""
        try:
            return self.kernel_map.delete(self._key(key))
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # array maps have no deletion
                return False
            raise

    def keys(self) -> Iterator[RawValue]:
        """The keys present in the kernel map, decoded."""
        for raw in self.kernel_map:
            yield decode(raw, self.key_type)

    # Per-CPU maps.

    def lookup_percpu(self, key: RawValue) -> list[RawValue] | None:
        """The value on each possible CPU, or None if the key is absent."""
        values = self.kernel_map.lookup_percpu(self._key(key))
        return None if values is None else [decode(v, self.value_type) for v in values]

    def update_percpu(self, key: RawValue, value: RawValue) -> bool:
        """Store `value` on CPU 0 and zero on every other CPU."""
        ncpus = self.cpu_count()
        return self.store_percpu(key, [value] + [zero_value(self.value_type)] * (ncpus - 1))

    def store_percpu(self, key: RawValue, values: Sequence[RawValue]) -> bool:
        """Store one value per possible CPU (`len(values)` must be `cpu_count()`)."""
        try:
            self.kernel_map.update_percpu(self._key(key), [encode(v, self.value_type) for v in values])
        except OSError as exc:
            if exc.errno in _REFUSED_UPDATE:
                return False
            raise
        return True

    def cpu_count(self) -> int:
        """How many per-CPU copies the kernel keeps (the possible CPUs)."""
        return get_libbpf().num_possible_cpus()

    def __repr__(self) -> str:
        return f"<MapBacking {self.kernel_map.name!r} {self.key_type!r} -> {self.value_type!r}>"


class GlobalBacking:
    """A `KernelBacking` for one global variable inside a global-data section map (`.bss`, `.data`).

    The section is the single value (key 0) of an array map; the variable is `type.size` bytes at
    `offset` in it, little-endian. The key passed to `lookup`/`update` is ignored (Globals use 0).
    Writes read the whole section, patch the variable's bytes and write the section back: a program
    running concurrently on a real interface could lose a write to a *neighbouring* variable made in
    between, which does not happen with test runs (they are synchronous).
    """

    def __init__(self, section_map: KernelMap, offset: int, type_: ScalarType) -> None:
        """Wrap `section_map` (borrowed); `ValueError` if the variable does not fit in the section."""
        if offset < 0 or offset + type_.size > section_map.value_size:
            raise ValueError(f"variable of {type_.size} bytes at offset {offset} lies outside section map "
                             f"{section_map.name!r} of {section_map.value_size} bytes")
        self.section_map = section_map
        self.offset = offset
        self.type = type_

    def _section(self) -> bytes:
        data = self.section_map.lookup(_SECTION_KEY)
        if data is None:  # cannot happen for an array map; guards against a wrong map
            raise LookupError(f"global-data map {self.section_map.name!r} has no element 0")
        return data

    def lookup(self, key: RawValue = 0) -> int:
        """The variable's current raw value."""
        data = self._section()
        value = decode(data[self.offset:self.offset + self.type.size], self.type)
        assert isinstance(value, int)
        return value

    def update(self, key: RawValue, value: RawValue) -> bool:
        """Set the variable's raw value (read-modify-write of the section)."""
        data = bytearray(self._section())
        data[self.offset:self.offset + self.type.size] = encode(value, self.type)
        self.section_map.update(_SECTION_KEY, bytes(data))
        return True

    def delete(self, key: RawValue) -> bool:
        """Globals cannot be deleted: always False."""
        return False

    def keys(self) -> Iterator[RawValue]:
        """The single key, 0."""
        yield 0

    def __repr__(self) -> str:
        return f"<GlobalBacking {self.section_map.name!r}+{self.offset} {self.type!r}>"


class RingBufReader:
    """A `lang.ringbuf.RingBufConsumer` over a kernel ring-buffer map, through libbpf's `ring_buffer`.

    Each record is decoded with `record.from_bytes` (host order, C layout) by the sample callback, which
    libbpf calls synchronously inside `fetch`. The map fd is borrowed (the object owning it must outlive
    the reader); `close` frees the libbpf consumer.
    """

    def __init__(self, map_fd: int, record: type[Struct], name: str = "") -> None:
        self.record = record
        self.name = name
        self._lib = get_ring_buffer_lib()
        self._batch: list[Struct] = []
        self._error: Exception | None = None
        self._callback = RING_BUFFER_SAMPLE_FN(self._sample)  # must live as long as the consumer
        self._rb: int | None = self._lib.new(map_fd, self._callback)

    def _sample(self, ctx: int | None, data: int | None, size: int) -> int:
        # Exceptions must not unwind into libbpf: the first is kept and raised by fetch. Returning 0
        # keeps consuming (a negative value would stop libbpf after consuming this record anyway).
        try:
            if size != self.record.size() or not data:
                raise ValueError(f"ring buffer {self.name!r}: a {size}-byte record, expected "
                                 f"{self.record.__name__} ({self.record.size()} bytes)")
            self._batch.append(self.record.from_bytes(ctypes.string_at(data, size)))
        except Exception as exc:  # re-raised by fetch
            if self._error is None:
                self._error = exc
        return 0

    def fetch(self, timeout: float | None) -> list[Struct]:
        """Consume the available records; with a `timeout` (seconds), wait up to that long for one."""
        rb = self._rb
        if rb is None:
            raise ValueError(f"ring buffer reader {self.name!r} is closed")
        self._batch = []
        self._lib.consume(rb)
        if timeout:
            deadline = time.monotonic() + timeout
            while not self._batch and (left := deadline - time.monotonic()) > 0:
                try:
                    self._lib.poll(rb, max(1, math.ceil(left * 1000)))
                except InterruptedError:
                    continue
        batch, self._batch = self._batch, []
        error, self._error = self._error, None
        if error is not None:
            raise error
        return batch

    def close(self) -> None:
        """Free the libbpf consumer (idempotent)."""
        rb, self._rb = self._rb, None
        if rb is not None:
            self._lib.free(rb)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # __del__ must never raise
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._rb is None else "open"
        return f"<RingBufReader {self.name!r} {self.record.__name__} {state}>"
