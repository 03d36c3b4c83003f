"""`correlate` decides a join's parameter below a test only where the test really rules the other edges out."""

from __future__ import annotations

from pybpfdsl.ir.check import check_program
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.passes import correlate
from pybpfdsl.ir.printer import format_program
from pybpfdsl.verify.equivalence.ir_equivalence import prove_ir_ir

_SHAPE = """program correlate_{name}  ; passes.py:1
^entry0:
  %0: u64 = const 0
  %1: bool = in_bounds %0, 34
  branch %1, ^eth1, ^pass5
^eth1:
  %2: u64 = const 12
  %3: u16 = load_packet {parse_order}16 %2
  %4: u32 = convert %3: u16
  %5: u32 = const {parse_type}
  %6: bool = cmp eq %4, %5
  branch %6, ^ipv42, ^other3
^ipv42:
  %7: u64 = const 14
  %8: u8 = load_packet be8 %7
  %9: u64 = convert %8: u8
  %10: u64 = const 4
  %11: u64 = mul %9, %10
  %12: u64 = add %7, %11
  jump ^parsed4(%12)
^other3:
  %13: u64 = const 14
  jump ^parsed4(%13)
^parsed4(%14: u64):
{between}  %23: u64 = const {offset}
  %15: u16 = load_packet be16 %23
  %16: i32 = convert %15: u16
  %17: i32 = const {tested}
  %18: bool = cmp {op} %16, %17
  branch %18, ^tagged6, ^pass5
^tagged6:
  %19: bool = in_bounds %14, 2
  branch %19, ^tag7, ^pass5
^tag7:
  %20: u16 = load_packet be16 %14
  %21: u32 = convert %20: u16
  return %21
^pass5:
  %22: u32 = const 2
  return %22
"""


def _program(**fields: object) -> str:
    values = {"name": "case", "parse_order": "le", "parse_type": 8, "between": "", "tested": 0x8100,
              "op": "eq", "offset": 12} | fields
    return _SHAPE.format(**values)


def _decided(**fields: object) -> bool:
    """Whether the payload offset below the test became the constant 14 (the rewrite is proven when made)."""
    program = parse_program(_program(**fields))
    check_program(program)
    after = correlate.run(program)
    check_program(after)
    text = format_program(after)
    if text == format_program(program):
        return False
    result = prove_ir_ir(program, after)
    assert result.status == "proven", result.reason
    return "in_bounds %14" not in text


def test_a_tag_rules_out_the_ipv4_edge_read_little_endian() -> None:
    assert _decided()


def test_the_same_bytes_read_big_endian_decide_too() -> None:
    assert _decided(parse_order="be", parse_type=0x0800)


def test_a_test_the_ipv4_edge_agrees_with_decides_nothing() -> None:
    assert not _decided(tested=0x0800)


def test_a_not_equal_test_decides_nothing() -> None:
    assert not _decided(op="ne")  # on its true side both edges stay possible


def test_other_bytes_decide_nothing() -> None:
    assert not _decided(offset=13)  # bytes 13-14, not the ethertype


def test_a_packet_write_before_the_test_keeps_the_parameter() -> None:
    write = "  %30: u64 = const 12\n  %31: u16 = const 33024\n  store_packet be16 %30, %31\n"
    assert not _decided(between=write)  # the bytes tested are not the bytes the parse read


def test_a_loop_before_the_test_keeps_the_parameter() -> None:
    text = _program().replace("  jump ^parsed4(%13)", "  branch %6, ^other3, ^parsed4(%13)")
    program = parse_program(text)
    check_program(program)
    assert format_program(correlate.run(program)) == format_program(program)
