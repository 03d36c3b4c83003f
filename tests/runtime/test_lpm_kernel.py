"""The kernel's LPM trie is the oracle: the same inserts, deletes and lookups (full-length and shorter
keys) give the same answers in the kernel's BPF_MAP_TYPE_LPM_TRIE, in `LpmTrie` (pure Python) and in the
bytecode interpreter's map (Hypothesis; issue 16 §4)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfdsl import u32
from pybpfdsl.bpf.abi import MapFlag, MapType
from pybpfdsl.bpf.memory import InterpMap
from pybpfdsl.lang.lpm_trie import Ip4Prefix, LpmTrie
from pybpfdsl.runtime.kernel_map import KernelMap
from pybpfdsl.runtime.libbpf import get_libbpf, kernel_bpf_available
from pybpfdsl.runtime.state_binding import MapBacking

KERNEL, WHY = kernel_bpf_available()
pytestmark = pytest.mark.skipif(not KERNEL, reason=f"needs bpf() in the kernel: {WHY}")
CAPACITY = 16


@pytest.fixture(scope="module")
def kernel_trie() -> Iterator[KernelMap]:
    fd = get_libbpf().map_create(MapType.LPM_TRIE, "lpm_oracle", 8, 4, CAPACITY, map_flags=MapFlag.NO_PREALLOC)
    try:
        yield KernelMap(fd, 8, 4, MapType.LPM_TRIE, name="lpm_oracle")
    finally:
        os.close(fd)


def _key(length: int, address: int) -> Ip4Prefix:
    return Ip4Prefix.of(length, address.to_bytes(4, "big"))


# Addresses from a few /8s, so that prefixes overlap often.
_address = st.builds(lambda hi, lo: hi << 24 | lo, st.sampled_from([10, 11, 192]), st.integers(0, 2**24 - 1))
_operation = st.tuples(st.sampled_from(["update", "update", "delete"]), st.integers(0, 33), _address,
                       st.integers(0, 2**32 - 1))


@settings(max_examples=100, deadline=None)
@given(st.lists(_operation, max_size=30), st.lists(st.tuples(st.integers(0, 32), _address), min_size=1,
                                                    max_size=10))
def test_lookups_agree_with_the_kernels_trie(kernel_trie: KernelMap, operations: list[tuple[str, int, int, int]],
                                             lookups: list[tuple[int, int]]) -> None:
    for raw in list(kernel_trie):  # the module's map, emptied for each example
        kernel_trie.delete(raw)
    kernel = LpmTrie(u32, u32, CAPACITY)
    kernel.bind(MapBacking(kernel_trie, Ip4Prefix, u32))
    python = LpmTrie(u32, u32, CAPACITY)
    interp = InterpMap("t", MapType.LPM_TRIE, 8, 4, CAPACITY)
    for op, length, address, value in operations:
        key = _key(length, address)
        if op == "update":
            ok = kernel.raw_update(key, value)
            assert python.raw_update(key, value) == ok  # a prefix over 32 bits or a full trie: refused by all
            assert (interp.update(key.to_bytes(), value.to_bytes(4, "little")) == 0) == ok
        else:
            gone = kernel.raw_delete(key)
            assert python.raw_delete(key) == gone
            assert (interp.delete(key.to_bytes()) == 0) == gone
    assert sorted(map(str, kernel.keys())) == sorted(map(str, python.keys()))
    for length, address in lookups:
        key = _key(length, address)
        want = kernel.raw_lookup(key)
        region = interp.lookup(key.to_bytes())
        assert python.raw_lookup(key) == want
        assert (None if region is None else int.from_bytes(region.data, "little")) == want
    kernel.unbind()
