"""A branch's likelihood hint (`branch.likely` / `branch.unlikely`, `nodes.Expect`) is part of the IR text
and of nothing's meaning: it round-trips through the printer and the parser, the IR interpreter runs a
hinted program exactly as the unhinted one, and the optimiser's passes keep it on the branches they
rebuild.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, u64, unlikely, xdp
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.interpreter import run_program
from pybpfdsl.ir.parser import IRSyntaxError, parse_program
from pybpfdsl.ir.passes.pipeline import PASSES, optimize
from pybpfdsl.ir.printer import format_program
from tests.ir.ir_runner import environment_for

HINTED = """\
program hinted  ; hand_written.py:1
global @big: u64 = 0
^entry0:
  %len.0: u32 = packet_len
  %1: u32 = const 1000
  %2: bool = cmp gt %len.0, %1
  branch.unlikely %2, ^rare1, ^usual2
^rare1:
  %3: u64 = const 1
  atomic_add_global @big, %3
  %4: u32 = const 1
  return %4
^usual2:
  %5: u32 = const 60
  %6: bool = cmp lt %len.0, %5
  branch.likely %6, ^small3, ^usual4
^small3:
  %7: u32 = const 2
  return %7
^usual4:
  %8: u32 = const 3
  return %8
"""


def _hints(program: n.Program) -> dict[str, n.Expect | None]:
    return {b.name: b.terminator.expect for b in program.blocks if isinstance(b.terminator, n.Branch)}


def test_hints_round_trip_through_the_text() -> None:
    program = parse_program(HINTED)
    assert _hints(program) == {"entry0": n.Expect.UNLIKELY, "usual2": n.Expect.LIKELY}
    assert format_program(program) == HINTED
    assert parse_program(format_program(program)) == program


def test_a_branch_without_a_hint_prints_as_before() -> None:
    plain = HINTED.replace("branch.unlikely", "branch").replace("branch.likely", "branch")
    program = parse_program(plain)
    assert set(_hints(program).values()) == {None}
    assert format_program(program) == plain


def test_an_unknown_hint_is_refused_at_its_column() -> None:
    with pytest.raises(IRSyntaxError) as caught:
        parse_program(HINTED.replace("branch.unlikely", "branch.rarely"))
    assert (caught.value.line, caught.value.column) == (7, 10)
    assert "likely, unlikely" in caught.value.message


@pytest.mark.parametrize("size", [0, 59, 60, 1000, 1001, 1500])
def test_the_interpreter_ignores_the_hints(size: int) -> None:
    hinted = parse_program(HINTED)
    plain = parse_program(HINTED.replace("branch.unlikely", "branch").replace("branch.likely", "branch"))
    env_hinted, env_plain = environment_for(hinted), environment_for(plain)
    packet = bytes(size)
    assert run_program(hinted, packet, env_hinted).action == run_program(plain, packet, env_plain).action
    assert env_hinted.globals["big"].raw_get() == env_plain.globals["big"].raw_get() == (size > 1000)


rare = Global(u64, 0)


@xdp
def rare_path(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    if unlikely(udp.dport == 53):
        rare.value += 1
        if pkt.len > 512:
            return XDP_DROP
    rare.value += 0
    return XDP_PASS


def _line_of(text: str) -> int:
    lines, first = inspect.getsourcelines(rare_path.function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_the_passes_keep_a_hint_on_the_branches_they_rebuild() -> None:
    program = rare_path.lower().program
    assert "branch.unlikely" in format_program(program)
    for p in PASSES:  # each pass on its own, then the whole pipeline
        assert "branch.unlikely" in format_program(p.run(program)), p.name
    optimized = optimize(program)
    hinted = [b.terminator for b in optimized.blocks  # the header parse's own hint (IPv6 is rare) aside
              if isinstance(b.terminator, n.Branch) and b.terminator.expect is not None
              and not b.terminator.if_true.target.startswith("ipv6_fits")]
    assert len(hinted) == 1 and hinted[0].expect is n.Expect.UNLIKELY and hinted[0].line == _line_of("if unlikely(")


def test_a_hint_is_a_field_with_no_effect_on_the_branch_it_annotates() -> None:
    branch = parse_program(HINTED).entry.terminator
    assert isinstance(branch, n.Branch)
    assert dataclasses.replace(branch, expect=None).edges() == branch.edges()
