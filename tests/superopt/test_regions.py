"""Regions with jumps inside (clang's boolean diamonds): their meaning, their threaded rewrite, its proof,
the object written back with jumps inside a replacement, and the lock-step proof of such a pass."""

from __future__ import annotations

import random

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import optimize_object
from pybpfdsl.superopt.elf_rewrite import ElfRewriteError, Replacement, rewrite_code
from pybpfdsl.superopt.lockstep import prove_lockstep
from pybpfdsl.superopt.region import RegionCode, prove_region, run_region_concrete, run_region_z3
from pybpfdsl.superopt.region_threading import Region, regions_of, thread
from pybpfdsl.superopt.window_semantics import ConcreteMemory
from tests.superopt.conftest import _build

_BPF_OK, _BPF_REASON = kernel_bpf_available()

# r0 = 1; r7 = 1; if r4 == 0x81 goto +1; r7 = 0; if r4 == 0xa888 goto +1; r0 = 0; r0 |= r7;
# if r0 != 1 goto L (label 100); falls through to label 8.
DIAMOND = (
    Instruction(0xB7, 0, 0, 0, 1), Instruction(0xB7, 7, 0, 0, 1), Instruction(0x15, 4, 0, 1, 0x81),
    Instruction(0xB7, 7, 0, 0, 0), Instruction(0x15, 4, 0, 1, 0xA888), Instruction(0xB7, 0, 0, 0, 0),
    Instruction(0x4F, 0, 7), Instruction(0x55, 0, 0, 0, 1),
)
REGION = RegionCode(DIAMOND, ((7, 100),), 8)
R0, R7 = 1, 1 << 7


def _region(live_end: int, live_l: int) -> Region:
    return Region("xdp", "f", 0, REGION, ((8, live_end), (100, live_l)), (), ())


def test_the_diamond_becomes_two_jumps_where_its_booleans_are_dead() -> None:
    new = thread(_region(0, 0))
    assert new is not None
    assert [i.opcode for i in new.code] == [0x15, 0x55]  # if r4 == 0x81 goto end; if r4 != 0xa888 goto L
    assert new.exits == ((0, 8), (1, 100))
    assert prove_region(REGION, new, {8: 0, 100: 0}, 2_000_000).proven


def test_a_boolean_live_at_an_exit_is_set_there() -> None:
    new = thread(_region(R0, 0))  # r0 read after the fallthrough: it must hold 1 there
    assert new is not None
    assert Instruction(0xB7, 0, 0, 0, 1) in new.code
    assert prove_region(REGION, new, {8: R0, 100: 0}, 2_000_000).proven
    # The two-jump form is wrong then, and the proof says so.
    bare = thread(_region(0, 0))
    assert bare is not None
    assert prove_region(REGION, bare, {8: R0, 100: 0}, 2_000_000).status == "different"


def test_leaving_by_another_exit_is_a_difference() -> None:
    new = thread(_region(0, 0))
    assert new is not None
    swapped = RegionCode(new.code, ((0, 100), (1, 8)), 8)
    assert prove_region(REGION, swapped, {8: 0, 100: 0}, 2_000_000).status == "different"


def test_the_merged_paths_agree_with_each_concrete_run() -> None:
    import z3

    rng = random.Random(3)
    regs = [z3.BitVec(f"r{i}", 64) for i in range(11)]
    mem = z3.Array("mem", z3.BitVecSort(64), z3.BitVecSort(8))
    exits = run_region_z3(REGION, regs, mem)
    for _ in range(20):
        values = [rng.choice((0x81, 0xA888, 5)) if r == 4 else rng.getrandbits(64) for r in range(11)]
        label, out, _ = run_region_concrete(REGION, values, ConcreteMemory(0))
        subst = [(regs[r], z3.BitVecVal(v, 64)) for r, v in enumerate(values)]
        cond, z3_regs, _ = exits[label]
        assert z3.is_true(z3.simplify(z3.substitute(cond, *subst)))
        assert z3.simplify(z3.substitute(z3_regs[0], *subst)).as_long() == out[0]


