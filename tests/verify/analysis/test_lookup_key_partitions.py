"""An array lookup's key constant keeps its paths apart until the lookup.

The kernel types ``bpf_map_lookup_elem`` of an array with a constant key below ``max_entries`` (spilled at
a slot's start with the key's size) as never NULL (6.14 on), per path: ``key = x ? 1 : 2`` stored, then one
lookup whose result is used unchecked loads. Our partitions key the states at a point by the constants of
their live registers; once the key is stored its register is dead, and the states with key 1 and key 2 were
joined (key [1, 2], not a constant: "may be NULL"). xdp-filter's stats (``xdp_stats_map``, keyed by the
action) without their NULL check: a mutant the kernel loads. :func:`.critical.lookup_keys_in` marks the
slots that hold a later lookup's key, for the partitions to keep their constants apart.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, VerifierReport, verify_instructions
from pybpfdsl.verify.analysis.cfg import build_cfg
from pybpfdsl.verify.analysis.critical import SLOT0, lookup_keys_in
from pybpfdsl.verify.analysis.stack import slot_of
from pybpfdsl.verify.analysis.transfer import Env
from pybpfdsl.verify.analysis.values import MapInfo
from tests.verify.analysis.kernel_oracle import BPF_MAP_TYPE_ARRAY, kernel_verdict
from tests.verify.analysis.opcodes import CALL_LOOKUP, EXIT, PRANDOM, STX, U64, add_imm, ja, jeq_imm, load, mov, mov_reg

KERNEL, WHY = kernel_bpf_available()
ARRAY = MapInfo("a", BPF_MAP_TYPE_ARRAY, 4, 8, 4)
MAP_INSN, STORE, CALL = 8, 5, 9


def _program(key_a: int, key_b: int) -> list[Instruction]:
    """``key = random() ? key_a : key_b; *(u32 *)(r10 - 8) = key; return *bpf_map_lookup_elem(&a, r10 - 8)``,
    with no NULL check (``a``: an array of 4)."""
    return [PRANDOM, jeq_imm(0, 0, 2), mov(3, key_a), ja(1), mov(3, key_b),
            Instruction(STX[4], 10, 3, -8, 0), mov_reg(2, 10), add_imm(2, -8), Instruction.lddw(1, 0), CALL_LOOKUP,
            load(U64, 0, 0, 0), mov(0, 2), EXIT]


def _verify(insns: list[Instruction]) -> VerifierReport:
    return verify_instructions(insns, map_refs={MAP_INSN: (ARRAY, None)})


def test_the_key_slot_is_marked_from_its_store_to_the_lookup() -> None:
    insns = tuple(_program(1, 2))
    slots = slot_offsets(insns)
    env = Env(insns, {s: i for i, s in enumerate(slots)}, slots, {MAP_INSN: (ARRAY, None)})
    keys = lookup_keys_in(insns, build_cfg(env).succs)
    bit = 1 << (SLOT0 + slot_of(-8)[0])
    assert all(keys[i] & bit for i in range(STORE + 1, CALL + 1))
    assert not keys[STORE] & bit and not keys[0] & bit and not keys[CALL + 1] & bit


@pytest.mark.xfail(strict=True, reason="needs the partitions to use lookup_keys_in (H1's partitions.py: "
                   "/tmp/team/H3/s18/partitions_lookup_keys.patch)")
def test_keys_below_max_entries_on_every_path_are_accepted() -> None:
    assert _verify(_program(1, 2)).ok


def test_a_key_past_max_entries_on_one_path_is_refused() -> None:
    report = _verify(_program(1, 4))
    assert any(f.code == Code.NULL_DEREF for f in report.errors), report.format()


@pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")
def test_the_kernel_agrees() -> None:
    assert kernel_verdict(_program(1, 2), [MAP_INSN], ARRAY).ok
    refused = kernel_verdict(_program(1, 4), [MAP_INSN], ARRAY)
    assert not refused.ok and "map_value_or_null" in refused.log, refused.last_lines
