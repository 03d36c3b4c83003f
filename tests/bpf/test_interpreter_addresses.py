"""The interpreter's fake addresses lie where the kernel's objects do (`KERNEL_ADDRESSES`), however many
regions a process creates: the prover decides a pointer comparison only when it is the same for every
such address, and a replay must agree."""

from __future__ import annotations

import pytest

from pybpfdsl.bpf import memory
from pybpfdsl.bpf.abi import MapType
from pybpfdsl.bpf.memory import KERNEL_ADDRESSES, InterpMap


def test_fake_addresses_stay_among_the_kernels_when_the_slots_run_out(monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = KERNEL_ADDRESSES
    # The last free slots, as after half a million regions (a big array map has one per element).
    monkeypatch.setattr(memory, "_next_base", [memory._BASE_SLOTS - 50])
    bases = [region.base for region in InterpMap("big", MapType.ARRAY, 4, 8, 100).entries.values()]
    assert all(low <= b and b + (1 << 16) <= high for b in bases)
    assert len(set(bases)) == len(bases)
