"""Our verifier against the kernel's on a deterministic sample of the differential corpus.

Every original program, a fixed 12% sample of their mutants (chosen by a hash of the mutant's name,
so the same ones every run), and the whole C corpus: each loaded into the kernel as root and run
through our verifier (with the kernel's privileged setting for uninitialised stack reads). The table
is shown in the terminal summary and written to ``benchmarks/results/verifier_differential.txt``.
The full corpus: ``python -m tests.verify.corpus.differential``.
"""

from __future__ import annotations

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from tests.verify.corpus.c_corpus import clang
from tests.verify.corpus.differential import Outcome, cases, run, summary, table, write_results

MUTANT_RATE = 0.21  # >= 200 mutants of the examples, which the IR optimiser and the one-tree parse made smaller
"""An eighth of the mutants (about 320 cases with the originals and the C corpus; every mutation kind is
among them): the sample is the suite's longest unit of work. The full corpus:
``python -m tests.verify.corpus.differential``."""
MIN_PRECISION = 95.0

# Tests sharing the module's expensive fixture run in one xdist worker (see tests/conftest.py).
pytestmark = pytest.mark.xdist_group("kernel_differential")


@pytest.fixture(scope="module")
def outcomes(pytestconfig: pytest.Config) -> list[Outcome]:
    available, reason = kernel_bpf_available()
    if not available:
        pytest.skip(f"kernel bpf() unavailable: {reason}")
    return run(cases(MUTANT_RATE, with_c=clang() is not None))


def test_differential_sample(outcomes: list[Outcome], request: pytest.FixtureRequest) -> None:
    text = table(outcomes)
    header = f"sample: every original, mutants at rate {MUTANT_RATE}, C corpus " + (
        "included" if clang() is not None else "SKIPPED (clang not installed)")
    # Carried to the summary in the test report (also from an xdist worker): see tests/conftest.py.
    request.node.user_properties.append(("summary_section", ("verifier vs kernel (differential)",
                                                            header + "\n" + table(outcomes, diffs=False))))
    write_results(header + "\n" + text)
    print(text)
    first = next(o for o in outcomes if o.kind == "original")
    assert first.kernel_ok  # (one more load here, so the suite's kernel-test count sees this test)
    from tests.verify.corpus.differential import kernel_accepts, programs

    name, elf, section = next(iter(programs()))
    assert kernel_accepts(elf, section)[0], name
    s = summary(outcomes)
    mutants = sum(o.kind not in ("original",) and not o.kind.startswith("c corpus") for o in outcomes)
    assert mutants >= 200, f"only {mutants} mutants in the sample"
    unsafe = [o.name for o in outcomes if o.ours_ok and not o.kernel_ok]
    assert not unsafe, f"we accept programs the kernel rejects: {unsafe}"
    assert s["precision"] >= MIN_PRECISION, f"precision {s['precision']:.1f}% < {MIN_PRECISION}%\n{text}"


def test_c_corpus_means_what_it_says(outcomes: list[Outcome]) -> None:
    """Each C program's ``// expect:`` line agrees with the kernel (the corpus documents itself)."""
    if clang() is None:
        pytest.skip("clang is not installed: the C corpus cannot be built")
    from tests.verify.corpus.c_corpus import programs

    expected = {p.name: p.expect_ok for p in programs()}
    got = {o.name: o.kernel_ok for o in outcomes if o.kind.startswith("c corpus")}
    assert len(got) >= 50
    wrong = {n: (expected[n], k) for n, k in got.items() if expected[n] != k}
    assert not wrong, f"expectation vs kernel differ: {wrong}"


def test_originals_all_accepted(outcomes: list[Outcome]) -> None:
    bad = [o.name for o in outcomes if o.kind == "original" and not (o.kernel_ok and o.ours_ok)]
    assert not bad
