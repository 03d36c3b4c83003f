"""The 512-byte BPF stack: a program whose compiled code needs more is a DslError at the user's line.

LLVM's BPF backend reports such a frame through a handler that ends the process; the backend raises
LLVM's limit and reads the frame from the bytecode instead (`backend.stack_depth`), so the error is an
exception the caller can catch, and the process goes on.
"""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_PASS, DslError, HashMap, Packet, Struct, u32, u64, xdp
from pybpfdsl.backend.stack_depth import deepest_stack_access
from pybpfdsl.bpf.abi import STACK_SIZE

Big = type("Big", (Struct,), {"__annotations__": {f"f{i}": u64 for i in range(STACK_SIZE // 8)}})
"""A record as large as the whole stack: a map update needs it, and the key, on the stack."""

bigs = HashMap(u32, Big, 4)
smalls = HashMap(u32, u64, 4)


@xdp
def store_a_big_record(pkt: Packet) -> int:
    bigs[pkt.len] = Big()  # the line the error names
    return XDP_PASS


@xdp
def store_a_small_value(pkt: Packet) -> int:
    smalls[pkt.len] = 7
    return XDP_PASS


def test_a_frame_past_512_bytes_is_a_dsl_error_at_the_users_line() -> None:
    with pytest.raises(DslError) as caught:
        store_a_big_record.compile(prove=False, verify=False)
    error = caught.value
    assert error.location is not None and error.location.file == __file__
    assert "the line the error names" in error.location.text
    assert "bytes of stack" in error.message and str(STACK_SIZE) in error.message
    assert error.hint is not None and "PerCpuArray" in error.hint


def test_the_frame_is_read_from_the_bytecode() -> None:
    """The key and the value of a map update are on the stack: 4 + 8 bytes, each 8-aligned; the code
    touches them through r10 or through a pointer made from it."""
    reach = deepest_stack_access(store_a_small_value.compile(prove=False, verify=False).elf)
    assert reach is not None and 12 <= reach.depth <= 64, reach
    assert reach.line is not None and reach.line.line > 0