def test_a_backward_jump_is_no_region() -> None:
    loop = RegionCode((Instruction(0x07, 1, 0, 0, 1), Instruction(0x05, 0, 0, -2, 0)), (), 2)
    assert prove_region(loop, loop, {2: 0}, 1000).status == "unknown"


def test_a_replacement_may_hold_jumps_inside_and_out(diamonds_elf: bytes) -> None:
    prog = BpfElf.from_bytes(diamonds_elf).programs["xdp"]
    region = next(r for r in regions_of(prog) if thread(r) is not None)
    new = thread(region)
    assert new is not None
    n = len(region.original.code)
    out = BpfElf.from_bytes(rewrite_code(diamonds_elf, {"xdp": [Replacement(region.start, n, new.code,
                                                                            new.exits)]})).programs["xdp"]
    assert out.instructions[region.start:region.start + len(new.code)] != new.code  # the exits were aimed
    with pytest.raises(ElfRewriteError):  # an exit into the replaced instructions
        rewrite_code(diamonds_elf, {"xdp": [Replacement(region.start, n, new.code, ((0, region.start + 1),))]})


def test_the_diamonds_object_shrinks_proven_in_lock_step_with_its_regions(diamonds_elf: bytes) -> None:
    result = optimize_object(diamonds_elf, proposals=0, kernel=_BPF_OK, tails=False)
    regions = [r for r in result.rewrites if r.source == "region"]
    assert len(regions) >= 2 and result.proof.status == "ok"
    assert sum(result.slots("after").values()) <= sum(result.slots("before").values()) - 10
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")
    hints = {"xdp": [(r.start, len(r.before), len(r.after)) for r in regions]}
    assert prove_lockstep(diamonds_elf, result.after, regions=hints).proven
    # Without the regions named, the cut points do not line up: undecided, never proven.
    assert prove_lockstep(diamonds_elf, result.after).status == "unknown"


@pytest.mark.skipif(not _BPF_OK, reason=f"bpf() unavailable: {_BPF_REASON}")
def test_the_kernel_runs_the_threaded_object_like_the_input(diamonds_elf: bytes) -> None:
    from pybpfdsl.superopt.kernel_check import load_alone

    after = optimize_object(diamonds_elf, proposals=0).after
    eth = b"\x02" * 12
    packets = [eth + b"\x08\x00" + b"\x00" * 30, eth + b"\x81\x00" + b"\x00\x01\x08\x00" + b"\x00" * 30,
               eth + b"\x88\xa8" + b"\x00\x01\x81\x00\x00\x02\x88\xa8" + b"\x00" * 30,
               eth + b"\x81\x00" + b"\x00\x01\x86\xdd" + b"\x00" * 30, eth + b"\x88\xa8", b"\x00" * 14]
    want, got = load_alone(diamonds_elf, "diamonds", packets), load_alone(after, "diamonds", packets)
    assert want.loaded and got.loaded and got.runs == want.runs
    assert len({action for action, _ in want.runs}) >= 3  # drop, pass and tx all happened


def test_a_comparison_the_path_already_made_is_not_made_again() -> None:
    # r2 = 1; if r3 == r7 goto +1; r2 = 0; if r3 != r7 goto L (a loop's head before the region);
    # r2 &= 1; if r2 == 0 goto M  (xdp-bench's lookup loops)
    code = (Instruction(0xB7, 2, 0, 0, 1), Instruction(0x1D, 3, 7, 1), Instruction(0xB7, 2, 0, 0, 0),
            Instruction(0x5D, 3, 7, 0), Instruction(0x57, 2, 0, 0, 1), Instruction(0x15, 2, 0, 0, 0))
    region = RegionCode(code, ((3, 2), (5, 90)), 16)
    new = thread(Region("xdp", "f", 10, region, ((2, 0), (16, 0), (90, 0)), (), ()))
    assert new is not None and len(new.code) == 1 and new.exits == ((0, 2),)
    assert prove_region(region, new, {2: 0, 16: 0, 90: 0}, 2_000_000).proven


