"""`blocks` makes a branch a jump only when its two sides really come to the same."""

from __future__ import annotations

from pybpfdsl.ir.check import check_program
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.passes import blocks
from pybpfdsl.ir.printer import format_program
from pybpfdsl.verify.equivalence.ir_equivalence import prove_ir_ir

_SHAPE = """program same_{name}  ; passes.py:1
global @seen: u64 = 0
^entry0:
  %0: u64 = const 0
  %1: bool = in_bounds %0, 34
  %12: bool = const 0
  branch %1, ^ipv41, ^parsed4(%12)
^ipv41:
  %2: u64 = const 14
  %3: u8 = load_packet be8 %2
  %4: u8 = const 69
  %5: bool = cmp ge %3, %4
  branch %5, ^ihl_ok2, ^bad3
^ihl_ok2:
{effect}  %8: bool = const 1
  jump ^parsed4(%8)
^bad3:
  %9: bool = const {other}
  jump ^parsed4(%9)
^parsed4(%10: bool):
  %11: u32 = convert %10: bool
  return %11
"""


def _folded(effect: str = "", other: int = 1) -> bool:
    program = parse_program(_SHAPE.format(name="case", effect=effect, other=other))
    check_program(program)
    after = blocks.run(program)
    check_program(after)
    result = prove_ir_ir(program, after)
    assert result.status == "proven", result.reason
    return "branch %5" not in format_program(after)


def test_sides_that_pass_equal_constants_are_one_jump() -> None:
    assert _folded()


def test_sides_that_pass_different_constants_keep_the_branch() -> None:
    assert not _folded(other=0)


def test_a_side_with_an_effect_keeps_the_branch() -> None:
    assert not _folded(effect="  %20: u64 = const 1\n  atomic_add_global @seen, %20\n")


def test_a_side_reading_the_packet_is_left_for_the_pure_one() -> None:
    program = parse_program(_SHAPE.format(name="read", effect="  %20: u64 = const 20\n"
                                          "  %21: u8 = load_packet be8 %20\n", other=1))
    text = format_program(blocks.run(program))
    assert "branch %5" not in text and "load_packet be8 %20" not in text  # the jump goes where nothing is read
