"""State merging: paths that meet are merged exactly, so sequential branches and loops stay linear."""

from __future__ import annotations

import itertools

import z3

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, bounded, u32, xdp
from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.bytecode_encoding import BytecodeEncoder
from pybpfdsl.verify.equivalence.bytecode_program import load_program
from pybpfdsl.verify.equivalence.ir_encoding import IREncoder
from pybpfdsl.verify.equivalence.paths import (
    MERGE_AFTER_PATHS,
    ControlFlow,
    Exploration,
    TraceChoice,
    merge_traces,
    resolve_trace,
)
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from pybpfdsl.verify.equivalence.symbolic_state import Inputs, Layout, MapShape

score = Global(u32, 0)


@xdp
def eight_branches(pkt: Packet) -> int:
    n = pkt.len
    s: u32 = 0
    if (n & 1) != 0:
        s += 3
    if (n & 2) != 0:
        s += 5
    if (n & 4) != 0:
        s += 7
    if (n & 8) != 0:
        s ^= 9
    if (n & 16) != 0:
        s += 11
    if (n & 32) != 0:
        s ^= 13
    if (n & 64) != 0:
        s += 17
    if (n & 128) != 0:
        s ^= 19
    score.value = s
    return XDP_DROP if s > 40 else XDP_PASS


loop_total = Global(u32, 0)
loop_count = Global(u32, 0)


@xdp
def loops(pkt: Packet) -> int:
    """`constructs.loops` at half the trip counts: each kind of loop (a range with break and continue,
    a bounded while, a stepped range): three ways through each iteration, thousands of paths apart."""
    total: u32 = 0
    count = 0
    for i in range(8):
        b = pkt.payload[i]
        if b is None:
            break
        if b == 0:
            continue
        total += b * (i + 1)
        count += 1
    j = 0
    while bounded(j < count, 4):
        total ^= u32(j) << 3
        j += 1
    for k in range(10, 0, -3):
        total += k
    loop_total.value = total
    loop_count.value = count
    return XDP_DROP if total % 5 == 0 else XDP_PASS


def _explore(program: object, merge: bool, units: int = 10**9, merge_after: int = MERGE_AFTER_PATHS
             ) -> tuple[Inputs, Exploration, Exploration]:
    """Both sides' explorations, within `units` resource units (`budget.OutOfBudget` past them); with
    `merge`, merged once a side has more than `merge_after` paths."""
    compiled = program.compile(prove=False)  # type: ignore[attr-defined]
    bytecode = load_program(compiled.elf, compiled.name)
    inputs = Inputs(bytecode.layout)
    budget = Budget(units)
    policy = merge_after if merge else None  # past 64 paths (eight_branches has 256), or never
    ir = IREncoder(compiled.lowered.program, inputs).run(budget, merge_after=policy)
    bc = BytecodeEncoder(bytecode, inputs).run(budget, merge_after=policy)
    return inputs, ir, bc


def test_sequential_branches_merge_into_a_few_paths() -> None:
    _, ir_apart, _ = _explore(eight_branches, merge=False)
    _, ir, bc = _explore(eight_branches, merge=True)
    assert len(ir_apart.outcomes) == 2**8  # every combination of the eight branches, one by one
    assert len(ir.outcomes) <= 2 and ir.merges >= 8
    assert len(bc.outcomes) <= 4


def test_merged_outcomes_partition_the_inputs() -> None:
    inputs, ir, bc = _explore(eight_branches, merge=True)
    for exploration in (ir, bc):
        conditions = [o.condition for o in exploration.outcomes]
        solver = z3.Solver()
        solver.add(*inputs.assumptions)
        assert solver.check(z3.Not(z3.Or(*conditions))) == z3.unsat  # some outcome always applies
        for x, y in itertools.combinations(conditions, 2):
            assert solver.check(z3.And(x, y)) == z3.unsat  # and never two


def test_merged_program_proves() -> None:
    result = prove_compiled(eight_branches.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()


def test_loops_explore_in_linear_paths() -> None:
    # Merged, both sides are explored within half the budget `compile()` gives a whole proof.
    _, ir, bc = _explore(loops, merge=True, units=COMPILE_BUDGET // 2)
    assert len(ir.outcomes) <= 4 and len(bc.outcomes) <= 8


def test_helper_streams_at_different_positions_do_not_merge() -> None:
    inputs = Inputs(Layout({"events": MapShape("events", 27, 0, 0, 4096)}, {}))
    a, b = inputs.initial_effects(), inputs.initial_effects()
    a.next_helper(inputs, "prandom")
    assert a.merged(b, z3.Bool("c")) is None
    b.next_helper(inputs, "prandom")
    assert a.merged(b, z3.Bool("c")) is not None
    a.output("events", z3.BitVecVal(1, 32))
    assert a.merged(b, z3.Bool("c")) is None  # ring buffers holding different numbers of records


def test_effects_merge_is_an_if_then_else() -> None:
    inputs = Inputs(Layout({}, {".bss": 2}))
    a, b = inputs.initial_effects(), inputs.initial_effects()
    a.write_section(".bss", 0, [z3.BitVecVal(7, 8)])
    when = z3.Bool("when")
    merged = a.merged(b, when)
    assert merged is not None
    byte = merged.sections[".bss"][0]
    assert z3.simplify(z3.substitute(byte, (when, z3.BoolVal(True)))).eq(z3.BitVecVal(7, 8))
    assert z3.simplify(z3.substitute(byte, (when, z3.BoolVal(False)))).eq(inputs.sections[".bss"][0])
    assert merged.sections[".bss"][1] is inputs.sections[".bss"][1]  # equal on both sides: no If


def test_weak_topological_order_puts_loop_bodies_after_their_head() -> None:
    graph = {"entry": ["head"], "head": ["body", "exit"], "body": ["then", "else"], "then": ["latch"],
             "else": ["latch"], "latch": ["head"], "exit": []}
    flow = ControlFlow.of("entry", lambda node: graph[node])
    p = flow.position
    assert p["entry"] < p["head"] < p["body"] < min(p["then"], p["else"]) < p["latch"] < p["exit"]
    assert flow.loop_end == {"head": p["latch"]}
    assert flow.joins == frozenset({"head", "latch"})


def test_a_merged_trace_resolves_to_the_path_a_model_takes() -> None:
    when = z3.Bool("when")
    trace = merge_traces([1, 2, 3, 9], [1, 2, 4], when)
    assert trace[:2] == [1, 2] and isinstance(trace[2], TraceChoice)
    assert resolve_trace([*trace, 5], lambda t: t.eq(when)) == (1, 2, 3, 9, 5)
    assert resolve_trace([*trace, 5], lambda t: False) == (1, 2, 4, 5)
