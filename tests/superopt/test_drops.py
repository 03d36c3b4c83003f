"""Jumps no path needs dropped where the path prover proves the program equal without them (superopt/drops.py):
a bounds check implied by the longer one after it goes, proven, verified and loaded; the longer check and the
program's own test stay (dropping either changes what the program does, and the proof says so)."""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import optimize_object
from pybpfdsl.superopt.drops import drops_pass
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.gate import prove_whole
from tests.superopt.conftest import _build

_BPF_OK, _ = kernel_bpf_available()


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _build(tmp_path_factory, "drops")


def _code(elf: bytes) -> list[Instruction]:
    return list(BpfElf.from_bytes(elf).programs["xdp"].instructions)


def _checks(code: list[Instruction]) -> list[int]:
    """The two bounds checks ``if rX > rEnd goto out`` (the first two JGTs of a register; the TTL test is
    ``if r2 > r1``, the third)."""
    return [i for i, insn in enumerate(code) if insn.opcode == 0x2D][:2]


def test_a_check_implied_by_the_next_is_dropped(elf: bytes) -> None:
    code = _code(elf)
    checks = _checks(code)
    assert checks[1] - checks[0] == 3 and code[checks[0]].src == code[checks[1]].src, "clang's shape changed"
    out, made = drops_pass(elf, ["xdp"])
    # The check, then the copy and the add that computed its operand (dead without it).
    assert [(sec, at) for sec, _, at, _ in made] == [("xdp", checks[0]), ("xdp", checks[0] - 1),
                                                      ("xdp", checks[0] - 2)]
    new = _code(out)
    assert new == [*code[:checks[0] - 2], *code[checks[0] + 1:checks[1]], *new[checks[1] - 3:]]
    assert len(new) == len(code) - 3
    assert prove_whole(elf, out, 2_000_000).ok
    result = optimize_object(elf, proposals=0, kernel=_BPF_OK, regions=False)
    assert "drop" in {r.source for r in result.rewrites}
    assert (result.verifier.status, result.proof.status, result.proven_by) == ("ok", "ok", "paths")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")
    assert result.slots("after")["xdp"] <= result.slots("before")["xdp"] - 1


def test_the_jumps_a_path_needs_stay(elf: bytes) -> None:
    code = _code(elf)
    longer = _checks(code)[1]
    test = max(i for i, insn in enumerate(code) if insn.kind.name == "JCOND")
    assert test > longer
    _out, made = drops_pass(elf, ["xdp"])
    assert {at for _, _, at, _ in made}.isdisjoint({longer, test})
    # Dropped anyway: the proof refuses both (a read past the packet's end, another verdict).
    for i in (longer, test):
        wrong = rewrite_code(elf, {"xdp": [Replacement(i, 1, ())]})
        assert prove_whole(elf, wrong, 2_000_000).status == "failed"


def test_a_function_reading_global_data_is_not_tried(tmp_path_factory: pytest.TempPathFactory) -> None:
    elf = _build(tmp_path_factory, "drops_rodata")
    code = _code(elf)
    last = max(i for i, insn in enumerate(code) if insn.opcode == 0xB7 and insn.imm == 1)  # r0 = XDP_DROP
    # The object holds 0 there (the test always leaves), but a loader may write another value first: the
    # prover reads .rodata as the same unknown bytes in both objects, so the rest is not proven unneeded ...
    assert not prove_whole(elf, rewrite_code(elf, {"xdp": [Replacement(last, 1, ())]}), 2_000_000).ok
    # ... and the pass leaves the function.
    out, made = drops_pass(elf, ["xdp"])
    assert not made and out == elf
