"""Is a candidate window equal to the original one? Tests first (cheap, concrete), then a Z3 proof.

The precondition is the window's liveness (K2 §5, "window-based verification"): both windows start
from the same registers and memory, and must end with the same value in every register live after the
window and the same contents at every memory address (memory is always live: a store the program never
reads again is still not removed). A branch window (one ending in a conditional jump) must also decide
the jump the same way, and its registers need only agree where they are live on the way it went: its
liveness is `branch_live(fallthrough, target)`. The proof is bounded in Z3 resource units, never in seconds.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pybpfdsl.bpf.abi import STACK_SIZE
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, Source, size
from pybpfdsl.bpf.semantics import SemanticsError
from pybpfdsl.superopt.window_semantics import ConcreteMemory, run_concrete_branch, run_z3_branch
from pybpfdsl.verify.analysis.liveness import registers_of

__all__ = ["BRANCH_SHIFT", "DEFAULT_PROOF_UNITS", "TestCase", "Verdict", "branch_live", "expected_outputs", "failures",
           "fit", "live_on", "make_tests", "prove_window", "stack_safe"]

DEFAULT_PROOF_UNITS = 2_000_000
"""Z3 resource units for one window proof; the windows' formulas are small (a few thousand units)."""

BRANCH_SHIFT = 16
"""A branch window's liveness holds the registers live at the jump's target from this bit on."""
_REGS = (1 << 11) - 1


def branch_live(fallthrough: int, target: int) -> int:
    """The liveness of a window ending in a conditional jump: the registers live on each way out."""
    return fallthrough | target << BRANCH_SHIFT


def live_on(live_out: int, taken: bool | None) -> int:
    """The registers that must agree after a window that left the way ``taken`` says (None: no jump)."""
    if taken is None:
        return live_out & _REGS
    return live_out >> BRANCH_SHIFT & _REGS if taken else live_out & _REGS


@dataclass(frozen=True)
class TestCase:
    """Register values r0-r10 and the seed of the memory background."""

    __test__ = False

    regs: tuple[int, ...]
    memory: ConcreteMemory


_INTERESTING = (0, 1, 2, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x80000000, (1 << 64) - 1, 1 << 63, 14, 34)


def make_tests(rng: random.Random, count: int, known: Mapping[int, int] | None = None,
               widths: Mapping[int, int] | None = None) -> list[TestCase]:
    """``count`` inputs: random registers (some set to boundary values, the ``known`` ones to their
    constants, the ones of known ``widths`` cut to them) over random memory backgrounds."""
    out = []
    for _ in range(count):
        regs = tuple(rng.choice(_INTERESTING) if rng.random() < 0.25 else rng.getrandbits(64) for _ in range(11))
        regs = fit(regs, known, widths)
        out.append(TestCase(regs, ConcreteMemory(rng.getrandbits(32))))
    return out


def fit(regs: Sequence[int], known: Mapping[int, int] | None, widths: Mapping[int, int] | None) -> tuple[int, ...]:
    """``regs`` made to meet the precondition: the known constants in place, the known widths cut to."""
    out = [(known or {}).get(r, v) for r, v in enumerate(regs)]
    return tuple(v & ((1 << (widths or {}).get(r, 64)) - 1) for r, v in enumerate(out))


def stack_safe(code: Sequence[Instruction]) -> bool:
    """Every access ``code`` makes through the frame pointer (r10, or a register the window set to r10
    plus a constant) aligned to its width and inside the 512-byte frame. The window proof sees memory as
    one flat array, where ``*(u32 *)(r10 -62) = 0`` or ``*(u64 *)(r10 -4)`` are as good as any other
    address; the kernel refuses both (it always checks the stack's alignment), so such a candidate would
    only be proven to be thrown away by the gate."""
    frame: dict[int, int] = {10: 0}
    for insn in code:
        k = insn.kind
        if k in (Kind.LDX, Kind.LDX_SX, Kind.ST, Kind.STX, Kind.ATOMIC):
            base = insn.src if k in (Kind.LDX, Kind.LDX_SX) else insn.dst
            if base in frame:
                at, n = frame[base] + insn.off, size(insn.opcode).bytes
                if at % n or at < -STACK_SIZE or at + n > 0:
                    return False
        writes = registers_of(insn)[1]
        if insn.opcode == InsnClass.ALU64 | AluOp.MOV | Source.X and insn.src in frame:
            frame[insn.dst] = frame[insn.src]
        elif insn.opcode in (InsnClass.ALU64 | AluOp.ADD | Source.K, InsnClass.ALU64 | AluOp.SUB | Source.K) \
                and insn.dst in frame and insn.dst != 10:
            frame[insn.dst] += insn.imm if insn.opcode & 0xF0 == AluOp.ADD else -insn.imm
        else:
            for r in writes:
                if r != 10:
                    frame.pop(r, None)
    return True


