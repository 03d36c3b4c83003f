"""A UDP port swap through locals (issue 16 §3) in the proof: `s, d = udp.sport, udp.dport` then
`udp.sport, udp.dport = d, s` writes each port with its own RFC 1624 update, the second over the
checksum the first wrote (with UDP's 0 -> 0xFFFF rule in each). The IR selects where LLVM branches, so
each checksum byte is proven path pair by path pair (`path_pairs`); the questions whose two sides the
normal forms leave in different shapes go to a solver that has never been pushed, which bit-blasts them
whole (the shared, incremental one gave up on them within any budget: unknown at 150 million units)."""

from __future__ import annotations

import dataclasses
import re

from pybpfdsl import XDP_PASS, XDP_TX, Packet, xdp
from pybpfdsl.verify.equivalence.bytecode_program import load_program
from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled, prove_ir_bytecode

SWAP_UNITS = 60_000_000
"""What the swap's proof may spend: it spends about 43 million units (given the compile budget, of
which its pairing may use 0.3 of what exploring leaves)."""


@xdp
def swap_ports_through_locals(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    s, d = udp.sport, udp.dport
    udp.sport, udp.dport = d, s
    return XDP_TX


def test_a_swap_through_locals_is_proven() -> None:
    result = prove_compiled(swap_ports_through_locals.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.reason
    assert result.units < SWAP_UNITS
    assert int(result.stats["paired"]) == 12  # both ports and the checksum, under IPv4 and IPv6


def test_a_wrong_constant_in_the_second_update_is_refuted() -> None:
    """The second update's complement of the old port taken with 0xFFFE: the checksum differs."""
    compiled = swap_ports_through_locals.compile(prove=False)
    bytecode = load_program(compiled.elf, compiled.name)
    insns = list(bytecode.instructions)
    index = [i for i, insn in enumerate(insns) if re.fullmatch(r"w\d \^= -1", str(insn))][-2]
    insns[index] = dataclasses.replace(insns[index], imm=0xFFFE)
    mutant = bytecode.with_instructions(tuple(insns))
    result = prove_ir_bytecode(compiled.subject.program, mutant, CompiledReplayer(compiled.subject, mutant),
                               budget=COMPILE_BUDGET)
    assert result.status == "counterexample", result.reason
    assert "packet" in result.reason
