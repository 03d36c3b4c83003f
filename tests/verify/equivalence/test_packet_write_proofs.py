"""Packet writes in the proof (issue 16 §3): RFC 1624 checksum updates and reads past stores; each
program proven, and a planted bug in each (a wrong fold, a store one byte late) refuted with a replayed
counterexample.

The IR writes a checksum update as 64-bit sums folded twice; LLVM folds constants into the sum,
subtracts words instead of adding their complements and folds in 32 bits. The normal forms read a
coefficient above half the width as negative (`Normalizer.interval`), so both sums are one polynomial
and their high halves one bounded atom. A byte read is resolved through the stores that cannot hit it
(`Normalizer._select`, `observe.read_byte`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest
import z3

from pybpfdsl.verify.equivalence.bytecode_program import load_program
from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer
from pybpfdsl.verify.equivalence.normalize import Normalizer
from pybpfdsl.verify.equivalence.proof_result import ProofResult
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled, prove_ir_bytecode
from tests.differential.packet_write_programs import (
    decrement_ttl,
    ipv6_rewrite,
    mark_payload,
    read_after_write,
    rewrite_destination,
)
from tests.differential.test_negative_payload_indexes import record_from_end


def test_a_complement_widens_as_a_difference() -> None:
    """~b of a byte, zero-extended, is 255 - b at any width: its integer never wraps."""
    b = z3.BitVec("b", 8)
    n = Normalizer()
    assert n.normalize(z3.ZeroExt(56, ~b)).eq(n.normalize(255 - z3.ZeroExt(56, b)))
    # 1 - b may be negative: its zero-extension is not 1 - b.
    assert not n.normalize(z3.ZeroExt(56, 1 - b)).eq(n.normalize(1 - z3.ZeroExt(56, b)))


def test_a_read_passes_stores_that_cannot_hit_it() -> None:
    packet = z3.Array("p", z3.BitVecSort(64), z3.BitVecSort(8))
    ihl = z3.ZeroExt(60, z3.Extract(3, 0, z3.BitVec("ihl", 8)))
    x, y = z3.BitVec("x", 8), z3.BitVec("y", 8)
    l4 = 14 + 4 * ihl
    n = Normalizer()
    written = z3.Store(z3.Store(packet, z3.BitVecVal(24, 64), y), l4 + 16, x)  # l4 + 16 >= 30
    assert n.normalize(z3.Select(written, z3.BitVecVal(24, 64))).eq(n.normalize(y))
    assert n.normalize(z3.Select(written, 30 + 4 * ihl)).eq(n.normalize(x))
    # l4 + 6 may be 24 (ihl = 1): the read stays a read of that store.
    maybe = z3.Store(z3.Store(packet, z3.BitVecVal(24, 64), y), l4 + 6, x)
    assert not n.normalize(z3.Select(maybe, z3.BitVecVal(24, 64))).eq(n.normalize(y))


@pytest.mark.parametrize("program", [read_after_write, decrement_ttl, rewrite_destination, ipv6_rewrite],
                         ids=lambda p: p.name)
def test_header_writes_with_checksum_updates_are_proven(program: object) -> None:
    result = prove_compiled(program.compile(prove=False).subject, budget=COMPILE_BUDGET)  # type: ignore[attr-defined]
    assert result.status == "proven", result.reason


def test_a_wrong_checksum_constant_is_refuted() -> None:
    compiled = read_after_write.compile(prove=False)
    bytecode = load_program(compiled.elf, compiled.name)
    insns = list(bytecode.instructions)
    # ~old of the TTL's word (found by its form, whichever register the backend gives it)
    index = next(i for i, insn in enumerate(insns) if re.fullmatch(r"r\d \^= 65535", str(insn)))
    insns[index] = dataclasses.replace(insns[index], imm=65534)
    mutant = bytecode.with_instructions(tuple(insns))
    result = prove_ir_bytecode(compiled.subject.program, mutant, CompiledReplayer(compiled.subject, mutant),
                               budget=COMPILE_BUDGET)
    assert result.status == "counterexample", result.reason
    cex = result.counterexample
    assert cex is not None and cex.runs is not None
    assert cex.runs[0].packet != cex.runs[1].packet


def _refuted(program: object, matches: Callable[[str], bool], **change: int) -> ProofResult:
    """The proof of `program`'s IR against its bytecode with the first instruction `matches` changed."""
    compiled = program.compile(prove=False)  # type: ignore[attr-defined]
    bytecode = load_program(compiled.elf, compiled.name)
    insns = list(bytecode.instructions)
    index = next(i for i, insn in enumerate(insns) if matches(str(insn)))
    insns[index] = dataclasses.replace(insns[index], **change)
    mutant = bytecode.with_instructions(tuple(insns))
    return prove_ir_bytecode(compiled.subject.program, mutant, CompiledReplayer(compiled.subject, mutant),
                             budget=COMPILE_BUDGET)


