"""The default number of search passes: a fourth pass, with its windows cut where the first pass cut them,
on the third pass's output, finds what the shifted cuts of the second and third left, and a fifth (cut
like the second) what the fourth's rewrites made reachable (clang's MAC swap through the stack: 50 slots,
23 after three passes, 20 after four and five, with its byte stores merged run by run first, `store_merge`),
and each output is proven like the rest."""

from __future__ import annotations

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import optimize_object
from tests.superopt.conftest import _build

_BPF_OK, _ = kernel_bpf_available()


@pytest.fixture(scope="module")
def swap_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _build(tmp_path_factory, "swap")


def test_the_default_passes_shrink_the_mac_swap_to_20_slots_proven(swap_elf: bytes) -> None:
    result = optimize_object(swap_elf, proposals=600, kernel=_BPF_OK)
    assert result.slots("before")["xdp"] == 50
    assert result.slots("after")["xdp"] <= 20
    assert (result.verifier.status, result.proof.status) == ("ok", "ok")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")
    assert result.kept_passes >= 2


def test_fewer_passes_leave_more(swap_elf: bytes) -> None:
    # What the fourth pass adds (a test of the subject: were fewer enough, the test above would
    # say nothing).
    assert optimize_object(swap_elf, proposals=600, passes=3, kernel=False).slots("after")["xdp"] > 20
