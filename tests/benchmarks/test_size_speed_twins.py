"""The size_speed benchmark compares pybpfdsl with hand-written C only if each C twin is the same program:
same maps and globals (names, sizes), same actions, same state after every packet. These tests hold the
twins to that, on each benchmark program's packet sequence, where the benchmark itself checks it too.

The bytecode interpreter runs both objects with the same scripted random numbers and clock, so every
program is compared exactly there; the kernel (BPF_PROG_TEST_RUN) compares what its own helpers leave
deterministic, and the random drops statistically. Twins are built at one clang configuration here
(-O2 -mcpu=v3); the benchmark tries six and the twins agree at each (it reports any that does not).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from benchmarks.size_speed import agreement
from benchmarks.size_speed.clang_build import ClangMissing, build
from benchmarks.size_speed.programs import BENCHMARKS, C_DIR, Benchmark
from pybpfdsl import XDP_DROP, XDP_PASS, XDP_REDIRECT
from pybpfdsl.runtime.libbpf import kernel_bpf_available

pytestmark = pytest.mark.xdist_group("size_speed_twins")


@functools.cache
def _built(name: str) -> tuple[bytes, bytes] | str:
    """Our object and the twin's (each program's pair is used by both tests), or why clang is missing."""
    bench = next(b for b in BENCHMARKS if b.name == name)
    try:
        twin = build(bench.c_file, bench.name, "-O2", "v3").elf
    except ClangMissing as exc:
        return str(exc)
    return bench.program().compile(prove=False, verify=False).elf, twin


def _objects(bench: Benchmark) -> tuple[bytes, bytes]:
    built = _built(bench.name)
    if isinstance(built, str):
        pytest.skip(built)
    return built


PASS_ONLY = {"logging_counters", "per_source_counters", "simplebpf_logging"}
"""The programs that never drop; every other sequence takes its drop path too."""
ACTIONS = {"vlan_tagging": {XDP_PASS, XDP_REDIRECT}}
"""Programs whose sequence takes other actions: vlan_tagging drops only when the kernel cannot move the
packet, which no test frame provokes."""


@pytest.mark.parametrize("bench", BENCHMARKS, ids=lambda b: b.name)
def test_twin_agrees_in_the_interpreter(bench: Benchmark) -> None:
    ours_elf, twin_elf = _objects(bench)
    ours, twin = agreement.interp_trace(bench, ours_elf), agreement.interp_trace(bench, twin_elf)
    assert agreement.interp_disagreements(bench, ours, twin) == []
    expected = ACTIONS.get(bench.name, {XDP_PASS} if bench.name in PASS_ONLY else {XDP_PASS, XDP_DROP})
    assert set(ours.actions) == expected


@pytest.mark.kernel
@pytest.mark.parametrize("bench", BENCHMARKS, ids=lambda b: b.name)
def test_twin_agrees_in_the_kernel(bench: Benchmark) -> None:
    available, reason = kernel_bpf_available()
    if not available:
        pytest.skip(f"kernel bpf() unavailable: {reason}")
    ours_elf, twin_elf = _objects(bench)
    assert agreement.kernel_disagreements(bench, ours_elf, twin_elf, agreement.interp_trace(bench, ours_elf)) == []


def test_a_twin_that_decides_differently_is_caught(tmp_path: Path) -> None:
    """The check can fail: fault_injection's twin with its threshold one lower drops the request whose
    random value is exactly 4080218931 (the interpreter's sequence has it), and counts it."""
    bench = next(b for b in BENCHMARKS if b.name == "fault_injection")
    source = bench.c_file.read_text()
    assert "4080218932U" in source
    wrong = tmp_path / "fault_injection.c"
    wrong.write_text(source.replace("4080218932U", "4080218931U")
                     .replace('#include "headers.h"', f'#include "{C_DIR / "headers.h"}"'))
    ours_elf, _ = _objects(bench)
    ours = agreement.interp_trace(bench, ours_elf)
    twin = agreement.interp_trace(bench, build(wrong, bench.name, "-O2", "v3").elf)
    found = agreement.interp_disagreements(bench, ours, twin)
    assert any("action" in line for line in found) and any("injected_faults" in line for line in found)


def test_a_twin_that_writes_other_bytes_is_caught(tmp_path: Path) -> None:
    """The packets a program leaves are compared too: vlan_tagging's twin keeping two bits of the priority
    instead of three writes tag 0x202a where the DSL program writes 0xa02a (priority 5, VLAN 42), with the
    same action and state."""
    bench = next(b for b in BENCHMARKS if b.name == "vlan_tagging")
    source = bench.c_file.read_text()
    assert "(priority & 7) << 13" in source
    wrong = tmp_path / "vlan_tagging.c"
    wrong.write_text(source.replace("(priority & 7) << 13", "(priority & 3) << 13")
                     .replace('#include "headers.h"', f'#include "{C_DIR / "headers.h"}"'))
    ours_elf, _ = _objects(bench)
    ours = agreement.interp_trace(bench, ours_elf)
    twin = agreement.interp_trace(bench, build(wrong, bench.name, "-O2", "v3").elf)
    found = agreement.interp_disagreements(bench, ours, twin)
    assert ours.actions == twin.actions and ours.states == twin.states
    assert len(found) == 1 and "8100a02a" in found[0] and "8100202a" in found[0], found
