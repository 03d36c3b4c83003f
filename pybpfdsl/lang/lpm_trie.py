"""`LpmTrie`: longest-prefix-match maps for CIDR policies, as the kernel's BPF_MAP_TYPE_LPM_TRIE.

A key is the kernel's `struct bpf_lpm_trie_key`: a u32 prefix length, then the address bytes in network
order (`Ip4Prefix`: 4 bytes, `Ip6Prefix`: 16). The address bytes are u8 fields, so a key's bytes are the
kernel's whatever the host order: the DSL reads `pkt.ipv4.src` as the number written (10.0.0.1 is
0x0A000001), and `ip4_key(pkt.ipv4.src)` puts its most significant byte first, as on the wire.

A lookup is the kernel's: among the entries whose prefix length is at most the key's, the longest whose
leading bits equal the key's wins. A key whose prefix length is longer than its address (`Ip4Prefix(37,
...)`) finds nothing, as since Linux 6.9 (commit "bpf, lpm: Fix check prefixlen before walking trie";
older kernels compared the address's full length). From Python, `acl[prefix("10.0.0.0/8")] = 1` stores an entry and
`acl.get("10.1.2.3")` (or an address as an int) looks an address up. In a DSL function,
`acl.get(Ip4Prefix(32, u8(a >> 24), u8(a >> 16), u8(a >> 8), u8(a)), 0)` with `a = pkt.ipv4.src` (IPv6:
`Ip6Prefix(128, ...)` from the bytes of `src_hi` and `src_lo`, the two u64 halves the DSL reads an IPv6
address as); or an address where the key goes, and the frontend builds its full-length key:
`acl.get(ip4.src, 0)`, and for an IPv6 trie `acl6.get(ip6.src, 0)` (`src`/`dst` of an IPv6 header, which
the DSL otherwise reads as the halves `src_hi`/`src_lo`: it has no 128-bit numbers).

Entries are kept under their key with the bits past the prefix cleared (the kernel compares only the
prefix, so keys that differ beyond it are one entry).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, ClassVar, Self, TypeAlias

from pybpfdsl.lang.state import BpfMap, MapKind, RawValue, ValueType
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType, u8, u32

__all__ = ["IPV6_ADDRESS_HALVES", "Ip4Prefix", "Ip6Prefix", "LpmTrie", "ip4_key", "ip6_key", "prefix"]

IPV6_ADDRESS_HALVES: dict[str, tuple[str, str]] = {"src": ("src_hi", "src_lo"), "dst": ("dst_hi", "dst_lo")}
"""The IPv6 header's addresses as the halves (fields) the DSL reads them as: `ip6.src` stands for the
/128 key of `src_hi` and `src_lo` where an IPv6 LpmTrie's key goes."""


