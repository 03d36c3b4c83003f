"""`clear()` on an array leaves every element zero, as a freshly loaded program sees it (an array's
elements cannot be deleted, so clearing by deleting keys would change nothing)."""

from __future__ import annotations

from pybpfdsl import Array, PerCpuArray, u32, u64
from pybpfdsl.testing import on_cpu


def test_clear_zeroes_an_array() -> None:
    a = Array(u64, 4)
    a[1] = 7
    a[3] = 9
    a.clear()
    assert [a[i] for i in range(4)] == [0, 0, 0, 0]


def test_clear_zeroes_every_cpus_copy_of_a_per_cpu_array() -> None:
    p = PerCpuArray(u32, 2)
    for cpu in (0, 1, 2):
        with on_cpu(cpu, p):
            p.raw_update(0, 5)
    assert p[0] == 15
    p.clear()
    assert p[0] == 0 and p.per_cpu(0) == [0] * len(p.per_cpu(0))
