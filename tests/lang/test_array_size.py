"""An array's element count: positionally, as `size=`, or as `max_entries=` (the name every other map
and the kernel's map definitions use, so a user writing it by habit is not met with a TypeError)."""

from __future__ import annotations

import pytest

from pybpfdsl import Array, PerCpuArray, u64


@pytest.mark.parametrize("kind", [Array, PerCpuArray])
def test_the_size_is_given_positionally_as_size_or_as_max_entries(kind: type[Array]) -> None:
    assert kind(u64, 4).max_entries == kind(u64, size=4).max_entries == kind(u64, max_entries=4).max_entries == 4


@pytest.mark.parametrize("kind", [Array, PerCpuArray])
def test_no_size_or_two_sizes_are_refused_with_the_forms_to_write(kind: type[Array]) -> None:
    for bad in ({}, {"size": 2, "max_entries": 2}):
        with pytest.raises(TypeError, match=r"max_entries=16"):
            kind(u64, **bad)  # type: ignore[arg-type]
