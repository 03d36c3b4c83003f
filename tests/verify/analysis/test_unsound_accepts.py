"""Issue 13 §1: programs the kernel refuses must never be "verified" by us.

Each case is a program the verifier used to accept; the test asserts that we now refuse it, with a
message at the instruction the kernel objects to, and (where the kernel is available) that the kernel
refuses it too, so the case cannot drift into a program that is actually fine.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from pybpfdsl.bpf.abi import BPF_COMPLEXITY_LIMIT_INSNS
from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, VerifierReport, verify_instructions, verify_object, verify_program
from pybpfdsl.verify.analysis.values import CtxPtr, PacketEnd, ScalarValue, join_values, offsettable, reach, value_le
from pybpfdsl.verify.domains.scalar import Scalar
from tests.verify.analysis import loop_programs
from tests.verify.analysis.kernel_oracle import HASH_MAP, kernel_verdict
from tests.verify.analysis.opcodes import (
    EXIT,
    LOOKUP_MAP_INSN,
    STX,
    U8,
    U32,
    U64,
    add_imm,
    hash_lookup,
    jeq_imm,
    load,
    mov,
    mov_reg,
    store,
)
from tests.verify.corpus.c_corpus import clang

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")


def ours(insns: list[Instruction], map_insns: tuple[int, ...] = ()) -> VerifierReport:
    return verify_instructions(insns, map_refs=dict.fromkeys(map_insns, (HASH_MAP, None)))


def assert_refused_at(report: VerifierReport, insn: int, code: Code, words: str) -> None:
    """We refuse, at ``insn``, with ``code`` and a message containing ``words``."""
    assert not report.ok, "verified, but the kernel refuses it"
    at = [f for f in report.errors if f.insn == insn]
    assert any(f.code == code and words in f.message for f in at), report.format()
    slot = slot_offsets(report.instructions)[insn]  # the message counts 8-byte slots, as the kernel's log
    assert f"at instruction {slot}:" in report.format()


def assert_kernel_refuses(insns: list[Instruction], map_insns: tuple[int, ...], says: str) -> None:
    if not KERNEL:
        return
    verdict = kernel_verdict(insns, map_insns)
    assert not verdict.ok and says in verdict.log, verdict.last_lines


# --------------------------------------------------------------------------- #
# 1. A lookup result, NULL on one path, dereferenced after the paths join
# --------------------------------------------------------------------------- #

# call bpf_map_lookup_elem; if r0 == 0 goto L; r1 = 1; L: <access>  — the access is instruction 8.
ACCESS = 8
NULL_AFTER_JOIN = {
    "load +0": (load(U64, 1, 0, 0), "R0 invalid mem access 'scalar'"),
    "load +4096": (load(U64, 1, 0, 4096), "R0"),
    "store": (Instruction(0x7A, 0, 0, 0, 1), "R0 invalid mem access 'scalar'"),
}


@pytest.mark.parametrize("name", list(NULL_AFTER_JOIN))
def test_null_after_join_is_refused(name: str) -> None:
    access, kernel_says = NULL_AFTER_JOIN[name]
    insns = [*hash_lookup(), jeq_imm(0, 0, 1), mov(1, 1), access, mov(0, 2), EXIT]
    assert_refused_at(ours(insns, (LOOKUP_MAP_INSN,)), ACCESS - 1, Code.BAD_POINTER, "scalar")
    assert_kernel_refuses(insns, (LOOKUP_MAP_INSN,), kernel_says)


def test_null_after_join_through_a_copy_is_refused() -> None:
    """The copy (r6) is taken before the check; the check on r0 makes r6 NULL on that path too."""
    insns = [*hash_lookup(), mov_reg(6, 0), jeq_imm(0, 0, 1), mov(1, 1), load(U64, 1, 6, 0), mov(0, 2), EXIT]
    assert_refused_at(ours(insns, (LOOKUP_MAP_INSN,)), ACCESS, Code.BAD_POINTER, "scalar")
    assert_kernel_refuses(insns, (LOOKUP_MAP_INSN,), "R6 invalid mem access 'scalar'")


def test_checked_lookup_is_still_accepted() -> None:
    """The same shape with the access on the non-NULL path only: both verifiers accept it."""
    insns = [*hash_lookup(), jeq_imm(0, 0, 1), load(U64, 1, 0, 0), mov(0, 2), EXIT]
    assert ours(insns, (LOOKUP_MAP_INSN,)).ok
    if KERNEL:
        assert kernel_verdict(insns, (LOOKUP_MAP_INSN,)).ok


# --------------------------------------------------------------------------- #
# 2. ALU on a register that is a pointer on some paths
# --------------------------------------------------------------------------- #

def _pointer_or_scalar(constant: bool, alu: Instruction) -> list[Instruction]:
    """r2 = ctx, or on the other path a number (a constant, or one read from the context); then ``alu``."""
    other = mov(2, 5) if constant else load(U32, 2, 1, 12)
    return [load(U32, 3, 1, 16), mov_reg(2, 1), jeq_imm(3, 0, 1), other, alu, mov(0, 2), EXIT]


POINTER_ALU = {
    "and": (Instruction(0x57, 2, 0, 0, 1), "bitwise operator &= on pointer prohibited"),
    "or": (Instruction(0x47, 2, 0, 0, 1), "bitwise operator |= on pointer prohibited"),
    "add32": (Instruction(0x04, 2, 0, 0, 1), "32-bit pointer arithmetic prohibited"),
}


@pytest.mark.parametrize("constant", [True, False], ids=["constant", "number"])
@pytest.mark.parametrize("name", list(POINTER_ALU))
def test_alu_on_a_maybe_pointer_is_refused(name: str, constant: bool) -> None:
    alu, kernel_says = POINTER_ALU[name]
    insns = _pointer_or_scalar(constant, alu)
    assert_refused_at(ours(insns), 4, Code.POINTER_ARITH, "")
    assert_kernel_refuses(insns, (), kernel_says)


def test_subtraction_32_of_a_maybe_pointer_is_accepted() -> None:
    """Allowed on a pointer (privileged) and on a number: a meaningless number either way."""
    insns = _pointer_or_scalar(False, Instruction(0x14, 2, 0, 0, 1))
    insns[-2] = mov(0, 2)
    assert ours(insns).ok
    if KERNEL:
        assert kernel_verdict(insns).ok


def test_offset_added_to_a_maybe_pointer_is_accepted() -> None:
    """``r += 4`` is allowed on a pointer and on a number, so on each path: the kernel accepts it."""
    insns = _pointer_or_scalar(False, add_imm(2, 4))
    insns[-2] = mov(0, 2)
    assert ours(insns).ok
    if KERNEL:
        assert kernel_verdict(insns).ok


def test_offsets_past_the_kernels_bound_on_a_maybe_pointer_are_refused() -> None:
    """Two additions of 2**28 take the pointer's offset to 2**29, which the kernel refuses."""
    insns = _pointer_or_scalar(False, add_imm(2, 1 << 28))
    insns[-2:-2] = [add_imm(2, 1 << 28)]
    assert_refused_at(ours(insns), 5, Code.POINTER_ARITH, "")
    assert_kernel_refuses(insns, (), "pointer offset 536870912 is not allowed")


