"""`a, b = x, y` between locals has Python's meaning in the four executions (pure Python, the IR and
bytecode interpreters, the kernel): every value is computed first, left to right, then each local is
assigned, converted to its type as a single assignment converts."""

from __future__ import annotations

import sys

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Global, Packet, u8, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

seen = Global(u64, 0)


@xdp
def swap_locals(pkt: Packet) -> int:
    a = pkt.len
    b: u32 = 60
    a, b = b, a                     # a swap: both values are read before either is written
    seen.value = u64(a) << 32 | b
    return XDP_DROP if a == 60 and b > 60 else XDP_PASS


@xdp
def fibonacci(pkt: Packet) -> int:
    a: u64 = 0
    b: u64 = 1
    for _ in range(20):
        a, b = b, a + b             # carried through a loop
    seen.value = a
    return XDP_TX if a == 6765 else XDP_DROP


@xdp
def new_locals_and_conversions(pkt: Packet) -> int:
    small: u8 = 0
    x, y = 1, 2                     # new locals: i32, as `x = 1` gives
    small, x = pkt.len, small       # small keeps its type: the length's low byte; x the old small (0)
    seen.value = u64(small) * 1000 + u64(x * 10 + y)
    return XDP_PASS if x == 0 else XDP_DROP


@xdp
def optional_bytes(pkt: Packet) -> int:
    first, second = pkt.payload[0], pkt.payload[1]
    if first is None or second is None:
        return XDP_PASS
    first, second = second, first
    seen.value = u64(first) << 8 | second
    return XDP_DROP if first > second else XDP_PASS


PACKETS = [bytes(14), bytes(60), bytes(61), bytes(range(80)), bytes(range(200, 256)) * 2, bytes(15)]


def test_unpacking_locals_agrees_in_every_execution() -> None:
    for prog in (swap_locals, fibonacci, new_locals_and_conversions, optional_bytes):
        reset_state(sys.modules[__name__])
        assert compare(prog, PACKETS, executions=EXECUTIONS) is None, prog.name


def test_unpacking_has_pythons_meaning() -> None:
    swap_locals(bytes(100))
    assert seen.value == 60 << 32 | 100
    assert fibonacci(bytes(14)) == XDP_TX and seen.value == 6765
    new_locals_and_conversions(bytes(300))
    assert seen.value == (300 % 256) * 1000 + 0 * 10 + 2
    assert optional_bytes(bytes(14) + bytes([9, 4])) == XDP_PASS  # the payload follows the Ethernet header
    assert seen.value == 4 << 8 | 9
    seen.value = 0
    assert optional_bytes(bytes(14) + bytes([9])) == XDP_PASS and seen.value == 0  # no second byte: None


def test_unpacking_compiles_and_proves() -> None:
    for prog in (swap_locals, fibonacci, new_locals_and_conversions, optional_bytes):
        compiled = prog.compile(prove=True)
        assert compiled.proof.status == "proven", (prog.name, compiled.proof)
