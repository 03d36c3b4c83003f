"""An offset some bytes back from a value (`sub x, 3`, `add x, -3`) is a small constant offset from it, so
a check of `len - 3` covers an access at `len - 2` (it reads through the check's pointer, no guard of its
own), and never an access outside the checked bytes (`len - 1`, `len - 4`: those keep their own guard)."""

from __future__ import annotations

import pytest

from pybpfdsl.backend.compile import compile_program
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.passes.cfg import constant_offset, definitions
from pybpfdsl.verify.analysis.api import verify_object

_OFFSETS = """program offsets  ; offsets.py:1
^entry0:
  %0: u32 = packet_len
  %1: u64 = convert %0: u32
  %2: u64 = const 3
  %3: u64 = sub %1, %2
  %4: u64 = const 18446744073709551613
  %5: u64 = add %1, %4
  %6: u64 = const 1
  %7: u64 = add %3, %6
  %8: u64 = add %4, %1
  %9: u64 = sub %2, %1
  %10: u32 = const 2
  return %10
"""


def test_sums_and_differences_with_constants_are_signed_offsets() -> None:
    program = parse_program(_OFFSETS)
    defs = definitions(program)
    value = {i.result.id: i.result for i in program.blocks[0].instrs if i.result is not None}
    length = value[1]
    assert constant_offset(value[3], defs) == (length, -3)  # sub len, 3
    assert constant_offset(value[5], defs) == (length, -3)  # add len, 2**64 - 3
    assert constant_offset(value[8], defs) == (length, -3)  # add 2**64 - 3, len
    assert constant_offset(value[7], defs) == (length, -2)  # (len - 3) + 1
    assert constant_offset(value[4], defs) == (None, (1 << 64) - 3)  # a constant is its u64 value
    assert constant_offset(value[9], defs) == (value[9], 0)  # 3 - len is no offset from len


_SHAPE = """program {name}  ; offsets.py:1
^entry0:
  %0: u32 = packet_len
  %1: u64 = convert %0: u32
  %2: u64 = const 4
  %3: bool = cmp ge %1, %2
  branch %3, ^long1, ^short2
^long1:
  %4: u64 = const 3
  %5: u64 = sub %1, %4
  %6: bool = in_bounds %5, 2
  branch %6, ^fits3, ^short2
^fits3:
  %7: u64 = const {back}
  %8: u64 = sub %1, %7
  %9: u8 = load_packet be8 %8
  %10: u32 = convert %9: u8
  %11: u32 = const 3
  %12: u32 = and %10, %11
  return %12
^short2:
  %13: u32 = const 2
  return %13
"""


def _lowered(back: int) -> tuple[str, bytes]:
    compiled = compile_program(parse_program(_SHAPE.format(name=f"back{back}", back=back)), optimize=False)
    return compiled.llvm_ir, compiled.elf


def test_an_access_inside_a_check_some_bytes_back_reads_through_its_pointer() -> None:
    llvm_ir, elf = _lowered(2)  # len - 2: the second of the two bytes the check of len - 3 proved
    assert "offset_ok" not in llvm_ir and "packet_guard_failed" not in llvm_ir
    assert verify_object(elf).ok


@pytest.mark.parametrize("back", [1, 4])
def test_an_access_outside_the_checked_bytes_keeps_its_own_guard(back: int) -> None:
    llvm_ir, elf = _lowered(back)  # len - 1 is past the checked bytes, len - 4 before them
    assert "offset_ok" in llvm_ir and "packet_guard_failed" in llvm_ir
    report = verify_object(elf)
    assert report.ok, report.format()

