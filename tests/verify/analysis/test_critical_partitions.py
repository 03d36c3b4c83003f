"""Paths that join in more ways than the partitions hold keep apart what a later check depends on.

The kernel checks each path on its own. We keep up to ``MAX_PARTS`` states per instruction and, past
that, regroup them by coarser keys (``partitions._coarser``); the last keys keep only the *critical*
facts: the constants of registers that a conditional jump tests later (a flag ``is_tcp = 1`` set where
the TCP header was checked, tested after a dozen header paths joined) and the offsets of live stack
pointers (LLVM's one call for many paths that each put its argument at their own stack offset). Found by
the generated programs (issue 13: generated programs 164, 190, 1087, 1253, 2007; the reduced DSL programs
are in tests/generated/test_found_bugs.py). Each program here is loaded into the kernel too: the shape it
accepts, which we must accept, and a nearby unsafe one, which we must still refuse.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import VerifierReport, verify_instructions
from pybpfdsl.verify.analysis.cfg import build_cfg
from pybpfdsl.verify.analysis.critical import critical_in as registers_tested
from pybpfdsl.verify.analysis.partitions import CRITICAL_PARTS, MAX_PARTS
from pybpfdsl.verify.analysis.transfer import Env
from tests.verify.analysis.kernel_oracle import HASH_MAP, kernel_verdict
from tests.verify.analysis.opcodes import (
    CALL_LOOKUP,
    EXIT,
    ST_W,
    STX_DW,
    U32,
    add_imm,
    jeq_imm,
    load,
    mov,
    mov_reg,
    store,
)

KERNEL, WHY = kernel_bpf_available()

PATHS = 10
"""Paths that meet: more than ``MAX_PARTS``, fewer than the critical level's cap."""


def jgt_reg(dst: int, src: int, skip: int) -> Instruction:
    """``if rD > rS goto +skip``"""
    return Instruction(0x2D, dst, src, skip, 0)


def _with_jumps_to(body: list[list[Instruction]], tail: list[Instruction]) -> list[Instruction]:
    """``body``'s blocks, each ending in a jump placeholder (``None`` skip) to the start of ``tail``."""
    out: list[Instruction] = []
    holes: list[int] = []
    for block in body:
        for insn in block:
            if insn.opcode == 0x2D and insn.off == -1:
                holes.append(len(out))
            out.append(insn)
    target = len(out)
    for i in holes:
        old = out[i]
        out[i] = Instruction(old.opcode, old.dst, old.src, target - i - 1, old.imm)
    return out + tail


def flag_program(flag_on_failing_path: bool = False) -> list[Instruction]:
    """``PATHS`` packet-length checks, each failing one going to ``L`` with its own length and its own
    constant in r8; the path that passes them all sets r5 to a header 8 bytes before the proven end and
    the flag r4 = 1. At ``L``: ``if r4 != 0: read 4 bytes at r5 + 4``. With ``flag_on_failing_path`` the
    first check's failing path (nothing proven) goes there with r4 = 1: unsafe."""
    blocks = [[load(U32, 6, 1, 0), load(U32, 7, 1, 4), mov(4, 0), mov_reg(5, 6)]]
    for k in range(1, PATHS + 1):
        first = flag_on_failing_path and k == 1
        blocks.append([*([mov(4, 1)] if first else []), mov(8, k), mov_reg(3, 6), add_imm(3, 2 * k),
                       jgt_reg(3, 7, -1), *([mov(4, 0)] if first else [])])
    blocks.append([mov_reg(5, 6), add_imm(5, 2 * PATHS - 8), mov(4, 1), mov(8, 99)])
    return _with_jumps_to(blocks, [store(STX_DW, 10, 8, -8), jeq_imm(4, 0, 1), load(U32, 0, 5, 4), mov(0, 2),
                                   EXIT])


