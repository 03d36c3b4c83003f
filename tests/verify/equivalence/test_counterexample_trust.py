"""A "counterexample" verdict is never wrong: it is given only when the replay in the interpreters shows
the difference, and ring-buffer records under merged paths are no difference.

The programs below were reported as counterexamples while both interpreters agreed on the
counterexample's inputs: a run-time `//` or `%` makes the prover merge paths from the start, and a
ring-buffer record built from a header field then held arms for inputs that log no record at all.
"""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Packet, RingBuf, Struct, now_ns, u16, u32, xdp
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram, load_program
from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer, Counterexample, Run
from pybpfdsl.verify.equivalence.prove import prove_compiled, prove_ir_bytecode
from pybpfdsl.verify.subject import Subject
from tests.differential import constructs as c
from tests.verify.equivalence.mutants import mutants


class Ev(Struct):
    port: u16


class Ev32(Struct):
    addr: u32
    port: u16


events = RingBuf(Ev, 4096)
wide = RingBuf(Ev32, 4096)


@xdp
def w2(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    e = now_ns() // 1000000000  # noqa: F841 (unused: the quotient alone makes the prover merge paths)
    events.output(Ev(tcp.dport))
    return XDP_DROP


@xdp
def two_records(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    e = now_ns() // 1000000000  # noqa: F841
    events.output(Ev(tcp.dport))
    events.output(Ev(tcp.sport))
    return XDP_DROP


@xdp
def record_under_condition(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    e = now_ns() // 1000000000  # noqa: F841
    if tcp.dport == 80:
        events.output(Ev(tcp.sport))
    return XDP_DROP


@xdp
def wide_record(pkt: Packet) -> int:
    ip = pkt.ipv4
    tcp = pkt.tcp
    if ip is None or tcp is None:
        return XDP_PASS
    e = now_ns() // 1000000000  # noqa: F841
    wide.output(Ev32(ip.src, tcp.dport))
    return XDP_DROP


@xdp
def with_remainder(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    e = now_ns() % 1000000000  # noqa: F841
    events.output(Ev(tcp.dport))
    return XDP_DROP


@pytest.mark.parametrize("program", [w2, two_records, record_under_condition, wide_record, with_remainder],
                         ids=lambda p: p.name)
def test_ring_records_under_merged_paths_prove(program: object) -> None:
    result = prove_compiled(program.compile(prove=False).subject)  # type: ignore[attr-defined]
    assert result.status == "proven", result.report()


class _IRTwice(CompiledReplayer):
    """A replay that runs the IR on both sides: the two runs agree whatever the bytecode does."""

    def replay(self, cex: Counterexample) -> tuple[Run, Run]:
        return self.run_ir(cex), self.run_ir(cex)


class _BytecodeNotRun(CompiledReplayer):
    """A replay whose bytecode side cannot run (as when a helper is not modelled by the interpreter)."""

    def replay(self, cex: Counterexample) -> tuple[Run, Run]:
        return self.run_ir(cex), Run(None, error="not replayed: helper 999", replayed=False)


def _miscompiled() -> tuple[Subject, BytecodeProgram]:
    compiled = c.randomness.compile(prove=False)
    bytecode = load_program(compiled.elf, compiled.name)
    m = next(m for m in mutants(bytecode) if m.kind == "changed return action")
    return compiled.subject, m.program


def test_a_counterexample_is_one_only_when_the_replay_shows_the_difference() -> None:
    subject, bytecode = _miscompiled()
    program = subject.program
    honest = prove_ir_bytecode(program, bytecode, CompiledReplayer(subject, bytecode))
    assert honest.status == "counterexample" and honest.counterexample is not None
    assert honest.counterexample.reproduced
    agreeing = prove_ir_bytecode(program, bytecode, _IRTwice(subject, bytecode))
    assert agreeing.status == "unknown", agreeing.report()
    assert "differ in action" in agreeing.reason and "both runs agree" in agreeing.reason
    assert "not a counterexample" in agreeing.report()
    unreplayed = prove_ir_bytecode(program, bytecode, _BytecodeNotRun(subject, bytecode))
    assert unreplayed.status == "unknown" and "could not run" in unreplayed.reason
    assert prove_ir_bytecode(program, bytecode).status == "unknown"  # no replay at all: nothing confirmed


def test_runs_compare_arrays_by_their_nonzero_elements() -> None:
    listed = Run(2, b"p", {"a": {b"\0\0\0\0": b"\0" * 4, b"\1\0\0\0": b"\7\0\0\0"}})
    sparse = Run(2, b"p", {"a": {b"\1\0\0\0": b"\7\0\0\0"}})
    assert listed.outputs({"a": 2}) == sparse.outputs({"a": 2})
    assert listed.outputs({}) != sparse.outputs({})  # a hash map's zero value is an entry
    assert Run(None, error="fault: insn 3").outputs({}) == Run(None, error="fault: insn 9").outputs({})
