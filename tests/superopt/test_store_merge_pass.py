"""The store-merging pass in the optimizer (`optimizer._merge_pass`, before the search passes): the MAC swap of
tests/superopt/swap.c, 50 slots, shrinks to 20, proven, verified and loaded."""

from __future__ import annotations

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import optimize_object
from tests.superopt.conftest import _build

_BPF_OK, _ = kernel_bpf_available()


def test_the_mac_swap_shrinks_proven_and_loaded(tmp_path_factory: pytest.TempPathFactory) -> None:
    swap_elf = _build(tmp_path_factory, "swap")
    result = optimize_object(swap_elf, proposals=600, kernel=_BPF_OK)
    assert result.slots("before")["xdp"] == 50
    assert result.slots("after")["xdp"] <= 20
    assert (result.verifier.status, result.proof.status) == ("ok", "ok")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")
