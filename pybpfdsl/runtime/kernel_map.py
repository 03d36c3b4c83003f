"""Typed access to a kernel BPF map through its file descriptor."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pybpfdsl.bpf.abi import PERCPU_MAP_TYPES, MapType, UpdateFlag
from pybpfdsl.runtime.libbpf import get_libbpf

__all__ = ["KernelMap", "MapInfo"]

@dataclass(frozen=True)
class MapInfo:
    """Description of one map of a loaded `BpfObject` (kept here, beside the map access it describes, so
    that this module needs nothing from bpf_object).

    ``name`` is libbpf's map name; for global-data sections this is a
    truncated object-name prefix plus the section name (e.g. ``"myobj.bss"``).
    ``fd`` belongs to the object and is closed with it.
    """

    name: str
    fd: int
    type: int
    key_size: int
    value_size: int
    max_entries: int


class KernelMap:
    """Thin wrapper over a map fd with fixed key and value sizes.

    The wrapper does not own the fd (it never closes it); keep the owner
    (e.g. the :class:`~pybpfdsl.runtime.bpf_object.BpfObject`) alive while
    using it.  Keys and values are raw bytes of exactly ``key_size`` /
    ``value_size`` bytes; wrong sizes raise ``ValueError`` before any
    syscall.  Kernel errors raise :class:`OSError`.
    """

    def __init__(
        self,
        fd: int,
        key_size: int,
        value_size: int,
        map_type: int = MapType.HASH,
        *,
        name: str = "",
    ) -> None:
        self.fd = fd
        self.key_size = key_size
        self.value_size = value_size
        self.map_type = map_type
        self.name = name

    @classmethod
    def from_info(cls, info: MapInfo) -> KernelMap:
        """Wrap the map described by a :class:`MapInfo`."""
        return cls(info.fd, info.key_size, info.value_size, info.type, name=info.name)

    # -- helpers ----------------------------------------------------------

    @property
    def is_percpu(self) -> bool:
        """Whether values are per-CPU (see :meth:`lookup_percpu`)."""
        return self.map_type in PERCPU_MAP_TYPES

    @property
    def percpu_stride(self) -> int:
        """Bytes per CPU slot in a per-CPU value: ``value_size`` rounded up to 8."""
        return (self.value_size + 7) & ~7

    def _check_key(self, key: bytes) -> None:
        if len(key) != self.key_size:
            raise ValueError(
                f"map {self.name or self.fd}: key must be {self.key_size} bytes, "
                f"got {len(key)}"
            )

    def _check_value(self, value: bytes) -> None:
        if len(value) != self.value_size:
            raise ValueError(
                f"map {self.name or self.fd}: value must be {self.value_size} bytes, "
                f"got {len(value)}"
            )

    def _require_kind(self, percpu: bool, method: str) -> None:
        # A plain lookup on a per-CPU map would let the kernel write
        # ncpus * stride bytes into a value_size buffer, so refuse early.
        if self.is_percpu != percpu:
            other = (
                f"{method}_percpu" if self.is_percpu else method.removesuffix("_percpu")
            )
            raise TypeError(
                f"map {self.name or self.fd} (type {self.map_type}) "
                f"{'is' if self.is_percpu else 'is not'} per-CPU; use {other}()"
            )

    # -- plain maps -------------------------------------------------------

    def lookup(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or ``None`` if absent."""
        self._check_key(key)
        self._require_kind(False, "lookup")
        return get_libbpf().map_lookup_elem(self.fd, key, self.value_size)

    def update(self, key: bytes, value: bytes, flags: int = UpdateFlag.ANY) -> None:
        """Store ``value`` under ``key`` (``flags``: BPF_ANY/NOEXIST/EXIST)."""
        self._check_key(key)
        self._require_kind(False, "update")
        self._check_value(value)
        get_libbpf().map_update_elem(self.fd, key, value, flags)

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; ``False`` if it was not present.

        Array maps cannot delete and raise ``OSError`` (EINVAL).
        """
        self._check_key(key)
        return get_libbpf().map_delete_elem(self.fd, key)

    def keys(self) -> Iterator[bytes]:
        """Iterate the keys via ``BPF_MAP_GET_NEXT_KEY``.

        Not a snapshot: concurrent deletions by programs may restart or skip
        parts of a hash map walk, as with any kernel map iteration.
        """
        lib = get_libbpf()
        key = lib.map_get_next_key(self.fd, None, self.key_size)
        while key is not None:
            yield key
            key = lib.map_get_next_key(self.fd, key, self.key_size)

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    # -- per-CPU maps -----------------------------------------------------

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        """One ``value_size`` value per possible CPU, or ``None`` if absent."""
        self._check_key(key)
        self._require_kind(True, "lookup_percpu")
        lib = get_libbpf()
        ncpus = lib.num_possible_cpus()
        stride = self.percpu_stride
        raw = lib.map_lookup_elem(self.fd, key, stride * ncpus)
        if raw is None:
            return None
        return [raw[i * stride : i * stride + self.value_size] for i in range(ncpus)]

    def update_percpu(
        self, key: bytes, values: Sequence[bytes], flags: int = UpdateFlag.ANY
    ) -> None:
        """Store one value per possible CPU (``len(values)`` must equal the count)."""
        self._check_key(key)
        self._require_kind(True, "update_percpu")
        lib = get_libbpf()
        ncpus = lib.num_possible_cpus()
        if len(values) != ncpus:
            raise ValueError(f"need {ncpus} per-CPU values, got {len(values)}")
        pad = bytes(self.percpu_stride - self.value_size)
        parts: list[bytes] = []
        for value in values:
            self._check_value(value)
            parts.append(value + pad)
        lib.map_update_elem(self.fd, key, b"".join(parts), flags)

    def __repr__(self) -> str:
        return (
            f"<KernelMap {self.name!r} fd={self.fd} type={self.map_type} "
            f"key_size={self.key_size} value_size={self.value_size}>"
        )
