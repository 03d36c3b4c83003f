"""Global variables are words to the prover: their initial values are inputs per variable, a load of a
stored value is that value again, and each variable is one output.

Byte by byte, the token buckets' state was eight byte questions per variable for the sweep and a
sum of eight shifted byte atoms in every normal form that loaded it; the examples took twice as long.
"""

from __future__ import annotations

import z3

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, u32, u64, xdp
from pybpfdsl.verify.equivalence.observe import observe
from pybpfdsl.verify.equivalence.symbolic_state import Inputs, Layout, bv_to_bytes, bytes_to_bv


def _layout(size: int, **variables: tuple[int, int]) -> Layout:
    return Layout({}, {".bss": size}, {name: (".bss", off, width) for name, (off, width) in variables.items()})


def test_the_bytes_of_a_value_join_back_into_it() -> None:
    v = z3.BitVec("v", 64)
    assert bytes_to_bv(bv_to_bytes(v, 8)).eq(v)
    assert bytes_to_bv(bv_to_bytes(v, 8)[2:6]).eq(z3.Extract(47, 16, v))  # a narrower load in the middle


def test_bytes_of_different_values_stay_a_concatenation() -> None:
    v, w = z3.BitVec("v", 32), z3.BitVec("w", 32)
    joined = bytes_to_bv([*bv_to_bytes(v, 2), *bv_to_bytes(w, 4)[2:]])
    assert joined.eq(z3.Concat(z3.Extract(31, 16, w), z3.Extract(15, 0, v)))
    assert z3.is_app_of(bytes_to_bv([z3.BitVec("a", 8), z3.BitVec("b", 8)]), z3.Z3_OP_CONCAT)


def test_bytes_selected_on_one_condition_join_arm_by_arm() -> None:
    c = z3.Bool("c")
    v, w = z3.BitVec("v", 32), z3.BitVec("w", 32)
    merged = [z3.If(c, x, y) for x, y in zip(bv_to_bytes(v, 4), bv_to_bytes(w, 4))]
    assert bytes_to_bv(merged).eq(z3.If(c, v, w))
    # A byte both states agree on is in both arms.
    partly = [*merged[:2], *bv_to_bytes(v, 4)[2:]]
    assert bytes_to_bv(partly).eq(z3.If(c, v, z3.Concat(z3.Extract(31, 16, v), z3.Extract(15, 0, w))))


def test_selects_on_different_conditions_are_not_lifted() -> None:
    c, d = z3.Bool("c"), z3.Bool("d")
    a, b = z3.BitVec("a", 8), z3.BitVec("b", 8)
    parts = [z3.If(c, a, b), z3.If(d, a, b)]
    assert bytes_to_bv(parts).eq(z3.Concat(parts[1], parts[0]))


def test_each_variable_is_one_word_and_every_other_byte_stands_alone() -> None:
    layout = _layout(16, flag=(0, 1), tokens=(8, 8), count=(4, 4))
    assert layout.words(".bss") == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 4), (8, 8)]


def test_overlapping_and_oversized_variables_fall_back_to_bytes() -> None:
    layout = _layout(24, whole=(0, 16), low=(16, 4), clash=(18, 4))
    words = layout.words(".bss")
    assert words[:16] == [(i, 1) for i in range(16)]  # a 16-byte struct: no single word
    assert (16, 4) in words and (18, 4) not in words and (20, 1) in words
    assert sum(size for _, size in words) == 24


def test_initial_values_are_one_input_per_variable() -> None:
    inputs = Inputs(_layout(12, count=(0, 4), total=(4, 8)))
    data = list(inputs.sections[".bss"])
    assert len(data) == 12 and all(b.size() == 8 for b in data)
    count, total = bytes_to_bv(data[:4]), bytes_to_bv(data[4:])
    assert z3.is_const(count) and count.size() == 32
    assert z3.is_const(total) and total.size() == 64 and not total.eq(count)


tally = Global(u64, 0)
threshold = Global(u32, 10)


@xdp
def counting(pkt: Packet) -> int:
    tally.value += 1
    if tally.value > threshold.value:
        return XDP_DROP
    return XDP_PASS


def test_a_program_observes_each_global_as_one_output() -> None:
    from pybpfdsl.verify.equivalence.bytecode_encoding import BytecodeEncoder
    from pybpfdsl.verify.equivalence.bytecode_program import load_program

    compiled = counting.compile(prove=False)
    program = load_program(compiled.elf, compiled.name)
    inputs = Inputs(program.layout)
    outcomes = BytecodeEncoder(program, inputs).run(None).outcomes
    observed = observe(outcomes, inputs)
    sizes = [t.size() for data in observed.sections.values() for t in data]
    assert sorted(sizes) == [32, 64]  # tally and threshold, not twelve bytes
    assert counting.compile().proof.proven
