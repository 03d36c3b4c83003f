"""Programs that redirect pass our verifier as the kernel's (helpers 23 and 51 on a DEVMAP and a CPUMAP)
and are proven equal to their IR: the action and, for XDP_REDIRECT, the target."""

from __future__ import annotations

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis.api import verify_program
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from tests.differential.redirect_programs import by_ttl

KERNEL, _ = kernel_bpf_available()


def test_redirect_program_passes_our_verifier() -> None:
    report = verify_program(by_ttl.compile(prove=False).subject)
    assert report.ok, report.format()


def test_redirect_program_is_proven() -> None:
    result = prove_compiled(by_ttl.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()


def test_fib_lookup_program_passes_our_verifier() -> None:
    from tests.differential.test_fib_lookup import route

    report = verify_program(route.compile(prove=False).subject)
    assert report.ok, report.format()
