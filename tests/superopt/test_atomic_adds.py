"""A map value's counter loaded, added to and stored back (clang's ``rec->packets++``, ``rec->bytes += len``)
becomes one atomic add: proven equal by the window proof, the path prover and in lock step, verified and
loaded by the kernel. A wrong variant is refused by each proof, and the shape on a packet pointer (which the
kernel allows no atomic through) is left plain by the gate."""

from __future__ import annotations

import random

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.superopt.api import optimize_object
from pybpfdsl.superopt.cost import CostModel
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.lockstep import prove_lockstep
from pybpfdsl.superopt.search import SearchBudget, search_window
from pybpfdsl.superopt.window_check import prove_window
from tests.superopt.conftest import _build

_BPF_OK, _ = kernel_bpf_available()

LOAD = Instruction(0x79, 1, 0, 8)  # r1 = *(u64 *)(r0 +8)
STORE = Instruction(0x7B, 0, 1, 8)  # *(u64 *)(r0 +8) = r1
INC = Instruction(0x07, 1, 0, 0, 1)  # r1 += 1
ADD_R2 = Instruction(0x0F, 1, 2)  # r1 += r2
ADD_R1 = Instruction(0x0F, 2, 1)  # r2 += r1


def _lock(reg: int, off: int = 8, opcode: int = 0xDB) -> Instruction:
    return Instruction(opcode, 0, reg, off, 0)  # lock *(u64 *)(r0 +off) += reg


def _best(window: tuple[Instruction, ...], live: int, model: CostModel = CostModel.SLOTS) -> tuple[Instruction, ...]:
    out = search_window(window, live, random.Random(0), SearchBudget(proposals=60), model).replacement
    return window if out is None else out


def test_a_counter_added_to_from_a_register_is_one_atomic_add() -> None:
    assert _best((LOAD, ADD_R2, STORE), 1 << 0 | 1 << 2) == (_lock(2),)
    # The addend loaded and added the other way round (clang's `r2 += r1; *(r0 +8) = r2`) as well.
    assert _best((LOAD, ADD_R1, Instruction(0x7B, 0, 2, 8)), 1 << 0) == (_lock(2),)
    # A 32-bit cell, with a 32-bit add: the atomic's W form.
    window = (Instruction(0x61, 1, 0, 4), Instruction(0x0C, 1, 2), Instruction(0x63, 0, 1, 4))
    assert _best(window, 1 << 0) == (_lock(2, 4, 0xC3),)


def test_a_counter_incremented_by_a_constant_keeps_the_constant_in_the_register() -> None:
    assert _best((LOAD, INC, STORE), 1 << 0) == (Instruction(0xB7, 1, 0, 0, 1), _lock(1))


def test_wrong_variants_are_refused_by_the_window_proof() -> None:
    # r1 live after: the store left the sum in it, the atomic add leaves the constant.
    assert prove_window((LOAD, INC, STORE), (Instruction(0xB7, 1, 0, 0, 1), _lock(1)), 1 << 1).status == "different"
    # Another cell, another addend, a 32-bit add on a 64-bit cell (the carry into the high half).
    assert prove_window((LOAD, ADD_R2, STORE), (_lock(2, 0),), 0).status == "different"
    assert prove_window((LOAD, ADD_R2, STORE), (_lock(3),), 0).status == "different"
    assert prove_window((LOAD, Instruction(0x0C, 1, 2), STORE), (_lock(2),), 0).status == "different"
    # The live counter after: kept where it is needed.
    assert _best((LOAD, INC, STORE), 1 << 0 | 1 << 1) == (LOAD, INC, STORE)


def test_the_latency_cost_keeps_the_plain_instructions() -> None:
    # An atomic costs more than the load, add and store on the latency table: only slots pay for it.
    assert not any(i.kind == Kind.ATOMIC for i in _best((LOAD, ADD_R2, STORE), 1 << 0, CostModel.LATENCY))


@pytest.fixture(scope="module")
def counters_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _build(tmp_path_factory, "counters")


def _atomics(elf: bytes) -> list[Instruction]:
    return [i for i in BpfElf.from_bytes(elf).programs["xdp"].instructions if i.kind == Kind.ATOMIC]


def test_the_stats_counters_become_atomic_adds_proven_and_loaded(counters_elf: bytes) -> None:
    result = optimize_object(counters_elf, proposals=200, kernel=_BPF_OK)
    assert not _atomics(counters_elf)
    assert _atomics(result.after) == [_lock(1, 0), _lock(2)]
    # 16: the drops (superopt/drops.py) take the ``w2 = w2`` after ``data_end - data`` besides.
    assert (result.slots("before")["xdp"], result.slots("after")["xdp"]) == (24, 16)
    assert (result.verifier.status, result.proof.status, result.proven_by) == ("ok", "ok", "paths")
    assert result.kernel.status == ("ok" if _BPF_OK else "skipped")


def test_the_lock_step_proof_proves_the_atomic_add_and_refuses_a_wrong_one(counters_elf: bytes) -> None:
    code = BpfElf.from_bytes(counters_elf).programs["xdp"].instructions
    at = next(i for i, insn in enumerate(code) if insn.opcode == 0x79 and insn.off == 0)  # rec->packets
    assert code[at + 1] == Instruction(0x07, 1, 0, 0, 1) and code[at + 2] == Instruction(0x7B, 0, 1, 0)

    def rewrite(step: int) -> bytes:
        return rewrite_code(counters_elf, {"xdp": [Replacement(at, 3, (Instruction(0xB7, 1, 0, 0, step),
                                                                       _lock(1, 0)))]})

    assert prove_lockstep(counters_elf, rewrite(1)).proven
    assert not prove_lockstep(counters_elf, rewrite(2)).proven


def test_a_packet_word_is_left_plain(tmp_path_factory: pytest.TempPathFactory) -> None:
    elf = _build(tmp_path_factory, "packet_add")
    result = optimize_object(elf, proposals=200, kernel=_BPF_OK)
    assert not _atomics(result.after)
    assert result.kernel.status in ("ok", "skipped")


def test_a_counter_whose_old_value_is_read_after_is_one_fetching_add() -> None:
    # af_xdp_kern.c: r1 = *(u32 *)(r0 +0); r2 = r1; r2 += 1; *(u32 *)(r0 +0) = r2; ... r1 & 1
    window = (Instruction(0x61, 1, 0, 0), Instruction(0xBF, 2, 1), Instruction(0x07, 2, 0, 0, 1),
              Instruction(0x63, 0, 2, 0))
    fetch = Instruction(0xC3, 0, 1, 0, 0x01)  # r1 = atomic_fetch_add((u32 *)(r0 +0), r1)
    assert _best(window, 1 << 0 | 1 << 1) == (Instruction(0xB7, 1, 0, 0, 1), fetch)
    # Where the copy's sum is read after, it stays.
    assert _best(window, 1 << 0 | 1 << 1 | 1 << 2) == window
    # A 64-bit fetch of a 32-bit cell reads the next four bytes too: refused.
    wide = Instruction(0xDB, 0, 1, 0, 0x01)
    assert prove_window(window, (Instruction(0xB7, 1, 0, 0, 1), wide), 1 << 0 | 1 << 1).status == "different"
