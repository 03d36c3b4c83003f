"""Values LLVM must not see through: the backend's two optimization barriers.

* `opaque` (the BPF backend's `llvm.bpf.passthrough` intrinsic) hides a value from the IR optimizer
  and is removed before instruction selection. The packet accesses use it: the verifier tracks a
  proven packet range per pointer register, so the bounds check and the load must use the same
  register, which LLVM would otherwise re-materialise.
* `pinned` (an empty inline-assembly statement that claims to modify its operand, the BPF selftests'
  `barrier_var`) survives until code emission, so instruction selection cannot narrow or fold through
  it either. Products and quotients use it (`llvm_algebra`): each stays one instruction on operands
  computed as the IR says, which the equivalence proof relies on (`verify/equivalence/nonlinear.py`).
  Over a constant (`hidden`) it makes a register whose value LLVM does not know: `x & hidden(15)`
  stays an `and`, in the register added to a packet pointer, where LLVM would drop `x & 15` for a
  bound it knows from elsewhere (`backend.packet_offsets`).

Neither emits an instruction.
"""

from __future__ import annotations

from llvmlite import ir

_SEQ_ATTRIBUTE = "_pybpfdsl_passthrough_seq"


def opaque(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """`value` behind `llvm.bpf.passthrough`. Each call gets its own sequence number (counted per
    module, so output is deterministic), as the intrinsic requires, so two barriers never merge."""
    if isinstance(value, ir.Constant):
        return value
    module = b.module
    seq = getattr(module, _SEQ_ATTRIBUTE, 0) + 1
    setattr(module, _SEQ_ATTRIBUTE, seq)
    t = value.type
    suffix = "p0" if isinstance(t, ir.PointerType) else str(t)
    name = f"llvm.bpf.passthrough.{suffix}.{suffix}"
    callee = module.globals.get(name)
    if callee is None:
        callee = ir.Function(module, ir.FunctionType(t, [ir.IntType(32), t]), name)
    return b.call(callee, [ir.Constant(ir.IntType(32), seq), value])


def pinned(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """`value` behind an empty inline-assembly statement (constraint "=r,0": the output is the input's
    register), opaque to every LLVM pass including instruction selection."""
    if isinstance(value, ir.Constant):
        return value
    asm = ir.InlineAsm(ir.FunctionType(value.type, [value.type]), "", "=r,0", side_effect=False)
    return b.call(asm, [value])


def hidden(b: ir.IRBuilder, constant: ir.Constant) -> ir.Value:
    """`constant` in a register, behind the same inline-assembly statement as `pinned`: LLVM cannot fold
    or drop an operation on it, since it does not know its value (the kernel does: a `mov` of it)."""
    asm = ir.InlineAsm(ir.FunctionType(constant.type, [constant.type]), "", "=r,0", side_effect=False)
    return b.call(asm, [constant])
