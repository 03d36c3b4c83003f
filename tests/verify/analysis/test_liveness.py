"""Register liveness across helper calls: a call reads only its helper's parameters, as the kernel's does."""

from __future__ import annotations

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.verify.analysis.liveness import live_in

MOV_IMM, CALL, EXIT = 0xB7, 0x85, 0x95


def _live_at_call(helper: int, pseudo: bool = False) -> int:
    """Live registers before ``call helper`` in ``r1..r5 = 1; call; r0 = r0; exit`` (nothing read after)."""
    code = [Instruction(MOV_IMM, r, 0, 0, 1) for r in range(1, 6)]
    code += [Instruction(CALL, 0, 1 if pseudo else 0, 0, helper), Instruction(EXIT)]
    succs = [[i + 1] for i in range(len(code) - 1)] + [[]]
    return live_in(tuple(code), succs)[5]


def test_a_call_reads_only_its_helpers_parameters() -> None:
    assert _live_at_call(Helper.KTIME_GET_NS) == 0  # no parameters: r1-r5 dead before it
    assert _live_at_call(Helper.MAP_LOOKUP_ELEM) == 0b110  # map, key
    assert _live_at_call(Helper.MAP_UPDATE_ELEM) == 0b11110  # map, key, value, flags


def test_calls_whose_parameters_are_unknown_read_r1_to_r5() -> None:
    assert _live_at_call(10_000) == 0b111110  # not a helper the ABI knows
    assert _live_at_call(-1, pseudo=True) == 0b111110  # a bpf-to-bpf call: its callee may read them all