def test_a_comparison_with_its_operands_swapped_is_recalled_too() -> None:
    # r3 = 1; if r1 >= r5 goto +1; r3 = 0; r3 <<= 1; r4 = r3; if r5 > r1 goto L  (xdp-filter's ICMPv6 check)
    code = (Instruction(0xB7, 3, 0, 0, 1), Instruction(0x3D, 1, 5, 1), Instruction(0xB7, 3, 0, 0, 0),
            Instruction(0x67, 3, 0, 0, 1), Instruction(0xBF, 4, 3), Instruction(0x2D, 5, 1, 0))
    region = RegionCode(code, ((5, 90),), 6)
    live = ((6, 1 << 3 | 1 << 4), (90, 0))
    new = thread(Region("xdp", "f", 0, region, live, (), ()))
    assert new is not None and len(new.code) == 3  # if r1 < r5 goto L; r3 = 2; r4 = 2
    assert prove_region(region, new, dict(live), 2_000_000).proven


def test_a_register_already_holding_the_value_is_not_set_again() -> None:
    # r2 = 64; if r2 s> r1 goto L; r0 = 1; r2 = 1501; if r2 s> r1 goto +1; r0 = 0  with r0 = 1 on entry
    # (ok_meta_compare): the region's r0 = 1 is what r0 holds already, so both jumps go straight out.
    code = (Instruction(0xB7, 2, 0, 0, 64), Instruction(0x6D, 2, 1, 0), Instruction(0xB7, 0, 0, 0, 1),
            Instruction(0xB7, 2, 0, 0, 1501), Instruction(0x6D, 2, 1, 1), Instruction(0xB7, 0, 0, 0, 0))
    region = RegionCode(code, ((1, 90),), 6)
    live = ((6, R0), (90, R0))
    new = thread(Region("xdp", "f", 0, region, live, ((0, 1),), ()))
    assert new is not None and len(new.code) == 3  # if r1 s< 64 goto L; if r1 s< 1501 goto end; r0 = 0
    assert prove_region(region, new, dict(live), 2_000_000, {0: 1}).proven
    assert prove_region(region, new, dict(live), 2_000_000).status == "different"  # r0 = 1 was needed


