"""NULL checks after joins: which copies of a lookup result a check tells (``abstract_state._link_nulls``).

The kernel follows each path alone, so a check of one copy of a lookup result marks every copy with the
same register id. Our joins keep that link only where it holds on both sides: a result whose copy was
set to NULL on one path is not the same value as the copy there (refusing what the kernel refuses), and
a map value on one path against NULL on the other is linked by that pattern (katran's balancer at -O1
checks a reloaded spill, then reloads it again).
"""

from __future__ import annotations

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, VerifierReport, verify_instructions
from tests.verify.analysis.kernel_oracle import HASH_MAP, kernel_verdict
from tests.verify.analysis.opcodes import EXIT, STX_DW, U32, U64, hash_lookup, jeq_imm, load, mov, mov_reg

KERNEL, _ = kernel_bpf_available()
MAP_INSN = 4
"""The lookup's lddw, after the one instruction that reads the context."""


def ours(insns: list[Instruction]) -> VerifierReport:
    return verify_instructions(insns, map_refs={MAP_INSN: (HASH_MAP, None)})


def test_a_copy_set_to_null_on_one_path_is_not_told_by_the_check() -> None:
    """r6 = r0 (the lookup's result), then r6 = 0 on one path: after the join, r0 != 0 says nothing of r6."""
    insns = [load(U32, 9, 1, 12), *hash_lookup(), mov_reg(6, 0), jeq_imm(9, 0, 1), mov(6, 0),
             jeq_imm(0, 0, 1), load(U64, 1, 6, 0), mov(0, 2), EXIT]
    report = ours(insns)
    assert not report.ok
    assert any(f.insn == 10 and f.code in (Code.BAD_POINTER, Code.NULL_DEREF) for f in report.errors), report.format()
    if KERNEL:
        verdict = kernel_verdict(insns, (MAP_INSN,))
        assert not verdict.ok and "R6 invalid mem access 'scalar'" in verdict.log, verdict.last_lines


def test_a_checked_value_or_null_spilled_is_told_by_a_check_of_its_reload() -> None:
    """r0 (checked) or 0, spilled; a reload compared with 0; a second reload dereferenced: both accept."""
    insns = [load(U32, 9, 1, 12), *hash_lookup(), jeq_imm(0, 0, 7), jeq_imm(9, 0, 1), mov(0, 0),
             Instruction(STX_DW, 10, 0, -16, 0), load(U64, 1, 10, -16), jeq_imm(1, 0, 2), load(U64, 2, 10, -16),
             load(U64, 3, 2, 0), mov(0, 2), EXIT]
    report = ours(insns)
    assert report.ok, report.format()
    if KERNEL:
        assert kernel_verdict(insns, (MAP_INSN,)).ok


def test_a_result_or_null_spilled_is_told_by_a_check_of_its_reload() -> None:
    """The same with the result not yet checked on the path where it is kept."""
    insns = [load(U32, 9, 1, 12), *hash_lookup(), jeq_imm(9, 0, 1), mov(0, 0),
             Instruction(STX_DW, 10, 0, -16, 0), load(U64, 1, 10, -16), jeq_imm(1, 0, 2), load(U64, 2, 10, -16),
             load(U64, 3, 2, 0), mov(0, 2), EXIT]
    report = ours(insns)
    assert report.ok, report.format()
    if KERNEL:
        assert kernel_verdict(insns, (MAP_INSN,)).ok


def test_a_result_or_null_through_a_chain_of_joins_keeps_its_link() -> None:
    """The spilled result is set to NULL on one branch of each of five tests in a row (katran's balancer at
    -O1 does this with its ``dst`` across a chain of conditions): a check of a reload still tells the
    spill, however many joins it went through (each join reuses the link's id rather than nesting it)."""
    branches: list[Instruction] = []
    for field in (12, 16, 12, 16, 12):
        branches += [load(U32, 1, 6, field), jeq_imm(1, 0, 2), mov(1, 0), Instruction(STX_DW, 10, 1, -16, 0)]
    insns = [mov_reg(6, 1), mov(0, 0), *hash_lookup(), Instruction(STX_DW, 10, 0, -16, 0), *branches,
             load(U64, 1, 10, -16), jeq_imm(1, 0, 2), load(U64, 2, 10, -16), load(U64, 3, 2, 0), mov(0, 2), EXIT]
    report = verify_instructions(insns, map_refs={5: (HASH_MAP, None)})
    assert report.ok, report.format()
    if KERNEL:
        assert kernel_verdict(insns, (5,)).ok
