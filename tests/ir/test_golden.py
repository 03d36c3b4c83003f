"""Golden IR: each DSL snippet `tests/ir/golden/NAME.py` lowers to exactly the text in `NAME.ir`, and that
text, parsed and run on its own in the IR interpreter, turns the snippet's packets (`CASES`) into the
expected actions and leaves the state pure Python leaves.

Together the snippets cover every operation (a test checks it): arithmetic, fixed point, compares,
branches and joins, selects, maps of each kind, globals, ring buffers, packet and header reads, loops,
helpers and `@inline` functions.

When a change to the frontend changes the IR on purpose, rewrite the golden files and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/ir/test_golden.py
    git diff tests/ir/golden

(the rewritten tests pass; the others still compare). The header names the snippet by its path from the
repository root, so the text is the same on every machine.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.check import check_program
from pybpfdsl.ir.interpreter import run_program
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.printer import format_program
from pybpfdsl.lang.state import MapKind
from pybpfdsl.program import XdpProgram
from pybpfdsl.testing import deterministic, reset_state
from tests.ir.ir_runner import LPM_KEYS, environment_for, snapshot, state_objects

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
SNIPPETS = sorted(p.stem for p in GOLDEN.glob("*.py") if p.stem not in ("__init__", "packets"))
UPDATE = os.environ.get("UPDATE_GOLDEN", "") == "1"


def _snippet(stem: str) -> tuple[ModuleType, XdpProgram]:
    module = importlib.import_module(f"tests.ir.golden.{stem}")
    programs = [v for v in vars(module).values() if isinstance(v, XdpProgram)]
    assert len(programs) == 1, f"{stem}.py must define one @xdp function"
    return module, programs[0]


def _ir_text(stem: str) -> str:
    _, fn = _snippet(stem)
    program = dataclasses.replace(fn.lower().program, source_file=f"tests/ir/golden/{stem}.py")
    return format_program(program)


def test_the_snippets_are_all_there() -> None:
    assert len(SNIPPETS) >= 9
    assert sorted(p.stem for p in GOLDEN.glob("*.ir")) == SNIPPETS, "each snippet has its .ir file"


@pytest.mark.parametrize("stem", SNIPPETS)
def test_a_snippet_lowers_to_its_golden_ir(stem: str) -> None:
    text = _ir_text(stem)
    golden = GOLDEN / f"{stem}.ir"
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text(), f"the IR of {stem}.py changed: UPDATE_GOLDEN=1 rewrites {golden.name}"


@pytest.mark.parametrize("stem", SNIPPETS)
def test_golden_ir_text_runs_to_the_expected_actions(stem: str) -> None:
    module, fn = _snippet(stem)
    # its own struct classes (the language's LPM key records aside): the text alone
    program = parse_program((GOLDEN / f"{stem}.ir").read_text(), LPM_KEYS)
    check_program(program)
    env = environment_for(program)
    reset_state(module)
    cases: list[tuple[bytes, int | None]] = module.CASES
    with deterministic(seed=7):
        from_ir = [run_program(program, packet, env).action for packet, _ in cases]
    with deterministic(seed=7):
        from_python = [fn(packet) for packet, _ in cases]
    assert from_ir == from_python
    assert [a for _, a in cases if a is not None] == [a for a, (_, want) in zip(from_ir, cases) if want is not None]
    python_state = {name: fn.lower().state[name] for name in state_objects(env)}
    assert snapshot(state_objects(env)) == snapshot(python_state)
    reset_state(module)


@pytest.mark.parametrize("stem", SNIPPETS)
def test_golden_ir_text_prints_back_unchanged(stem: str) -> None:
    text = (GOLDEN / f"{stem}.ir").read_text()
    assert format_program(parse_program(text)) == text


def _golden_programs() -> list[n.Program]:
    return [parse_program((GOLDEN / f"{stem}.ir").read_text()) for stem in SNIPPETS]


def test_the_golden_files_use_every_operation_and_map_kind() -> None:
    used: set[type] = set()
    kinds: set[MapKind] = set()
    for program in _golden_programs():
        kinds |= {m.kind for m in program.maps}
        for block in program.blocks:
            used |= {type(i) for i in block.instrs}
            assert block.terminator is not None
            used.add(type(block.terminator))
        if program.ringbufs:
            kinds.add(MapKind.RINGBUF)
    assert set(n.INSTRUCTIONS) - used == set()
    assert set(n.TERMINATORS) - used == set()
    assert kinds == set(MapKind)
