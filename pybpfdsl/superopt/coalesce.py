"""A copy made only to be combined with a register that dies there: ``rX = rY; rX ^= rZ`` as ``rZ ^= rY``, rX
renamed rZ in the rest of the function.

clang keeps a value in a new callee-saved register across a call (``r6 = r0; r6 ^= r7``, ok_stack_spill's
hash) where the register it combines with is dead after: the combination may be made in that register
itself, one slot fewer, if every later use of rX reads rZ instead. The pass renames only where that is
plainly safe: no jump from the rest of the function goes back before it, what a jump from before the pair
reaches after it (an early exit to the final tail) names neither register, rZ is not named after the pair,
the operation is commutative (add, or, and, xor, mul), and across a call both registers are callee-saved
(r6-r9). Proven by the path prover (the lock-step proof lines up registers, so it does not decide these;
`api` then searches again without the pass).
"""

from __future__ import annotations

from collections.abc import Sequence

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, Source
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.windows import FunctionCode, core_relocated_slots, functions_of
from pybpfdsl.verify.analysis.liveness import registers_of

__all__ = ["coalesce_pass"]

_MOV64_X = InsnClass.ALU64 | AluOp.MOV | Source.X
_COMMUTATIVE = {InsnClass.ALU64 | op | Source.X for op in (AluOp.ADD, AluOp.OR, AluOp.AND, AluOp.XOR, AluOp.MUL)}
_SAVED = {6, 7, 8, 9}


def _renamed(insn: Instruction, old: int, new: int) -> Instruction:
    return Instruction(insn.opcode, new if insn.dst == old else insn.dst, new if insn.src == old else insn.src,
                       insn.off, insn.imm, insn.imm_hi, insn.is_wide)


def _names(insn: Instruction, reg: int) -> bool:
    reads, writes = registers_of(insn)
    return reg in reads or reg in writes or insn.dst == reg or (insn.src == reg and insn.kind != Kind.CALL)


def _one(fn: FunctionCode) -> tuple[int, Instruction, int, int] | None:
    """(index of the copy, the combination made in rZ, rX, rZ) of the first pair that coalesces."""
    code = fn.code
    for i in range(len(code) - 2):
        mov, op = code[i], code[i + 1]
        if mov.opcode != _MOV64_X or op.opcode not in _COMMUTATIVE or op.dst != mov.dst:
            continue
        x, y, z = mov.dst, mov.src, op.src
        if len({x, y, z}) < 3 or 10 in (x, y, z) or 0 in (x, z) or {i, i + 1} & fn.patched or i + 1 in fn.targets:
            continue
        rest = range(i + 2, len(code))
        # Never left backwards (a loop would find rZ changed); where a jump from before the pair lands after
        # it (an early exit to the final tail), nothing it reaches names rX or rZ.
        if any(t < i + 2 for j in rest for t in fn.succs[j]):
            continue
        entered = [t for j in range(i) for t in fn.succs[j] if t >= i + 2]
        reached, work = set(entered), list(entered)
        while work:
            for t in fn.succs[work.pop()]:
                if t not in reached:
                    reached.add(t)
                    work.append(t)
        if any(_names(code[k], x) or _names(code[k], z) for k in reached):
            continue
        if any(_names(code[k], z) or (k in fn.patched and _names(code[k], x)) for k in rest):
            continue
        if any(code[k].kind == Kind.CALL for k in rest) and not {x, z} <= _SAVED:
            continue
        if any(code[k].kind in (Kind.GOTOL, Kind.INVALID) or code[k].is_pseudo_call for k in rest):
            continue
        return i, Instruction(op.opcode, z, y, op.off, op.imm), x, z
    return None


def coalesce_pass(elf_bytes: bytes, sections: Sequence[str]) -> tuple[bytes, list[tuple[str, str, int,
                                                                                       tuple[Instruction, ...],
                                                                                       tuple[Instruction, ...],
                                                                                       tuple[tuple[int, int], ...]]]]:
    """The object with each function's first coalescing pair made, and (section, function, start, before,
    after, exits) of each edit: the pair as one instruction, and each later instruction naming rX renamed
    (a jump with its target as its exit). The edits of a function stand or fall together."""
    elf = BpfElf.from_bytes(elf_bytes)
    core = core_relocated_slots(elf)
    edits: dict[str, list[Replacement]] = {}
    made: list[tuple[str, str, int, tuple[Instruction, ...], tuple[Instruction, ...], tuple[tuple[int, int], ...]]]
    made = []
    for sec in sections:
        prog = elf.program(sec) if sec != ".text" else elf.text
        assert prog is not None
        for fn in functions_of(prog, core.get(sec, set())):
            found = _one(fn)
            if found is None:
                continue
            i, combined, x, z = found
            mine: list[tuple[int, tuple[Instruction, ...], tuple[Instruction, ...], tuple[tuple[int, int], ...]]]
            mine = [(fn.lo + i, (fn.code[i], fn.code[i + 1]), (combined,), ())]
            for k in range(i + 2, len(fn.code)):
                insn = fn.code[k]
                if not _names(insn, x):
                    continue
                exits: tuple[tuple[int, int], ...] = ()
                if insn.kind in (Kind.JCOND, Kind.JA):
                    exits = ((0, fn.lo + fn.succs[k][-1]),)
                mine.append((fn.lo + k, (insn,), (_renamed(insn, x, z),), exits))
            for start, before, after, exits in mine:
                edits.setdefault(sec, []).append(Replacement(start, len(before), after, exits))
                made.append((sec, fn.name, start, before, after, exits))
    return (rewrite_code(elf_bytes, edits) if made else elf_bytes), made
