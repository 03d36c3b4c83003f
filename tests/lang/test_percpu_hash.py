"""PerCpuHashMap and LruPerCpuHashMap from Python: a program's CPU sees its copy; Python sees the sum."""

from __future__ import annotations

import pytest

from pybpfdsl import u32, u64
from pybpfdsl.bpf.abi import MapType
from pybpfdsl.lang.percpu_hash import LruPerCpuHashMap, PerCpuHashMap
from pybpfdsl.lang.state import MapKind


def test_each_cpu_has_its_copy_and_python_sees_the_sum() -> None:
    m = PerCpuHashMap(u32, u64, 2)
    m[1] = 5  # CPU 0
    m.current_cpu = 3
    assert m.raw_lookup(1) == 0  # a key is present on every CPU; this CPU's copy starts at zero
    m.raw_update(1, 7)
    m.raw_update(2, 1)  # a new key: this CPU's copy, zero on the others
    assert m[1] == 12 and m.per_cpu(1) == [5, 7] and m.per_cpu(2) == [0, 1]
    assert not m.raw_update(3, 1)  # full
    assert dict(m.items()) == {1: 12, 2: 1} and m.get(9, "none") == "none"
    m[1] = 4  # from Python: CPU 0 holds it, the others zero
    assert m.per_cpu(1) == [4, 0]
    del m[1]
    assert 1 not in m and len(m) == 1
    with pytest.raises(KeyError):
        m.per_cpu(1)
    assert (MapKind.PERCPU_HASH.value, MapKind.LRU_PERCPU_HASH.value) == (MapType.PERCPU_HASH,
                                                                          MapType.LRU_PERCPU_HASH)


def test_the_lru_variant_evicts_the_least_recently_used_key() -> None:
    m = LruPerCpuHashMap(u32, u64, 2)
    m.raw_update(1, 1)
    m.raw_update(2, 2)
    m.raw_lookup(1)
    assert m.raw_update(3, 3)
    assert sorted(m.keys()) == [1, 3]  # type: ignore[type-var]
    saved = m.save()
    m.clear()
    m.restore(saved)
    assert m[3] == 3
