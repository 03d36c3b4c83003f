"""Read-only global data (``.rodata``): libbpf creates its map read-only for programs and freezes it, so the
kernel refuses any store into it (``write into map forbidden``); ``.data`` stays writable.

Our verifier modelled ``.rodata`` as a writable one-entry array and accepted the store: an unsafe accept.
"""

from __future__ import annotations

import os

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_object
from tests.verify.corpus.c_corpus import HERE, build, clang
from tests.verify.corpus.differential import kernel_accepts

KERNEL, WHY = kernel_bpf_available()


def _built(name: str) -> bytes:
    cc = clang()
    if cc is None:
        pytest.skip("clang is not installed")
    return build(os.path.join(HERE, name), cc)


def test_a_store_into_rodata_is_refused() -> None:
    report = verify_object(_built("bad_rodata_store.c"), "prog", allow_uninit_stack_reads=True)
    assert any(f.code == Code.MAP_BOUNDS and ".rodata" in f.message and "read-only" in f.message
               for f in report.errors), report.format()


def test_a_store_into_data_is_accepted() -> None:
    assert verify_object(_built("data_store.c"), "prog", allow_uninit_stack_reads=True).ok


@pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")
def test_the_kernel_agrees() -> None:
    refused, log = kernel_accepts(_built("bad_rodata_store.c"), "xdp")
    assert not refused and "write into map forbidden" in log, log
    assert kernel_accepts(_built("data_store.c"), "xdp")[0]


def test_a_branch_on_rodata_holding_zero_is_dead() -> None:
    # The kernel reads a load at a constant offset of a frozen map as its number: the unchecked packet read
    # behind `if (debug)` with `const volatile debug = 0` is never verified (xdp-bench's `if (rxq_stats)`).
    assert verify_object(_built("rodata_dead_branch.c"), "prog", allow_uninit_stack_reads=True).ok


def test_a_branch_on_rodata_holding_one_is_checked() -> None:
    report = verify_object(_built("bad_rodata_live_branch.c"), "prog", allow_uninit_stack_reads=True)
    assert any(f.code == Code.PACKET_BOUNDS for f in report.errors), report.format()


@pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")
def test_the_kernel_agrees_on_rodata_branches() -> None:
    assert kernel_accepts(_built("rodata_dead_branch.c"), "xdp")[0]
    refused, log = kernel_accepts(_built("bad_rodata_live_branch.c"), "xdp")
    assert not refused, log
