"""The bytecode interpreter's memory model: regions, pointers into them, and maps whose values are regions.

Every piece of memory a program can reach is a :class:`Region`: the packet, one stack per call frame,
the XDP context, each map value and each global-data section. A register holds a 64-bit unsigned int
(a scalar), a :class:`Pointer` ``(region, offset)`` or an :class:`InterpMap` handle (what ``lddw rX,
map`` loads). Keeping pointers symbolic rather than as addresses is what lets the machine check every
access exactly and lets a map value pointer alias the stored value: a store through it changes the map.

Where a program needs a pointer as a number (comparison with a scalar, arithmetic other than +/-
scalar, a narrow store), it uses a fixed fake address per region (:func:`as_number`), so pointers into
the same region still compare by offset (``data + k > data_end``) and a non-NULL pointer compares
unequal to 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple, TypeAlias

from pybpfdsl.bpf.abi import ARRAY_MAP_TYPES, LRU_MAP_TYPES, MapType, UpdateFlag

__all__ = [
    "ArrayElements",
    "InterpMap",
    "KERNEL_ADDRESSES",
    "Pointer",
    "Region",
    "Value",
    "as_number",
]

MASK64 = (1 << 64) - 1
XDP_PACKET_HEADROOM = 256  # BPF_PROG_TEST_RUN puts the packet this far into its buffer
XDP_FRAME_END = 3520  # and ends its frame this far after the packet's start (4 KiB less headroom, skb_shared_info)

# The errnos the map operations and helpers return (negated, as the kernel does).
EINVAL, ENOENT, EEXIST, E2BIG, EAGAIN, EFAULT, ENOSPC = 22, 2, 17, 7, 11, 14, 28

_HASH_TYPES = frozenset({MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH})


# --------------------------------------------------------------------------- #
# Fake addresses
# --------------------------------------------------------------------------- #

KERNEL_ADDRESSES = (0xFFFF_0000_0000_0000, (1 << 64) - (1 << 24))
"""Where the kernel's objects (context, packet, stacks, maps and their values) lie: the kernel half of
the address space of x86-64 and arm64, short of its last 16 MiB (the fixmap). The fake addresses below
stay inside, so a comparison of a pointer that the prover decides for every such address replays."""
_BASES_START = 0xFFFF_8880_0000_0000  # where x86-64's direct map starts
_BASE_SPACING = 1 << 28
_BASE_SLOTS = (KERNEL_ADDRESSES[1] - _BASE_SPACING - _BASES_START) // _BASE_SPACING
_next_base = [0]


def _fresh_base() -> int:
    # 256 MiB apart, so no offset a verified program can reach makes two regions' addresses overlap;
    # after half a million regions (a big array map has one per element) the slots are used again.
    _next_base[0] = (_next_base[0] + 1) % _BASE_SLOTS
    return _BASES_START + _next_base[0] * _BASE_SPACING


# --------------------------------------------------------------------------- #
# Regions and pointers
# --------------------------------------------------------------------------- #


@dataclass(eq=False)
class Region:
    """A piece of memory: bytes plus the window ``[lo, hi)`` a program may touch.

    ``pointers`` remembers pointers stored with 8-byte stores (register spills), keyed by offset, so a
    later 8-byte load there gives the pointer back rather than its fake address.
    """

    kind: str
    name: str
    data: bytearray
    lo: int = 0
    hi: int = -1
    writable: bool = True
    base: int = field(default_factory=_fresh_base)
    pointers: dict[int, Pointer | InterpMap] = field(default_factory=dict)

    created: ClassVar[int] = 0
    """How many regions this process has made: a run's cost in memory copies (tests bound it)."""

    def __post_init__(self) -> None:
        Region.created += 1
        if self.hi < 0:
            self.hi = len(self.data)


class Pointer(NamedTuple):
    """A pointer: a region and a byte offset into its ``data``."""

    region: Region
    offset: int

    @property
    def address(self) -> int:
        return (self.region.base + self.offset) & MASK64


