"""What the search minimises: instruction slots (lddw is two), or an estimated latency per opcode kind.

The latency table is a rough model of a JIT-compiled x86-64 instruction (K2's latency goal): a load or
a store touches memory, multiply and divide are slow, the rest is one cycle. Costs are integers so that
the search's choices never depend on floating-point rounding.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, Kind, alu_op

__all__ = ["LATENCY", "CostModel", "cost"]


class CostModel(enum.Enum):
    SLOTS = "slots"
    LATENCY = "latency"


LATENCY: Mapping[Kind, int] = MappingProxyType({
    Kind.LDX: 4, Kind.LDX_SX: 4, Kind.ST: 3, Kind.STX: 3, Kind.ATOMIC: 10, Kind.LDDW: 1, Kind.CALL: 20,
})
"""Cycles by kind; any kind not listed costs 1 (MUL 3 and DIV/MOD 20 by operation, in `_latency`)."""
_SLOW_OPS: Mapping[AluOp, int] = MappingProxyType({AluOp.MUL: 3, AluOp.DIV: 20, AluOp.MOD: 20})


def _latency(insn: Instruction) -> int:
    if insn.kind in (Kind.ALU, Kind.SDIV):
        op = alu_op(insn.opcode)
        return _SLOW_OPS.get(op, 1) if op is not None else 1
    return LATENCY.get(insn.kind, 1)


def cost(insns: Iterable[Instruction], model: CostModel = CostModel.SLOTS) -> int:
    """The cost of a sequence of instructions under ``model``."""
    if model == CostModel.SLOTS:
        return sum(i.slots for i in insns)
    return sum(_latency(i) for i in insns)
