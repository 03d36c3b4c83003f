"""IR ⇔ IR: the optimiser's passes proven, each program before a pass against the program after it.

Both sides are run by the IR encoding (`ir_encoding.IREncoder`) over one set of inputs (`Inputs`): the
same packet, initial maps and globals, helper results. The query is the one of IR against bytecode
(`prove.prove_programs`): neither side breaks the IR's rules (a pass may not make a load unguarded),
and no input makes the outputs differ (action, maps, globals, ring buffer records).

The state's layout comes from the IR's declarations, as the backend would lay it out: maps by kind and
C sizes, every global in one `.bss` section of 8-byte slots (both sides share it, so the exact offsets
do not matter).
"""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import StructType
from pybpfdsl.lang.types import ScalarType
from pybpfdsl.verify.equivalence.context import own_context
from pybpfdsl.verify.equivalence.ir_encoding import IREncoder
from pybpfdsl.verify.equivalence.nonlinear import has_runtime_products
from pybpfdsl.verify.equivalence.paths import MERGE_AFTER_PATHS, Unsupported
from pybpfdsl.verify.equivalence.proof_result import ProofResult
from pybpfdsl.verify.equivalence.prove import prove_programs
from pybpfdsl.verify.equivalence.symbolic_state import RINGBUF_TYPE, Inputs, Layout, MapShape

PASS_BUDGET = 50_000_000
"""Resource units of one IR ⇔ IR proof by default (the examples' passes take well under a tenth)."""
SECTION = ".bss"


def _size(t: ScalarType | StructType) -> int:
    return t.size if isinstance(t, ScalarType) else t.cls.size()


def layout_of(program: n.Program) -> Layout:
    """The state of `program` as the backend lays it out, from its declarations."""
    maps = {m.name: MapShape(m.name, m.kind.value, _size(m.key_type), _size(m.value_type), m.max_entries)
            for m in program.maps}
    maps.update({r.name: MapShape(r.name, int(RINGBUF_TYPE), 0, 0, r.size) for r in program.ringbufs})
    variables = {g.name: (SECTION, 8 * k, g.type.size) for k, g in enumerate(program.globals)}
    sections: dict[str, bytes | int] = {SECTION: 8 * len(program.globals)} if program.globals else {}
    return Layout(maps, sections, variables)


def prove_ir_ir(before: n.Program, after: n.Program, budget: int = PASS_BUDGET) -> ProofResult:
    """Prove `after` equivalent to `before` (the same declarations) within `budget` resource units."""
    if (before.maps, before.globals, before.ringbufs) != (after.maps, after.globals, after.ringbufs):
        return ProofResult("unknown", reason="the programs declare different state")
    with own_context():
        inputs = Inputs(layout_of(before))
        try:
            a, b = IREncoder(before, inputs), IREncoder(after, inputs)
        except Unsupported as exc:
            return ProofResult("unknown", reason=f"not modelled: {exc}")
        merge_after = 0 if has_runtime_products(before) or has_runtime_products(after) else MERGE_AFTER_PATHS
        return prove_programs(lambda spend: a.run(spend, merge_after), lambda spend: b.run(spend, merge_after),
                              inputs, None, labels=("before", "after"), budget=budget)
