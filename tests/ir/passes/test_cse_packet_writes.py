"""CSE merges packet reads only in programs that cannot write the packet: an operation it does not know
(a packet store, or anything added to the IR later) may change the bytes between two equal loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.passes import cse
from pybpfdsl.lang.types import u64

TWO_LOADS = """\
program two_loads  ; passes.py:1
^entry0:
  %0: u64 = const 0
  %1: bool = in_bounds %0, 2
  branch %1, ^read1, ^out2
^read1:
  %2: u16 = load_packet be16 %0
  %3: u16 = load_packet be16 %0
  %4: u16 = add %2, %3
  %5: u32 = convert %4: u16
  return %5
^out2:
  %6: u32 = const 2
  return %6
"""


@dataclass(frozen=True)
class _UnknownEffect(n.EffectInstr):
    """Stands for an operation CSE has not been told leaves the packet alone (a packet store)."""

    syntax: ClassVar[str] = "unknown_effect {offset}"
    offset: n.Value

    def perform(self, effects: n.Effects[n.V], get: n.Operand[n.V]) -> None:
        return None


def _loads(program: n.Program) -> int:
    return sum(isinstance(i, n.LoadPacket) for b in program.blocks for i in b.instrs)


def test_equal_loads_merge_when_nothing_writes_the_packet() -> None:
    assert _loads(cse.run(parse_program(TWO_LOADS))) == 1


def test_equal_loads_stay_apart_after_an_unknown_effect() -> None:
    program = parse_program(TWO_LOADS)
    read = program.block("read1")
    read.instrs.insert(1, _UnknownEffect(offset=n.Value(0, u64)))
    assert _loads(cse.run(program)) == 2
