"""The prover's verdicts against the kernel's, on a fixed sample of single-instruction mutants.

Original and mutant run in the kernel on the same packets from the same map and global state
(`ground_truth.py`); every mutant the kernel runs differently must get "counterexample" from
`prove_objects`: a "proven" there is a false proof, and fails this test. Unknowns, false and
unconfirmed counterexamples are reported in the terminal summary. The full run, every mutant of every
subject: `python benchmarks/prove_mutants.py`.
"""

from __future__ import annotations

import os

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from tests.verify.corpus.c_corpus import clang
from tests.verify.equivalence import ground_truth as gt

# Small realistic programs (a parser with counters and globals, an ICMP responder that rewrites the
# packet, a port remapper with a per-CPU array), one clocked by ktime, and one example of ours.
C_SUBJECTS = ("gt_parse_count", "gt_icmp_echo", "gt_port_remap", "ok_rate_limit")
EXAMPLE_SUBJECTS = ("port_acl_filter",)
PER_KIND = 2
"""Mutants of each kind in the sample (`ground_truth.spread`: from different subjects where they have
that kind, chosen by a hash of the mutant's name, the same ones on every run): every kind of edit, 24
mutants where a rate of 8% took 70 and left two kinds out. The full run: `benchmarks/prove_mutants.py`."""

# Tests sharing the module's subjects run in one xdist worker (see tests/conftest.py).
pytestmark = pytest.mark.xdist_group("ground_truth")


def _kernel() -> None:
    available, reason = kernel_bpf_available()
    if not available:
        pytest.skip(f"kernel bpf() unavailable: {reason}")


@pytest.fixture(scope="module")
def subjects() -> list[gt.Subject]:
    _kernel()
    if clang() is None:
        pytest.skip("clang is not installed (the clang subjects are built at test time)")
    paths = {os.path.basename(p)[:-2]: p for p in gt.c_sources()}
    out = [gt.clang_subject(paths[name]) for name in C_SUBJECTS]
    out += gt.example_subjects(EXAMPLE_SUBJECTS)
    assert {s.name for s in out} == {*C_SUBJECTS, *EXAMPLE_SUBJECTS}
    return out


@pytest.fixture(scope="module")
def frames() -> list[bytes]:
    return gt.packets()


def test_no_false_proofs_on_the_sample(subjects: list[gt.Subject], frames: list[bytes],
                                       request: pytest.FixtureRequest) -> None:
    every = [m for s in subjects for m in gt.mutants_of(s)]
    chosen = gt.spread(every, PER_KIND)
    assert {m.kind for m in chosen} == {m.kind for m in every}
    judgements: list[gt.Judgement] = []
    for s in subjects:
        judgements += gt.judge_all(s, [m for m in chosen if m.subject.name == s.name], frames)
    summary = gt.table(judgements)
    lines = [", ".join(f"{k} {v}" for k, v in summary.items())]
    lines += [f"{j.outcome}: {j.name} ({j.description}): {j.reason[:120]}" for j in judgements
              if j.outcome not in (gt.CAUGHT, gt.AGREE_PROVEN, gt.REFUSED)]
    request.node.user_properties.append(("summary_section", ("prover vs kernel (mutants)", "\n".join(lines))))
    print("\n".join(lines))
    assert summary["kernel_different"] > 0  # the sample exercises the requirement at all
    false = [f"{j.name} ({j.description}): {j.witness}" for j in judgements if j.outcome == gt.FALSE_PROVEN]
    assert not false, "proven, but the kernel runs them differently:\n" + "\n".join(false)
    # A counterexample is one only where its inputs run differently in the kernel too (clock and random
    # results given as constants in place of the calls).
    wrong = [f"{j.name} ({j.description}): {j.reason}" for j in judgements if j.outcome == gt.FALSE_CEX]
    assert not wrong, "counterexamples the kernel does not confirm:\n" + "\n".join(wrong)


def test_the_kernel_oracle_sees_no_difference_between_an_object_and_itself(subjects: list[gt.Subject],
                                                                             frames: list[bytes]) -> None:
    # Every subject, the clocked one included: what the oracle calls different must really be.
    for s in subjects:
        prepared = gt.Subjects(s, frames)
        a, b = gt.KernelRunner(s.elf, s.function), gt.KernelRunner(s.elf, s.function)
        try:
            assert gt.kernel_difference(prepared, a, b) is None, s.name
        finally:
            a.close()
            b.close()


def test_the_kernel_oracle_sees_a_changed_action(subjects: list[gt.Subject], frames: list[bytes]) -> None:
    # The last return of gt_parse_count (XDP_PASS for every parsed non-ICMP frame) made XDP_TX.
    s = next(x for x in subjects if x.name == "gt_parse_count")
    mutant = [m for m in gt.mutants_of(s) if m.kind == "changed return action" and m.description == "w0 = 2 → 3"][-1]
    prepared = gt.Subjects(s, frames)
    a, b = gt.KernelRunner(s.elf, s.function), gt.KernelRunner(mutant.elf, s.function)
    try:
        witness = gt.kernel_difference(prepared, a, b)
    finally:
        a.close()
        b.close()
    assert witness is not None and witness.fields == ("action",), witness


def test_a_counterexample_on_clock_readings_is_confirmed_by_the_kernel(subjects: list[gt.Subject],
                                                                     frames: list[bytes]) -> None:
    # ok_rate_limit's `(now - last) / 1000000` made `% 1000000`: the counterexample's clock reading is
    # given to both objects in place of the call (`with_helper_results`), and the kernel differs too.
    s = next(x for x in subjects if x.name == "ok_rate_limit")
    mutant = next(m for m in gt.mutants_of(s) if m.kind == "changed ALU op" and m.description == "DIV → MOD")
    [judgement] = gt.judge_all(s, [mutant], frames)
    assert judgement.outcome == gt.CAUGHT and judgement.cex_check == "confirmed", judgement
