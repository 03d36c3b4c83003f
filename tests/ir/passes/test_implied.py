"""`implied` leaves a check alone when skipping it could change what the program does."""

from __future__ import annotations

from pybpfdsl.ir.check import check_program
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.passes import implied
from pybpfdsl.ir.printer import format_program

_SHAPE = """program implied_{name}  ; passes.py:1
^entry0:
  %0: u64 = const 0
  %1: bool = in_bounds %0, 1
  branch %1, ^header1, ^pass3
^header1:
  %2: {base_type} = load_packet be{bits} %0
  %3: u64 = convert %2: {base_type}
  %4: u64 = const 20
  %5: u64 = add %3, %4
  %6: bool = in_bounds %5, 8
  branch %6, ^fits2, ^pass3
^fits2:
  %7: u64 = const {k}
  %8: u64 = add %5, %7
  %9: bool = in_bounds %8, 1
  branch %9, ^payload4, ^fail5
^payload4:
  %10: u8 = load_packet be8 %8
  %11: u32 = convert %10: u8
  return %11
^pass3:
  %12: u32 = const 2
  return %12
^fail5:
  %13: u32 = const {fail}
  return %13
"""


def _unchanged(**fields: object) -> bool:
    values = {"name": "case", "base_type": "u8", "bits": 8, "k": 8, "fail": 2} | fields
    program = parse_program(_SHAPE.format(**values))
    check_program(program)
    return format_program(implied.run(program)) == format_program(program)


def test_the_shape_is_rewritten() -> None:
    assert not _unchanged()


def test_failures_that_return_different_actions_keep_both_checks() -> None:
    assert _unchanged(fail=1)


def test_a_second_check_that_does_not_cover_the_first_keeps_it() -> None:
    assert _unchanged(k=4)  # bytes 24..25 do not reach the end of the first check's 20..28


def test_a_base_that_may_be_near_2_to_the_64_keeps_both_checks() -> None:
    assert _unchanged(base_type="u64", bits=64)  # base + 8 could wrap around to a small offset


_READS = """program implied_reads  ; passes.py:1
^entry0:
  %0: u64 = const 14
  %1: bool = in_bounds %0, 1
  branch %1, ^first1, ^pass3
^first1:
  %2: u8 = load_packet be8 %0
{between}
  branch %5, ^second2, ^pass3
^second2:
  %6: u8 = load_packet be8 %4
  %7: u32 = convert %6: u8
  return %7
^pass3:
  %8: u32 = const 2
  return %8
"""


def _reads_unchanged(between: str) -> bool:
    program = parse_program(_READS.format(between=between))
    check_program(program)
    return format_program(implied.run(program)) == format_program(program)


def test_a_read_between_the_checks_stays_below_the_one_check_left() -> None:
    assert not _reads_unchanged("  %4: u64 = const 15\n  %5: bool = in_bounds %4, 1")


def test_a_move_between_the_checks_keeps_both() -> None:
    # after adjust_packet the second check is about another packet: it says nothing of the first
    assert _reads_unchanged("  %3: i32 = const 4\n  %9: bool = adjust_packet head %3\n"
                            "  %4: u64 = const 15\n  %5: bool = in_bounds %4, 1")


def test_a_second_offset_read_from_the_packet_keeps_both() -> None:
    # the offset is the byte the first check guards: it cannot be read above that check
    assert _reads_unchanged("  %3: u64 = convert %2: u8\n  %4: u64 = add %3, %0\n"
                            "  %5: bool = in_bounds %4, 1")
