"""The lock-step proof: it proves the optimiser's output of the sample object equal to its input, and
never proves an output that computes something else or whose control flow moved."""

from __future__ import annotations

import struct

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction, encode, slot_offsets
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.superopt.api import OptimizeResult, optimize_object
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.lockstep import prove_lockstep


@pytest.fixture(scope="module")
def result(sample_elf: bytes) -> OptimizeResult:
    return optimize_object(sample_elf, proposals=100, kernel=False)


def test_the_optimised_sample_is_proven_in_lock_step(result: OptimizeResult) -> None:
    assert result.after != result.before
    verdict = prove_lockstep(result.before, result.after)
    assert verdict.proven and verdict.segments >= 1


def _replace(elf: bytes, section: str, index: int, insn: Instruction) -> bytes:
    return rewrite_code(elf, {section: [Replacement(index, 1, (insn,))]})


def _patch(elf: bytes, section: str, index: int, insn: Instruction) -> bytes:
    """``elf`` with one instruction's bytes overwritten in place (what the rewriter would refuse to write)."""
    shoff, shentsize, shnum, shstrndx = (struct.unpack_from("<Q", elf, 0x28)[0], *struct.unpack_from("<HHH", elf, 0x3A))
    headers = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names = headers[shstrndx][4]
    sec = next(h for h in headers if elf[names + h[0]:].split(b"\0", 1)[0].decode() == section)
    slot = slot_offsets(BpfElf.from_bytes(elf).program(section).instructions if section != ".text"
                        else BpfElf.from_bytes(elf).text.instructions)[index]  # type: ignore[union-attr]
    out = bytearray(elf)
    out[sec[4] + 8 * slot: sec[4] + 8 * slot + 8] = encode([insn])
    return bytes(out)


def test_a_changed_return_value_is_refused(result: OptimizeResult) -> None:
    code = BpfElf.from_bytes(result.after).text
    assert code is not None
    # The last `r0 = K` before an exit in .text (classify's answers): return another action.
    at = max(i for i, insn in enumerate(code.instructions[:-1]) if insn.opcode == 0xB7 and insn.dst == 0
             and code.instructions[i + 1].kind == Kind.EXIT)
    old = code.instructions[at]
    wrong = _replace(result.after, ".text", at, Instruction(0xB7, 0, 0, 0, old.imm + 1))
    verdict = prove_lockstep(result.before, wrong)
    assert not verdict.proven and "differs" in verdict.reason


def test_a_jump_to_another_place_or_another_helper_is_not_proven(result: OptimizeResult) -> None:
    prog = BpfElf.from_bytes(result.after).programs["xdp"]
    code = prog.instructions
    j = next(i for i, insn in enumerate(code) if insn.kind == Kind.JCOND and insn.off > 1)
    moved = _patch(result.after, "xdp", j, Instruction(code[j].opcode, code[j].dst, code[j].src, code[j].off - 1,
                                                        code[j].imm))
    assert not prove_lockstep(result.before, moved).proven
    text = BpfElf.from_bytes(result.after).text
    assert text is not None
    c = next(i for i, insn in enumerate(text.instructions) if insn.is_helper_call)
    other = _patch(result.after, ".text", c, Instruction(0x85, 0, 0, 0, text.instructions[c].imm + 1))
    assert not prove_lockstep(result.before, other).proven


def test_an_unchanged_object_is_proven_without_a_segment(sample_elf: bytes) -> None:
    verdict = prove_lockstep(sample_elf, sample_elf)
    assert verdict.proven and verdict.segments == 0
