"""Issue 13 §2: precision where the kernel has it, and never more.

Each case is checked against the kernel on this machine (skipped, with the reason, without bpf()):
the variants the kernel accepts must be accepted, and the variants it refuses must be refused by us too.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.verify.analysis import Code, api, driver, partitions, verify_instructions
from pybpfdsl.verify.analysis.values import MapInfo
from tests.verify.analysis.kernel_oracle import BPF_MAP_TYPE_HASH, KERNEL, WHY, kernel_verdict
from tests.verify.analysis.opcodes import EXIT, LDX, ST, STX, U32, U64, add_imm, jeq_imm, load, mov, mov_reg

needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")


# --------------------------------------------------------------------------- #
# 1. What a stack store gives back to a load: exactly what the kernel keeps
# --------------------------------------------------------------------------- #

def _store_then_load(before: str, how: str, size: int, off: int, rsize: int, roff: int,
                     c: int) -> list[Instruction] | None:
    """``before`` (nothing / 8 unknown bytes / 8 zero bytes at r10-8), a ``size``-byte store of ``c`` at
    r10+off (``st`` an immediate, ``stx64``/``stx32`` a register set by ``r1 = c``/``w1 = c``), an
    ``rsize``-byte load at r10+roff into r0, then ``if r0 == <what memory holds> goto ok`` and on the
    other branch a load through r0: safe only if the verifier knows r0's value. None if a byte read
    was never written (its value is unknown anyway) or the value is not a jump's immediate."""
    prog = [load(U32, 2, 1, 12)]  # r2 = an unknown number (ingress_ifindex)
    memory: dict[int, int] = {}
    if before == "unknown":
        prog.append(Instruction(STX[8], 10, 2, -8, 0))
    elif before == "zero":
        prog.append(Instruction(ST[8], 10, 0, -8, 0))
        memory = dict.fromkeys(range(-8, 0), 0)
    else:
        prog.append(mov(3, 0))
    prog.append(Instruction(0xB4 if how == "stx32" else 0xB7, 1, 0, 0, c))
    prog.append(Instruction(ST[size], 10, 0, off, c) if how == "st" else Instruction(STX[size], 10, 1, off, 0))
    value = c & 0xFFFFFFFF if how == "stx32" else c & (1 << 64) - 1
    for i in range(size):
        memory[off + i] = value >> 8 * i & 0xFF
    if any(roff + i not in memory for i in range(rsize)):
        return None
    expect = sum(memory[roff + i] << 8 * i for i in range(rsize))
    if expect >= 1 << 31:
        return None  # not an immediate a jump can compare with
    prog += [Instruction(LDX[rsize], 0, 10, roff, 0), jeq_imm(0, expect, 1), load(U64, 0, 0, 0), mov(0, 2), EXIT]
    return prog


def _stack_cases() -> list[tuple[str, str, int, int, int, int, int]]:
    out = []
    for before in ("none", "zero"):
        for how in ("st", "stx64", "stx32"):
            for size in (1, 2, 4, 8):
                for off in (-8, -4, -1):
                    if off % size or off + size > 0:
                        continue
                    for rsize in (1, 2, 4, 8):
                        for roff in (-8, -6, -4):
                            if roff % rsize:
                                continue
                            for c in (0, 2, 0x10000) if how == "st" else (0, 2):
                                if _store_then_load(before, how, size, off, rsize, roff, c) is not None:
                                    out.append((before, how, size, off, rsize, roff, c))
    return out


@needs_kernel
def test_a_stack_load_knows_what_the_kernel_knows() -> None:
    """Over stores of every size and kind at aligned and unaligned offsets, over zeroed or fresh slots,
    and loads of every size at every position: we know the loaded value exactly when the kernel does
    (never more: that would accept what it refuses; never less: a false alarm)."""
    differ = []
    cases = _stack_cases()
    assert len(cases) > 500
    for case in cases:
        prog = _store_then_load(*case)
        assert prog is not None
        kernel = kernel_verdict(prog).ok
        ours = verify_instructions(prog, allow_uninit_stack_reads=True).ok
        if kernel != ours:
            differ.append((case, "kernel", kernel, "ours", ours))
    assert not differ, differ[:10]


@needs_kernel
@pytest.mark.parametrize("how", ["st", "stx32"])
def test_a_constant_stored_off_a_slot_start_is_unknown_to_the_kernel_too(how: str) -> None:
    """``*(u32 *)(r10 - 4) = 2; r0 = *(u32 *)(r10 - 4)``: the kernel keeps "some bytes" there, not the
    2 (it tracks values only at the start of an 8-byte slot), so r0 is any 32-bit number for both."""
    prog = _store_then_load("none", how, 4, -4, 4, -4, 2)
    assert prog is not None
    assert not kernel_verdict(prog).ok
    report = verify_instructions(prog, allow_uninit_stack_reads=True)
    assert not report.ok and report.errors[0].code == Code.BAD_POINTER, report.format()
    aligned = _store_then_load("none", how, 4, -8, 4, -8, 2)
    assert aligned is not None
    assert kernel_verdict(aligned).ok and verify_instructions(aligned).ok


