"""Regions that call helpers: a call's result, the memory and the world after it are uninterpreted, so a
rewrite is proven only where every path makes the same calls in the same order on the same arguments
and memory; each planted difference (a call dropped, doubled, replaced, reordered, given another argument,
or a load moved across it) is refused."""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.bpf.semantics import SemanticsError
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import optimize_object
from pybpfdsl.superopt.lockstep import prove_lockstep
from pybpfdsl.superopt.region import RegionCode, in_region, prove_region, run_region_concrete
from pybpfdsl.superopt.region_threading import Region, thread
from pybpfdsl.superopt.window_semantics import ConcreteMemory
from tests.superopt.conftest import _build

_BPF_OK, _ = kernel_bpf_available()
UNITS = 2_000_000


def _call(helper: Helper) -> Instruction:
    return Instruction(0x85, 0, 0, 0, int(helper))


PRANDOM, KTIME, LOOKUP = _call(Helper.GET_PRANDOM_U32), _call(Helper.KTIME_GET_NS), _call(Helper.MAP_LOOKUP_ELEM)
R0 = 1

# r7 = 1; if r8 == 0x81 goto +1; r7 = 0; call prandom; if r7 != 1 goto L (100); r0 += 1; falls to 6.
DIAMOND = (Instruction(0xB7, 7, 0, 0, 1), Instruction(0x15, 8, 0, 1, 0x81), Instruction(0xB7, 7, 0, 0, 0),
           PRANDOM, Instruction(0x55, 7, 0, 0, 1), Instruction(0x07, 0, 0, 0, 1))
REGION = RegionCode(DIAMOND, ((4, 100),), 6)
LIVE = {6: R0, 100: R0}


def _proven(candidate: RegionCode, original: RegionCode = REGION, live: dict[int, int] = LIVE) -> str:
    return prove_region(original, candidate, live, UNITS).status


def test_a_diamond_around_a_call_is_threaded_and_proven() -> None:
    new = thread(Region("xdp", "f", 0, REGION, tuple(LIVE.items()), (), ()))
    assert new is not None and len(new.code) < len(DIAMOND)
    assert sum(i.kind == Kind.CALL for i in new.code) >= 1
    assert _proven(new) == "proven"


# The right form: if r8 != 0x81 goto X; call; r0 += 1; goto end; X: call; goto L.
RIGHT = RegionCode((Instruction(0x55, 8, 0, 3, 0x81), PRANDOM, Instruction(0x07, 0, 0, 0, 1),
                    Instruction(0x05, 0, 0, 2), PRANDOM, Instruction(0x05, 0, 0, 0)), ((5, 100),), 6)


def _variant(first: Instruction, second: Instruction) -> RegionCode:
    return RegionCode((RIGHT.code[0], first, *RIGHT.code[2:4], second, RIGHT.code[5]), RIGHT.exits, 6)


def test_the_hand_written_form_is_proven() -> None:
    assert _proven(RIGHT) == "proven"


def test_a_call_dropped_on_one_path_is_refused() -> None:
    dropped = RegionCode((Instruction(0x55, 8, 0, 3, 0x81), PRANDOM, Instruction(0x07, 0, 0, 0, 1),
                          Instruction(0x05, 0, 0, 1), Instruction(0x05, 0, 0, 0)), ((4, 100),), 6)
    assert _proven(dropped) == "different"


def test_a_call_made_twice_is_refused() -> None:
    twice = RegionCode((*RIGHT.code[:2], PRANDOM, Instruction(0x07, 0, 0, 0, 1), Instruction(0x05, 0, 0, 2),
                        PRANDOM, Instruction(0x05, 0, 0, 0)), ((6, 100),), 6)
    assert _proven(twice) == "different"


def test_another_helper_is_refused() -> None:
    assert _proven(_variant(KTIME, PRANDOM)) == "different"
    assert _proven(_variant(PRANDOM, KTIME)) == "different"


def test_two_calls_in_another_order_are_refused() -> None:
    both = (PRANDOM, KTIME)
    original = RegionCode((*both, Instruction(0x1D, 0, 0, 0)), (), 3)  # if r0 == r0 goto +0 (a skip)
    swapped = RegionCode((*reversed(both), Instruction(0x1D, 0, 0, 0)), (), 3)
    assert prove_region(original, original, {3: R0}, UNITS).proven
    assert prove_region(original, swapped, {3: R0}, UNITS).status == "different"
    assert prove_region(original, swapped, {3: 0}, UNITS).status == "different"  # the world differs


def test_another_argument_is_refused_and_a_dead_one_is_not() -> None:
    # r2 = r10; r2 += -4; call map_lookup_elem (reads r1, r2); against r2 += -8; and against r3 = 7 set
    # before the call (r3 is no argument of map_lookup_elem: dead, clobbered by the call).
    base = (Instruction(0xBF, 2, 10), Instruction(0x07, 2, 0, 0, -4), LOOKUP, Instruction(0x15, 0, 0, 0, 0))
    original = RegionCode(base, (), 4)
    other = RegionCode((base[0], Instruction(0x07, 2, 0, 0, -8), *base[2:]), (), 4)
    dead = RegionCode((base[0], base[1], Instruction(0xB7, 3, 0, 0, 7), *base[2:]), (), 4)
    assert prove_region(original, other, {4: R0}, UNITS).status == "different"
    assert prove_region(original, dead, {4: R0}, UNITS).proven


def test_a_load_moved_across_a_call_is_refused() -> None:
    # The helper may write memory: reading the stack before the call is not reading it after.
    load = Instruction(0x71, 6, 10, -1)  # r6 = *(u8 *)(r10 - 1)
    skip = Instruction(0x15, 0, 0, 0, 0)
    after = RegionCode((LOOKUP, load, skip), (), 3)
    before = RegionCode((load, LOOKUP, skip), (), 3)
    assert prove_region(after, before, {3: 1 << 6}, UNITS).status == "different"


def test_a_tail_call_is_no_part_of_a_region() -> None:
    tail = _call(Helper.TAIL_CALL)
    assert not in_region(tail) and in_region(PRANDOM)
    region = RegionCode((tail, Instruction(0x15, 0, 0, 0, 0)), (), 2)
    assert prove_region(region, region, {2: R0}, UNITS).status == "unknown"


def test_a_call_has_no_concrete_meaning() -> None:
    with pytest.raises(SemanticsError):
        run_region_concrete(REGION, [0] * 11, ConcreteMemory(0))


@pytest.fixture(scope="module")
def calls_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """tests/superopt/calls.c: boolean diamonds before and after a bpf_get_prandom_u32 call."""
    return _build(tmp_path_factory, "calls")


def test_the_calls_object_shrinks_proven_in_lock_step_and_runs_alike(calls_elf: bytes) -> None:
    result = optimize_object(calls_elf, proposals=0, kernel=_BPF_OK)
    regions = [r for r in result.rewrites if r.source == "region"]
    assert any(any(i.kind == Kind.CALL for i in r.before) for r in regions)
    assert result.proof.status == "ok" and result.kernel.status == ("ok" if _BPF_OK else "skipped")
    assert sum(result.slots("after").values()) <= sum(result.slots("before").values()) - 8
    hints = {"xdp": [(r.start, len(r.before), len(r.after)) for r in regions]}
    assert prove_lockstep(calls_elf, result.after, regions=hints).proven
    after = BpfElf.from_bytes(result.after).programs["xdp"].instructions
    before = BpfElf.from_bytes(calls_elf).programs["xdp"].instructions
    assert [i for i in after if i.kind == Kind.CALL] == [i for i in before if i.kind == Kind.CALL]
