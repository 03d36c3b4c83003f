"""A packet pointer read again from the context starts with no proven range, as in the kernel.

The kernel keeps a proven packet range per register (the registers holding the checked pointer's id when
the check ran); `r5 = ctx->data` read again is a new pointer with range 0, even with no helper call
between. Our checked length once served it (mutants of examples/vlan_tagging.py, whose code reads
`data` again after a packet move, were accepted and the kernel refused them). The earlier pointer keeps
what was proven through it.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.kernel_oracle import kernel_verdict
from tests.verify.analysis.opcodes import EXIT, JGT_X, U8, U32, add_imm, load, mov, mov_reg

KERNEL, WHY = kernel_bpf_available()


def _program(access: list[Instruction]) -> list[Instruction]:
    """r2 = data; r3 = data_end; if r2 + 14 > r3 exit; r5 = data (again); `access`; return XDP_PASS."""
    body = [load(U32, 2, 1, 0), load(U32, 3, 1, 4), mov_reg(4, 2), add_imm(4, 14),
            Instruction(JGT_X, 4, 3, len(access) + 1, 0), load(U32, 5, 1, 0), *access]
    return [*body, mov(0, 2), EXIT]


CASES = {
    # name: (access, the kernel accepts, what its log says when it refuses)
    "new pointer, unchecked": ([load(U8, 0, 5, 10)], False, "invalid access to packet"),
    "old pointer, checked": ([load(U8, 0, 2, 10)], True, ""),
    "old pointer, past the check": ([load(U8, 0, 2, 14)], False, "invalid access to packet"),
    "new pointer, checked again": ([mov_reg(4, 5), add_imm(4, 11), Instruction(JGT_X, 4, 3, 1, 0),
                                    load(U8, 0, 5, 10)], True, ""),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_reloaded_data_pointer_has_only_its_own_checks(name: str) -> None:
    access, accepted, says = CASES[name]
    insns = _program(access)
    report = verify_instructions(insns)
    assert report.ok == accepted, report.format()
    if not accepted:
        assert any(f.code == Code.PACKET_BOUNDS for f in report.errors), report.format()
    if KERNEL:
        verdict = kernel_verdict(insns)
        assert verdict.ok == accepted, verdict.last_lines
        assert says in verdict.log
