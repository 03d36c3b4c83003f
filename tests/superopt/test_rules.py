"""The rule cache: proven rewrites stored, found again on the next program, and re-proven before use."""

from __future__ import annotations

import json
from pathlib import Path

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.api import optimize_object
from pybpfdsl.superopt.rules import RuleCache
from pybpfdsl.superopt.window_check import prove_window

MOV_R3_0 = Instruction(0xB7, 3, 0, 0, 0)
STX_R3 = (Instruction(0x63, 10, 3, -4), Instruction(0x63, 10, 3, -8))
ST_DW0 = Instruction(0x7A, 10, 0, -8, 0)


def test_a_rule_matches_under_other_register_names(tmp_path: Path) -> None:
    cache = RuleCache(tmp_path / "rules.json")
    assert cache.add((MOV_R3_0, *STX_R3), 0, (ST_DW0,))
    cache.save()
    again = RuleCache.load(tmp_path / "rules.json")
    assert again.rules == cache.rules
    renamed = (Instruction(0xB7, 5, 0, 0, 0), Instruction(0x63, 10, 5, -4), Instruction(0x63, 10, 5, -8))
    assert again.lookup(renamed, 0) == (ST_DW0,)
    assert again.lookup(renamed, 1 << 5) is None  # r5 live after: another precondition, another key


def test_the_second_program_starts_from_the_rules_of_the_first(sample_elf: bytes, tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    first = optimize_object(sample_elf, proposals=120, rules=path, kernel=False)
    assert json.loads(path.read_text())["rules"]
    # One proposal per window: what the search found before now comes from the cache.
    second = optimize_object(sample_elf, proposals=1, rules=path, kernel=False)
    assert any(r.source == "rule" for r in second.rewrites)
    assert sum(second.slots("after").values()) <= sum(first.slots("after").values())
    assert second.proof.status == "ok"


def test_a_corrupted_rule_is_proven_wrong_and_not_applied(sample_elf: bytes, tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    optimize_object(sample_elf, proposals=120, rules=path, kernel=False)
    data = json.loads(path.read_text())
    for rows in data["rules"].values():
        for row in rows:
            if row[0] in (0x7A, 0x62, 0x72, 0x6A):  # every immediate store now stores 7
                row[4] = 7
    path.write_text(json.dumps(data))
    result = optimize_object(sample_elf, proposals=1, rules=path, kernel=False)
    assert all(r.source != "rule" or all(i.imm != 7 for i in r.after) for r in result.rewrites)
    assert result.proof.status in ("ok", "skipped")


def test_a_general_rule_carries_the_offsets_over_and_is_proven_again() -> None:
    cache = RuleCache(None)
    window = (Instruction(0xBF, 4, 1), Instruction(0x07, 4, 0, 0, 23), Instruction(0x71, 3, 4, 0))
    assert cache.add(window, 1 << 3, (Instruction(0x71, 3, 1, 23),))
    other = (Instruction(0xBF, 5, 2), Instruction(0x07, 5, 0, 0, 14), Instruction(0x71, 0, 5, 0))
    got = cache.lookup(other, 1 << 0)
    assert got == (Instruction(0x71, 0, 2, 14),)
    assert prove_window(other, got, 1 << 0).proven


def test_a_general_rule_that_does_not_hold_for_other_values_is_refuted_where_it_matches() -> None:
    # Learned: `r1 &= 0xff` is redundant where r1 is 8 bits wide. The same shape with 0xf matches the
    # general rule, and its instance (drop the mask) is wrong: the proof says so, so it is never applied.
    cache = RuleCache(None)
    assert cache.add((Instruction(0x57, 1, 0, 0, 0xFF),), 1 << 1, (), widths={1: 8})
    narrower = (Instruction(0x57, 2, 0, 0, 0xF),)
    got = cache.lookup(narrower, 1 << 2, widths={2: 8})
    assert got == ()
    assert prove_window(narrower, got, 1 << 2, widths={2: 8}).status == "different"
    # Shifts stay concrete: `r <<= 32; r >>= 32` as `w = w` says nothing of 16.
    shifts = (Instruction(0x67, 1, 0, 0, 32), Instruction(0x77, 1, 0, 0, 32))
    assert cache.add(shifts, 1 << 1, (Instruction(0xBC, 1, 1),))
    assert cache.lookup((Instruction(0x67, 1, 0, 0, 16), Instruction(0x77, 1, 0, 0, 16)), 1 << 1) is None


def test_a_general_rule_is_not_put_where_it_would_misalign_the_stack() -> None:
    # Learned at -64: two halfword zeros as one word. The same shape at -62 matches the general rule, and
    # the proof would accept its instance, but the kernel refuses a word at r10-62: the cache offers nothing.
    cache = RuleCache(None)
    assert cache.add((Instruction(0x6A, 10, 0, -64, 0), Instruction(0x6A, 10, 0, -62, 0)), 0,
                     (Instruction(0x62, 10, 0, -64, 0),))
    assert cache.lookup((Instruction(0x6A, 10, 0, -60, 0), Instruction(0x6A, 10, 0, -58, 0)), 0) == (
        Instruction(0x62, 10, 0, -60, 0),)
    assert cache.lookup((Instruction(0x6A, 10, 0, -62, 0), Instruction(0x6A, 10, 0, -60, 0)), 0) is None
