"""Every example and construct program verifies; mutated ones are rejected with a Python-line explanation."""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.verify.analysis import Code, verify_instructions, verify_program
from tests.verify.corpus.differential import programs

PROGRAMS = list(programs())


@pytest.mark.parametrize("name,elf,section", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_compiled_programs_verify(name: str, elf: bytes, section: str) -> None:
    from pybpfdsl.verify.analysis import verify_object

    report = verify_object(elf, section)
    assert report.ok, report.format()


def test_unchecked_packet_read_is_rejected() -> None:
    insns = [
        Instruction(0x61, 2, 1, 0, 0),  # r2 = ctx->data
        Instruction(0x71, 0, 2, 0, 0),  # r0 = *(u8 *)(r2 + 0)   -- no bounds check
        Instruction(0xB7, 0, 0, 0, 2),  # r0 = 2
        Instruction(0x95),
    ]
    report = verify_instructions(insns)
    assert [f.code for f in report.errors] == [Code.PACKET_BOUNDS]
    assert "produced by" in report.format()


def test_unbounded_loop_is_reported() -> None:
    insns = [Instruction(0xB7, 0, 0, 0, 2), Instruction(0x05, 0, 0, -2, 0), Instruction(0x95)]
    report = verify_instructions(insns)
    assert Code.UNBOUNDED_LOOP in {f.code for f in report.errors}


def test_explain_lists_every_instruction() -> None:
    from examples.port_acl import port_acl_filter

    report = verify_program(port_acl_filter.compile(prove=False).subject)
    listing = report.explain()
    assert "reads r1=ctx" in listing and "port_acl.py" in listing
