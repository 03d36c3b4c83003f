"""32-bit ALU on a register that holds a pointer on some paths (after a join): never accepted where the
kernel refuses. (A superoptimizer run once reported such an accept on a packet pointer; these directed
probes, every pair of pointer kinds and scalar at a join times 32-bit operations, found none.)"""

from __future__ import annotations

import itertools

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import verify_instructions
from tests.verify.analysis.kernel_oracle import kernel_verdict
from tests.verify.analysis.opcodes import EXIT, add_imm, load, mov, mov_reg

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

SOURCES = {
    "packet": [load(0x61, 3, 6, 0)],
    "packet+4": [load(0x61, 3, 6, 0), add_imm(3, 4)],
    "packet end": [load(0x61, 3, 6, 4)],
    "ctx": [mov_reg(3, 6)],
    "stack": [mov_reg(3, 10), add_imm(3, -8)],
    "scalar": [mov(3, 7)],
}
"""What r3 holds on one side of the join (r6 = ctx)."""
OPS = {
    "w3 += 1": Instruction(0x04, 3, 0, 0, 1), "w3 -= 1": Instruction(0x14, 3, 0, 0, 1),
    "w3 &= 7": Instruction(0x54, 3, 0, 0, 7), "w3 |= 1": Instruction(0x44, 3, 0, 0, 1),
    "w3 = w3": Instruction(0xBC, 3, 3, 0, 0), "w3 <<= 1": Instruction(0x64, 3, 0, 0, 1),
    "w3 ^= 1": Instruction(0xA4, 3, 0, 0, 1), "w3 += w2": Instruction(0x0C, 3, 2, 0, 0),
    "w2 += w3": Instruction(0x0C, 2, 3, 0, 0), "w3 >>= 1": Instruction(0x74, 3, 0, 0, 1),
    "w3 += 0": Instruction(0x04, 3, 0, 0, 0), "w2 = w3": Instruction(0xBC, 2, 3, 0, 0),
}
PAIRS = [(a, b) for a, b in itertools.product(SOURCES, SOURCES) if a <= b and (a, b) != ("scalar", "scalar")]


def _program(a: str, b: str, op: Instruction) -> list[Instruction]:
    """r3 = ``a`` or ``b`` (on a random number), then ``op``, then return XDP_PASS."""
    one, other = SOURCES[a], SOURCES[b]
    return [mov_reg(6, 1), Instruction(0x7A, 10, 0, -8, 0), mov(2, 5), Instruction(0x85, 0, 0, 0, 7),
            Instruction(0x15, 0, 0, len(one) + 1, 0), *one, Instruction(0x05, 0, 0, len(other), 0), *other,
            op, mov(0, 2), EXIT]


@needs_kernel
@pytest.mark.parametrize("op", list(OPS))
def test_32_bit_alu_after_a_join_of_pointers(op: str) -> None:
    unsafe = []
    for a, b in PAIRS:
        code = _program(a, b, OPS[op])
        kernel = kernel_verdict(code)
        if not kernel.ok and verify_instructions(code).ok:
            unsafe.append((a, b, kernel.last_lines))
    assert not unsafe, f"{op}: we accept, the kernel refuses: {unsafe}"
