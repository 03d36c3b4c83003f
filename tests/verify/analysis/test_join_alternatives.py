"""Joins of values that differ in type, or in the map they belong to, are checked once per alternative.

The kernel follows each path with its own types: after ``r1 = is_v6 ? &map6 : &map4`` (LLVM merges the two
lookups into one call site) each path's call is checked against its own map, and a value read through a
pointer into one map or the other is checked against that map's value. We keep the alternatives of such a
join (``values.OneOf``) and run the instruction that reads them once per alternative. Each program here is
loaded into the kernel too: the accepted shape and a nearby unsafe one, which we must still refuse.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, VerifierReport, verify_instructions
from pybpfdsl.verify.analysis.values import (
    MAX_ALTERNATIVES,
    CtxPtr,
    MapInfo,
    MapPtr,
    MapValue,
    OneOf,
    PacketPtr,
    ScalarValue,
    alternatives,
    join_values,
    value_le,
    widen_values,
)
from pybpfdsl.verify.domains.scalar import Scalar
from tests.verify.analysis.kernel_oracle import BPF_MAP_TYPE_HASH, kernel_verdict
from tests.verify.analysis.opcodes import (
    CALL_LOOKUP,
    EXIT,
    ST_DW,
    ST_W,
    U16,
    U32,
    add_imm,
    ja,
    jeq_imm,
    load,
    mov,
    mov_reg,
)

KERNEL, WHY = kernel_bpf_available()


def _check(prog: list[Instruction], maps: dict[int, MapInfo], safe: bool, kernel_says: str = "") -> VerifierReport:
    ours = verify_instructions(prog, map_refs={i: (m, None) for i, m in maps.items()})
    assert ours.ok == safe, ours.format()
    if KERNEL:
        verdict = kernel_verdict(prog, other_maps=maps)
        assert verdict.ok == safe, verdict.last_lines
        assert kernel_says in verdict.log, verdict.last_lines
    return ours


# --------------------------------------------------------------------------- #
# 1. One lookup call for two maps (LLVM merges the calls): each map with its own key
# --------------------------------------------------------------------------- #

KEY4 = MapInfo("key4", BPF_MAP_TYPE_HASH, 4, 8, 4)
KEY8 = MapInfo("key8", BPF_MAP_TYPE_HASH, 8, 8, 4)
KEY4_LDDW, KEY8_LDDW = 4, 8


def _one_call_two_maps(key8_at: int) -> list[Instruction]:
    """``r1, r2 = ifindex ? (&key4, fp-4) : (&key8, fp+key8_at)``, then one ``bpf_map_lookup_elem``."""
    return [
        load(U32, 6, 1, 12), Instruction(ST_W, 10, 0, -4, 0), Instruction(ST_DW, 10, 0, -16, 0),
        jeq_imm(6, 0, 5),                                     # slot 3: if ifindex == 0 goto slot 9
        Instruction.lddw(1, 0), mov_reg(2, 10), add_imm(2, -4), ja(4),  # slots 4-8, then to slot 13
        Instruction.lddw(1, 0), mov_reg(2, 10), add_imm(2, key8_at),    # slots 9-12
        CALL_LOOKUP, mov(0, 2), EXIT,                         # slot 13
    ]


def test_one_call_for_two_maps_is_checked_against_each_map() -> None:
    _check(_one_call_two_maps(-16), {KEY4_LDDW: KEY4, KEY8_LDDW: KEY8}, safe=True)


def test_one_call_for_two_maps_refuses_a_key_one_map_cannot_take() -> None:
    """The 8-byte key of ``key8`` at fp-4 runs past the frame; fp-4 is fine for ``key4``'s 4 bytes."""
    ours = _check(_one_call_two_maps(-4), {KEY4_LDDW: KEY4, KEY8_LDDW: KEY8}, safe=False,
                  kernel_says="invalid read from stack R2 off=-4 size=8")
    assert any(f.code == Code.HELPER_ARG and f.insn == 11 for f in ours.errors), ours.format()


# --------------------------------------------------------------------------- #
# 2. Pointers into two maps' values, at different offsets, meeting at a join
# --------------------------------------------------------------------------- #

FOUR = MapInfo("four", BPF_MAP_TYPE_HASH, 4, 4, 4)
TWO = MapInfo("two", BPF_MAP_TYPE_HASH, 4, 2, 4)
FOUR_LDDW, TWO_LDDW = 5, 10


def _values_of_two_maps(access: Instruction) -> list[Instruction]:
    """``p = ifindex ? lookup(&four) + 2 : lookup(&two)`` (each NULL-checked), then ``access`` through r0."""
    return [
        load(U32, 6, 1, 12), Instruction(ST_W, 10, 0, -4, 0), mov_reg(2, 10), add_imm(2, -4),
        jeq_imm(6, 0, 6),                                     # slot 4: if ifindex == 0 goto slot 11
        Instruction.lddw(1, 0), CALL_LOOKUP, jeq_imm(0, 0, 7),  # slots 5-8: NULL goes to slot 16
        add_imm(0, 2), ja(4),                                 # slots 9-10, then to slot 15
        Instruction.lddw(1, 0), CALL_LOOKUP, jeq_imm(0, 0, 1),  # slots 11-14
        access, mov(0, 2), EXIT,                              # slots 15-17
    ]


def test_a_two_byte_read_fits_both_values() -> None:
    """``four`` + 2 and ``two`` + 0 both hold 2 bytes: one value merged into the smaller map at offsets
    [0, 2] did not fit (the generated program of test_known_bugs' two-byte map values)."""
    _check(_values_of_two_maps(load(U16, 1, 0, 0)), {FOUR_LDDW: FOUR, TWO_LDDW: TWO}, safe=True)


