"""Errors past a bounded loop are re-checked from the loop's unrolled exits, with partitions.

xdp-filter's TCP filters built at -O1 walk IPv6 extension headers in a loop of at most six iterations,
then check the TCP header and set ``ok = 0`` where the check failed; the TCP ports are read where
``ok`` is 1. The kernel loads both filters. Our plain analysis (no partitions) re-checks what follows
the loop from each unrolled exit (``driver._past_loops``), and when it did so without partitions it
joined the failed and the passed check, so it flagged the port read through a number; the partitioned
analysis flagged it too, through its widened loop, and an instruction both flag is refused.
"""

from __future__ import annotations

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import verify_object
from tests.verify.corpus.c_corpus import clang
from tests.verify.corpus.third_party_corpus import (
    PROJECTS,
    _fingerprint,
    build,
    kernel_verdict,
    missing_headers,
)

WHY = missing_headers()


def _filter(source: str) -> bytes:
    project = next(p for p in PROJECTS if p.name == "xdp-tools")
    cc = clang()
    assert cc is not None
    return build(project, source, "O1", cc, _fingerprint(project))


@pytest.mark.skipif(WHY is not None, reason=f"the third-party corpus cannot be built: {WHY}")
@pytest.mark.parametrize("function", ["xdpfilt_alw_tcp", "xdpfilt_dny_tcp"])
def test_a_tcp_filter_built_at_o1_is_accepted(function: str) -> None:
    elf = _filter(f"xdp-filter/{function}.c")
    if kernel_bpf_available()[0]:
        verdict = kernel_verdict(elf, function)
        assert verdict.ok, verdict.message
    report = verify_object(elf, function, allow_uninit_stack_reads=True)
    assert report.ok, report.format()
