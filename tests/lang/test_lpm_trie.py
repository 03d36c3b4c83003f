"""LpmTrie from Python: longest prefix wins, as the kernel's LPM trie; keys in the kernel's layout."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfdsl import u32
from pybpfdsl.bpf.abi import MapType
from pybpfdsl.bpf.memory import InterpMap
from pybpfdsl.lang.lpm_trie import Ip4Prefix, Ip6Prefix, LpmTrie, ip4_key, ip6_key, prefix
from pybpfdsl.lang.state import MapKind


def test_keys_are_the_kernel_layout_prefix_length_then_network_order_bytes() -> None:
    assert prefix("10.1.0.0/16").to_bytes() == (16).to_bytes(4, "little") + bytes([10, 1, 0, 0])
    assert Ip4Prefix.size() == 8 and Ip6Prefix.size() == 20
    assert ip4_key(0x0A010203) == prefix("10.1.2.3/32")  # the number pkt.ipv4.src reads, as written
    assert ip6_key(0x20010DB8_00000000, 1) == prefix("2001:db8::1/128")
    assert str(prefix("2001:db8::/32")) == "2001:db8::/32" and repr(prefix("10.0.0.0/8")) == "prefix('10.0.0.0/8')"
    assert MapKind.LPM_TRIE.value == MapType.LPM_TRIE


def test_the_longest_matching_prefix_wins() -> None:
    acl = LpmTrie(u32, u32, 16)
    acl[prefix("10.0.0.0/8")] = 1
    acl["10.1.0.0/16"] = 2
    acl[ipaddress.ip_network("0.0.0.0/0")] = 9
    assert acl.get("10.1.2.3") == 2 and acl["10.200.0.1"] == 1 and acl.get(0x0B000001) == 9
    assert acl.get(prefix("10.0.0.0/12")) == 1  # a lookup with a shorter key sees only prefixes up to it
    assert sorted(map(str, acl.keys())) == ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16"]
    del acl["10.1.0.0/16"]
    assert acl["10.1.2.3"] == 1
    with pytest.raises(KeyError):
        del acl["10.1.0.0/16"]  # deletion is exact


def test_ipv6_and_errors() -> None:
    acl6 = LpmTrie("ipv6", u32, 4)
    acl6["2001:db8::/32"] = 5
    assert acl6.get("2001:db8::1") == 5 and acl6.get("2001:db9::1") is None
    with pytest.raises(TypeError):
        acl6["10.0.0.0/8"] = 1  # an IPv4 prefix in an IPv6 trie
    with pytest.raises(TypeError):
        LpmTrie("ipx", u32, 4)
    full = LpmTrie(u32, u32, 1)
    full["10.0.0.0/8"] = 1
    full["10.0.0.0/8"] = 2  # replacing fits
    with pytest.raises(KeyError):
        full["11.0.0.0/8"] = 1  # a new prefix does not (the kernel's ENOSPC)
    assert not full.raw_update(Ip4Prefix(33, 10, 0, 0, 0), 1)  # longer than the address: EINVAL


def _reference(entries: dict[tuple[int, int], int], address: int, bits: int) -> int | None:
    """Plain longest-prefix match: the entry of greatest length whose leading bits equal the address's."""
    best: tuple[int, int] | None = None
    for (length, network), value in entries.items():
        matches = length == 0 or address >> (bits - length) == network >> (bits - length)
        if matches and (best is None or length > best[0]):
            best = (length, value)
    return None if best is None else best[1]


_prefixes = st.lists(st.tuples(st.integers(0, 32), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
                     max_size=24)


@settings(max_examples=200, deadline=None)
@given(_prefixes, st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8), st.integers(0, 32))
def test_lookup_is_the_longest_prefix_match(inserts: list[tuple[int, int, int]], addresses: list[int],
                                            lookup_length: int) -> None:
    """Pure Python and the bytecode interpreter's trie both give what a plain scan gives, for lookups
    with full and shorter keys; inserting a prefix again replaces it."""
    trie = LpmTrie(u32, u32, 64)
    interp = InterpMap("t", MapType.LPM_TRIE, 8, 4, 64)
    reference: dict[tuple[int, int], int] = {}
    for length, network, value in inserts:
        network = network >> (32 - length) << (32 - length) if length else 0
        key = Ip4Prefix.of(length, network.to_bytes(4, "big"))
        trie.raw_update(key, value)
        assert interp.update(key.to_bytes(), value.to_bytes(4, "little")) == 0
        reference[(length, network)] = value
    for address in addresses:
        for length in (32, lookup_length):
            masked = {k: v for k, v in reference.items() if k[0] <= length}
            want = _reference(masked, address, 32)
            key = Ip4Prefix.of(length, address.to_bytes(4, "big"))
            assert trie.raw_lookup(key) == want
            region = interp.lookup(key.to_bytes())
            assert (None if region is None else int.from_bytes(region.data, "little")) == want
    assert len(trie) == len(reference) == len(interp.entries)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 128), st.integers(0, 2**128 - 1)), max_size=12),
       st.integers(0, 2**128 - 1))
def test_ipv6_lookup_is_the_longest_prefix_match(inserts: list[tuple[int, int]], address: int) -> None:
    trie = LpmTrie("ipv6", u32, 64)
    reference: dict[tuple[int, int], int] = {}
    for i, (length, network) in enumerate(inserts):
        network = network >> (128 - length) << (128 - length) if length else 0
        trie.raw_update(Ip6Prefix.of(length, network.to_bytes(16, "big")), i)
        reference[(length, network)] = i
    assert trie.get(address) == _reference(reference, address, 128)
