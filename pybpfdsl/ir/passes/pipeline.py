"""The optimiser: the passes in order, repeated until the program stops changing.

`optimize` is what the backend runs before lowering (`backend.compile.compile_program(optimize=...)`);
`PASSES` is the list the tests prove pass by pass (`verify/equivalence/ir_equivalence.py`). Each pass
takes a program and returns a new one, leaving its input as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes import (
    addends,
    blocks,
    bounds,
    correlate,
    cse,
    dce,
    fold,
    implied,
    inplace,
    joins,
    masks,
    sink,
    thread,
    unsaturated,
)
from pybpfdsl.ir.printer import format_program


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[n.Program], n.Program]


PASSES: tuple[Pass, ...] = (
    Pass("thread", thread.run),
    Pass("dce", dce.run),
    Pass("correlate", correlate.run),
    Pass("fold", fold.run),
    Pass("cse", cse.run),
    Pass("inplace", inplace.run),
    Pass("unsaturated", unsaturated.run),
    Pass("masks", masks.run),
    Pass("bounds", bounds.run),
    Pass("implied", implied.run),
    Pass("blocks", blocks.run),
    Pass("joins", joins.run),
    Pass("addends", addends.run),
    Pass("sink", sink.run),
    Pass("dce", dce.run),
)
MAX_ROUNDS = 16
"""Rounds of the whole list; each round that changes nothing ends it (real programs settle in 2-6; a
header parse whose results a later test decides loses one level of its tree a round)."""


def optimize(program: n.Program, passes: tuple[Pass, ...] = PASSES) -> n.Program:
    """`program` optimised (a new program; the argument is unchanged)."""
    text = format_program(program)
    for _ in range(MAX_ROUNDS):
        for p in passes:
            program = p.run(program)
        after = format_program(program)
        if after == text:
            break
        text = after
    return program