Value: TypeAlias = "int | Pointer | InterpMap"
"""What a register or a spilled stack slot holds."""


def as_number(v: Value) -> int:
    """The number a value stands for when used as a scalar."""
    if isinstance(v, int):
        return v
    if isinstance(v, Pointer):
        return v.address
    return v.base


# --------------------------------------------------------------------------- #
# Maps
# --------------------------------------------------------------------------- #


class ArrayElements(MutableMapping[bytes, Region]):
    """The elements of an array map, by 4-byte little-endian index: every index is present, and each
    element's region is made the first time it is asked for (copy on first touch), from ``initial``
    (index -> value bytes; zeros when None). A run then costs what it touches, not the array's size.

    ``made`` holds the elements made so far: the only ones whose bytes can differ from ``initial``.
    """

    def __init__(self, owner: InterpMap, initial: Callable[[int], bytes] | None = None) -> None:
        self._owner = owner
        self.initial = initial
        self.made: dict[bytes, Region] = {}

    def _index(self, key: object) -> int | None:
        if not isinstance(key, bytes | bytearray) or len(key) != 4:
            return None
        index = int.from_bytes(key, "little")
        return index if index < self._owner.max_entries else None

    def __getitem__(self, key: bytes) -> Region:
        region = self.made.get(key)
        if region is None:
            index = self._index(key)
            if index is None:
                raise KeyError(key)
            owner = self._owner
            value = bytes(owner.value_size) if self.initial is None else self.initial(index)
            region = self.made[bytes(key)] = owner._region(bytes(key), value)
        return region

    def __setitem__(self, key: bytes, region: Region) -> None:
        if self._index(key) is None:
            raise KeyError(key)
        self.made[bytes(key)] = region

    def __delitem__(self, key: bytes) -> None:
        raise KeyError(f"array elements cannot be deleted ({key.hex()})")

    def __contains__(self, key: object) -> bool:
        return self._index(key) is not None

    def __iter__(self) -> Iterator[bytes]:
        return (InterpMap.index_key(i) for i in range(self._owner.max_entries))

    def __len__(self) -> int:
        return self._owner.max_entries


