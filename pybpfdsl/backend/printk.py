"""Lowering `TracePrintk`: the format on the stack, then bpf_trace_printk(format, size, values...).

The format (with its NUL) is stored 8 bytes at a time into a slot of its own in the entry block (the
verifier wants the helper's memory initialised, and allocas belong there); the size passed counts the
NUL, as the kernel requires. The values are already 64-bit (the emitter extended them).
"""

from __future__ import annotations

from typing import Protocol

from llvmlite import ir

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang import printk

_I8, _I64 = ir.IntType(8), ir.IntType(64)


class _FunctionLowering(Protocol):
    """What of `lower._FunctionLowering` this module uses (the lowering imports this module)."""

    b: ir.IRBuilder
    fn: ir.Function

    def _call(self, number: int, ret: ir.Type, args: list[ir.Value]) -> ir.Value: ...


def trace_printk(lowering: _FunctionLowering, op: n.TracePrintk, args: list[ir.Value]) -> ir.Value:
    b = lowering.b
    data = printk.helper_bytes(op.fmt)  # as the checker measured it (`lang.printk.PrintFormat`)
    words = (len(data) + 7) // 8
    with b.goto_block(lowering.fn.entry_basic_block):  # before its terminator
        slot = b.alloca(ir.ArrayType(_I64, words), name="printk_fmt")
        slot.align = 8
        slot.type = ir.PointerType()  # opaque, as the lowering's other slots
    padded = data.ljust(8 * words, b"\0")
    for i in range(words):
        word = int.from_bytes(padded[8 * i:8 * i + 8], "little")
        b.store(ir.Constant(_I64, word), b.gep(slot, [ir.Constant(_I64, 8 * i)], source_etype=_I8), align=8)
    return lowering._call(Helper.TRACE_PRINTK, _I64, [slot, ir.Constant(_I64, len(data)), *args])