def test_joins_of_different_types_remember_what_arithmetic_is_allowed() -> None:
    ctx, number, end = CtxPtr(Scalar.const(8)), ScalarValue(Scalar.urange(0, 9)), PacketEnd()
    j = join_values(ctx, number)
    assert offsettable(j) and reach(j) == 8 and value_le(ctx, j) and value_le(number, j)
    assert not value_le(end, j)
    k = join_values(j, end)
    assert not offsettable(k) and value_le(j, k) and value_le(end, k)


# --------------------------------------------------------------------------- #
# 3. A pointer spilled in part
# --------------------------------------------------------------------------- #

def test_partial_spill_of_a_pointer_is_refused() -> None:
    insns = [store(STX[4], 10, 1, -4), mov(0, 2), EXIT]
    assert_refused_at(ours(insns), 0, Code.POINTER_LEAK, "spilled whole")
    assert_kernel_refuses(insns, (), "invalid size of register spill")


def test_partial_spill_of_a_maybe_pointer_is_refused() -> None:
    insns = _pointer_or_scalar(False, store(STX[4], 10, 2, -4))
    assert_refused_at(ours(insns), 4, Code.POINTER_LEAK, "spilled whole")
    assert_kernel_refuses(insns, (), "invalid size of register spill")


def test_whole_spill_of_a_pointer_is_accepted() -> None:
    insns = [store(STX[8], 10, 1, -8), load(U64, 2, 10, -8), load(U32, 0, 2, 16), mov(0, 2), EXIT]
    assert ours(insns).ok
    if KERNEL:
        assert kernel_verdict(insns).ok


