"""Instructions the program does not need, each dropped only where the path prover proves the program equal.

The windows keep every jump (they change a conditional jump's operands, never the jump itself), the region
threading keeps a region's exits, and a window proves its rewrite from what the window itself shows. Some
instructions clang leaves are needed on no path for reasons beyond one window:

- a bounds check implied by the next one: ``r1 = r3; r1 += 14; if r1 > r2 goto out; r3 += 34;
  if r3 > r2 goto out`` (ok_ipv4_ihl): where the first is taken the second is too, and what lies between
  writes nothing ``out`` reads and touches no memory, so the first may go;
- the NULL test of an array map's lookup with a constant key in range (the value always exists; the kernel
  knows it too since 6.14, and loads the program without the test);
- ``w2 = w2`` after ``r2 = data_end - data`` (the difference of the two 32-bit fields is never negative).

None is a local fact, and a must-analysis that finds them would be a second prover: so the pass lets the
path prover decide. It tries the instructions of each XDP function in turn (its jumps, then its operations
and loads; the last first), drops one, proves the function without it equal to the function with it
(`prove_objects`, ``units`` per try) and keeps the drop only where that proof says proven and our verifier
still accepts the function; each try starts from the drops kept before it, so the chain of proofs makes the
output equal to the input (and each prefix of the drops too: `api` keeps the longest prefix the kernel
loads). Only programs of at most ``max_slots`` slots are tried, at most ``max_tries`` instructions per
function, and none after the first try the prover does not decide (a program it cannot explore within the
units would spend them on every try to say unknown): budgets in proofs and solver units, never in seconds.

The prover reads global data as the object holds it and follows calls into the subprograms the object has;
a loader may write other values into ``.rodata`` before it loads the program (libxdp's dispatcher sets
``conf.num_progs_enabled`` there) and replace a subprogram (``freplace``: the dispatcher's stubs), so a
function that refers to global data, an extern or another function is not tried: a drop proven from the
object's ``.rodata`` would not hold for the program the loader makes.

The lock-step proof lines up jumps, so it does not decide these: where the path prover does not prove the
output, `api` searches again without the pass (as without the exit tails).
"""

from __future__ import annotations

from collections.abc import Sequence

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction, RelocKind
from pybpfdsl.bpf.opcode import InsnClass, Kind
from pybpfdsl.superopt.elf_rewrite import ElfRewriteError, Replacement, rewrite_code
from pybpfdsl.superopt.gate import prove_program
from pybpfdsl.superopt.windows import core_relocated_slots, functions_of
from pybpfdsl.verify.analysis.api import is_xdp_section, verify_object

__all__ = ["DROP_UNITS", "MAX_SLOTS", "MAX_TRIES", "drops_pass"]

DROP_UNITS = 2_000_000
"""Z3 units for the proof of each try."""
MAX_SLOTS = 400
"""Programs of more slots are not tried."""
MAX_TRIES = 96
"""Instructions tried per function: its jumps first, then its operations and loads, the last first."""

_STRAIGHT = (InsnClass.ALU, InsnClass.ALU64, InsnClass.LDX)
"""The other instructions tried: operations and loads (a store or an atomic changes memory; a call, an exit or
a wide load is no candidate)."""

Drop = tuple[str, str, int, Instruction]
"""(section, function, index in the pass's input, the dropped instruction)."""


def drops_pass(elf_bytes: bytes, sections: Sequence[str], units: int = DROP_UNITS, max_slots: int = MAX_SLOTS,
               max_tries: int = MAX_TRIES) -> tuple[bytes, list[Drop]]:
    """The object with every instruction dropped that the path prover proves unneeded (see the module), and
    (section, function, index in ``elf_bytes``, instruction) of each drop."""
    elf = BpfElf.from_bytes(elf_bytes)
    core = core_relocated_slots(elf)
    current = elf_bytes
    made: list[Drop] = []
    for sec in sections:
        if sec == ".text" or not is_xdp_section(sec):
            continue  # subprograms and other program types: the path prover does not prove them alone
        prog = elf.program(sec)
        if prog.slots > max_slots:
            continue
        gone: list[int] = []  # indices (in the pass's input) of the drops kept in this section
        loaded = [r.insn_index for r in prog.relocations if r.kind != RelocKind.MAP]
        for fn in functions_of(prog, core.get(sec, set())):
            if any(fn.lo <= i < fn.lo + len(fn.code) for i in loaded):
                continue  # global data or a subprogram: what the prover reads there the loader may replace
            if not verify_object(elf_bytes, fn.name).ok:
                continue  # our verifier must accept the output where it accepted the input
            order = range(len(fn.code) - 1, -1, -1)
            jumps = [i for i in order if fn.code[i].kind in (Kind.JCOND, Kind.JA) and i not in fn.patched]
            rest = [i for i in order if fn.code[i].cls in _STRAIGHT and not fn.code[i].is_wide and i not in fn.patched]
            tries = [*jumps, *rest][:max_tries]
            for i in tries:
                at = fn.lo + i - sum(1 for g in gone if g < fn.lo + i)
                try:
                    candidate = rewrite_code(current, {sec: [Replacement(at, 1, ())]})
                except ElfRewriteError:
                    continue
                verdict, _ = prove_program(current, candidate, fn.name, units)
                if verdict == "unknown":
                    break  # the prover does not decide this function within the units: no try will
                if verdict == "proven" and verify_object(candidate, fn.name).ok:
                    current = candidate
                    gone.append(fn.lo + i)
                    made.append((sec, fn.name, fn.lo + i, fn.code[i]))
    return current, made
