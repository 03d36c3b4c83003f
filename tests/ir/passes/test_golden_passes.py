"""Golden tests of the IR passes: `golden/PASS_CASE.in.ir`, run through pass PASS (the name before the first
`_`), prints exactly as `golden/PASS_CASE.out.ir`; the output passes the type checker, and Z3 proves it
equivalent to the input (`verify/equivalence/ir_equivalence.py`).

When a pass changes on purpose, rewrite the outputs and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/ir/passes/test_golden_passes.py
    git diff tests/ir/passes/golden
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.check import check_program
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.passes.cfg import Cfg, successors
from pybpfdsl.ir.passes.pipeline import PASSES, optimize
from pybpfdsl.ir.printer import format_program
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.types import FLOAT, ScalarType, u32
from pybpfdsl.verify.equivalence.ir_equivalence import prove_ir_ir

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name.removesuffix(".in.ir") for p in GOLDEN.glob("*.in.ir"))
BY_NAME = {p.name: p for p in PASSES}


def test_every_pass_has_a_golden_case() -> None:
    assert {case.split("_")[0] for case in CASES} == set(BY_NAME)


@pytest.mark.parametrize("case", CASES)
def test_pass_output_is_golden_and_proven(case: str) -> None:
    before = parse_program((GOLDEN / f"{case}.in.ir").read_text())
    check_program(before)
    after = BY_NAME[case.split("_")[0]].run(before)
    check_program(after)
    text = format_program(after)
    expected = GOLDEN / f"{case}.out.ir"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(text)
    assert text == expected.read_text()
    assert text != format_program(before), "the case should exercise its pass"
    assert format_program(parse_program((GOLDEN / f"{case}.in.ir").read_text())) == format_program(before), \
        "a pass must leave its input as it was"
    result = prove_ir_ir(before, after)
    assert result.status == "proven", result.reason


@pytest.mark.parametrize("case", CASES)
def test_the_whole_pipeline_is_proven_on_each_case(case: str) -> None:
    before = parse_program((GOLDEN / f"{case}.in.ir").read_text())
    after = optimize(before)
    check_program(after)
    if case.startswith("inplace"):
        # a store through the looked-up reference instead of a helper call where the key was found: not
        # shorter (the join copied, or a branch on the lookup), but the found path calls no helper
        assert _stores(after) > _stores(before)
    elif case.startswith("addends"):
        # one IR instruction more (the sum after the join, from a constant), but no edge passes a sum:
        # the paths that added the constant no longer do, which is one BPF instruction each
        assert _summed_edge_arguments(after) < _summed_edge_arguments(before)
    elif case.startswith("sink"):
        # no fewer instructions, but paths that do not read a value no longer compute it, or it is computed
        # after a helper call it was kept across
        assert after.instruction_count() <= before.instruction_count()
        assert _live_across_calls(after) <= _live_across_calls(before)
        assert _run_to_each_return(after) < _run_to_each_return(before) \
            or _live_across_calls(after) < _live_across_calls(before)
    elif case.startswith("unsaturated"):
        # more IR instructions, each a plain one, for the saturating ones that lower to many
        assert _saturating(after) < _saturating(before)
    else:
        assert after.instruction_count() < before.instruction_count()
    result = prove_ir_ir(before, after)
    assert result.status == "proven", result.reason


def _stores(program: n.Program) -> int:
    return sum(isinstance(i, n.StoreValue) for b in program.blocks for i in b.instrs)


def _summed_edge_arguments(program: n.Program) -> int:
    """Edge arguments that are sums."""
    sums = {i.out for b in program.blocks for i in b.instrs if isinstance(i, n.Binary) and i.op is BinOp.ADD}
    return sum(a in sums for b in program.blocks if b.terminator is not None
               for e in b.terminator.edges() for a in e.args)


def _run_to_each_return(program: n.Program) -> int:
    """Summed over the blocks that return, the instructions surely run to reach the return: those of the
    block and of the blocks that dominate it."""
    cfg = Cfg.of(program)
    sizes = {b.name: len(b.instrs) for b in program.blocks}
    return sum(sizes[d] for b in program.blocks if isinstance(b.terminator, n.Return) and b.name in cfg.preds
               for d in cfg.dominators(b.name))


def _live_across_calls(program: n.Program) -> int:
    """Summed over the helper calls, the values (but constants) computed before each and read after it."""
    cfg = Cfg.of(program)
    blocks = {b.name: b for b in program.blocks}
    total = 0
    for b in program.blocks:
        later: set[n.Value] = set()
        work, seen = list(successors(b)), set()
        while work:
            name = work.pop()
            if name not in seen:
                seen.add(name)
                later |= {v for i in blocks[name].instrs for v in i.operands()} | _terminator_reads(blocks[name])
                work.extend(successors(blocks[name]))
        above = {i.result for d in cfg.dominators(b.name) if d != b.name for i in blocks[d].instrs
                 if i.result is not None and not isinstance(i, n.Const)}
        for k, i in enumerate(b.instrs):
            if isinstance(i, n.CallHelper):
                before = above | {j.result for j in b.instrs[:k] if j.result is not None and not isinstance(j, n.Const)}
                after = later | {v for j in b.instrs[k + 1:] for v in j.operands()} | _terminator_reads(b)
                total += len(before & after)
    return total


def _terminator_reads(b: n.Block) -> set[n.Value]:
    return set(b.terminator.operands()) if b.terminator is not None else set()


def _saturating(program: n.Program) -> int:
    """Integer quotients and conversions to float of integers wider than i32 (or u32): those saturate."""
    return sum(isinstance(i, n.IntQuotient) or (isinstance(i, n.Convert) and i.out.type == FLOAT
                                                and isinstance(i.value.type, ScalarType) and not i.value.type.is_fixed
                                                and (i.value.type.bits > 32 or i.value.type == u32))
               for b in program.blocks for i in b.instrs)
