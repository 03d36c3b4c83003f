"""Code after a bounded loop is checked from the states the loop's iterations leave it in.

xdp-tutorial's ``_xdp_end_loop`` (experiment01-tailgrow) walks a pointer to the packet's end: ``for (i = 0;
i < 1440; i++) { if (pos + i + 14 > end) goto out; if (pos + i + 14 == end) break; } pos += i``. Its loop
tests a truncated copy of the counter (``r4 = r3 << 32 >> 32; if r4 == 1522``), so widening loses the
counter, and ``pos += i`` after the loop was "pointer arithmetic with an unbounded scalar". The kernel walks
each iteration and loads it. The termination pass unrolls the loop to its end; the code after it is analysed
again from each state that left the loop (``driver._past_loops``), which keeps ``i`` with the packet length
it proved. One byte further is still refused, as the kernel refuses it.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import verify_instructions
from pybpfdsl.verify.analysis.cfg import Cfg
from pybpfdsl.verify.analysis.loops import single_entry
from tests.verify.analysis.kernel_oracle import kernel_verdict

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")


def _end_loop(reach: int) -> list[Instruction]:
    """``_xdp_end_loop`` as clang -O2 builds it, reading ``*(u8 *)(pos + i + reach)`` after the loop (13: the
    last byte, as the C does; 14: one past the end)."""
    return [
        Instruction(0xB7, 3, 0, 0, 0),      # 0: r3 = 0                       i
        Instruction(0x61, 2, 1, 0, 0),      # 1: r2 = *(u32 *)(r1 + 0)        data
        Instruction(0x61, 1, 1, 4, 0),      # 2: r1 = *(u32 *)(r1 + 4)        data_end
        Instruction(0xBF, 4, 2, 0, 0),      # 3: loop: r4 = r2
        Instruction(0x0F, 4, 3, 0, 0),      # 4: r4 += r3
        Instruction(0x07, 4, 0, 0, 14),     # 5: r4 += 14
        Instruction(0x2D, 4, 1, 11, 0),     # 6: if r4 > r1 goto out
        Instruction(0x1D, 4, 1, 6, 0),      # 7: if r4 == r1 goto found
        Instruction(0x07, 3, 0, 0, 1),      # 8: r3 += 1
        Instruction(0xBF, 4, 3, 0, 0),      # 9: r4 = r3
        Instruction(0x67, 4, 0, 0, 32),     # 10: r4 <<= 32
        Instruction(0x77, 4, 0, 0, 32),     # 11: r4 >>= 32
        Instruction(0x15, 4, 0, 5, 0x5F2),  # 12: if r4 == 1522 goto out
        Instruction(0x05, 0, 0, -11, 0),    # 13: goto loop
        Instruction(0x0F, 2, 3, 0, 0),      # 14: found: r2 += r3
        Instruction(0xB7, 0, 0, 0, 0),      # 15: r0 = XDP_ABORTED
        Instruction(0x71, 1, 2, reach, 0),  # 16: r1 = *(u8 *)(r2 + reach)
        Instruction(0x15, 1, 0, 1, 0xFF),   # 17: if r1 == 0xff goto exit
        Instruction(0xB7, 0, 0, 0, 2),      # 18: out: r0 = XDP_PASS
        Instruction(0x95, 0, 0, 0, 0),      # 19: exit
    ]


def test_after_the_loop_the_pointer_moved_by_the_counter_reads_the_last_byte() -> None:
    report = verify_instructions(_end_loop(13))
    assert report.ok, report.format()


def test_one_byte_further_is_refused() -> None:
    report = verify_instructions(_end_loop(14))
    assert [f.insn for f in report.errors] == [16], report.format()


@needs_kernel
@pytest.mark.parametrize("reach", [13, 14])
def test_the_kernel_judges_both_alike(reach: int) -> None:
    kernel = kernel_verdict(_end_loop(reach))
    assert kernel.ok == (reach == 13), kernel.last_lines
    assert verify_instructions(_end_loop(reach)).ok == kernel.ok


def test_a_loop_entered_also_from_the_program_start_is_not_single_entry() -> None:
    """0 → 1 → 2 → 1 and 0 → 2: the loop at 1 can be entered at 2, straight from the first instruction, so
    its unrolled iterations (from 1's entry states) do not cover every state of its body."""
    succs = [[1, 2], [2], [1, 3], []]
    preds = [[], [0, 2], [0, 1], [2]]
    cfg = Cfg(succs, preds, [0, 1, 2, 3], {0: 0, 1: 1, 2: 2, 3: 3}, {(2, 1)}, {1})
    body = cfg.loop_body(1)
    assert body == {0, 1, 2}
    assert not single_entry(cfg, 1, body)
