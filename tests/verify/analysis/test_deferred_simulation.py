"""The simulation of the kernel's exploration of a program without loops (as costly as the kernel's own work)
runs only when the verdict depends on it: a program refused for another reason is refused without it, and
one that would be accepted is still refused where the simulation passes the kernel's limit."""

from __future__ import annotations

from pybpfdsl.bpf.abi import BPF_COMPLEXITY_LIMIT_INSNS
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.opcodes import EXIT, PRANDOM, add_imm, jeq_imm, mov, mov_reg

BAD_READ = Instruction(0x79, 0, 3, 0, 0)
"""``r0 = *(u64 *)(r3 + 0)`` with r3 never written: refused whatever else the program does."""


def _bits(n: int, test_sum: bool, bad: bool) -> list[Instruction]:
    """``2**n`` paths, each adding its bits to a sum (as in test_loop_free_cost.py); ``test_sum``: a jump on
    the sum, which keeps the kernel from pruning any of them; ``bad``: ends with a read through an
    uninitialised register."""
    code = [PRANDOM, mov_reg(6, 0), mov(7, 0)]
    for k in range(n):
        code += [mov_reg(1, 6), Instruction(0x57, 1, 0, 0, 1 << k), jeq_imm(1, 0, 1), add_imm(7, 1 << k)]
    if test_sum:
        code += [jeq_imm(7, 3, 1), mov(6, 1)]
    code += [BAD_READ] if bad else []
    return [*code, mov(0, 2), EXIT]


def test_a_program_refused_anyway_is_not_simulated() -> None:
    report = verify_instructions(_bits(20, True, bad=True))
    assert not report.ok
    assert {f.code for f in report.findings if f.is_error} == {Code.UNINIT_REG}, report.findings
    assert report.analysis is not None
    # the bound that called for the simulation stands for the kernel's work (no simulated steps were spent)
    assert report.analysis.kernel_estimate > BPF_COMPLEXITY_LIMIT_INSNS
    assert report.analysis.processed < 10_000


def test_a_program_otherwise_accepted_is_simulated_and_refused_past_the_limit() -> None:
    report = verify_instructions(_bits(20, True, bad=False))
    assert [f.code for f in report.findings if f.is_error] == [Code.COMPLEXITY], report.findings
    assert report.analysis is not None and report.analysis.kernel_estimate > BPF_COMPLEXITY_LIMIT_INSNS


def test_a_program_otherwise_accepted_is_simulated_and_accepted_within_it() -> None:
    report = verify_instructions(_bits(20, False, bad=False))
    assert report.ok, report.findings
    assert report.analysis is not None
    assert 0 < report.analysis.kernel_estimate <= BPF_COMPLEXITY_LIMIT_INSNS
