"""The natural token bucket proves within the compile budget, and a miscompiled one does not (issue 16 §1).

`tokens.value = min(BURST, tokens.value + RATE * (elapsed / 1e9))` with `elapsed` a u64 of nanoseconds:
a constant times a saturating integer quotient (`lang.fixed.divide_integers`). With a fractional RATE
the product is `lang.fixed.multiply`'s halves, which LLVM rewrites around its branch-free |x|
(`(x ^ s) - s`, then `* 1000`): the normal form keeps that idiom one atom (`normal_bits._magnitude`),
where spread over a constant factor it left the final query out of any budget. The mutants below
change one instruction of each part the proof matches (the constant, the halves, the magnitude, the
saturation) and must each be refuted with a counterexample, never proven.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, now_ns, u64, xdp
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.program import XdpProgram
from pybpfdsl.verify.equivalence.bytecode_program import load_program
from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer
from pybpfdsl.verify.equivalence.proof_result import ProofResult
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled, prove_ir_bytecode

BURST = 1000.0
RATE = 1000.0

tokens = Global(float, 1000.0)
last = Global(u64, 0)
rate = Global(float, 1000.0)
burst = Global(float, 1000.0)


@xdp
def refill_only(pkt: Packet) -> int:
    elapsed = now_ns() - last.value
    tokens.value = 1000.0 * (elapsed / 1e9)
    return XDP_PASS


@xdp
def uncapped_refill(pkt: Packet) -> int:
    now = now_ns()
    elapsed = now - last.value
    tokens.value = tokens.value + RATE * (elapsed / 1e9)
    last.value = now
    return XDP_PASS


@xdp
def natural_bucket(pkt: Packet) -> int:
    now = now_ns()
    elapsed = now - last.value
    tokens.value = min(BURST, tokens.value + RATE * (elapsed / 1e9))
    last.value = now
    if tokens.value < 1.0:
        return XDP_DROP
    tokens.value -= 1.0
    return XDP_PASS


@xdp
def uncapped_example_style(pkt: Packet) -> int:
    """rate_limiter.py without its one-second cap on the elapsed time."""
    if pkt.udp is None and pkt.tcp is None:
        return XDP_PASS
    now = now_ns()
    previous = last.value
    if now > previous:
        seconds = (now - previous) / 1_000_000_000
        tokens.value = min(burst.value, tokens.value + rate.value * seconds)
        last.value = now
    if tokens.value < 1.0:
        return XDP_DROP
    tokens.value -= 1.0
    return XDP_PASS


@xdp
def fractional_rate_bucket(pkt: Packet) -> int:
    now = now_ns()
    elapsed = now - last.value
    tokens.value = min(BURST, tokens.value + 1000.5 * (elapsed / 1e9))
    last.value = now
    return XDP_PASS


@xdp
def fractional_scale(pkt: Packet) -> int:
    """A fractional constant times a signed float (a decay or a scaled rate)."""
    tokens.value = 1000.5 * tokens.value
    return XDP_PASS


@pytest.mark.parametrize("program", [refill_only, uncapped_refill, natural_bucket, uncapped_example_style,
                                     fractional_rate_bucket, fractional_scale], ids=lambda p: p.name)
def test_the_natural_token_bucket_is_proven(program: XdpProgram) -> None:
    # fractional_rate_bucket and fractional_scale were "unknown" at 150M units; each is now about 1M.
    result = prove_compiled(program.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()


def _nth(insns: list[Instruction], match: Callable[[int], bool], n: int) -> int:
    """The index of the n-th instruction (from the end for n < 0) whose index `match` accepts."""
    found = [i for i in range(len(insns)) if match(i)]
    assert found, "the bytecode changed shape: no such instruction"
    return found[n]


_MUL_K, _AND_K, _SUB_X, _XOR_X, _JGT_X = 0x27, 0x57, 0x1F, 0xAF, 0x2D
_NOP = Instruction(0x05)  # ja +0


def _constant_changed(insns: list[Instruction]) -> list[Instruction]:
    at = _nth(insns, lambda i: insns[i].opcode == _MUL_K and insns[i].imm == 1000, 0)  # |q| * 1000 (RATE's whole part)
    insns[at] = replace(insns[at], imm=1001)
    return insns


def _half_changed(insns: list[Instruction]) -> list[Instruction]:
    at = _nth(insns, lambda i: insns[i].opcode == _AND_K and insns[i].imm == 0x7FFFFFFF, 0)  # (|q| >> 1) & 0x7fffffff
    insns[at] = replace(insns[at], imm=0x7FFFFFFE)
    return insns


def _magnitude_broken(insns: list[Instruction]) -> list[Instruction]:
    # The first |x| idiom (of the elapsed time as a signed value), (x ^ s) - s, becomes (x ^ s) + s.
    at = _nth(insns, lambda i: insns[i].opcode == _SUB_X and insns[i - 1].opcode == _XOR_X, 0)
    insns[at] = replace(insns[at], opcode=0x0F)
    return insns


def _wraps_instead_of_saturating(insns: list[Instruction]) -> list[Instruction]:
    # The test that the whole part fits (q < 2**31) dropped: the quotient's shift then wraps.
    at = _nth(insns, lambda i: insns[i].opcode == _JGT_X, 0)
    insns[at] = _NOP
    return insns


def _prove_mutant(mutate: Callable[[list[Instruction]], list[Instruction]]) -> ProofResult:
    compiled = fractional_rate_bucket.compile(prove=False)
    program = load_program(compiled.elf, compiled.name)
    mutant = program.with_instructions(tuple(mutate(list(program.instructions))))
    return prove_ir_bytecode(compiled.lowered.program, mutant, CompiledReplayer(compiled.subject, mutant),
                             budget=COMPILE_BUDGET)


@pytest.mark.parametrize("mutate", [_constant_changed, _half_changed, _wraps_instead_of_saturating],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_miscompiled_token_bucket_gets_a_counterexample(mutate: Callable[[list[Instruction]],
                                                                            list[Instruction]]) -> None:
    result = _prove_mutant(mutate)
    assert result.status == "counterexample", result.report()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()


def test_a_broken_magnitude_is_never_proven() -> None:
    # The idiom is one atom only when it is the idiom: `(x ^ s) + s` stays a sum, apart from |x|. (Finding
    # the negative elapsed time that shows it runs out of the budget: "unknown", not a counterexample.)
    assert _prove_mutant(_magnitude_broken).status != "proven"
