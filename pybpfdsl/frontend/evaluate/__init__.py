"""Pure-Python mode: run an `@xdp` function from its Python AST, with exactly the DSL's semantics.

This is an execution independent of the IR: it walks the user's syntax tree, with the packet parsed by
`lang.packet.Packet`, state read and written through the state objects' `raw_*` methods, and helper
results taken from the current `HelperSource`. It has no type rules of its own. It reads the typed AST
the type checker built before any emission (`type_facts.TypedFunction`, from `lower.typecheck_function`;
a `Lowered` holds the same): the DSL type of each expression and of each `op=` statement, which
expressions were compile-time constants (and which of those were untyped), the types of locals, and the
helper parses to inline, per lowering context (the iterations of enclosing unrolled loops, because an
unrolled body is checked once per item). Where an operation has no node of its own (a comparison's
operands, `min`/`max` pairwise) it asks `fold`, the rules the checker asks.
Constants fold by `fold`, and the arithmetic is `lang.arith`/`lang.fixed`, so pure Python, the IR
interpreter and the kernel can be compared bit for bit.

Values while running: scalars are `values.Scalar[int]`, the emitter's scalar with the raw value in the
type's representation (a float is its Q32.32 integer, a bool 0 or 1) where the emitter has an SSA value;
header views, the payload and records are those of `lang.packet` and `lang.structs`; `None` is an absent
header, payload byte or map entry.

Evaluation order and helper calls follow the compiled code: subexpressions left to right, except where
the lowering orders them otherwise (the container of `in` before the item, record fields in declaration
order, helper arguments in parameter order, a `get` default after the lookup). Each `random()` (and
every other helper) is called exactly once per evaluation, as in the IR.

Per-CPU arrays: pure Python touches the copy selected by the map's `current_cpu` attribute and never
changes it (the IR interpreter does the same); `pybpfdsl.testing.on_cpu` sets both that attribute and
the CPU helper, so `cpu_id()` and the copy a program touches agree.

Split by concept like the checker and the emitter, mixins in a line over `base` (the typed AST it
reads): `expressions` (conditions, names, attributes, arithmetic, comparisons, subscripts, map keys)
← `calls` (built-ins, conversions, records, @inline helpers, methods) ← `statements`; the running
values, frames and scalar operations are in `running`.
"""

from __future__ import annotations

from collections.abc import Mapping

from pybpfdsl.frontend.evaluate.running import EvaluationError, const_num, convert
from pybpfdsl.frontend.evaluate.statements import StatementEvaluator
from pybpfdsl.frontend.likelihood import BranchProfile
from pybpfdsl.frontend.lower import Lowered
from pybpfdsl.frontend.type_facts import TypedFunction
from pybpfdsl.lang.packet import Packet
from pybpfdsl.lang.redirect import record_redirect
from pybpfdsl.lang.state import StateObject

__all__ = ["EvaluationError", "const_num", "convert", "run_python"]


class Evaluator(StatementEvaluator):
    """The evaluator, its concepts combined: runs one @xdp function and the helpers it calls."""


def run_python(program: TypedFunction | Lowered, packet: bytes | bytearray | memoryview | Packet,
               state: Mapping[str, StateObject] | None = None, profile: BranchProfile | None = None) -> int:
    """Run a type-checked program (`lower.typecheck_function`; or a lowered one, which holds the same
    typed AST), in pure Python, on `packet`; returns the XDP action (a u32).

    State is read and written through the program's state objects (their raw views); `state` replaces
    some of them by name (tests run the same program against copies). Helper results come from the
    current `HelperSource` (`pybpfdsl.lang.helpers.use_helpers`, `pybpfdsl.testing`). `profile` counts
    each condition's outcome (`likelihood.BranchProfile`, of this program's typed AST).
    """
    pkt = packet if isinstance(packet, Packet) else Packet(packet)
    typed = program if isinstance(program, TypedFunction) else TypedFunction(program.source, program.facts)
    record_redirect(None)  # each run starts without a redirect target, as the interpreters' runs do
    evaluator = Evaluator(typed, pkt, state)
    if profile is not None:
        if profile.facts is not typed.facts:
            raise ValueError("the profile belongs to another program (or another compile of this one)")
        profile.packets += 1
        evaluator.profile = profile
    return evaluator.run()

