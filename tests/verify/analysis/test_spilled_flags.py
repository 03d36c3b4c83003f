"""A header-presence flag that a later check hinges on keeps its paths apart when it lives on the stack, or
is folded into another register, and when more such combinations meet than the partitions hold.

The kernel checks each path on its own, with the flag known. Our partitions (``partitions._coarser``) keep
states apart by the constants of the *critical* places, the ones whose value reaches a conditional jump
(``critical.critical_in``): registers, and since generated programs 30030, 30031 and 30121 (issue 13), also
stack slots filled back before the test (a flag spilled across helper calls) and the operands of arithmetic
on a tested register (``w8 |= w5; if w8 != 0``). Where even those facts make more partitions than fit, the
last levels keep one partition per packet shape, then per checked length. Each program is loaded into the
kernel too: the safe shape, which we must accept, and an unsafe neighbour, which we must still refuse.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import VerifierReport, verify_instructions
from pybpfdsl.verify.analysis.cfg import build_cfg
from pybpfdsl.verify.analysis.critical import SLOT0, critical_in, slot_bit
from pybpfdsl.verify.analysis.partitions import CRITICAL_PARTS, MAX_PARTS
from pybpfdsl.verify.analysis.transfer import Env
from tests.verify.analysis.kernel_oracle import kernel_verdict
from tests.verify.analysis.opcodes import (
    EXIT,
    ST_W,
    STX,
    STX_DW,
    U32,
    add_imm,
    call,
    jeq_imm,
    load,
    mov,
    mov_reg,
    store,
)

KERNEL, WHY = kernel_bpf_available()

PATHS = 10
"""Paths that meet: more than ``MAX_PARTS``."""
FLAG = -16
"""Where the flag is spilled."""
KTIME = call(Helper.KTIME_GET_NS)


def jgt_reg(dst: int, src: int, skip: int) -> Instruction:
    """``if rD > rS goto +skip``"""
    return Instruction(0x2D, dst, src, skip, 0)


def or_reg(dst: int, src: int) -> Instruction:
    """``rD |= rS``"""
    return Instruction(0x4F, dst, src, 0, 0)


def _with_jumps_to(body: list[list[Instruction]], tail: list[Instruction]) -> list[Instruction]:
    """``body``'s blocks, a ``jgt`` with skip -1 in them made a jump to the start of ``tail``."""
    out = [insn for block in body for insn in block]
    target = len(out)
    for i, insn in enumerate(out):
        if insn.opcode == 0x2D and insn.off == -1:
            out[i] = Instruction(insn.opcode, insn.dst, insn.src, target - i - 1, insn.imm)
    return out + tail


def spilled_flag_program(flag_on_failing_path: bool = False) -> list[Instruction]:
    """``PATHS`` packet-length checks, each failing one going to ``L`` with its own length, its own constant
    in r8 and the flag at ``FLAG`` 0; the path that passes them all puts r9 on a header 8 bytes before the
    proven end and spills the flag 1. At ``L``: a helper call (r1-r5 are lost, as around LLVM's inlined
    lookups), the flag filled back, ``if flag != 0: read 4 bytes at r9 + 4``. With ``flag_on_failing_path``
    the first check's failing path (nothing proven) goes there with the flag 1: unsafe."""
    flag = STX[4]
    blocks = [[load(U32, 6, 1, 0), load(U32, 7, 1, 4), mov(4, 0), store(flag, 10, 4, FLAG), mov_reg(9, 6)]]
    for k in range(1, PATHS + 1):
        first = flag_on_failing_path and k == 1
        blocks.append([*([Instruction(ST_W, 10, 0, FLAG, 1)] if first else []), mov(8, k), mov_reg(3, 6),
                       add_imm(3, 2 * k), jgt_reg(3, 7, -1), *([Instruction(ST_W, 10, 0, FLAG, 0)] if first else [])])
    blocks.append([mov_reg(9, 6), add_imm(9, 2 * PATHS - 8), mov(4, 1), store(flag, 10, 4, FLAG), mov(8, 99)])
    return _with_jumps_to(blocks, [store(STX_DW, 10, 8, -8), KTIME, load(U32, 4, 10, FLAG), jeq_imm(4, 0, 1),
                                   load(U32, 0, 9, 4), mov(0, 2), EXIT])


