"""Loops entered from many paths: the kernel explores the loop once per entry state it cannot prune, and
the closed-form estimate (``loops.kernel_states_at``) counts one.

Issue 13's payload sum, compiled as the backend compiles it since 90e9906 (each packet load reads through
the pointer its bounds check proved), enters its loop from every header-parsing path; the kernel gives up
on ``range(28)`` and above ("BPF program is too large") where the closed form said 2,260 to 894,345.
Estimates from ``CONFIRM_ABOVE`` up are now checked by the simulated exploration. The bytes are kept as
compiled then, so the test does not depend on the compiler of the day.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pybpfdsl.bpf.abi import BPF_COMPLEXITY_LIMIT_INSNS
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_object
from tests.verify.corpus.differential import kernel_accepts

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

DATA = Path(__file__).parent / "data"


def _sum_payload(n: int) -> bytes:
    """``total += pkt.payload[i]`` for ``i in range(n)``, then ``XDP_DROP if total == 7`` (see loop_programs)."""
    return (DATA / f"sum_payload_{n}.o").read_bytes()


def test_a_loop_entered_from_many_paths_past_the_kernels_limit_is_refused() -> None:
    report = verify_object(_sum_payload(32), "prog")
    assert [f.code for f in report.errors] == [Code.COMPLEXITY], report.format()
    assert "bpf_loop" in report.errors[0].message
    assert report.analysis is not None and report.analysis.kernel_estimate > BPF_COMPLEXITY_LIMIT_INSNS


@needs_kernel
def test_the_kernel_refuses_it_too() -> None:
    ok, log = kernel_accepts(_sum_payload(32), "prog")
    assert not ok and "too large" in log, log


@needs_kernel
@pytest.mark.xfail(strict=True, reason="known unsafe accept: the kernel passes 1,000,000 instructions on "
                   "range(27) while the closed form says 69,615 and the simulated exploration ends at 31,628")
def test_range_27_is_refused_as_the_kernel_refuses_it() -> None:
    ok, log = kernel_accepts(_sum_payload(27), "prog")
    assert not ok and "too large" in log, log
    assert not verify_object(_sum_payload(27), "prog").ok
