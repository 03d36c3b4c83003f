"""The store-merging pass: a run's byte-wise stores of one value (clang's copy of a MAC address or of a 64-bit
value into a packet, three instructions a byte) as the widest stores that hold them, each merge proven over
the run; wrong merges (another byte order, a load between that reads a byte moved) are refused."""

from __future__ import annotations

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.store_merge import merge_stores
from pybpfdsl.superopt.window_check import prove_window

R1, R4 = 1 << 1, 1 << 4


def _bytes_of_r2(order: list[int]) -> list[Instruction]:
    """clang's store of the 64-bit r2 byte by byte at r1 +0..+7: ``r3 = r2; r3 >>= 8 * b; *(u8 *)(r1 +b) = r3``."""
    code = [Instruction(0x79, 2, 10, -16)]
    for b in order:
        code += [Instruction(0xBF, 3, 2), Instruction(0x77, 3, 0, 0, 8 * b), Instruction(0x73, 1, 3, b)] if b \
            else [Instruction(0x73, 1, 2, 0)]
    return code


def test_eight_byte_stores_of_a_value_become_one_doubleword_store() -> None:
    code = _bytes_of_r2([7, 6, 5, 4, 3, 2, 0, 1])
    assert merge_stores(code, R1) == (Instruction(0x79, 2, 10, -16), Instruction(0x7B, 1, 2, 0))
    # The bytes the other way round (big-endian) are another packet: refused by the proof.
    assert prove_window(code, (code[0], Instruction(0xDC, 2, 0, 0, 64), Instruction(0x7B, 1, 2, 0)), R1).status \
        == "different"


def test_a_halfword_value_copied_through_the_stack_is_one_store() -> None:
    # xdp_forward's MAC copy: r1 = *(u16 *)(r10 -2); *(u8 *)(r7 +4) = r1; r1 >>= 8; *(u8 *)(r7 +5) = r1, three times.
    code = []
    for src, dst in ((-2, 4), (-4, 2), (-6, 0)):
        code += [Instruction(0x69, 1, 10, src), Instruction(0x73, 7, 1, dst), Instruction(0x77, 1, 0, 0, 8),
                 Instruction(0x73, 7, 1, dst + 1)]
    merged = merge_stores(code, 1 << 7)
    assert merged is not None and len(merged) == 6
    assert all(insn.opcode in (0x69, 0x6B) for insn in merged)


def test_a_load_between_that_reads_a_moved_byte_keeps_the_bytes() -> None:
    # *(u8 *)(r1 +0) = r2; r4 = *(u16 *)(r1 +0); r2 >>= 8; *(u8 *)(r1 +1) = r2: r4 must see the new byte 0 and
    # the old byte 1, which one store made before or after the load cannot give.
    code = [Instruction(0x79, 2, 10, -16), Instruction(0x73, 1, 2, 0), Instruction(0x69, 4, 1, 0),
            Instruction(0x77, 2, 0, 0, 8), Instruction(0x73, 1, 2, 1)]
    assert merge_stores(code, R4) is None
    assert merge_stores(code, 0) is not None  # where r4 is dead, the load goes and the stores merge


def test_byte_copies_between_bases_apart_become_a_word_and_a_halfword_copy() -> None:
    # katran's decap: six bytes copied one by one from r7 +k to r1 +k, where r1 = r7 + 20.
    code = [Instruction(0xBF, 1, 7), Instruction(0x07, 1, 0, 0, 20)]
    for b in (4, 5, 2, 3, 0, 1):
        code += [Instruction(0x71, 2, 7, b), Instruction(0x73, 1, 2, b)]
    assert merge_stores(code, 1 << 7 | R1) == (
        *code[:2], Instruction(0x69, 2, 7, 4), Instruction(0x6B, 1, 2, 4), Instruction(0x61, 2, 7, 0),
        Instruction(0x63, 1, 2, 0))
    # Where the destination might overlap the source (r1 not known apart from r7), a byte copied first could
    # be read again by a later copy: nothing is merged.
    assert merge_stores(code[2:], 1 << 7 | R1) is None