def stack_key_program(last_offset: int = -8 * (PATHS + 1)) -> list[Instruction]:
    """``PATHS`` packet-length checks, each failing one going to ``L`` with the key pointer r2 at its own
    stack offset (the path that passes them all at ``last_offset``); at ``L`` the 4-byte key is written
    through r2 and looked up. A ``last_offset`` of 4 puts that path's key outside the frame: unsafe."""
    blocks = [[load(U32, 6, 1, 0), load(U32, 7, 1, 4), mov_reg(2, 10), add_imm(2, -8)]]
    for k in range(1, PATHS + 1):
        off = -8 * (k + 1) if k < PATHS else last_offset
        blocks.append([mov_reg(3, 6), add_imm(3, k), jgt_reg(3, 7, -1), mov_reg(2, 10), add_imm(2, off)])
    return _with_jumps_to(blocks, [Instruction(ST_W, 2, 0, 0, 7), Instruction.lddw(1, 0), CALL_LOOKUP, mov(0, 2),
                                   EXIT])


def _check(prog: list[Instruction], safe: bool, maps: tuple[int, ...] = ()) -> VerifierReport:
    ours = verify_instructions(prog, map_refs=dict.fromkeys(maps, (HASH_MAP, None)))
    assert ours.ok == safe, ours.format()
    if KERNEL:
        verdict = kernel_verdict(prog, map_insns=maps)
        assert verdict.ok == safe, verdict.last_lines
    return ours


def _lookup_at(prog: list[Instruction]) -> tuple[int, ...]:
    return tuple(i for i, insn in enumerate(prog) if insn.opcode == 0x18)


def test_the_programs_join_more_paths_than_the_partitions_hold() -> None:
    """What the tests below rely on: more paths meet than ``MAX_PARTS``, fewer than the critical cap."""
    assert MAX_PARTS < PATHS + 1 <= MAX_PARTS * CRITICAL_PARTS


def test_a_flag_tested_after_many_paths_join_keeps_its_pointer_checked() -> None:
    """Generated programs 190 and 2007 (``if pkt.tcp is not None`` after a payload read, compiled to a flag
    set on the TCP path): the kernel accepts; we did not (``checked length: 0 bytes``)."""
    _check(flag_program(), safe=True)


def test_a_flag_set_on_an_unchecked_path_is_still_refused() -> None:
    report = _check(flag_program(flag_on_failing_path=True), safe=False)
    assert "packet" in report.errors[0].message


def test_a_key_put_at_a_different_stack_offset_on_each_path_verifies() -> None:
    """Generated programs 164, 1087 and 1253 (LLVM's one ``bpf_trace_printk`` or lookup call for paths that
    each keep the argument at their own offset): the kernel accepts; we said "not all initialised"."""
    prog = stack_key_program()
    _check(prog, safe=True, maps=_lookup_at(prog))


def test_a_key_outside_the_frame_on_one_path_is_still_refused() -> None:
    prog = stack_key_program(last_offset=4)
    report = _check(prog, safe=False, maps=_lookup_at(prog))
    assert "stack" in report.errors[0].message


def _tested(prog: list[Instruction]) -> list[int]:
    slots = slot_offsets(prog)
    env = Env(tuple(prog), {s: i for i, s in enumerate(slots)}, slots)
    return registers_tested(env.insns, build_cfg(env).succs)


def test_tested_registers_follow_copies_and_in_place_updates() -> None:
    """``critical_in`` (what the partitions key on): r4 is tested at L (directly), r8 is not (only stored); a
    register copied into one that is tested, or updated in place before the test, counts; a register
    overwritten before it does not."""
    prog = flag_program()
    tested = _tested(prog)
    at_l = next(i for i, insn in enumerate(prog) if insn.opcode == STX_DW)
    assert tested[at_l] >> 4 & 1 and not tested[at_l] >> 8 & 1
    copy = [mov_reg(1, 2), add_imm(1, 3), jeq_imm(1, 0, 0), mov(2, 0), jeq_imm(2, 0, 0), EXIT]
    tested = _tested(copy)
    assert tested[0] >> 2 & 1 and tested[1] >> 1 & 1
    assert not tested[3] >> 2 & 1 and tested[4] >> 2 & 1


@pytest.mark.skipif(not KERNEL, reason=WHY or "bpf() unavailable")
def test_the_kernel_accepts_both_safe_shapes() -> None:
    """The kernel's own verdicts, asserted where bpf() exists (the tests above only compare when it does)."""
    assert kernel_verdict(flag_program()).ok
    prog = stack_key_program()
    assert kernel_verdict(prog, map_insns=_lookup_at(prog)).ok
