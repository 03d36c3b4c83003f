"""Others' clang-built XDP programs (xdp-tutorial, xdp-tools) and their mutants: the kernel against ours.

A fixed sample, so the suite stays quick: every program of the -O2 build and, from the smaller ones, a
deterministic share of their single-instruction mutants, plus every mutant in ``ONCE_UNSAFE``. Each is
loaded into the kernel alone (the oracle) and verified by ours. The worst bug is an unsafe accept (the
kernel refuses, we accept): none may appear beyond the ones listed in ``KNOWN_UNSAFE``, each of which
has its own strict xfail until the verifier is fixed. The share of kernel-accepted programs we accept
is written to ``benchmarks/results/verifier_corpus_sample.txt``.
The full run, every build and every mutant: ``benchmarks/verifier_corpus.py``.
"""

from __future__ import annotations

import os

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from tests.verify.corpus.third_party_corpus import (
    PROJECTS,
    Outcome,
    ThirdPartyProgram,
    kernel_verdict,
    missing_headers,
    mutant_cases,
    original,
    programs,
    run,
    sources,
)
from tests.verify.corpus.third_party_report import report

BUILD = ("O2",)
MUTANT_RATE = 0.12
MUTATE_UP_TO = 150
"""Mutants are sampled from programs of at most this many instructions (their analyses are quick)."""
RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "benchmarks", "results",
                       "verifier_corpus_sample.txt")
ONCE_UNSAFE = ("xdp-tutorial/packet-solutions/xdp_prog_kern_03.c:xdp_icmp_echo_func[O2]@81:offset+1",)
"""Mutants we once accepted while the kernel refused them: always in the sample (regressions)."""
KNOWN_UNSAFE: dict[str, str] = {}
"""Unsafe accepts found and reported, by case name: the reason (each is a strict xfail below)."""


def _small(p: ThirdPartyProgram) -> bool:
    return len(BpfElf.from_bytes(p.elf).program(p.function).instructions) <= MUTATE_UP_TO


@pytest.fixture(scope="module")
def corpus() -> list[ThirdPartyProgram]:
    why = missing_headers()
    if why:
        pytest.skip(f"the third-party corpus cannot be built: {why}")
    return programs(BUILD)


@pytest.fixture(scope="module")
def outcomes(corpus: list[ThirdPartyProgram]) -> list[Outcome]:
    available, reason = kernel_bpf_available()
    if not available:
        pytest.skip(f"kernel bpf() unavailable: {reason}")
    cases = [original(p) for p in corpus]
    for p in corpus:
        if _small(p):
            cases += mutant_cases(p, MUTANT_RATE)
    chosen = {c.name for c in cases}
    for p in corpus:
        if any(n.startswith(p.name + "@") for n in ONCE_UNSAFE):
            cases += [c for c in mutant_cases(p) if c.name in ONCE_UNSAFE and c.name not in chosen]
    return run(cases)


def test_every_source_builds_into_xdp_programs(corpus: list[ThirdPartyProgram]) -> None:
    """Each committed source compiles with the system's clang and libbpf headers and has an XDP program."""
    built = {(p.corpus, p.source) for p in corpus}
    expected = {(proj.name, s) for proj in PROJECTS for s in sources(proj)}
    assert expected - built == set()
    assert len(corpus) >= 100


def test_no_unsafe_accepts(outcomes: list[Outcome], request: pytest.FixtureRequest) -> None:
    text, _ = report(outcomes, f"sample: build {BUILD[0]}, every program; mutants at rate {MUTANT_RATE} of "
                               f"programs of <= {MUTATE_UP_TO} instructions")
    request.node.user_properties.append(("summary_section", ("verifier vs kernel (third-party XDP corpus)",
                                                            text.split("\n\nFALSE ALARMS")[0])))
    with open(RESULTS, "w") as f:
        f.write(text + "\n")
    mutants = sum(o.kind != "original" for o in outcomes)
    assert mutants >= 200, f"only {mutants} mutants in the sample"
    assert set(ONCE_UNSAFE) <= {o.name for o in outcomes}
    unsafe = {o.name: o.kernel.message for o in outcomes if o.unsafe_accept and o.name not in KNOWN_UNSAFE}
    assert not unsafe, f"we accept programs the kernel refuses: {unsafe}"


def test_acceptance_of_kernel_accepted_programs_is_recorded(outcomes: list[Outcome]) -> None:
    """The share is written to the results file (the goal, >= 95%, is not asserted yet)."""
    accepted = [o for o in outcomes if o.kind == "original" and o.kernel.ok]
    assert len(accepted) >= 90  # the kernel loads nearly all of them: the corpus is built and loaded right
    with open(RESULTS) as f:
        assert "accept%" in f.read()


def test_the_tutorials_failing_examples_are_refused(outcomes: list[Outcome]) -> None:
    """experiment01-tailgrow's xdp_prog_fail{1,2,3}.c are the tutorial's examples of what the kernel refuses."""
    fails = [o for o in outcomes if o.kind == "original" and "xdp_prog_fail" in o.program.source]
    assert len(fails) == 3
    assert [(o.kernel.ok, o.ours_ok) for o in fails] == [(False, False)] * 3
    again = kernel_verdict(fails[0].program.elf, fails[0].program.function)  # (here, so the suite counts it)
    assert not again.ok and "outside of the packet" in again.message


if KNOWN_UNSAFE:
    @pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=r))
                                      for n, r in KNOWN_UNSAFE.items()])
    def test_known_unsafe_accept(outcomes: list[Outcome], name: str) -> None:
        found = [o for o in outcomes if o.name == name]
        assert found and not found[0].unsafe_accept
