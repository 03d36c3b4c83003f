"""`masks` drops an `and` only when the value's range decides every bit the mask would touch."""

from __future__ import annotations

from pybpfdsl.ir.check import check_program
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.passes import masks
from pybpfdsl.ir.printer import format_program

_SHAPE = """program masks_case  ; passes.py:1
^entry0:
  %0: u64 = const 0
  %1: bool = in_bounds %0, 2
  branch %1, ^read1, ^pass2
^read1:
  %2: u16 = load_packet be16 %0
  %3: u32 = convert %2: u16
  %4: u32 = const {mask}
  %5: u32 = and %3, %4
  return %5
^pass2:
  %6: u32 = const 2
  return %6
"""


def _result(mask: int) -> str:
    program = parse_program(_SHAPE.format(mask=mask))
    check_program(program)
    after = masks.run(program)
    check_program(after)
    return format_program(after).split("^read1:")[1].split("^pass2")[0]


def test_a_mask_keeping_all_sixteen_bits_is_the_value() -> None:
    assert "and" not in _result(0x1FFFF) and "return %3" in _result(0x1FFFF)


def test_a_mask_clearing_all_sixteen_bits_is_zero() -> None:
    assert "const 0" in _result(0xFFFF0000) and "and" not in _result(0xFFFF0000)


def test_a_mask_keeping_some_of_them_stays() -> None:
    assert "and %3, %4" in _result(0xFF)
