"""A flag that a loop's latch tests keeps the states it tells apart, even where the partitions coarsen.

xdp-tools' IPv6 extension-header loop (inlined in xdp-bench's ``xdp_parse_prog``, xdp-filter's ``*_all``,
xdp-forward's ``xdp_fwd_fib_*``), built at -O1: a register holds a packet pointer only on the paths whose flag
is 1, which go back to the loop (``if r8 != 0 goto loop``); the fall-through, with flag 0, has a number there,
which is then sign-extended (``r2 = r3; r2 <<= 32; r2 s>>= 32``). The kernel follows each path. Our
partitions at the latch coarsened to the packet facts (level 4) and then to the checked length (level 5),
keys without constants, so the flag-1 and flag-0 states were joined and the number became "one of (packet |
scalar)" past the exit: `lsh on pointer operands ... is not allowed`, on five programs the kernel loads. The
constants of the registers the point's own jump tests now stay in the keys at every level (few values, and
exactly what decides where each state goes). Its unsafe neighbour, the latch testing the next header's byte
``r0`` instead of the flag (so a flag-1 state, its register a pointer, may fall through to the shift), is
refused by the kernel and by us.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_object
from tests.verify.corpus.mutants import _function_span, patch_section
from tests.verify.corpus.third_party_corpus import ThirdPartyProgram, kernel_verdict, missing_headers, programs

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

LATCH = 151
"""``if r8 != 0x0 goto pc-37`` in xdp_parse_prog at -O1: the extension-header loop's latch."""


@pytest.fixture(scope="module")
def parse_prog() -> ThirdPartyProgram:
    why = missing_headers()
    if why:
        pytest.skip(f"the third-party corpus cannot be built: {why}")
    return next(p for p in programs(("O1",)) if p.function == "xdp_parse_prog")


def _latch_on_r0(p: ThirdPartyProgram) -> bytes:
    """The program with the latch testing ``r0`` (a byte read from the packet) instead of the flag ``r8``."""
    report = verify_object(p.elf, p.function, allow_uninit_stack_reads=True)
    insns = list(report.instructions)
    assert insns[LATCH].kind == Kind.JCOND and insns[LATCH].dst == 8 and insns[LATCH].imm == 0, insns[LATCH]
    insns[LATCH] = Instruction(insns[LATCH].opcode, 0, 0, insns[LATCH].off, 0)
    at, size = _function_span(p.elf, report.section, report.name)
    return patch_section(p.elf, report.section, insns[:size // 8], at)


def test_the_extension_header_loop_at_o1_is_accepted(parse_prog: ThirdPartyProgram) -> None:
    report = verify_object(parse_prog.elf, parse_prog.function, allow_uninit_stack_reads=True)
    assert report.ok, report.format()


def test_a_latch_on_another_number_lets_the_pointer_reach_the_shift_refused(parse_prog: ThirdPartyProgram) -> None:
    report = verify_object(_latch_on_r0(parse_prog), parse_prog.function, allow_uninit_stack_reads=True)
    assert not report.ok
    assert any(f.code == Code.POINTER_ARITH for f in report.errors), report.format()


@needs_kernel
def test_the_kernel_agrees(parse_prog: ThirdPartyProgram) -> None:
    assert kernel_verdict(parse_prog.elf, parse_prog.function).ok
    refused = kernel_verdict(_latch_on_r0(parse_prog), parse_prog.function)
    assert not refused.ok and "pointer" in refused.message, refused.message
