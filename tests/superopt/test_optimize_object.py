"""The optimiser on a clang object: smaller, proven, loaded and run by the kernel like the input, and the
object's bookkeeping (symbols, relocations, .BTF.ext) moved with the code."""

from __future__ import annotations

import struct

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import slot_offsets
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import OptimizeResult, optimize_object

_BPF_OK, _BPF_REASON = kernel_bpf_available()
needs_bpf = pytest.mark.skipif(not _BPF_OK, reason=f"bpf() unavailable: {_BPF_REASON}")
BUDGET = 200


@pytest.fixture(scope="module")
def result(sample_elf: bytes) -> OptimizeResult:
    return optimize_object(sample_elf, proposals=BUDGET, kernel=_BPF_OK)


def _packet(proto: int, length: int) -> bytes:
    eth = b"\x02" * 12 + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 20, 0, 0, 0, 0, 64, proto, 0, 0]) + b"\x0a\x00\x00\x01" + b"\x0a\x00\x00\x02"
    return (eth + ip).ljust(length, b"\xab")


def test_both_sections_shrink_and_every_check_passed(result: OptimizeResult) -> None:
    before, after = result.slots("before"), result.slots("after")
    assert after["xdp"] < before["xdp"] and after[".text"] < before[".text"]
    assert (result.verifier.status, result.proof.status) == ("ok", "ok")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")


def test_the_same_seed_gives_the_same_object(sample_elf: bytes, result: OptimizeResult) -> None:
    assert optimize_object(sample_elf, proposals=BUDGET, kernel=False).after == result.after


def test_symbols_relocations_and_line_info_follow_the_code(result: OptimizeResult) -> None:
    elf = BpfElf.from_bytes(result.after)
    for prog in [*elf.programs.values(), elf.text]:
        assert prog is not None
        starts = set(slot_offsets(prog.instructions))
        assert sum(f.slots for f in prog.functions) == prog.slots  # function sizes cover the section
        for rel in prog.relocations:
            insn = prog.instructions[rel.insn_index]
            assert insn.kind in (Kind.LDDW, Kind.CALL) and rel.slot in starts
        lines = [li.slot for li in prog.line_info]
        assert lines == sorted(set(lines)) and set(lines) <= starts
        assert {f.slot for f in prog.functions} <= set(lines)  # the kernel wants a line at each function
    ext = elf.section_data(".BTF.ext")
    assert ext is not None and struct.unpack_from("<H", ext)[0] == 0xEB9F


def test_the_listing_marks_the_rewritten_windows(result: OptimizeResult) -> None:
    text = result.listing()
    assert "== xdp: before" in text and "== .text: after" in text
    assert any(line.startswith("* ") for line in text.splitlines())


@needs_bpf
def test_the_kernel_runs_the_output_like_the_input(sample_elf: bytes, result: OptimizeResult) -> None:
    from pybpfdsl.runtime.bpf_object import BpfObject
    from pybpfdsl.runtime.kernel_run import run_xdp

    packets = [_packet(17, 60), _packet(17, 200), _packet(6, 60), _packet(1, 80), b"\x00" * 20, b"\x01" * 14]
    seen = []
    for elf in (sample_elf, result.after):
        obj = BpfObject.load(elf, "superopt_test")
        try:
            fd = obj.program_fd("sample")
            seen.append([(r.action, r.packet) for r in (run_xdp(fd, p) for p in packets)])
        finally:
            obj.close()
    assert seen[0] == seen[1]
    assert {action for action, _ in seen[0]} >= {1, 2, 3}  # drop, pass and tx all happened


@needs_bpf
def test_each_program_loads_alone_and_runs_like_the_input(sample_elf: bytes, result: OptimizeResult) -> None:
    from pybpfdsl.superopt.kernel_check import load_alone

    packets = [_packet(17, 150), _packet(6, 60), b"\x00" * 14]
    want, got = load_alone(sample_elf, "sample", packets), load_alone(result.after, "sample", packets)
    assert want.loaded and got.loaded and got.runs == want.runs
    assert not load_alone(result.after, "no_such_program").loaded