# --------------------------------------------------------------------------- #
# 4. Loops the kernel gives up on
# --------------------------------------------------------------------------- #

BOUNDS = (20, 32, 48, 64, 128, 256)
"""range(16) is unrolled by the backend since 90e9906 (no loop left), so the smallest bound is 20; since 73fe524
the kernel loads up to range(96) at least (803,303 instructions); since this session's offset masks (4eacaf4..5d1a5f4)
the loop body is cheaper for it, and it loads range(128) (742,908) and refuses range(256)."""


@pytest.fixture(scope="module")
def loop_reports() -> dict[int, VerifierReport]:
    return {n: verify_program(loop_programs.BY_BOUND[n].compile(prove=False).subject) for n in (*BOUNDS, 5000)}


def test_loop_beyond_the_kernels_limit_is_refused_at_its_python_line(loop_reports: dict[int, VerifierReport]) -> None:
    report = loop_reports[256]
    assert [f.code for f in report.errors] == [Code.COMPLEXITY], report.format()
    text = report.format()
    assert "for i in range(256)" in text and "bpf_loop" in text and "lower the loop's bound" in text
    assert report.analysis is not None and report.analysis.kernel_estimate > BPF_COMPLEXITY_LIMIT_INSNS


def test_a_huge_bound_is_refused_without_unrolling_it(loop_reports: dict[int, VerifierReport]) -> None:
    """range(5000) took minutes of unrolling; the estimate passes the limit within the first ~61."""
    report = loop_reports[5000]
    assert [f.code for f in report.errors] == [Code.COMPLEXITY]
    assert "first" in report.errors[0].message
    assert report.analysis is not None and report.analysis.processed < 20 * 5000


@needs_kernel
def test_loop_estimate_against_the_kernel(loop_reports: dict[int, VerifierReport]) -> None:
    """For each bound: when the kernel refuses, so do we (our estimate is above its count); when it
    accepts, our estimate is still at least its count. Measured at 73fe524 + 1b27282 (kernel 6.18), rows
    (bound, kernel ok, kernel processed, ours ok, our estimate): (20, True, 41,457, True, 762,662),
    (32, True, 101,703, True, 305,109), (48, True, 228,786, True, 686,358), (64, True, 375,435, False,
    18,009,992), (128, False, 1,000,001, False, 18,009,992). 32 and 48 are accepted by the simulated
    exploration, which counts what the kernel counts (101,703 and 228,786), times the 3x margin; 64 is not
    (1,126,305 with the margin; the simulation counts 375,435 too, given the steps)."""
    rows = []
    for n in BOUNDS:
        report = loop_reports[n]
        assert report.analysis is not None
        elf = BpfElf.from_bytes(loop_programs.BY_BOUND[n].compile(prove=False).elf)
        kernel = kernel_verdict(list(elf.program(f"sum_payload_{n}").instructions))
        rows.append((n, kernel.ok, kernel.processed, report.ok, report.analysis.kernel_estimate))
        assert kernel.processed is not None, kernel.last_lines
        if not kernel.ok:
            assert "too large" in kernel.log
            assert not report.ok, f"range({n}): the kernel refuses ({kernel.processed} insns), we accept"
        else:
            assert report.analysis.kernel_estimate >= kernel.processed, rows
    assert any(not ok for _, ok, _, _, _ in rows) and any(ok for _, ok, _, _, _ in rows), rows
    # Precision: the three smallest bounds load and are verified. Since 73fe524 the kernel loads range(64) too
    # (refused before), which the 3x margin over the simulated count refuses: one false alarm.
    assert all(r[1] and r[3] for r in rows[:3]), rows
    assert sum(k_ok and not ours_ok for _, k_ok, _, ours_ok, _ in rows) <= 1, rows


@needs_kernel
@pytest.mark.parametrize("name", list(loop_programs.OTHER_SHAPES))
def test_other_loop_shapes_the_kernel_refuses_are_refused(name: str) -> None:
    compiled = loop_programs.OTHER_SHAPES[name].compile(prove=False)
    report = verify_program(compiled.subject)
    kernel = kernel_verdict(list(BpfElf.from_bytes(compiled.elf).program(name).instructions))
    assert not kernel.ok and "too large" in kernel.log, kernel.last_lines
    assert [f.code for f in report.errors] == [Code.COMPLEXITY], report.format()


