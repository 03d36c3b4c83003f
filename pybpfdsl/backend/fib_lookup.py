"""Lowering `FibLookup`: bpf_fib_lookup with a `struct bpf_fib_lookup` on the stack, read back into a
`FibResult` aggregate.

The struct (64 bytes, <linux/bpf.h>) is zeroed, then given the family (AF_INET, byte 0), the ingress
interface (`ifindex`, byte 8) and the destination (`ipv4_dst`, byte 32, network order). The helper
answers with its status in r0 and writes the egress `ifindex` and the MACs (`smac` at byte 52, `dmac` at
58). The verifier wants stack accesses aligned to their size, so each 6-byte MAC is read as a 4-byte and
a 2-byte load and assembled big-endian, as `pkt.eth.src` reads one. One slot serves every lookup of the
program (allocated in the entry block, as allocas must be).
"""

from __future__ import annotations

from typing import Protocol

from llvmlite import ir

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.ir import nodes as n


class _FunctionLowering(Protocol):
    """What of `lower._FunctionLowering` this module uses (the lowering imports this module)."""

    b: ir.IRBuilder
    fn: ir.Function
    value_slots: dict[str, ir.Value]

    def _call(self, number: int, ret: ir.Type, args: list[ir.Value]) -> ir.Value: ...

PARAMS_SIZE = 64
AF_INET = 2
_IFINDEX, _IPV4_DST, _SMAC, _DMAC = 8, 32, 52, 58
_SLOT = "(bpf_fib_lookup params)"  # not a map's name: those are identifiers
_I8, _I16, _I32, _I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)


def _slot(lowering: _FunctionLowering) -> ir.Value:
    slot = lowering.value_slots.get(_SLOT)
    if slot is None:
        with lowering.b.goto_block(lowering.fn.entry_basic_block):  # before its terminator
            slot = lowering.b.alloca(ir.ArrayType(_I64, PARAMS_SIZE // 8), name="fib_params")
            slot.align = 8
            slot.type = ir.PointerType()  # opaque, as the lowering's other slots
        lowering.value_slots[_SLOT] = slot
    return slot


def _at(lowering: _FunctionLowering, slot: ir.Value, offset: int) -> ir.Value:
    return lowering.b.gep(slot, [ir.Constant(_I64, offset)], source_etype=_I8)


def _bswap(lowering: _FunctionLowering, value: ir.Value) -> ir.Value:
    fn = lowering.fn.module.declare_intrinsic("llvm.bswap", [value.type])
    return lowering.b.call(fn, [value])


def _mac(lowering: _FunctionLowering, slot: ir.Value, offset: int) -> ir.Value:
    """The 6 bytes at `offset` as a big-endian 48-bit number (offset 52: 4 + 2 bytes; 58: 2 + 4)."""
    b = lowering.b
    wide, narrow = (4, 2) if offset % 4 == 0 else (2, 4)
    first_t, second_t = ir.IntType(8 * wide), ir.IntType(8 * narrow)
    first = b.load(_at(lowering, slot, offset), typ=first_t, align=wide)
    second = b.load(_at(lowering, slot, offset + wide), typ=second_t, align=narrow)
    high = b.zext(_bswap(lowering, first), _I64)
    low = b.zext(_bswap(lowering, second), _I64)
    return b.or_(b.shl(high, ir.Constant(_I64, 8 * narrow)), low)


def fib_lookup(lowering: _FunctionLowering, op: n.FibLookup, dst: ir.Value, ifindex: ir.Value) -> ir.Value:
    """Emit `op` at the lowering's position; the result is the FibResult aggregate."""
    b = lowering.b
    slot = _slot(lowering)
    for word in range(PARAMS_SIZE // 8):
        b.store(ir.Constant(_I64, 0), _at(lowering, slot, 8 * word), align=8)
    b.store(ir.Constant(_I8, AF_INET), _at(lowering, slot, 0), align=1)
    b.store(ifindex, _at(lowering, slot, _IFINDEX), align=4)
    b.store(_bswap(lowering, dst), _at(lowering, slot, _IPV4_DST), align=4)
    ctx = lowering.fn.args[0]
    status = lowering._call(Helper.FIB_LOOKUP, _I64, [ctx, slot, ir.Constant(_I64, PARAMS_SIZE), ir.Constant(_I64, 0)])
    egress = b.load(_at(lowering, slot, _IFINDEX), typ=_I32, align=4)
    fields = [b.trunc(status, _I32), egress, _mac(lowering, slot, _SMAC), _mac(lowering, slot, _DMAC)]
    return _aggregate(lowering, op, fields)


def _aggregate(lowering: _FunctionLowering, op: n.FibLookup, fields: list[ir.Value]) -> ir.Value:
    # FibResult's register type, as the lowering's `llvm_type` makes it: its fields' integers in order.
    agg: ir.Value = ir.Constant(ir.LiteralStructType([f.type for f in fields]), ir.Undefined)
    for index, value in enumerate(fields):
        agg = lowering.b.insert_value(agg, value, index)
    return agg