# --------------------------------------------------------------------------- #
# 2. A pointer spilled on one path only is still a pointer spill after the join
# --------------------------------------------------------------------------- #

POINTER_SPILL_ON_ONE_PATH = {
    # if (r2) spill ctx at r10-8 else store two 4-byte numbers there; then read 4 bytes of it
    "other path: two numbers": [load(U32, 2, 1, 12), jeq_imm(2, 0, 2), Instruction(STX[8], 10, 1, -8, 0),
                                Instruction(0x05, 0, 0, 2, 0), Instruction(STX[4], 10, 2, -8, 0),
                                Instruction(STX[4], 10, 2, -4, 0), load(U32, 0, 10, -8), mov(0, 2), EXIT],
    # if (r2) spill ctx at r10-8; then read 4 bytes of it (never written on the other path)
    "other path: nothing": [load(U32, 2, 1, 12), jeq_imm(2, 0, 1), Instruction(STX[8], 10, 1, -8, 0),
                            load(U32, 0, 10, -8), mov(0, 2), EXIT],
}


@pytest.mark.parametrize("name", list(POINTER_SPILL_ON_ONE_PATH))
@pytest.mark.parametrize("uninit_reads", [False, True], ids=["strict", "root"])
def test_partial_read_of_a_pointer_spilled_on_one_path_is_refused(name: str, uninit_reads: bool) -> None:
    prog = POINTER_SPILL_ON_ONE_PATH[name]
    report = verify_instructions(prog, allow_uninit_stack_reads=uninit_reads)
    read_at = len(prog) - 3
    assert not report.ok and any(f.insn == read_at for f in report.errors), report.format()
    if KERNEL:
        verdict = kernel_verdict(prog)
        assert not verdict.ok and "invalid size of register fill" in verdict.log, verdict.last_lines


def test_whole_read_of_a_pointer_spilled_on_one_path_is_accepted() -> None:
    """The same join read back whole: a pointer on one path, a number on the other; nothing is done
    with it, so both verifiers accept."""
    prog = list(POINTER_SPILL_ON_ONE_PATH["other path: two numbers"])
    prog[-3] = load(U64, 0, 10, -8)
    prog[-2] = mov(0, 2)
    assert verify_instructions(prog).ok
    if KERNEL:
        assert kernel_verdict(prog).ok


# --------------------------------------------------------------------------- #
# 3. Packet pointers at different constant offsets meeting at a join
# --------------------------------------------------------------------------- #

def _header_at_14_or_18(read_off: int, check: int = 20, size_op: int = U32) -> list[Instruction]:
    """``nh = data + 14``, or ``+ 18`` on one path (a VLAN tag); then ``if nh + check > data_end: pass``
    and a read at ``nh + read_off`` (xdp-tools' parse_ethhdr followed by an IPv4 header read)."""
    return [
        load(U32, 2, 1, 0), load(U32, 3, 1, 4), load(U32, 4, 1, 12),   # r2 = data, r3 = data_end, r4 = ifindex
        mov_reg(6, 2), add_imm(6, 14), jeq_imm(4, 0, 2),               # nh = data + 14; if ifindex == 0 skip
        mov_reg(6, 2), add_imm(6, 18),                                 # nh = data + 18
        mov_reg(7, 6), add_imm(7, check), Instruction(0x2D, 7, 3, 1, 0),  # if nh + check > data_end goto out
        load(size_op, 0, 6, read_off),
        mov(0, 2), EXIT,
    ]