def folded_flag_program(flag_on_failing_path: bool = False) -> list[Instruction]:
    """As :func:`spilled_flag_program` with the flag in r5 (no call), and at ``L`` the test
    ``r4 = 0; r4 |= r5; if r4 != 0`` (LLVM folds ``is_ipv6 and not is_tcp`` so: generated program 30030)."""
    blocks = [[load(U32, 6, 1, 0), load(U32, 7, 1, 4), mov(5, 0), mov_reg(9, 6)]]
    for k in range(1, PATHS + 1):
        first = flag_on_failing_path and k == 1
        blocks.append([*([mov(5, 1)] if first else []), mov(8, k), mov_reg(3, 6), add_imm(3, 2 * k),
                       jgt_reg(3, 7, -1), *([mov(5, 0)] if first else [])])
    blocks.append([mov_reg(9, 6), add_imm(9, 2 * PATHS - 8), mov(5, 1), mov(8, 99)])
    return _with_jumps_to(blocks, [store(STX_DW, 10, 8, -8), mov(4, 0), or_reg(4, 5), jeq_imm(4, 0, 1),
                                   load(U32, 0, 9, 4), mov(0, 2), EXIT])


CHOICES = 20
"""Values of the tested r8 in :func:`many_choices_program`: with the flag, more combinations of critical
constants than even the critical level holds (``MAX_PARTS * CRITICAL_PARTS``)."""


def many_choices_program(flag_on_failing_path: bool = False) -> list[Instruction]:
    """One check of 34 bytes: the path that passes puts r9 on a header 8 bytes before the checked end and
    spills the flag 1; the other keeps r9 at the packet's start and the flag 0. Then a random number picks
    one of ``CHOICES`` constants for r8, which a jump tests later (each of the two paths, ``2 * CHOICES + 2``
    paths in all, meets at ``L``); at ``L``, ``if flag != 0: read 4 bytes at r9 + 4``. With
    ``flag_on_failing_path`` the path that failed the check has the flag 1 too: unsafe."""
    flag_word = STX[4]
    head = [load(U32, 6, 1, 0), load(U32, 7, 1, 4), mov(4, 1 if flag_on_failing_path else 0),
            store(flag_word, 10, 4, FLAG), mov_reg(9, 6), mov_reg(3, 6), add_imm(3, 34), jgt_reg(3, 7, 3),
            mov_reg(9, 6), add_imm(9, 26), Instruction(ST_W, 10, 0, FLAG, 1), call(Helper.GET_PRANDOM_U32)]
    choices: list[Instruction] = []
    for k in range(1, CHOICES + 1):
        left = CHOICES - k  # pairs of instructions after this one's jump, before ``r8 = 0`` and ``L``
        choices += [mov(8, k), jeq_imm(0, k, 2 * left + 1)]
    tail = [mov(8, 0), jeq_imm(8, 1000, 3), load(U32, 4, 10, FLAG), jeq_imm(4, 0, 1), load(U32, 0, 9, 4),
            mov(0, 2), EXIT]
    return head + choices + tail


def _check(prog: list[Instruction], safe: bool) -> VerifierReport:
    ours = verify_instructions(prog)
    assert ours.ok == safe, ours.format()
    if KERNEL:
        verdict = kernel_verdict(prog)
        assert verdict.ok == safe, verdict.last_lines
    return ours


def _critical(prog: list[Instruction]) -> list[int]:
    slots = slot_offsets(prog)
    env = Env(tuple(prog), {s: i for i, s in enumerate(slots)}, slots)
    return critical_in(env.insns, build_cfg(env).succs)


