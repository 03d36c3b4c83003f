"""A copy made only to be combined with a register that dies there (``r6 = r0; r6 ^= r7``) made in that
register (``r7 ^= r0``), the copy's later readers renamed (superopt/coalesce.py): proven by the path prover,
verified and loaded; refused where the renamed register is read after, or where a wrong rename is planted."""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import optimize_object
from pybpfdsl.superopt.coalesce import coalesce_pass
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.gate import prove_whole
from tests.superopt.conftest import _build

_BPF_OK, _ = kernel_bpf_available()
COPY = Instruction(0xBF, 6, 0)  # r6 = r0
XOR = Instruction(0xAF, 6, 7)  # r6 ^= r7


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _build(tmp_path_factory, "coalesce")


def _code(elf: bytes) -> list[Instruction]:
    return list(BpfElf.from_bytes(elf).programs["xdp"].instructions)


def test_the_copy_is_combined_in_the_dying_register_and_its_readers_renamed(elf: bytes) -> None:
    code = _code(elf)
    at = code.index(COPY)
    assert code[at + 1] == XOR, "clang's shape changed: nothing to test"
    out, _made = coalesce_pass(elf, ["xdp"])
    new = _code(out)
    assert len(new) == len(code) - 1 and new[at] == Instruction(0xAF, 7, 0)  # r7 ^= r0
    assert not any(6 in (i.dst, i.src) for i in new[at:] if i.kind.name != "CALL")
    assert prove_whole(elf, out, 2_000_000).ok
    result = optimize_object(elf, proposals=0, kernel=_BPF_OK, regions=False)
    assert "coalesce" in {r.source for r in result.rewrites}
    assert (result.verifier.status, result.proof.status, result.proven_by) == ("ok", "ok", "paths")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")
    assert result.slots("after")["xdp"] <= result.slots("before")["xdp"] - 1


def test_it_is_left_where_the_dying_register_is_read_after(elf: bytes) -> None:
    code = _code(elf)
    at = code.index(COPY)
    assert code[at + 6] == Instruction(0x15, 6, 0, 1, 0) and code[at + 8].kind.name == "EXIT"
    # r7 read again after the pair (planted: the mask reads r7): no coalescing.
    planted = rewrite_code(elf, {"xdp": [Replacement(at + 4, 1, (Instruction(0x5F, 6, 7),))]})  # r6 &= r7
    out, made = coalesce_pass(planted, ["xdp"])
    assert not made and out == planted
    # The rename planted anyway: refused by the proof.
    wrong = rewrite_code(planted, {"xdp": [Replacement(at, 2, (Instruction(0xAF, 7, 0),)),
                                           Replacement(at + 3, 1, (Instruction(0xAF, 7, 0),)),
                                           Replacement(at + 4, 1, (Instruction(0x5F, 7, 7),)),
                                           Replacement(at + 6, 1, (Instruction(0x15, 7, 0, 1, 0),),
                                                       ((0, at + 8),))]})
    assert prove_whole(planted, wrong, 2_000_000).status == "failed"