_Outputs = tuple[list[int], ConcreteMemory, bool | None]


def _outputs(window: Sequence[Instruction], test: TestCase) -> _Outputs | None:
    try:
        return run_concrete_branch(window, test.regs, test.memory)
    except (SemanticsError, ValueError):
        return None


def failures(original: Sequence[Instruction], candidate: Sequence[Instruction], live_out: int,
             tests: Sequence[TestCase], expected: list[_Outputs | None] | None = None,
             stop_at: int = 1 << 30) -> int:
    """How many tests the candidate gets wrong (the jump, registers live out, or any byte of memory)."""
    wrong = 0
    for n, test in enumerate(tests):
        want = expected[n] if expected is not None else _outputs(original, test)
        got = _outputs(candidate, test)
        if want is None or got is None:
            wrong += want is not got
        elif want[2] != got[2]:
            wrong += 1
        else:
            live = live_on(live_out, want[2])
            if any(live >> r & 1 and want[0][r] != got[0][r] for r in range(11)):
                wrong += 1
            else:
                mem_a, mem_b = want[1], got[1]
                addrs = mem_a.written.keys() | mem_b.written.keys()
                wrong += any(mem_a.byte(a) != mem_b.byte(a) for a in addrs)
        if wrong >= stop_at:
            break
    return wrong


def expected_outputs(original: Sequence[Instruction], tests: Sequence[TestCase]) -> list[_Outputs | None]:
    return [_outputs(original, t) for t in tests]


@dataclass(frozen=True)
class Verdict:
    """``proven``, ``different`` (with a counterexample's registers) or ``unknown``."""

    status: str
    counterexample: TestCase | None = None
    reason: str = ""

    @property
    def proven(self) -> bool:
        return self.status == "proven"


def prove_window(original: Sequence[Instruction], candidate: Sequence[Instruction], live_out: int,
                 units: int = DEFAULT_PROOF_UNITS, known: Mapping[int, int] | None = None,
                 widths: Mapping[int, int] | None = None) -> Verdict:
    """Prove the windows equal under ``live_out`` (a bit per register), the ``known`` register values
    and the known ``widths`` (register -> bits: below 2**bits) on entry, within ``units`` Z3 resource units."""
    import z3

    ctx_regs = [z3.BitVec(f"r{i}", 64) for i in range(11)]
    mem = z3.Array("mem", z3.BitVecSort(64), z3.BitVecSort(8))
    try:
        regs_a, mem_a, jump_a = run_z3_branch(original, ctx_regs, mem)
        regs_b, mem_b, jump_b = run_z3_branch(candidate, ctx_regs, mem)
    except SemanticsError as exc:
        return Verdict("unknown", reason=str(exc))
    if (jump_a is None) != (jump_b is None):
        return Verdict("unknown", reason="one window ends in a conditional jump and the other does not")

    def regs_differ(live: int) -> Any:
        return z3.Or(False, *(regs_a[r] != regs_b[r] for r in range(11) if live >> r & 1))

    if jump_a is None:
        differs = [regs_differ(live_on(live_out, None))]
    else:
        differs = [z3.Xor(jump_a, jump_b), z3.And(jump_a, regs_differ(live_on(live_out, True))),
                   z3.And(z3.Not(jump_a), regs_differ(live_on(live_out, False)))]
    differs.append(mem_a != mem_b)
    solver = z3.Solver()
    solver.set("rlimit", units)
    solver.add(z3.Or(*differs))
    for r, v in (known or {}).items():
        solver.add(ctx_regs[r] == v)
    for r, bits in (widths or {}).items():
        solver.add(z3.LShR(ctx_regs[r], bits) == 0)
    answer = solver.check()
    if answer == z3.unsat:
        return Verdict("proven")
    if answer == z3.sat:
        model = solver.model()
        regs = tuple(model.eval(r, model_completion=True).as_long() for r in ctx_regs)
        # The memory of the counterexample is not replayed byte for byte: a fresh background is
        # enough to add the registers as a test (most windows differ on registers).
        return Verdict("different", TestCase(regs, ConcreteMemory(0)))
    return Verdict("unknown", reason=f"Z3 gave up within {units:,} units: {solver.reason_unknown()}")
