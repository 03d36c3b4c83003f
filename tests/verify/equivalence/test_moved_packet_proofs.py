"""IP-in-IP decapsulation (issue 16 §3) in the proof, its .bss fingerprint included: after
`pkt.adjust_head(20)` the IR reads the inner header at `SignExt(32, 20) + 26`, the `i32` delta widened,
where the bytecode reads at the constant 46. The normal form folds a sign-extended constant (and
zero-extends a value whose top bit is clear), so both reads are one term and `seen * 31 + inner.src`,
then `* 37 + udp.dport`, is one polynomial on both sides (unknown at 150 million units before)."""

from __future__ import annotations

import dataclasses
import re

import z3

from pybpfdsl.verify.equivalence.bytecode_program import load_program
from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer
from pybpfdsl.verify.equivalence.normalize import Normalizer
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled, prove_ir_bytecode
from tests.differential.packet_move_programs import ipip_decap

DECAP_UNITS = 60_000_000
"""What the decapsulation's proof may spend: it spends about 42.5 million units."""


def test_a_sign_extension_folds_where_its_sign_is_known() -> None:
    n = Normalizer()
    x = z3.BitVec("x", 8)
    assert n.normalize(z3.SignExt(32, z3.BitVecVal(20, 32)) + 6).eq(z3.BitVecVal(26, 64))
    assert n.normalize(z3.SignExt(8, z3.BitVecVal(-3, 8))).eq(z3.BitVecVal(0xFFFD, 16))
    low = z3.ZeroExt(4, z3.Extract(3, 0, x))  # top bit clear: the sign extension is a zero extension
    assert n.normalize(z3.SignExt(8, low)).eq(n.normalize(z3.ZeroExt(8, low)))
    # x's top bit may be set: it stays a sign extension.
    assert not n.normalize(z3.SignExt(8, x)).eq(n.normalize(z3.ZeroExt(8, x)))


def test_ipip_decap_is_proven_with_its_fingerprint() -> None:
    result = prove_compiled(ipip_decap.compile(prove=False, verify=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.reason
    assert result.units < DECAP_UNITS


def test_a_wrong_fingerprint_factor_is_refuted() -> None:
    """The bytecode's `* 37` of the UDP step made `* 38`: the global `seen` differs."""
    compiled = ipip_decap.compile(prove=False, verify=False)
    bytecode = load_program(compiled.elf, compiled.name)
    insns = list(bytecode.instructions)
    index = next(i for i, insn in enumerate(insns) if re.fullmatch(r"r\d \*= 37", str(insn)))
    insns[index] = dataclasses.replace(insns[index], imm=38)
    mutant = bytecode.with_instructions(tuple(insns))
    result = prove_ir_bytecode(compiled.subject.program, mutant, CompiledReplayer(compiled.subject, mutant),
                               budget=COMPILE_BUDGET)
    assert result.status == "counterexample", result.reason
    assert "global data" in result.reason
