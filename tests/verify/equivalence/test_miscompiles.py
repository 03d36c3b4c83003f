"""Single-instruction miscompiles are caught, and each counterexample reproduces in both interpreters."""

from __future__ import annotations

from collections import Counter

import pytest

from examples import circuit_breaker, fault_injection, logging_counters, port_acl
from pybpfdsl import XDP_DROP, XDP_PASS, Array, Packet, u32, xdp
from pybpfdsl.verify.equivalence.bytecode_program import load_program
from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_ir_bytecode
from tests.differential import constructs as c
from tests.verify.equivalence.mutants import mutants

hits = Array(u32, 8)
misses = Array(u32, 8)


@xdp
def two_arrays(pkt: Packet) -> int:
    """Two maps of one shape, for "wrong map" (`lru_and_arrays`' LRU lookups after updates are "unknown")."""
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    if ip4.ttl > 64:
        hits[ip4.ttl & 7] += 1
    else:
        misses[ip4.ttl & 7] += 1
    return XDP_DROP if hits[0] > 3 else XDP_PASS


# (program, mutation kind, instruction index): chosen from `mutants()` so every kind of bug appears;
# mutants that are equivalent (e.g. a changed constant on the unreachable packet-guard path) are not listed.
# A negative index -n is the n-th mutant of that kind, wherever the backend puts it.
CASES = [
    (c.randomness, "wrong helper", 0), (c.randomness, "wrong constant", 2), (c.randomness, "32- vs 64-bit op", 2),
    (c.randomness, "dropped store", 10), (c.randomness, "store at wrong offset", 10),
    (c.randomness, "duplicated store", 6), (c.randomness, "wrong helper", 11),
    (c.randomness, "changed return action", 15), (c.randomness, "flipped jump", 14),
    (c.randomness, "off-by-one jump", 14),
    (c.globals_ops, "wrong width", 0), (c.globals_ops, "dropped store", 6), (c.globals_ops, "duplicated store", 6),
    (c.globals_ops, "wrong constant", -2), (c.globals_ops, "flipped jump", -1), (c.globals_ops, "off-by-one jump", -1),
    (c.globals_ops, "flipped jump", -2),
    (c.globals_ops, "changed return action", 29),
    (two_arrays, "wrong map", -1), (two_arrays, "wrong map", -2), (two_arrays, "dropped store", -1),
    (two_arrays, "duplicated store", -1), (two_arrays, "wrong width", -1), (two_arrays, "flipped jump", -1),
    (two_arrays, "dropped store", -2),
    (c.struct_maps, "swapped operands", -2), (c.struct_maps, "swapped operands", -4),
    (c.struct_maps, "flipped jump", -2), (c.struct_maps, "store at wrong offset", -1),
    (logging_counters.logging_counters, "swapped operands", -1),
    (logging_counters.logging_counters, "dropped store", -2),
]
EXTRA = [fault_injection.fault_injection, circuit_breaker.circuit_breaker, port_acl.port_acl_filter]


def _mutant(program: object, kind: str, index: int) -> tuple[object, object]:
    compiled = program.compile(prove=False)  # type: ignore[attr-defined]
    of_kind = [m for m in mutants(load_program(compiled.elf, compiled.name)) if m.kind == kind]
    if index < 0 and len(of_kind) >= -index:
        return compiled, of_kind[-index - 1]
    for m in of_kind:
        if m.index == index:
            return compiled, m
    raise LookupError(f"no {kind} mutant at {index}")


def test_the_suite_covers_every_kind_of_bug() -> None:
    kinds = Counter(kind for _, kind, _ in CASES)
    assert len(CASES) >= 30
    assert set(kinds) >= {"wrong constant", "flipped jump", "off-by-one jump", "wrong width", "32- vs 64-bit op",
                          "dropped store", "duplicated store", "swapped operands", "wrong map", "wrong helper",
                          "changed return action"}


@pytest.mark.parametrize(("program", "kind", "index"), CASES, ids=lambda x: getattr(x, "name", str(x)))
def test_miscompile_is_caught_and_reproduces(program: object, kind: str, index: int) -> None:
    compiled, m = _mutant(program, kind, index)
    result = prove_ir_bytecode(compiled.lowered.program, m.program,  # type: ignore[attr-defined]
                               CompiledReplayer(compiled.subject, m.program), budget=COMPILE_BUDGET)  # type: ignore[arg-type,attr-defined]
    assert result.status == "counterexample", result.report()
    cex = result.counterexample
    assert cex is not None and cex.runs is not None
    assert cex.reproduced, result.report()
    assert cex.diverging_line > 0
    assert "diverges at" in result.report()


@pytest.mark.parametrize("program", EXTRA, ids=lambda p: p.name)
def test_changed_return_actions_in_examples_are_caught(program: object) -> None:
    compiled = program.compile(prove=False)  # type: ignore[attr-defined]
    candidates = [m for m in mutants(load_program(compiled.elf, compiled.name)) if m.kind == "changed return action"]
    caught = 0
    for m in candidates[:3]:
        r = prove_ir_bytecode(compiled.lowered.program, m.program, CompiledReplayer(compiled.subject, m.program),
                              budget=COMPILE_BUDGET)
        if r.status == "counterexample":
            assert r.counterexample is not None and r.counterexample.reproduced, r.report()
            caught += 1
    assert caught >= 1