@pytest.mark.parametrize("program", [rewrite_destination, ipv6_rewrite], ids=lambda p: p.name)
def test_a_wrong_checksum_fold_is_refuted(program: object) -> None:
    """The second carry of the fold taken from bit 15 instead of 16."""
    result = _refuted(program, lambda text: text == "w0 >>= 16" or text == "r3 >>= 16", imm=15)
    assert result.status == "counterexample", result.reason
    assert "packet" in result.reason


@pytest.mark.parametrize(("program", "store", "off"), [(rewrite_destination, r"\*\(u16 \*\)\(r\d \+16\) = ", 16),
                                                       (ipv6_rewrite, r"\*\(u64 \*\)\(r\d \+32\) = ", 32)],
                         ids=["tcp_checksum", "ipv6_address"])
def test_an_off_by_one_store_is_refuted(program: object, store: str, off: int) -> None:
    """A checksum (TCP, at l4 + 16) or an address (IPv6 dst_lo, at 46) written one byte late (the store
    found by its form, whichever register the backend bases it on)."""
    result = _refuted(program, lambda text: re.match(store, text) is not None, off=off + 1)
    assert result.status == "counterexample", result.reason
    assert "packet" in result.reason


def test_payload_writes_at_a_parsed_offset_are_proven() -> None:
    """Two payload bytes written where the parse says (an offset of ihl and the TCP data offset), each
    with its TCP or UDP checksum update, the second update over the first: the bytes are proven path
    pair by path pair (`path_pairs`), where one query over both programs' fifty paths was "unknown"."""
    result = prove_compiled(mark_payload.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.reason
    assert int(result.stats["paired"]) > 0


def test_payload_pairs_are_cheap_enough_for_a_small_budget() -> None:
    """mark_payload within 45 million units: its pairing gets 0.3 of what exploring leaves (about 10.7
    million); asked pair by pair and byte by byte whether the conditions can hold together, it needed
    24.7 million, now 7.8 (a contradictory pair is found once, not once for every byte)."""
    result = prove_compiled(mark_payload.compile(prove=False).subject, budget=45_000_000)
    assert result.status == "proven", result.reason
    assert int(result.stats["paired"]) == 24


@pytest.mark.parametrize(("matches", "change"), [(lambda text: re.fullmatch(r"r\d \^= 255", text) is not None, 254),
                                                 (lambda text: re.fullmatch(r"[rw]\d >>= 16", text) is not None, 15)],
                         ids=["payload_byte", "checksum_fold"])
def test_a_wrong_payload_write_is_never_proven(matches: Callable[[str], bool], change: int) -> None:
    """The payload byte complemented with 254 instead of 255, or a checksum fold's carry taken from bit 15:
    the pairs leave that byte to the final query, which never says proven."""
    result = _refuted(mark_payload, matches, imm=change)
    assert result.status != "proven", result.reason


def test_a_record_written_from_the_end_is_proven() -> None:
    """A record at len - 6 (the payload's last six bytes) with its TCP or UDP checksum update: the
    checksum's value reads the packet past the record's stores, which only the parse keeps apart (the
    payload starts past the header), and LLVM computes len - 6 as 15 bits plus a constant, masked. Each
    read is taken past the stores its path's condition says it misses, and each offset written in the
    IR's form where the path says they are equal (`path_pairs._ReadsPast`): the pairs' bytes are then
    one term, or differ only in how a sum is folded. Before: "unknown" at this budget."""
    result = prove_compiled(record_from_end.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.reason


@pytest.mark.parametrize(("store", "change"), [(r"\*\(u16 \*\)\(r\d \+2\) = r\d", {"off": 3}),
                                               (r"w\d = 61374", {"imm": 61375})],
                         ids=["store_one_byte_late", "wrong_value"])
def test_a_wrong_record_from_the_end_is_never_proven(store: str, change: dict[str, int]) -> None:
    """The record's value stored one byte late, or a wrong value: never proven."""
    result = _refuted(record_from_end, lambda text: re.fullmatch(store, text) is not None, **change)
    assert result.status != "proven", result.reason
