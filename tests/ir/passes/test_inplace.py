"""Where `inplace` must leave a map update as it is: something between the lookup and the update could
change or remove the entry, the reference is read after the update, the map's lookup does not find the
element its update replaces, or the proofs' model of LRU evictions could not follow. And what it does
where it may (`golden/inplace_*.ir` shows the rewrites themselves)."""

from __future__ import annotations

import pytest

from pybpfdsl.ir.check import check_program
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.passes import inplace
from pybpfdsl.ir.printer import format_program

HEAD = "program kept  ; passes.py:1\n"


def _ir(maps: str, body: str) -> str:
    return HEAD + maps + "^entry0:\n" + body


KEPT = {
    "a delete of the map in between": _ir("map @m: hash<u32, u64>[64]\n", """\
  %0: u32 = const 7
  %1: ref<m> = map_lookup @m, %0
  %2: i64 = map_delete @m, %0
  %3: u64 = const 1
  %4: i64 = map_update @m, %0, %3
  %5: u32 = const 2
  return %5
"""),
    "an update of another key in between": _ir("map @m: hash<u32, u64>[64]\n", """\
  %0: u32 = const 7
  %1: ref<m> = map_lookup @m, %0
  %2: u32 = const 8
  %3: u64 = const 1
  %4: i64 = map_update @m, %2, %3
  %5: i64 = map_update @m, %0, %3
  %6: u32 = const 2
  return %6
"""),
    "a delete on one path in between": _ir("map @m: hash<u32, u64>[64]\n", """\
  %0: u32 = const 7
  %1: ref<m> = map_lookup @m, %0
  %2: u32 = packet_len
  %3: u32 = const 60
  %4: bool = cmp gt %2, %3
  branch %4, ^del1, ^join2
^del1:
  %5: i64 = map_delete @m, %0
  jump ^join2
^join2:
  %6: u64 = const 1
  %7: i64 = map_update @m, %0, %6
  %8: u32 = const 2
  return %8
"""),
    "the reference read after the update": _ir("map @m: hash<u32, u64>[64]\n", """\
  %0: u32 = const 7
  %1: ref<m> = map_lookup @m, %0
  %2: bool = is_null %1
  branch %2, ^miss1, ^hit2
^miss1:
  %3: u32 = const 1
  return %3
^hit2:
  %4: u64 = const 1
  %5: i64 = map_update @m, %0, %4
  %6: u64 = load_value %1
  %7: u32 = convert %6: u64
  return %7
"""),
    "another key": _ir("map @m: hash<u32, u64>[64]\n", """\
  %0: u32 = const 7
  %1: ref<m> = map_lookup @m, %0
  %2: u32 = const 8
  %3: u64 = const 1
  %4: i64 = map_update @m, %2, %3
  %5: u32 = const 2
  return %5
"""),
    "an LPM trie (its lookup finds the longest prefix)": _ir("map @m: lpm_trie<u64, u32>[64]\n", """\
  %0: u64 = const 7
  %1: ref<m> = map_lookup @m, %0
  %3: u32 = const 1
  %4: i64 = map_update @m, %0, %3
  %5: u32 = const 2
  return %5
"""),
    "a later update of the LRU map": _ir("map @m: lru_hash<u32, u64>[64]\n", """\
  %0: u32 = const 7
  %1: ref<m> = map_lookup @m, %0
  %2: u64 = const 1
  %3: i64 = map_update @m, %0, %2
  %4: u32 = const 9
  %5: i64 = map_update @m, %4, %2
  %6: u32 = const 2
  return %6
"""),
    "a value with padding": "program kept  ; passes.py:1\nstruct S {a: u64, b: u32}\n"
                            "map @m: hash<u32, struct S>[64]\n^entry0:\n" + """\
  %0: u32 = const 7
  %1: ref<m> = map_lookup @m, %0
  %2: u64 = const 1
  %3: u32 = const 2
  %4: struct S = make_struct %2, %3
  %5: i64 = map_update @m, %0, %4
  return %3
""",
    "the miss path": _ir("map @m: hash<u32, u64>[64]\n", """\
  %0: u32 = const 7
  %1: ref<m> = map_lookup @m, %0
  %2: bool = is_null %1
  branch %2, ^miss1, ^hit2
^miss1:
  %3: u64 = const 1
  %4: i64 = map_update @m, %0, %3
  %5: u32 = const 1
  return %5
^hit2:
  %6: u32 = const 2
  return %6
"""),
}


@pytest.mark.parametrize("case", list(KEPT))
def test_the_update_is_kept(case: str) -> None:
    program = parse_program(KEPT[case])
    check_program(program)
    assert format_program(inplace.run(program)) == format_program(program)


def test_a_loop_is_not_unrolled_and_the_update_runs_once_per_lookup() -> None:
    """A lookup and an update in one loop body: rewritten once per body, the loop head not copied."""
    program = parse_program(_ir("map @m: array<u32, u64>[8]\n", """\
  %0: u32 = const 0
  jump ^loop1(%0)
^loop1(%1: u32):
  %2: ref<m> = map_lookup @m, %1
  %3: u64 = const 5
  %4: i64 = map_update @m, %1, %3
  %5: u32 = const 1
  %6: u32 = add %1, %5
  %7: u32 = const 8
  %8: bool = cmp lt %6, %7
  branch %8, ^loop1(%6), ^done2
^done2:
  %9: u32 = const 2
  return %9
"""))
    check_program(program)
    after = inplace.run(program)
    check_program(after)
    text = format_program(after)
    assert text.count("store_value") == 1 and text.count("map_update") == 1
