"""XDP helpers others' objects call (issue 13 §2): fib_lookup, perf_event_output, csum_diff, tail_call and the
xdp_adjust_* family, each with a use the kernel accepts and misuses it refuses, our verdict asserted against
the kernel's (where it is available).
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import verify_instructions
from pybpfdsl.verify.analysis.values import MapInfo
from tests.verify.analysis.map_oracle import kernel_verdict_maps
from tests.verify.analysis.opcodes import EXIT, U8, U32, U64, add_imm, call, load, mov, mov_reg

KERNEL, WHY = kernel_bpf_available()
PROG_ARRAY = MapInfo("jmp_table", 3, 4, 4, 4)
PERF_ARRAY = MapInfo("events", 4, 4, 4, 4)


def zero(lo: int, hi: int) -> list[Instruction]:
    """``*(u64 *)(r10 + off) = 0`` for every 8 bytes of ``[lo, hi)``."""
    return [Instruction(0x7A, 10, 0, off, 0) for off in range(lo, hi, 8)]


def stack_ptr(reg: int, off: int) -> list[Instruction]:
    return [mov_reg(reg, 10), add_imm(reg, off)]


def fib_lookup(size: int) -> list[Instruction]:
    """r6 = ctx; params (64 bytes at r10-64) zeroed; bpf_fib_lookup(ctx, params, size, 0)."""
    return [mov_reg(6, 1), *zero(-64, 0), mov_reg(1, 6), *stack_ptr(2, -64), mov(3, size), mov(4, 0), call(69)]


def csum_diff(from_size: int) -> list[Instruction]:
    """bpf_csum_diff(r10-8, from_size, NULL, 0, 0)"""
    return [*zero(-8, 0), *stack_ptr(1, -8), mov(2, from_size), mov(3, 0), mov(4, 0), mov(5, 0), call(28)]


PASS = [mov(0, 2), EXIT]
CASES: dict[str, tuple[list[Instruction], dict[int, MapInfo], bool]] = {
    # name: (program, map lddw's, the kernel accepts)
    "fib_lookup with 64 bytes of params": ([*fib_lookup(64), *PASS], {}, True),
    "fib_lookup with params past the frame": ([*fib_lookup(72), *PASS], {}, False),
    "fib_lookup overwrites a spill in its params": (
        [*fib_lookup(64)[:9], Instruction(0x7B, 10, 6, -64, 0), *fib_lookup(64)[9:], load(U64, 1, 10, -64),
         load(U32, 0, 1, 0), *PASS], {}, False),
    "csum_diff of 8 bytes": ([*csum_diff(8), *PASS], {}, True),
    "csum_diff of 12 bytes at r10-8": ([*csum_diff(12), *PASS], {}, False),
    "perf_event_output of 8 bytes": (
        [*zero(-8, 0), Instruction.lddw(2, 0), mov(3, 0), *stack_ptr(4, -8), mov(5, 8), call(25), *PASS],
        {1: PERF_ARRAY}, True),
    "perf_event_output of 16 bytes at r10-8": (
        [*zero(-8, 0), Instruction.lddw(2, 0), mov(3, 0), *stack_ptr(4, -8), mov(5, 16), call(25), *PASS],
        {1: PERF_ARRAY}, False),
    "tail_call, then go on": ([Instruction.lddw(2, 0), mov(3, 0), call(12), *PASS], {0: PROG_ARRAY}, True),
    "tail_call, then read its r0": ([Instruction.lddw(2, 0), mov(3, 0), call(12), EXIT], {0: PROG_ARRAY}, False),
    "tail_call with a modified context": (
        [add_imm(1, 4), Instruction.lddw(2, 0), mov(3, 0), call(12), *PASS], {1: PROG_ARRAY}, False),
}


@pytest.mark.parametrize("name", list(CASES))
def test_helper_use_as_the_kernel_verifies_it(name: str) -> None:
    insns, maps, kernel_ok = CASES[name]
    if KERNEL:
        verdict = kernel_verdict_maps(insns, maps)
        assert verdict.ok == kernel_ok, verdict.last_lines
    report = verify_instructions(insns, map_refs={i: (m, None) for i, m in maps.items()})
    assert report.ok == kernel_ok, report.format()


@pytest.mark.parametrize(("helper", "allowed"), [(44, True), (65, True), (54, False)],
                         ids=["adjust_head", "adjust_tail", "adjust_meta"])
def test_packet_pointers_are_invalid_after_the_packet_moves(helper: int, allowed: bool) -> None:
    """A packet pointer checked before bpf_xdp_adjust_* is refused after it; one loaded again is fine.
    (bpf_xdp_adjust_meta: this machine's kernel refuses the helper itself in XDP programs, so do we.)"""
    check = [mov_reg(6, 1), load(U32, 7, 6, 0), load(U32, 3, 6, 4), mov_reg(4, 7), add_imm(4, 8),
             Instruction(0x2D, 4, 3, 4, 0)]  # if data + 8 > data_end goto pass
    move = [mov_reg(1, 6), mov(2, 0), call(helper)]
    stale = [*check, *move, load(U8, 0, 7, 0), *PASS]
    fresh = [*check, *move, load(U32, 7, 6, 0), *PASS]
    for insns, kernel_ok in ((stale, False), (fresh, allowed)):
        if KERNEL:
            verdict = kernel_verdict_maps(insns, {})
            assert verdict.ok == kernel_ok, verdict.last_lines
        report = verify_instructions(insns)
        assert report.ok == kernel_ok, report.format()