@pytest.fixture(params=[partitions.MAX_PARTS, 1], ids=["partitioned", "one state per point"])
def partitions(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run with the analysis' path partitions, and without: a join must keep the precision itself
    (partitions run out on real programs: xdp-forward has 12 ways through its VLAN parsing)."""
    n: int = request.param
    plain = driver.analyse
    monkeypatch.setattr(api, "analyse", lambda env, entry=None, max_parts=n: plain(env, entry, max_parts))
    return n


@pytest.mark.parametrize("read_off", [0, 8, 16])
def test_a_check_through_a_joined_header_pointer_covers_its_reads(read_off: int, partitions: int) -> None:
    """Each path checks ``nh + 20`` with its own constant ``nh``; the joined pointer (14 or 18) keeps the
    check relative to itself, so reads up to ``nh + 20`` are proven (the kernel proves them per path)."""
    prog = _header_at_14_or_18(read_off)
    report = verify_instructions(prog)
    assert report.ok, report.format()
    if KERNEL:
        assert kernel_verdict(prog).ok


@pytest.mark.parametrize("read_off", [17, 20, -15])
def test_a_read_past_the_joined_check_is_refused(read_off: int, partitions: int) -> None:
    """4 bytes at ``nh + 17`` end past ``nh + 20`` (at 18 + 21 = 39 on the VLAN path, checked 38);
    ``nh - 15`` is before the packet on the 14-byte path: the kernel refuses both, so do we."""
    prog = _header_at_14_or_18(read_off)
    report = verify_instructions(prog)
    assert not report.ok and any(f.code == Code.PACKET_BOUNDS and f.insn == 11 for f in report.errors), \
        report.format()
    if KERNEL:
        verdict = kernel_verdict(prog)
        assert not verdict.ok and "invalid access to packet" in verdict.log, verdict.last_lines


def _check_through_a_variable_pointer(read_off: int) -> list[Instruction]:
    """``data + 14`` checked; then ``p = data + (data[0] & 15) + 40`` checked; then a byte read at
    ``data + read_off``. The second check proves the packet at least 40 bytes long, but the kernel
    extends the checked range of constant-offset pointers only through one of them (and the variable
    pointer's own id): for it ``data`` is still checked to 14 bytes only."""
    return [
        load(U32, 2, 1, 0), load(U32, 3, 1, 4),
        mov_reg(4, 2), add_imm(4, 14), Instruction(0x2D, 4, 3, 8, 0),   # if data + 14 > data_end goto out
        load(0x71, 5, 2, 0), Instruction(0x57, 5, 0, 0, 15),            # r5 = data[0] & 15
        mov_reg(6, 2), Instruction(0x0F, 6, 5, 0, 0), add_imm(6, 40),   # p = data + r5 + 40
        Instruction(0x2D, 6, 3, 2, 0),                                  # if p > data_end goto out
        load(0x71, 0, 6, -1),                                           # p[-1]: proven by p's own check
        load(0x71, 0, 2, read_off),
        mov(0, 2), EXIT,
    ]


@pytest.mark.parametrize(("read_off", "safe"), [(13, True), (14, False), (39, False)])
def test_a_check_through_a_variable_pointer_does_not_extend_constant_ones(read_off: int, safe: bool) -> None:
    prog = _check_through_a_variable_pointer(read_off)
    report = verify_instructions(prog)
    assert report.ok == safe, report.format()
    if not safe:
        assert any(f.code == Code.PACKET_BOUNDS and f.insn == 12 for f in report.errors), report.format()
    if KERNEL:
        verdict = kernel_verdict(prog)
        assert verdict.ok == safe, verdict.last_lines


# --------------------------------------------------------------------------- #
# 4. Values of two different maps meeting at a join
# --------------------------------------------------------------------------- #

WIDE = MapInfo("wide", BPF_MAP_TYPE_HASH, 4, 16, 4)
NARROW = MapInfo("narrow", BPF_MAP_TYPE_HASH, 4, 8, 4)
WIDE_LDDW, NARROW_LDDW = 5, 8


def _lookup_in_one_of_two_maps(access: Instruction) -> list[Instruction]:
    """``v = ifindex ? lookup(&wide, &0) : lookup(&narrow, &0)`` (one call per map, as two branches of C
    code compile); ``if (v) <access through r0>``."""
    return [
        load(U32, 6, 1, 12), Instruction(0x62, 10, 0, -4, 0), mov_reg(2, 10), add_imm(2, -4),
        jeq_imm(6, 0, 4),                                   # slot 4: if ifindex == 0 goto slot 9
        Instruction.lddw(1, 0), Instruction(0x85, 0, 0, 0, 1), Instruction(0x05, 0, 0, 3, 0),
        Instruction.lddw(1, 0), Instruction(0x85, 0, 0, 0, 1),
        jeq_imm(0, 0, 1), access, mov(0, 2), EXIT,
    ]


def _ours_two_maps(prog: list[Instruction]) -> bool:
    return verify_instructions(prog, map_refs={WIDE_LDDW: (WIDE, None), NARROW_LDDW: (NARROW, None)}).ok


@pytest.mark.parametrize(("access", "safe"), [
    (Instruction(0x7A, 0, 0, 0, 1), True),       # *(u64 *)(r0 + 0) = 1: in both values
    (load(U32, 1, 0, 4), True),                  # r1 = *(u32 *)(r0 + 4)
    (load(U64, 1, 0, 8), False),                 # past the narrow map's 8 bytes
    (Instruction(0x7A, 0, 0, 12, 1), False),
], ids=["store +0", "load +4", "load +8", "store +12"])
def test_a_value_of_either_map_allows_what_both_allow(access: Instruction, safe: bool) -> None:
    prog = _lookup_in_one_of_two_maps(access)
    assert _ours_two_maps(prog) == safe
    if KERNEL:
        verdict = kernel_verdict(prog, other_maps={WIDE_LDDW: WIDE, NARROW_LDDW: NARROW})
        assert verdict.ok == safe, verdict.last_lines
        if not safe:
            assert "invalid access to map value" in verdict.log, verdict.last_lines


def test_a_value_of_either_map_is_still_checked_for_null() -> None:
    prog = _lookup_in_one_of_two_maps(load(U64, 1, 0, 0))
    prog[-4] = mov(3, 0)  # no NULL check
    assert not _ours_two_maps(prog)
    if KERNEL:
        assert not kernel_verdict(prog, other_maps={WIDE_LDDW: WIDE, NARROW_LDDW: NARROW}).ok
