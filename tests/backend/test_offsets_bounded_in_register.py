"""A packet offset LLVM can bound from another value is still masked in the register added to `data`.

With `off = len - 2` behind a test `2 <= len`, LLVM rewrites a bound `off <= 0x7FFF` (the frontend's test
of a negative payload index, or the guard's) as `len <= 0x8001` (it knows the subtraction does not wrap)
and, without a mask it must keep, adds the unbounded `off` to the packet pointer: "pointer arithmetic with
an unbounded scalar" to our verifier, and refused by the kernel too. Both ways an access is lowered are
covered: through the pointer of the check that covers it, and through its own guard (the fallback, for an
access no check covers: here a check of `len - 3` and an access at `len - 2`, another value).
(Written with 8499c49's pinned masks, reverted in da52ab1; `backend/packet_offsets` masks such an offset, whose
range is unknown, with a constant LLVM cannot see.)
"""

from __future__ import annotations

import pytest

from pybpfdsl.backend.compile import compile_program
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis.api import verify_object

KERNEL, WHY = kernel_bpf_available()

_SHAPE = """program {name}  ; offsets.py:1
^entry0:
  %0: u32 = packet_len
  %1: u64 = convert %0: u32
  %2: u64 = const {checked}
  %3: bool = cmp ge %1, %2
  branch %3, ^long1, ^short2
^long1:
  %4: u64 = sub %1, %2
  %14: u64 = const 32767
  %15: bool = cmp le %4, %14
  branch %15, ^near5, ^short2
^near5:
  %5: bool = in_bounds %4, {checked}
  branch %5, ^fits3, ^short2
^fits3:
  %6: u64 = const 2
  %7: u64 = sub %1, %6
  %8: u8 = load_packet be8 %7
  %9: u8 = const 7
  store_packet be8 %7, %9
  %10: u8 = const 171
  %11: bool = cmp eq %8, %10
  branch %11, ^drop4, ^short2
^drop4:
  %12: u32 = const 1
  return %12
^short2:
  %13: u32 = const 2
  return %13
"""

PROGRAMS = {
    "covered": _SHAPE.format(name="covered", checked=2),  # the access reads through the check's pointer
    "own_guard": _SHAPE.format(name="own_guard", checked=3),  # no check covers `len - 2`: the fallback
}


@pytest.mark.parametrize("optimize", [False, True], ids=["frontend_ir", "optimized_ir"])
@pytest.mark.parametrize("name", PROGRAMS)
def test_our_verifier_accepts_an_offset_subtracted_from_the_length(name: str, optimize: bool) -> None:
    elf = compile_program(parse_program(PROGRAMS[name]), optimize=optimize).elf
    report = verify_object(elf)
    assert report.ok, report.format()


@pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")
@pytest.mark.parametrize("name", PROGRAMS)
def test_the_kernel_loads_it_and_it_reads_and_writes_the_byte_before_last(name: str) -> None:
    from pybpfdsl.runtime.bpf_object import BpfObject
    from pybpfdsl.runtime.kernel_run import run_xdp

    elf = compile_program(parse_program(PROGRAMS[name])).elf
    with BpfObject.load(elf, name) as obj:
        fd = obj.program_fd(name)
        for size in (14, 60, 1500):
            for marker, action in ((171, 1), (0, 2)):
                packet = bytearray(size)
                packet[-2] = marker
                result = run_xdp(fd, bytes(packet))
                assert result.action == action
                assert result.packet[-2] == 7 and result.packet[:-2] == bytes(packet[:-2])