# --------------------------------------------------------------------------- #
# 5. Program types the verifier does not model
# --------------------------------------------------------------------------- #

TRACEPOINT_C = """
#define SEC(name) __attribute__((section(name), used))
SEC("tracepoint/syscalls/sys_enter_openat") int on_open(void *ctx) { return *(int *)((char *)ctx + 8) ? 0 : 1; }
char LICENSE[] SEC("license") = "GPL";
"""


def test_a_tracepoint_section_is_refused_by_name() -> None:
    cc = clang()
    if cc is None:
        pytest.skip("clang is not installed")
    with tempfile.TemporaryDirectory() as d:
        src, obj = os.path.join(d, "tp.c"), os.path.join(d, "tp.o")
        with open(src, "w") as f:
            f.write(TRACEPOINT_C)
        subprocess.run([cc, "-O2", "-target", "bpf", "-c", src, "-o", obj], check=True, capture_output=True)
        with open(obj, "rb") as f:
            elf = f.read()
    report = verify_object(elf)
    assert not report.ok
    assert [f.code for f in report.errors] == [Code.UNSUPPORTED]
    assert "tracepoint" in report.errors[0].message and "XDP programs only" in report.errors[0].message


@pytest.mark.parametrize("section", ["kprobe/do_sys_open", "tc", "socket", "", "xdpfoo"])
def test_non_xdp_sections_are_refused(section: str) -> None:
    report = verify_instructions([mov(0, 2), EXIT], section=section)
    assert [f.code for f in report.errors] == [Code.UNSUPPORTED]
    assert "not analysed" in report.explain() and "unreachable" not in report.explain()


@pytest.mark.parametrize("section", ["xdp", "xdp/devmap", "xdp.frags", "xdp.frags/cpumap"])
def test_xdp_sections_are_verified(section: str) -> None:
    assert verify_instructions([mov(0, 2), EXIT], section=section).ok
    warned = verify_instructions([mov(0, 9), EXIT], section=section)  # not an action: loads, with a warning
    assert warned.ok and [f.code for f in warned.findings] == [Code.EXIT_ACTION]
    assert not verify_instructions([EXIT], section=section).ok


# --------------------------------------------------------------------------- #
# 5. What a program returns, and what the redirect helpers return
# --------------------------------------------------------------------------- #

# bpf_redirect(1, 0); two zeroed stack words; r1 = r10 - 16 + r0; r0 = *(u8 *)r1: the helper's result is an
# action at run time, but the kernel types it as any number, so it cannot index the stack.
REDIRECT_AS_INDEX = [mov(1, 1), mov(2, 0), Instruction(0x85, 0, 0, 0, 23), Instruction(0x7A, 10, 0, -8, 0),
                     Instruction(0x7A, 10, 0, -16, 0), mov_reg(1, 10), add_imm(1, -16), Instruction(0x0F, 1, 0, 0, 0),
                     load(U8, 0, 1, 0), EXIT]


@needs_kernel
def test_a_redirect_result_used_as_an_offset_is_refused() -> None:
    assert_refused_at(ours(REDIRECT_AS_INDEX), 7, Code.POINTER_ARITH, "unbounded")
    assert_kernel_refuses(REDIRECT_AS_INDEX, (), "unbounded min value is not allowed")


@needs_kernel
@pytest.mark.parametrize("name, insns", [("r0 = 7", [mov(0, 7), EXIT]), ("r0 = -1", [mov(0, -1), EXIT]),
                                         ("r0 = ctx", [mov_reg(0, 1), EXIT])])
def test_a_result_that_is_not_an_action_is_a_warning_as_the_kernel_loads_it(name: str,
                                                                             insns: list[Instruction]) -> None:
    report = ours(insns)
    assert report.ok and [f.code for f in report.findings] == [Code.EXIT_ACTION], report.format()
    assert kernel_verdict(insns).ok


@needs_kernel
def test_an_uninitialised_result_is_refused() -> None:
    assert_refused_at(ours([EXIT]), 0, Code.EXIT_VALUE, "uninitialised")
    assert_kernel_refuses([EXIT], (), "R0 !read_ok")
