"""The kernel's work for programs without loops: a bound where the paths are few, the simulated exploration
where they are not, and a refusal where that passes the limit, as the kernel's own does."""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.abi import BPF_COMPLEXITY_LIMIT_INSNS
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from pybpfdsl.verify.analysis.cfg import build_cfg
from pybpfdsl.verify.analysis.path_counts import path_bound
from pybpfdsl.verify.analysis.transfer import Env
from tests.verify.analysis.kernel_oracle import kernel_verdict
from tests.verify.analysis.opcodes import EXIT, PRANDOM, add_imm, jeq_imm, mov, mov_reg

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")


def _bits(n: int, test_sum: bool) -> list[Instruction]:
    """``sum`` of the bits of a random number that are set, bit by bit (``n`` two-way jumps, ``2**n`` paths),
    then, if ``test_sum``, a jump on the sum: the kernel then tells every path's sum apart and prunes none."""
    code = [PRANDOM, mov_reg(6, 0), mov(7, 0)]
    for k in range(n):
        code += [mov_reg(1, 6), Instruction(0x57, 1, 0, 0, 1 << k), jeq_imm(1, 0, 1), add_imm(7, 1 << k)]
    code += [mov(0, 2)]
    if test_sum:
        code += [jeq_imm(7, 3, 1), mov(0, 1)]
    return [*code, EXIT]


def _bound(code: list[Instruction]) -> int:
    env = Env(tuple(code), {i: i for i in range(len(code))}, list(range(len(code))))
    return path_bound(build_cfg(env))


def test_the_path_bound_counts_each_instruction_once_per_path() -> None:
    assert _bound(_bits(0, False)) == 5
    # one path to the bit's test (3 + 3), one through the add, two through the last two
    assert _bound(_bits(1, False)) == 3 + 3 + 1 + 2 * 2
    assert _bound(_bits(30, False)) == BPF_COMPLEXITY_LIMIT_INSNS + 1  # capped past the limit


@needs_kernel
@pytest.mark.parametrize("test_sum", [False, True])
def test_many_paths_against_the_kernel(test_sum: bool) -> None:
    """17 and 18 bits: 131,072 and 262,144 paths, more than the limit on all of them together. Without the
    jump on the sum the kernel prunes every join (the sum is not precise) and we accept; with it the kernel
    passes its limit (17 bits: after 9 s; 12 bits: 32,766 instructions, within the path bound, accepted by
    both) and we refuse: the fixpoint's own count, a few hundred, had said it was small (an unsafe accept)."""
    code = _bits(17 if test_sum else 18, test_sum)
    assert _bound(code) > BPF_COMPLEXITY_LIMIT_INSNS
    kernel = kernel_verdict(code)
    ours = verify_instructions(code)
    assert kernel.ok is not test_sum, kernel.last_lines
    if test_sum:
        assert "too large" in kernel.log
        assert [f.code for f in ours.errors] == [Code.COMPLEXITY], ours
    else:
        assert ours.ok, ours
        assert ours.analysis is not None and kernel.processed is not None
        assert ours.analysis.kernel_estimate >= kernel.processed