@dataclass(eq=False)
class InterpMap:
    """A map: keys are bytes, each value is a :class:`Region` that value pointers point into.

    Arrays (and global-data sections, which are one-element arrays) hold every element from the start,
    as :class:`ArrayElements` that are copied in when first touched; hash maps keep insertion order,
    which for LRU maps is recency order.  Ring buffers collect records. An LPM trie keeps each prefix
    under its key with the bits past the prefix cleared, and a lookup finds the longest that matches.
    Per-CPU maps hold the copy of the CPU the run is on (a run is on one CPU).
    """

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    entries: MutableMapping[bytes, Region] = field(default_factory=dict)
    records: list[bytes] = field(default_factory=list)
    ringbuf_used: int = 0  # bytes taken by records nobody has consumed yet (ring buffers only)
    readonly: bool = False
    base: int = field(default_factory=_fresh_base)

    def __post_init__(self) -> None:
        if self.map_type in ARRAY_MAP_TYPES and not self.entries:
            self.entries = ArrayElements(self)

    @staticmethod
    def index_key(index: int) -> bytes:
        return index.to_bytes(4, "little")

    def _region(self, key: bytes, value: bytes) -> Region:
        return Region("map_value", f"{self.name}[{key.hex()}]", bytearray(value), writable=not self.readonly)

    @classmethod
    def section(cls, name: str, contents: bytes, readonly: bool = False) -> InterpMap:
        """A global-data section as libbpf presents it: an array map of one element."""
        m = cls(name, MapType.ARRAY, 4, len(contents), 1, readonly=readonly)
        m.entries[cls.index_key(0)].data[:] = contents
        return m

    def value(self, key: bytes) -> bytes | None:
        """Current value bytes stored under ``key``."""
        region = self.entries.get(key)
        return None if region is None else bytes(region.data)

    def _lpm_key(self, key: bytes, length: int | None = None) -> bytes:
        """An LPM trie key (u32 prefix length, then the address bytes in network order) with the bits
        past the prefix cleared, at `length` bits if given: the form the entries are stored under."""
        plen = int.from_bytes(key[:4], "little") if length is None else length
        bits = 8 * (self.key_size - 4)
        kept = min(plen, bits)
        number = int.from_bytes(key[4:], "big") >> (bits - kept) << (bits - kept) if kept else 0
        return plen.to_bytes(4, "little") + number.to_bytes(bits // 8, "big")

    def _lpm_lookup(self, key: bytes) -> Region | None:
        """The kernel's trie_lookup_elem: the longest stored prefix, at most the key's, that the key's
        address starts with; nothing for a key longer than the address (Linux 6.9 and later)."""
        if self._lpm_too_long(key):
            return None
        for length in range(int.from_bytes(key[:4], "little"), -1, -1):
            region = self.entries.get(self._lpm_key(key, length))
            if region is not None:
                return region
        return None

    def _lpm_too_long(self, key: bytes) -> bool:
        return int.from_bytes(key[:4], "little") > 8 * (self.key_size - 4)

    def lookup(self, key: bytes) -> Region | None:
        if self.map_type == MapType.LPM_TRIE:
            return self._lpm_lookup(key)
        region = self.entries.get(key)
        if region is not None and self.map_type in LRU_MAP_TYPES:
            self.entries[key] = self.entries.pop(key)  # most recently used goes last
        return region

    def update(self, key: bytes, value: bytes, flags: int = UpdateFlag.ANY) -> int:
        """bpf_map_update_elem: 0 or a negative errno, as the kernel returns it."""
        if flags not in (UpdateFlag.ANY, UpdateFlag.NOEXIST, UpdateFlag.EXIST):
            return -EINVAL
        if self.map_type == MapType.LPM_TRIE:
            if self._lpm_too_long(key):
                return -EINVAL
            key = self._lpm_key(key)
        exists = key in self.entries
        if self.map_type in ARRAY_MAP_TYPES:
            if not exists:
                return -E2BIG
            if flags == UpdateFlag.NOEXIST:
                return -EEXIST
            self.entries[key].data[:] = value  # arrays update in place: pointers see the new value
            return 0
        if self.map_type not in _HASH_TYPES and self.map_type != MapType.LPM_TRIE:
            return -EINVAL
        if flags == UpdateFlag.NOEXIST and exists:
            return -EEXIST
        if flags == UpdateFlag.EXIST and not exists:
            return -ENOENT
        if not exists and len(self.entries) >= self.max_entries:
            if self.map_type == MapType.LPM_TRIE:
                return -ENOSPC  # trie_update_elem's answer when full
            if self.map_type not in LRU_MAP_TYPES:
                return -E2BIG
            self.entries.pop(next(iter(self.entries)))
        # The kernel's hash maps link in a new element; pointers to the old one keep the old bytes.
        self.entries.pop(key, None)
        self.entries[key] = self._region(key, value)
        return 0

    def fill(self, key: bytes, value: bytes) -> None:
        """User space's write of a slot of a map programs only read through helpers (a DEVMAP's device,
        a CPUMAP's queue), which `update` (bpf_map_update_elem from a program) refuses."""
        self.entries[key] = self._region(key, value)

    def delete(self, key: bytes) -> int:
        if self.map_type == MapType.LPM_TRIE:  # exactly the prefix given
            if self._lpm_too_long(key):
                return -EINVAL
            key = self._lpm_key(key)
        elif self.map_type not in _HASH_TYPES:
            return -EINVAL
        return 0 if self.entries.pop(key, None) is not None else -ENOENT
