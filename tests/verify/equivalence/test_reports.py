"""Counterexample reports a person can read: a screenful whatever the maps hold, everything on request,
JSON with the starting state, and the line where the two executions part."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from examples import logging_counters
from pybpfdsl import XDP_DROP, XDP_PASS, Packet, PerCpuArray, u32, xdp
from pybpfdsl.cli import main
from pybpfdsl.deploy import Candidate, ProofGate
from pybpfdsl.runtime.attach_errors import AttachRefused
from pybpfdsl.verify.equivalence.bytecode_program import load_program
from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer
from pybpfdsl.verify.equivalence.prove import ProofResult, prove_ir_bytecode
from pybpfdsl.verify.equivalence.report import SCREEN_LINES, as_json, render_text
from tests.differential import constructs as c
from tests.verify.equivalence.mutants import Mutant, mutants

counts = PerCpuArray(u32, 65536)


@xdp
def per_port(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    counts[tcp.dport] += 1
    if counts[tcp.dport] > 100:
        return XDP_DROP
    return XDP_PASS


@xdp(name="per_port")  # the same program name in its object, so `prove` compares the two
def per_port_stricter(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    counts[tcp.dport] += 1
    if counts[tcp.dport] > 50:
        return XDP_DROP
    return XDP_PASS


def _counterexamples(program: object, kind: str) -> Iterator[tuple[Mutant, ProofResult]]:
    """The program's mutants of `kind` that the proof catches, with their results."""
    compiled = program.compile(prove=False)  # type: ignore[attr-defined]
    for m in mutants(load_program(compiled.elf, compiled.name)):
        if m.kind == kind:
            result = prove_ir_bytecode(compiled.lowered.program, m.program,
                                       CompiledReplayer(compiled.subject, m.program))
            if result.status == "counterexample":
                yield m, result


# The tests that share it run in one xdist worker (see tests/conftest.py): it is found by proving mutants.
_BIG_MAP = pytest.mark.xdist_group("big_map_counterexample")


@pytest.fixture(scope="module")
def big_map_counterexample() -> ProofResult:
    """A miscompiled increment of one of 65,536 per-CPU counters (`counts[port] += 2`, say)."""
    for _, result in _counterexamples(per_port, "wrong constant"):
        assert result.counterexample is not None
        if any(o.startswith("map counts") for o in result.counterexample.differing_outputs()):
            return result
    raise AssertionError("no wrong-constant mutant of per_port changes the map")


@_BIG_MAP
def test_a_65536_element_map_is_reported_in_a_screenful(big_map_counterexample: ProofResult) -> None:
    cex = big_map_counterexample.counterexample
    assert cex is not None and cex.reproduced
    text = big_map_counterexample.report()
    lines = text.splitlines()
    assert len(lines) <= SCREEN_LINES + 1 and max(len(line) for line in lines) <= 200, text
    assert len(text) < 6_000
    assert "65,5" in text  # the untouched elements are counted, not listed
    # The elements the run touched are there, with the two runs' values side by side.
    assert any(line.startswith("* map counts[") for line in lines), text
    full = render_text(cex, full=True)
    assert len(full) < 20_000 and "65,5" in full


@_BIG_MAP
def test_attach_refusal_of_a_big_map_counterexample_is_a_screenful(big_map_counterexample: ProofResult) -> None:
    compiled = per_port.compile(prove=False)
    refused = replace(compiled)
    object.__setattr__(refused, "proof", big_map_counterexample)
    verdict = ProofGate().check(Candidate("per_port", "lo", "attach", None, refused))
    assert not verdict.passed
    message = str(AttachRefused("per_port", "lo", "attach", ProofGate.name, verdict.reason))
    assert len(message) < 8_000 and len(message.splitlines()) <= SCREEN_LINES + 8, message


@_BIG_MAP
def test_json_carries_the_starting_state_and_the_touched_keys(big_map_counterexample: ProofResult) -> None:
    cex = big_map_counterexample.counterexample
    assert cex is not None
    data = json.loads(json.dumps(as_json(cex)))
    start = data["inputs"]["maps"]["counts"]
    assert start["entries"] == {k.hex(): v.hex() for k, v in cex.maps["counts"].items()}
    assert start["entries"] and start["elements"] == 65536 and start["other_keys"] == "zero"
    assert data["inputs"]["packet"] == cex.packet.hex() and data["reproduced"] is True
    ir, bytecode = data["runs"]
    assert ir["maps"]["counts"]["entries"] != bytecode["maps"]["counts"]["entries"]
    assert len(ir["maps"]["counts"]["entries"]) < 16 and ir["maps"]["counts"]["other_entries_unchanged"] > 65_000
    assert data["diverges_at"]["line"] == cex.diverging_line > 0
    assert len(json.dumps(data)) < 20_000


def test_cli_prints_a_screenful_and_writes_everything_to_the_report_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, report = tmp_path / "a.o", tmp_path / "b.o", tmp_path / "report.txt"
    per_port.compile(prove=False).save(a)
    per_port_stricter.compile(prove=False).save(b)
    assert main(["prove", str(a), str(b), "--section", "per_port", "--report", str(report)]) == 1
    shown = capsys.readouterr().out
    assert "counterexample" in shown and len(shown.splitlines()) <= SCREEN_LINES + 2, shown
    written = report.read_text()
    assert written.startswith("counterexample") and "diverges at" in written
    assert "XDP_DROP" in written and "XDP_PASS" in written
    assert main(["prove", str(a), str(b), "--section", "per_port", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "counterexample" and data["counterexample"]["reproduced"]
    assert data["counterexample"]["inputs"]["maps"]["counts"]["entries"]  # the starting state of the keys read


def _line_of(program: object, text: str) -> int:
    lowered = program.lower()  # type: ignore[attr-defined]
    source = Path(lowered.program.source_file).read_text().splitlines()
    return next(i + 1 for i, line in enumerate(source) if text in line and i + 1 >= lowered.program.first_line)


@pytest.mark.parametrize(("program", "statement"), [
    (c.globals_ops, "flag.value = not flag.value"),
    (logging_counters.logging_counters, "request_bytes.value += pkt.len"),
])
def test_diverges_at_the_statement_whose_store_was_dropped(program: object, statement: str) -> None:
    line = _line_of(program, statement)
    compiled = program.compile(prove=False)  # type: ignore[attr-defined]
    bytecode = load_program(compiled.elf, compiled.name)
    dropped = [m for m in mutants(bytecode) if m.kind == "dropped store" and bytecode.line_of(m.index) == line]
    assert dropped, f"no store at line {line}"
    for m in dropped:
        result = prove_ir_bytecode(compiled.lowered.program, m.program, CompiledReplayer(compiled.subject, m.program))
        assert result.status == "counterexample", result.report()
        assert result.counterexample is not None
        assert result.counterexample.diverging_line == line, result.report()
        assert f":{line}: {statement}" in result.report()
