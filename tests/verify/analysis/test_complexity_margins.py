"""The complexity estimate against the kernel on loop shapes a user writes: never accept what the kernel
refuses as too large, and refuse as little as possible of what it loads.

The kernel's "processed N insns" (and its verdict) is the oracle; each program is compiled at test time.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pybpfdsl.runtime.bpf_object import BpfObject, LoadError
from pybpfdsl.runtime.libbpf import capture_libbpf_log, kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_program
from pybpfdsl.verify.analysis import loops as loop_pass
from tests.generated.checks import load_module

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")


def _kernel(elf: bytes, name: str) -> tuple[bool, int | None]:
    """Load the object with the verifier's log: (loaded, its "processed N insns")."""
    with capture_libbpf_log() as lines:
        try:
            BpfObject.load(elf, name, log_level=1).close()
            ok = True
        except LoadError:  # a refusal: its log is in lines
            ok = False
    found = [int(m.group(1)) for line in lines if (m := re.search(r"processed (\d+) insns", line))]
    return ok, found[-1] if found else None


NESTED_IN_A_WHILE = """
from pybpfdsl import *
class S0(Struct):
    f0: u32
    f1: float
g1 = Global(float, 0.5)
m2 = HashMap(S0, i16, 16)
m3 = LruPerCpuHashMap(u16, S0, 64)
m4 = Array(float, 16)
events6 = RingBuf(S0, 4096)
@inline
def h7(a0: bool, a1: float, a2: u32) -> None:
    for idx8 in range(8, 0, -1):
        events6.output(S0(u32((m2.get(S0(f0=u32(u32((u8(1) << a0)) & 3), f1=float((g1.value / 0.001))), i16(0))
                               - idx8)), float(idx8)))
@inline
def h9(a0: i64, a1: float) -> u32:
    w10: u32 = 0
    while bounded(w10 < u32(abs(a0)) and (i32(a0) >= a1), 7):
        w10 += 1
        h7(bool(min(m4[15], a1)), float(i32((m2.get(S0(f0=u32((w10 & 0)), f1=float(w10)), i16(-25418)) >> 2))),
           u32((m2.get(S0(u32(u32((a0 if (u16(u32((a0 >> 2)) & 7) in m3) else w10)) & 3),
                          float(u32((a0 << a0)) & 3)), i16(-5794)) != i32(11333))))
    return u32(g1.value)
@xdp
def prog(pkt: Packet) -> int:
    h7(bool(abs(pkt.len)), float((i64(11) / pkt.len)),
       u32(m2.get(S0(u32(u32(h9(i64(g1.value), float(pkt.len))) & 3), float((-g1.value))), i16(0))))
    r11 = m3.get(u16(u32(pkt.len) & 7), S0(u32(g1.value), float(m4[u32(abs(u16(0))) % 16])))
    v12: u32 = u32((r11.f1 * float(i32((m4[u32((pkt.len & 0)) % 16] <= False)))))
    rec13 = pkt.payload.read(S0, u32((v12 | v12)) % 32)
    if rec13 is not None:
        g1.value += float(rec13.f0)
    return XDP_ABORTED
"""
"""Generated program 30107, reduced: a ``while bounded(..., 7)`` whose body runs a ``range(8, 0, -1)`` loop of
ring-buffer outputs. The kernel loads it at about 54,000 instructions; the closed form gave up on the outer
loop in its first iteration, and the simulation, which ends at about 109,000 (within the 3x margin), was cut
off as deep: a path passes the inner loop's head 56 times in 7 outer iterations, past the 16 passes that
mark a deep loop (``loops.deep_passes``)."""


def test_a_loop_nested_in_a_short_while_is_not_cut_off_as_deep(tmp_path: Path) -> None:
    mod, _ = load_module(NESTED_IN_A_WHILE, tmp_path, "nested_in_a_while")
    report = verify_program(mod.prog.compile(prove=False, verify=False).subject)
    assert not [f for f in report.errors if f.code == Code.COMPLEXITY], report.format()
    assert report.ok, report.format()


@needs_kernel
def test_the_kernel_loads_the_nested_loop_well_within_its_limit(tmp_path: Path) -> None:
    mod, _ = load_module(NESTED_IN_A_WHILE, tmp_path, "nested_in_a_while")
    ok, processed = _kernel(mod.prog.compile(prove=False, verify=False).elf, "prog")
    assert ok and processed is not None and processed * loop_pass.RESCUE_MARGIN < 1_000_000, processed
