"""`pybpfdsl optimize` through its own argument parser (the lead registers it in pybpfdsl/cli.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.cli_commands.optimize import add_arguments, cmd_optimize
from pybpfdsl.superopt.cost import CostModel, cost


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return cmd_optimize(parser.parse_args(argv))


def test_optimize_writes_the_object_and_a_json_summary(sample_elf: bytes, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    src, out = tmp_path / "in.o", tmp_path / "out.o"
    src.write_bytes(sample_elf)
    assert _run([str(src), "-o", str(out), "--budget", "50", "--no-rules", "--no-kernel", "--json",
                 "--cost", "latency"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cost_model"] == "latency" and summary["cost_after"] < summary["cost_before"]
    assert summary["proof"] == "ok" and out.read_bytes() != sample_elf


def test_latency_weighs_memory_and_division_above_arithmetic() -> None:
    add, load, div = Instruction(0x07, 1, 0, 0, 1), Instruction(0x61, 1, 2, 0), Instruction(0x37, 1, 0, 0, 3)
    lddw = Instruction.lddw(1, 1 << 40)
    assert cost([add], CostModel.LATENCY) < cost([load], CostModel.LATENCY) < cost([div], CostModel.LATENCY)
    assert cost([lddw], CostModel.SLOTS) == 2 and cost([add, load], CostModel.SLOTS) == 2


def test_no_regions_leaves_the_diamonds_to_the_window_search(diamonds_elf: bytes, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`--no-regions` skips threading the boolean diamonds (regions) before the window search: with a
    search of one proposal a window, the diamonds only the regions can thread stay; both outputs proven."""
    src = tmp_path / "in.o"
    src.write_bytes(diamonds_elf)
    costs = {}
    for flag in ([], ["--no-regions"]):
        out = tmp_path / f"out{len(flag)}.o"
        assert _run([str(src), "-o", str(out), "--budget", "1", "--no-rules", "--no-kernel", "--json", *flag]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["proof"] == "ok", summary
        costs[bool(flag)] = (summary["cost_before"], summary["cost_after"])
    assert costs[False][1] < costs[True][1] <= costs[True][0], costs
