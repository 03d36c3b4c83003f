"""Loop shapes a user writes, each at bounds around where the kernel stops loading it: never accept what the
kernel refuses as too large; accept what it loads up to where our margin allows.

Measured (kernel 6.18, the programs as compiled at 171fc77; the largest ``n`` each accepts, by bisection).
Ours is limited by the 3x margin on the simulated count (``loops.RESCUE_MARGIN``: the simulation counts
these shapes to the instruction, but has counted as low as 0.55x the kernel's elsewhere), so about
``n_kernel / sqrt(3)`` where the count grows as ``n**2``; the deep cut-off (``loops.DEEP_PASSES``) limited
it further before:

    shape                                       kernel   ours, deep cut-off at 16 passes -> 128
    payload sum                                    105   57 -> 60
    payload sum and a count                        104   30 -> 57
    payload sum of map lookups                      77   41 -> 44
    payload sum after an IPv4 header check       >=159   61 -> 97
    payload sum in ``while bounded(i < n, n)``    not monotone: 32 refused, 48 loaded (365,727), 64 refused

The compiler moves the kernel's column (after the IR's sink pass, 9554b41, the kernel loads the payload sum
at 128 and the map lookups at 96), so the rows assert what holds either way: the kernel's refusal is ours,
and the bounds we accept are loaded by both.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pybpfdsl.runtime.bpf_object import BpfObject, LoadError
from pybpfdsl.runtime.libbpf import capture_libbpf_log, kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_program
from tests.generated.checks import load_module

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

HEAD = """
from pybpfdsl import *
m = HashMap(u32, u32, 16)
"""
SHAPES = {
    "sum": """
@xdp
def prog(pkt: Packet) -> int:
    total: u32 = 0
    for i in range({n}):
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS
""",
    "sum_and_count": """
@xdp
def prog(pkt: Packet) -> int:
    total: u32 = 0
    count: u32 = 0
    for i in range({n}):
        b = pkt.payload[i]
        if b is not None:
            total += b
            count += 1
    return XDP_DROP if total == count else XDP_PASS
""",
    "map_lookups": """
@xdp
def prog(pkt: Packet) -> int:
    total: u32 = 0
    for i in range({n}):
        b = pkt.payload[i]
        if b is not None:
            total += m.get(u32(b), 0)
    return XDP_DROP if total == 7 else XDP_PASS
""",
    "after_a_header": """
@xdp
def prog(pkt: Packet) -> int:
    total: u32 = 0
    ip = pkt.ipv4
    if ip is None:
        return XDP_PASS
    for i in range({n}):
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == u32(ip.ttl) else XDP_PASS
""",
    "while_bounded": """
@xdp
def prog(pkt: Packet) -> int:
    total: u32 = 0
    i: u32 = 0
    while bounded(i < {n}, {n}):
        b = pkt.payload[i]
        if b is not None:
            total += b
        i += 1
    return XDP_DROP if total == 7 else XDP_PASS
""",
}

ROWS = [
    # (shape, n, we accept it): rows we accept are some 10% below our measured largest (the compiler of the
    # day may move the counts a little); the others are past our margin (and, for some, the kernel's limit).
    ("sum", 56, True), ("sum", 160, False),
    ("sum_and_count", 52, True),
    ("map_lookups", 40, True),
    ("after_a_header", 88, True),
    ("while_bounded", 16, True), ("while_bounded", 32, False),
]


def _kernel(elf: bytes) -> tuple[bool, int | None]:
    with capture_libbpf_log() as lines:
        try:
            BpfObject.load(elf, "prog", log_level=1).close()
            ok = True
        except LoadError:  # a refusal: its log is in lines
            ok = False
    found = [int(m.group(1)) for line in lines if (m := re.search(r"processed (\d+) insns", line))]
    return ok, found[-1] if found else None


@needs_kernel
@pytest.mark.parametrize(("shape", "n", "accepted"), ROWS)
def test_the_loop_shapes_against_the_kernel(shape: str, n: int, accepted: bool, tmp_path: Path) -> None:
    mod, _ = load_module(HEAD + SHAPES[shape].format(n=n), tmp_path, f"{shape}_{n}")
    compiled = mod.prog.compile(prove=False, verify=False)
    k_ok, k_count = _kernel(compiled.elf)
    report = verify_program(compiled.subject)
    row = (shape, n, "kernel", k_ok, k_count, "ours", report.ok, report.analysis and report.analysis.kernel_estimate)
    if not k_ok:
        assert not report.ok, f"the kernel refuses, we accept: {row}"
        assert {f.code for f in report.errors} == {Code.COMPLEXITY}, report.format()
    if accepted:
        assert k_ok, f"the table expects the kernel to load it: {row}"
        assert report.ok, f"a false alarm: {row}\n{report.format()}"
    else:
        assert not report.ok, f"past our margin, accepted: {row}"