@pytest.mark.parametrize("access", [load(U32, 1, 0, 0), load(U16, 1, 0, 2)], ids=["u32 +0", "u16 +2"])
def test_a_read_past_one_of_the_values_is_refused(access: Instruction) -> None:
    ours = _check(_values_of_two_maps(access), {FOUR_LDDW: FOUR, TWO_LDDW: TWO}, safe=False,
                  kernel_says="invalid access to map value")
    assert any(f.code == Code.MAP_BOUNDS and f.insn == 13 for f in ours.errors), ours.format()


# --------------------------------------------------------------------------- #
# 3. The kernel's bound on a pointer's offset (now also checked on a plain pointer)
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize(("additions", "safe"), [(1, True), (2, False)])
def test_a_pointer_offset_reaching_two_to_the_29_is_refused(additions: int, safe: bool) -> None:
    prog = [mov_reg(2, 1), *[add_imm(2, 1 << 28)] * additions, mov(0, 2), EXIT]
    _check(prog, {}, safe, kernel_says="" if safe else "pointer offset 536870912 is not allowed")


# --------------------------------------------------------------------------- #
# 4. Many paths: a full point keeps its packet facts apart (only the constants joined)
# --------------------------------------------------------------------------- #

def _ipv4_or_ipv6_then_flags(access_off: int) -> list[Instruction]:
    """34 or 54 bytes checked (r5 = 0 or 1 says which), then four flags set on 2 x 2 x 2 x 2 paths (more than a
    point's partitions), then a 4-byte read at ``access_off`` if r5 == 1."""
    jgt_reg, or_reg = 0x2D, 0x4F  # if rD > rS goto; rD |= rS
    return [
        load(U32, 2, 1, 0), load(U32, 3, 1, 4), load(U32, 4, 1, 12), load(U32, 6, 1, 16), mov(5, 0),
        jeq_imm(4, 0, 4),                                                        # 5: to 10
        mov_reg(0, 2), add_imm(0, 34), Instruction(jgt_reg, 0, 3, 24, 0), ja(4),  # 6-9: to 33 / 14
        mov(5, 1), mov_reg(0, 2), add_imm(0, 54), Instruction(jgt_reg, 0, 3, 19, 0),  # 10-13
        mov(7, 0), jeq_imm(6, 1, 1), mov(7, 1),                                  # 14-16
        mov(8, 0), jeq_imm(6, 2, 1), mov(8, 1),                                  # 17-19
        mov(9, 0), jeq_imm(6, 3, 1), mov(9, 1),                                  # 20-22
        mov(4, 0), jeq_imm(6, 4, 1), mov(4, 1),                                  # 23-25
        Instruction(0x55, 5, 0, 1, 1),                                           # 26: if r5 != 1 goto 28
        load(U32, 1, 2, access_off),                                             # 27
        mov_reg(0, 7), Instruction(or_reg, 0, 8, 0, 0), Instruction(or_reg, 0, 9, 0, 0),
        Instruction(or_reg, 0, 4, 0, 0), EXIT,                                   # 28-32
        mov(0, 1), EXIT,                                                         # 33-34
    ]


def test_a_full_point_keeps_the_longer_checked_header_apart() -> None:
    """The read of bytes 50..54 is on the IPv6 path only, where 54 bytes are checked; joining every path
    at the full point (more than 8 partitions) left 34 checked bytes and refused it."""
    _check(_ipv4_or_ipv6_then_flags(50), {}, safe=True)


def test_a_read_past_the_longer_checked_header_is_refused() -> None:
    ours = _check(_ipv4_or_ipv6_then_flags(52), {}, safe=False, kernel_says="invalid access to packet")
    assert any(f.code == Code.PACKET_BOUNDS and f.insn == 27 for f in ours.errors), ours.format()


# --------------------------------------------------------------------------- #
# 5. The lattice of alternatives
# --------------------------------------------------------------------------- #

def test_alternatives_are_kept_per_type_and_per_map() -> None:
    ctx, number = CtxPtr(Scalar.const(0)), ScalarValue(Scalar.urange(0, 9))
    four, two = MapValue(FOUR, Scalar.const(2)), MapValue(TWO, Scalar.const(0))
    j = join_values(join_values(ctx, number), join_values(four, two))
    assert isinstance(j, OneOf) and len(j.alts) == 4
    assert all(value_le(v, j) for v in (ctx, number, four, two))
    assert not value_le(MapPtr(FOUR), j) and not value_le(MapValue(FOUR, Scalar.const(0)), j)
    # the same kind joins within its alternative; widening keeps the kinds
    k = join_values(j, ScalarValue(Scalar.const(20)))
    assert isinstance(k, OneOf) and len(k.alts) == 4 and value_le(j, k)
    assert isinstance(widen_values(j, k), OneOf)


def test_packet_pointer_alternatives_carry_no_link() -> None:
    """The state's id bookkeeping does not look into alternatives, so a link kept there could go stale."""
    j = join_values(PacketPtr(Scalar.const(14), "x", 3), ScalarValue(Scalar.const(0)))
    assert isinstance(j, OneOf)
    assert all(not isinstance(a, PacketPtr) or a.pid is None for a in j.alts)


def test_past_the_limit_values_of_plain_maps_merge_into_the_smallest() -> None:
    """More maps than alternatives: their values become one, checked against the smallest value."""
    values = [MapValue(MapInfo(f"m{i}", BPF_MAP_TYPE_HASH, 4, 8 + i, 4), Scalar.const(0))
              for i in range(MAX_ALTERNATIVES + 1)]
    j = values[0]
    for v in values[1:]:
        j = join_values(j, v)
    assert len(alternatives(j)) <= MAX_ALTERNATIVES
    assert all(value_le(v, j) for v in values)
    assert isinstance(j, MapValue) and j.map.value_size == 8
