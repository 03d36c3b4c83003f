"""Lowering a packet store (`StorePacket`): the pointer is found, and guarded, as for a packet load.

The kernel verifier accepts a store through a packet pointer whose range a check proved, exactly as it
accepts a load, so the lowering finds a store's pointer the way it finds a load's (`as_load` is the
load of the same extent it asks for) and this module writes the value there, big-endian (network
order): byte-swapped first, as a load is byte-swapped after.
"""

from __future__ import annotations

from llvmlite import ir

from pybpfdsl.ir import nodes as n


def as_load(op: n.StorePacket) -> n.LoadPacket:
    """The load of the bytes `op` writes: the key under which the lowering finds and guards a pointer."""
    return n.LoadPacket(op.value, op.offset, op.width, line=op.line)


def store(b: ir.IRBuilder, ptr: ir.Value, width: int, value: ir.Value) -> None:
    """Write the `width`-byte integer `value` at `ptr`, most significant byte first."""
    if width > 1:
        ty = ir.IntType(8 * width)
        bswap = b.module.declare_intrinsic("llvm.bswap", [ty])
        value = b.call(bswap, [value])
    b.store(value, ptr, align=1)