def test_an_output_whose_regions_no_whole_proof_decides_is_searched_again_without_them(
        diamonds_elf: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from pybpfdsl.superopt import api
    from pybpfdsl.superopt.gate import GateVerdict
    from pybpfdsl.superopt.lockstep import LockstepVerdict

    def chain(stages: object, hints: list[dict[str, object]]) -> LockstepVerdict:
        return LockstepVerdict("unknown", "regions") if any(hints) else LockstepVerdict("proven")

    monkeypatch.setattr(api, "prove_whole", lambda *a: GateVerdict("unknown", "not decided"))
    monkeypatch.setattr(api, "_lockstep_chain", chain)
    result = optimize_object(diamonds_elf, proposals=20, kernel=False)
    assert not any(r.source == "region" for r in result.rewrites)
    assert result.notes and "searched again without them" in result.notes[0]


def test_a_constant_most_ways_out_want_stays_where_the_region_sets_it() -> None:
    # r0 = 1; if r2 == 0x1600 goto +2; if r1 == 0x1700 goto +1; r0 = 2  (r0 read after): sinking r0 = 1 to
    # the two ways out that want it costs a jump more than leaving it first.
    code = (Instruction(0xB7, 0, 0, 0, 1), Instruction(0x15, 2, 0, 2, 0x1600), Instruction(0x15, 1, 0, 1, 0x1700),
            Instruction(0xB7, 0, 0, 0, 2))
    region = RegionCode(code, (), 4)
    new = thread(Region("xdp", "f", 0, region, ((4, R0),), (), ()))
    assert new is not None and len(new.code) == 4 and new.code[0] == code[0]
    assert prove_region(region, new, {4: R0}, 2_000_000).proven


# r1 = r6; r1 <<= 32; r1 >>= 32; r2 = 0xffffffa5 ll; if r1 s> r2 goto L; r2 = 0xffffff9c ll; if r1 == r2 goto M
# (xdp-bench's errno switch on a zero-extended value, its constants past an immediate's reach).
ERRNO = (Instruction(0xBF, 1, 6), Instruction(0x67, 1, 0, 0, 32), Instruction(0x77, 1, 0, 0, 32),
         Instruction.lddw(2, 0xFFFFFFA5), Instruction(0x6D, 1, 2, 0), Instruction.lddw(2, 0xFFFFFF9C),
         Instruction(0x1D, 1, 2, 0))
ERRNO_REGION = RegionCode(ERRNO, ((4, 90), (6, 91)), 7)
ERRNO_LIVE = ((7, 0), (90, 0), (91, 0))


def test_a_narrow_value_against_a_wide_constant_is_compared_in_32_bits() -> None:
    new = thread(Region("xdp", "f", 0, ERRNO_REGION, ERRNO_LIVE, (), ()))
    assert new is not None
    assert [str(i) for i in new.code[-2:]] == ["if w1 > 0xffffffa5 goto pc+0", "if w1 == 0xffffff9c goto pc+0"]
    assert sum(i.slots for i in new.code) == sum(i.slots for i in ERRNO) - 4  # no lddw left
    assert prove_region(ERRNO_REGION, new, dict(ERRNO_LIVE), 2_000_000).proven


def test_a_32_bit_comparison_of_a_wide_value_is_refused() -> None:
    # Without the zero extension r1 may be wider: the threading keeps the 64-bit comparison, and the
    # 32-bit one planted in its place is refused.
    wide = RegionCode(ERRNO[3:], ((1, 90), (3, 91)), 7)
    new = thread(Region("xdp", "f", 0, wide, ERRNO_LIVE, (), ()))
    assert new is None or not any(i.cls == 0x06 for i in new.code)
    planted = RegionCode((Instruction(0x26, 1, 0, 0, -91), Instruction(0x16, 1, 0, 0, -100)), ((0, 90), (1, 91)), 7)
    assert prove_region(wide, planted, dict(ERRNO_LIVE), 2_000_000).status == "different"
    # A region that only knows r1 narrow from its entry facts may use it.
    assert prove_region(wide, planted, dict(ERRNO_LIVE), 2_000_000, widths={1: 32}).proven
    narrow = thread(Region("xdp", "f", 0, wide, ERRNO_LIVE, (), ((1, 32),)))
    assert narrow is not None and narrow.code == planted.code


def _null_check(first_b: Instruction) -> RegionCode:
    # if r0 == 0 goto B; r1 = *(u64 *)(r0 +0); r6 -= r7; *(u64 *)(r0 +8) = r6; goto L;
    # B: <first_b>; r6 -= r7; *(u64 *)(r10 -16) = r6  (ok_hash_counter: the update's value on both arms)
    return RegionCode((Instruction(0x15, 0, 0, 4, 0), Instruction(0x79, 1, 0, 0), Instruction(0x1F, 6, 7),
                       Instruction(0x7B, 0, 6, 8), Instruction(0x05, 0, 0, 0), first_b, Instruction(0x1F, 6, 7),
                       Instruction(0x7B, 10, 6, -16)), ((4, 90),), 8)


def test_an_instruction_both_arms_make_after_other_work_is_made_once_before_the_test() -> None:
    region = _null_check(Instruction(0x7A, 10, 0, -24, 1))  # *(u64 *)(r10 -24) = 1
    live = ((8, 1 << 6), (90, 0))
    new = thread(Region("xdp", "f", 0, region, live, (), ()))
    assert new is not None and new.code[0] == Instruction(0x1F, 6, 7)
    assert sum(i.opcode == 0x1F for i in new.code) == 1 and len(new.code) == len(region.code) - 1
    assert prove_region(region, new, dict(live), 2_000_000).proven


def test_an_instruction_an_arm_reads_before_is_not_moved() -> None:
    # Arm B stores r6 before subtracting: r6 -= r7 done first there would store another value.
    region = _null_check(Instruction(0x7B, 10, 6, -24))  # *(u64 *)(r10 -24) = r6
    live = ((8, 1 << 6), (90, 0))
    new = thread(Region("xdp", "f", 0, region, live, (), ()))
    assert new is None or new.code[0] != Instruction(0x1F, 6, 7)
    planted = RegionCode((Instruction(0x1F, 6, 7), Instruction(0x15, 0, 0, 3, 0), *region.code[1:2],
                          *region.code[3:6], region.code[7]), ((4, 90),), 8)
    assert prove_region(region, planted, dict(live), 2_000_000).status == "different"


def test_a_region_leaving_for_a_place_the_input_does_not_is_not_proven_in_lock_step(diamonds_elf: bytes) -> None:
    prog = BpfElf.from_bytes(diamonds_elf).programs["xdp"]
    region, new = next((r, t) for r in regions_of(prog) if (t := thread(r)) is not None and t.exits)
    n = len(region.original.code)
    hints = {"xdp": [(region.start, n, len(new.code))]}
    right = rewrite_code(diamonds_elf, {"xdp": [Replacement(region.start, n, new.code, new.exits)]})
    assert prove_lockstep(diamonds_elf, right, regions=hints).proven
    labels = {label for _, label in region.original.exits}
    # A place after the region that no way out of it goes to.
    elsewhere = next(i for i in range(region.start + n + 1, len(prog.instructions)) if i not in labels)
    moved = tuple((pos, elsewhere) for pos, _ in new.exits)
    wrong = rewrite_code(diamonds_elf, {"xdp": [Replacement(region.start, n, new.code, moved)]})
    assert prove_lockstep(diamonds_elf, wrong, regions=hints).status == "unknown"


def test_the_ways_of_a_diamond_share_the_code_after_its_join() -> None:
    # if r2 > r3 goto +1; r3 = r2; *(u16 *)(r10 -14) = r3; r3 <<= 32; r2 = 0xffffffff ll: clang's min()
    # and the code after it (6 slots). Threaded, the constant takes one slot; the two ways of the min()
    # run the same three instructions after it, which are laid out once (else the region grows to 8).
    code = (Instruction(0x2D, 2, 3, 1, 0), Instruction(0xBF, 3, 2), Instruction(0x6B, 10, 3, -14),
            Instruction(0x67, 3, 0, 0, 32), Instruction.lddw(2, 0xFFFFFFFF))
    original = RegionCode(code, (), 5)
    new = thread(Region("xdp", "f", 0, original, ((5, 1 << 2 | 1 << 3),), (), ()))
    assert new is not None
    assert sum(i.slots for i in new.code) == 5
    assert new.code.count(Instruction(0x6B, 10, 3, -14)) == 1
    assert prove_region(original, new, {5: 1 << 2 | 1 << 3}, 2_000_000).proven


def test_a_way_that_returns_a_known_zero_goes_straight_to_the_exit(tmp_path_factory: pytest.TempPathFactory) -> None:
    # null_return.c: ``if r0 == 0 goto out; ...; r6 = *(u32 *)(r10 -4); out: r0 = r6; exit`` with r6 = 0 set
    # at the top. Threading the NULL test to the exit saves nothing by itself (the region's size stays),
    # but the region then reads r6 on entry no more: ``r6 = 0`` is dead, and ``r6 = ...; r0 = r6`` one load.
    elf = _build(tmp_path_factory, "null_return")
    # (The counter's load, add and store are one atomic add besides: 12 slots -> 11, test_atomic_adds.py.)
    # Without the tails and drops: the drops would take the NULL test itself (a constant key's array lookup).
    result = optimize_object(elf, proposals=600, kernel=_BPF_OK, tails=False)
    assert result.slots("before")["xdp"] == 14
    assert result.slots("after")["xdp"] == 11
    assert any(r.source == "region" for r in result.rewrites)
    assert (result.verifier.status, result.proof.status) == ("ok", "ok")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")
