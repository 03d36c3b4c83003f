"""A sum computed again where a register already holds it: ``rA += rB`` as the copy ``rA = rX``.

clang checks a packet access with a copy (``r4 = r2; r4 += r1; if r4 > r3 goto out``) and then makes the
same sum again for the access itself (``r1 += r2; ...; r1 = *(u8 *)(r1 -1)``). A must-analysis of sums
(`known_sums`: register X holds A + B on every path, A and B the registers' values now) finds the second
one; the pass writes it as ``r1 = r4``, the same cost, which the window search then folds into its readers
(``r1 = *(u8 *)(r4 -1)``, a slot fewer). The relation of the lock-step proof has no sums, so only the path
prover proves these (`api` searches again without the pass where it does not).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, Source
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.windows import core_relocated_slots, functions_of, must_forward, written_registers

__all__ = ["known_sums", "sums_pass", "transfer_sums"]

_MOV64_X = InsnClass.ALU64 | AluOp.MOV | Source.X
_ADD64_X = InsnClass.ALU64 | AluOp.ADD | Source.X
_NONE = 15
"""The second operand of a fact that is a plain copy (X holds A)."""


def _fact(a: int, b: int) -> int:
    lo, hi = min(a, b), max(a, b)
    return lo << 4 | hi


def _operands(fact: int) -> tuple[int, int]:
    return fact >> 4, fact & 15


def transfer_sums(insn: Instruction, sums: Mapping[int, int]) -> dict[int, int]:
    """The sums known after ``insn`` (register -> fact: A << 4 | B with A <= B, B = 15 for a copy of A).
    A 64-bit copy of a register with no fact makes the copy's fact, of one with a fact copies it; a 64-bit
    add of a register to a copy makes the sum; any other write ends the written register's facts and every
    fact that names it."""
    k = insn.kind
    if k == Kind.INVALID:
        return {}
    writes = written_registers(insn)
    new: int | None = None
    if insn.opcode == _MOV64_X and insn.off == 0 and insn.dst != insn.src and insn.dst != 10:
        new = sums.get(insn.src, _fact(insn.src, _NONE))
    elif insn.opcode == _ADD64_X and insn.dst != insn.src and insn.dst in sums:
        a, b = _operands(sums[insn.dst])
        if b == _NONE and a != insn.dst:
            new = _fact(a, insn.src)
    gone = set(writes)
    out = {r: f for r, f in sums.items() if r not in gone and not gone & set(_operands(f))}
    if new is not None and not gone & set(_operands(new)):
        out[insn.dst] = new
    return out


def known_sums(code: Sequence[Instruction], succs: list[list[int]], patched: set[int]) -> list[dict[int, int]]:
    """Per instruction, the registers holding a copy or a sum of others on every path to it."""
    return must_forward(code, succs, patched, transfer_sums, lambda a, b: a if a == b else None)


def sums_pass(elf_bytes: bytes, sections: Sequence[str]) -> tuple[bytes, list[tuple[str, str, int, Instruction,
                                                                                   Instruction]]]:
    """Every ``rA += rB`` (64-bit) where another register holds A + B on every path, as ``rA = rX``; and
    (section, function, index, before, after) of each."""
    elf = BpfElf.from_bytes(elf_bytes)
    core = core_relocated_slots(elf)
    edits: dict[str, list[Replacement]] = {}
    made: list[tuple[str, str, int, Instruction, Instruction]] = []
    for sec in sections:
        prog = elf.program(sec) if sec != ".text" else elf.text
        assert prog is not None
        for fn in functions_of(prog, core.get(sec, set())):
            facts = known_sums(fn.code, fn.succs, fn.patched)
            for i, insn in enumerate(fn.code):
                if insn.opcode != _ADD64_X or insn.dst == insn.src or i in fn.patched:
                    continue
                want = _fact(insn.dst, insn.src)
                holder = next((r for r, f in sorted(facts[i].items()) if f == want and r not in (insn.dst, 10)),
                              None)
                if holder is None:
                    continue
                copy = Instruction(_MOV64_X, insn.dst, holder)
                edits.setdefault(sec, []).append(Replacement(fn.lo + i, 1, (copy,)))
                made.append((sec, fn.name, fn.lo + i, insn, copy))
    return (rewrite_code(elf_bytes, edits) if made else elf_bytes), made