def test_the_programs_join_more_paths_than_the_partitions_hold() -> None:
    """What the tests below rely on: more paths meet than ``MAX_PARTS``, fewer than the critical cap."""
    assert MAX_PARTS < PATHS + 1 <= MAX_PARTS * CRITICAL_PARTS


def test_a_spill_filled_back_and_tested_is_critical() -> None:
    """The flag's slot is critical from its spill to its fill (a helper call between does not clear it);
    the register spilled is critical before the spill, not after; r8, only stored, never is."""
    prog = spilled_flag_program()
    crit = _critical(prog)
    at_l = next(i for i, insn in enumerate(prog) if insn.opcode == STX_DW)
    fill = at_l + 2
    assert crit[at_l] & slot_bit(FLAG) and crit[fill] & slot_bit(FLAG)
    assert not crit[fill + 1] & slot_bit(FLAG)  # (filled: the register is tested now)
    spill = max(i for i, insn in enumerate(prog[:at_l]) if insn.opcode == STX[4])
    assert crit[spill] >> 4 & 1 and not crit[spill + 1] >> 4 & 1
    assert not any(c >> 8 & 1 or c & slot_bit(-8) for c in crit)
    assert slot_bit(FLAG) == 1 << (SLOT0 + (512 + FLAG) // 8)


def test_an_operand_or_ed_into_a_tested_register_is_critical() -> None:
    prog = folded_flag_program()
    crit = _critical(prog)
    at_l = next(i for i, insn in enumerate(prog) if insn.opcode == STX_DW)
    assert crit[at_l] >> 5 & 1
    assert not crit[at_l] >> 4 & 1  # (set to 0 before the test: its value before does not reach it)


def test_a_flag_spilled_across_a_helper_call_keeps_its_header_checked() -> None:
    """Generated program 30121 (``ipv4 = pkt.ipv4`` in a loop with inlined helpers' lookups): the kernel
    accepts; we said ``checked length: 0 bytes``."""
    _check(spilled_flag_program(), safe=True)


def test_a_spilled_flag_set_on_an_unchecked_path_is_still_refused() -> None:
    report = _check(spilled_flag_program(flag_on_failing_path=True), safe=False)
    assert "packet" in report.errors[0].message


def test_a_flag_folded_into_a_tested_register_keeps_its_header_checked() -> None:
    """Generated program 30030 (``if pkt.tcp is None: ip6 = pkt.ipv6; if ip6 is not None``, tested as
    ``w8 |= w5``): the kernel accepts; we said ``checked length: 14 bytes``."""
    _check(folded_flag_program(), safe=True)


def test_a_folded_flag_set_on_an_unchecked_path_is_still_refused() -> None:
    report = _check(folded_flag_program(flag_on_failing_path=True), safe=False)
    assert "packet" in report.errors[0].message


def test_more_critical_combinations_than_the_partitions_hold_keep_each_flag_with_its_length() -> None:
    """Where the flag and a tested constant meet in more combinations than the critical level holds, the
    partitions keep one state per packet shape (the flag set where 34 bytes were checked stays with them)
    rather than one state for all (generated program 30121: ``checked length: 0 bytes``)."""
    assert 2 * CHOICES + 2 > MAX_PARTS * CRITICAL_PARTS
    _check(many_choices_program(), safe=True)


def test_a_flag_set_without_its_check_among_many_choices_is_still_refused() -> None:
    report = _check(many_choices_program(flag_on_failing_path=True), safe=False)
    assert "packet" in report.errors[0].message


@pytest.mark.skipif(not KERNEL, reason=WHY or "bpf() unavailable")
def test_the_kernel_accepts_both_safe_shapes() -> None:
    """The kernel's own verdicts, asserted where bpf() exists (the tests above only compare when it does)."""
    assert kernel_verdict(spilled_flag_program()).ok
    assert kernel_verdict(folded_flag_program()).ok
    assert kernel_verdict(many_choices_program()).ok