class _PrefixKey:
    """Common behaviour of the two key records (a mixin: a Struct must declare fields)."""

    address_bytes: ClassVar[int]
    if TYPE_CHECKING:
        def __init__(self, *args: int) -> None: ...
        def values(self) -> tuple[int, ...]: ...

    @classmethod
    def of(cls, prefixlen: int, data: bytes) -> Self:
        """The key of `data` (network order) with `prefixlen` leading bits."""
        return cls(prefixlen, *data)

    @property
    def data(self) -> bytes:
        """The address bytes, network order."""
        return bytes(self.values()[1:])

    @property
    def length(self) -> int:
        return int(self.values()[0])

    def masked(self) -> Self:
        """The same key with the bits past the prefix cleared (the prefix length capped at the address's)."""
        bits = 8 * self.address_bytes
        length = min(self.length, bits)
        number = int.from_bytes(self.data, "big") >> (bits - length) << (bits - length) if length else 0
        return self.of(self.length, number.to_bytes(self.address_bytes, "big"))

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The prefix as an `ipaddress` network (bits past the prefix cleared)."""
        length = min(self.length, 8 * self.address_bytes)
        return ipaddress.ip_network((self.masked().data, length))

    def __str__(self) -> str:
        return str(self.network())

    def __repr__(self) -> str:
        if self.length <= 8 * self.address_bytes:
            return f"prefix({str(self)!r})"
        return f"{type(self).__name__}(prefixlen={self.length}, data={self.data.hex()})"


class Ip4Prefix(_PrefixKey, Struct):
    """An IPv4 LPM key: `struct { u32 prefixlen; u8 data[4]; }` (8 bytes; fields prefixlen, a0..a3)."""

    address_bytes: ClassVar[int] = 4
    # The fields, as a dict: mypy does not take DSL types for Python types in annotations.
    __annotations__ = {"prefixlen": u32, **{f"a{i}": u8 for i in range(4)}}


class Ip6Prefix(_PrefixKey, Struct):
    """An IPv6 LPM key: `struct { u32 prefixlen; u8 data[16]; }` (20 bytes; fields prefixlen, a0..a15)."""

    address_bytes: ClassVar[int] = 16
    __annotations__ = {"prefixlen": u32, **{f"a{i}": u8 for i in range(16)}}


PrefixKey: TypeAlias = "Ip4Prefix | Ip6Prefix"


def ip4_key(address: int) -> Ip4Prefix:
    """The /32 key of an IPv4 address as the DSL reads it (`pkt.ipv4.src`, the number written).

    In a DSL function today, spell it out (the DSL's @inline helpers return scalars only):
    `Ip4Prefix(32, u8(a >> 24), u8(a >> 16), u8(a >> 8), u8(a))`."""
    return Ip4Prefix.of(32, (address & 0xFFFFFFFF).to_bytes(4, "big"))


def ip6_key(hi: int, lo: int) -> Ip6Prefix:
    """The /128 key of an IPv6 address given as its two halves (`pkt.ipv6.src_hi`, `src_lo`)."""
    return Ip6Prefix.of(128, (hi & (1 << 64) - 1).to_bytes(8, "big") + (lo & (1 << 64) - 1).to_bytes(8, "big"))


def prefix(text: str | ipaddress.IPv4Network | ipaddress.IPv6Network) -> Ip4Prefix | Ip6Prefix:
    """The key of a CIDR prefix: `prefix("10.0.0.0/8")`, `prefix("2001:db8::/32")`; an address alone is
    its full-length prefix. Host bits set past the prefix are refused (`10.0.0.1/8`), as `ipaddress` does."""
    net = text if not isinstance(text, str) else ipaddress.ip_network(text)
    cls = Ip4Prefix if net.version == 4 else Ip6Prefix
    return cls.of(net.prefixlen, net.network_address.packed)


def _address_key(cls: type[Ip4Prefix] | type[Ip6Prefix], key: object) -> PrefixKey:
    """A Python-side key: a key record, a prefix or address as text or `ipaddress` object, or an address
    as an int (IPv4 the number written; IPv6 the 128-bit number)."""
    if isinstance(key, cls):
        return key
    if isinstance(key, str | ipaddress.IPv4Network | ipaddress.IPv6Network):
        out: PrefixKey = prefix(key)
    elif isinstance(key, ipaddress.IPv4Address | ipaddress.IPv6Address):
        out = prefix(ipaddress.ip_network(key))
    elif isinstance(key, int) and not isinstance(key, bool) and 0 <= key < 1 << (8 * cls.address_bytes):
        out = cls.of(8 * cls.address_bytes, key.to_bytes(cls.address_bytes, "big"))
    else:
        raise TypeError(f"not an {'IPv4' if cls is Ip4Prefix else 'IPv6'} prefix or address: {key!r}")
    if not isinstance(out, cls):
        raise TypeError(f"{key!r} is not an {'IPv4' if cls is Ip4Prefix else 'IPv6'} prefix or address")
    return out


class LpmTrie(BpfMap):
    """A longest-prefix-match map: `LpmTrie(u32, u8, max_entries=1024)` for IPv4 prefixes,
    `LpmTrie("ipv6", u8, 1024)` (or `Ip6Prefix`) for IPv6. The kernel's map has BPF_F_NO_PREALLOC.

    Keys are `Ip4Prefix`/`Ip6Prefix` records (see the module). Python-side keys may also be text
    (`"10.0.0.0/8"`, `"10.1.2.3"`), `ipaddress` objects or ints (an address). Reads are lookups:
    `acl["10.1.2.3"]`, `acl.get(...)`, `in`; `del acl[prefix(...)]` removes exactly that prefix.
    `keys()`/`items()` list the stored prefixes.
    """

    kind = MapKind.LPM_TRIE
    kind_name = "LpmTrie"

    def __init__(self, address: object, value: ValueType | type[float] | type[bool], max_entries: int) -> None:
        if address is u32 or address is Ip4Prefix or address in ("ipv4", "ip4"):
            key: type[Ip4Prefix] | type[Ip6Prefix] = Ip4Prefix
        elif address is Ip6Prefix or address in ("ipv6", "ip6"):
            key = Ip6Prefix
        else:
            raise TypeError(f"an LpmTrie's addresses are u32 (IPv4) or 'ipv6', not {address!r}")
        super().__init__(key, value, max_entries)
        self.prefix_type = key
        self.max_prefixlen = 8 * key.address_bytes

    @property
    def address_type(self) -> ScalarType | None:
        """The scalar a program may give where a key goes, for the full-length key of that address (u32:
        an IPv4 address as the DSL reads it); None for IPv6 (the DSL reads an address as two halves)."""
        return u32 if self.prefix_type is Ip4Prefix else None

    @property
    def takes_ipv6_addresses(self) -> bool:
        """An IPv6 trie: `ip6.src`/`ip6.dst` stand for their /128 keys where its key goes."""
        return self.prefix_type is Ip6Prefix

    def key_of_halves(self, hi: int, lo: int) -> Ip6Prefix:
        """The /128 key of an IPv6 address given as its halves (what a program's `acl6.get(ip6.src)` means)."""
        assert self.prefix_type is Ip6Prefix
        return ip6_key(hi, lo)

    def key_of_address(self, address: int) -> PrefixKey:
        """The full-length key of an address given as `address_type` (what a program's `acl.get(ip)` means)."""
        return self.prefix_type.of(self.max_prefixlen, (address & (1 << self.max_prefixlen) - 1).to_bytes(
            self.max_prefixlen // 8, "big"))

    def _raw_key(self, key: object) -> RawValue:
        return _address_key(self.prefix_type, key)

    def _stored(self, key: RawValue) -> PrefixKey:
        assert isinstance(key, self.prefix_type)
        return key.masked()

    def raw_lookup(self, key: RawValue) -> RawValue | None:
        if self._backing is not None:
            return self._backing.lookup(key)
        assert isinstance(key, self.prefix_type)
        if key.length > self.max_prefixlen:
            return None  # the kernel's trie_lookup_elem refuses such a key before walking the trie
        data = key.data
        for length in range(key.length, -1, -1):
            value: RawValue | None = self._data.get(self.prefix_type.of(length, data).masked())
            if value is not None:
                return value
        return None

    def raw_update(self, key: RawValue, value: RawValue) -> bool:
        """Insert or replace a prefix; False when the trie is full (the kernel's ENOSPC) or the prefix is
        longer than the address (EINVAL)."""
        assert isinstance(key, self.prefix_type)
        if key.length > self.max_prefixlen:
            return False
        return super().raw_update(key if self._backing is not None else self._stored(key), value)

    def raw_delete(self, key: RawValue) -> bool:
        assert isinstance(key, self.prefix_type)
        if key.length > self.max_prefixlen:
            return False
        return super().raw_delete(key if self._backing is not None else self._stored(key))

    def raw_keys(self) -> list[RawValue]:
        # The kernel keeps the bits past a prefix as the first update wrote them: compare prefixes.
        return [self._stored(k) for k in super().raw_keys()]

    def longest_match(self, key: object) -> PrefixKey | None:
        """The stored prefix a lookup of `key` finds (None if none matches): from the stored prefixes."""
        want = self._stored(self._raw_key(key))
        if want.length > self.max_prefixlen:
            return None  # as raw_lookup: the kernel finds nothing for a key longer than the address
        best: PrefixKey | None = None
        for k in self.raw_keys():
            assert isinstance(k, Ip4Prefix | Ip6Prefix)
            if k.length <= want.length and self.prefix_type.of(k.length, want.data).masked() == k \
                    and (best is None or k.length > best.length):
                best = k
        return best
