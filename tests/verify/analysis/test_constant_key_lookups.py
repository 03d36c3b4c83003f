"""A lookup in an array with a known key below its size is never NULL, as the kernel (6.14 on) types it.

The kernel reads the key from the stack when it is a known number (zero bytes, or a spilled constant of the
key's size at the start of a slot) and, for an array or per-CPU array, gives a map value that needs no
NULL check when the key is below ``max_entries``. Each program is loaded into the kernel too: the accepted
shape and the nearby ones it refuses (key out of range, a hash map, a key it does not know).
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.verify.analysis import Code, helper_signatures, verify_instructions
from pybpfdsl.verify.analysis.values import MapInfo
from tests.verify.analysis.kernel_oracle import (
    BPF_MAP_TYPE_ARRAY,
    BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    KERNEL,
    kernel_verdict,
)
from tests.verify.analysis.opcodes import CALL_LOOKUP, EXIT, ST_W, U64, add_imm, load, mov, mov_reg

ARRAY = MapInfo("arr", BPF_MAP_TYPE_ARRAY, 4, 8, 4)
PERCPU = MapInfo("pcpu", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 4)
HASH = MapInfo("hash", BPF_MAP_TYPE_HASH, 4, 8, 4)
MAP_LDDW = 3


def _lookup_without_null_check(key: int, at: int) -> list[Instruction]:
    """``*(u32 *)(r10 + at) = key; r0 = lookup(&map, r10 + at); r0 = *(u64 *)(r0 + 0)`` (no NULL check)."""
    return [Instruction(ST_W, 10, 0, at, key), mov_reg(2, 10), add_imm(2, at), Instruction.lddw(1, 0),
            CALL_LOOKUP, load(U64, 0, 0, 0), mov(0, 2), EXIT]


@pytest.mark.parametrize(("the_map", "key", "at", "safe"), [
    (ARRAY, 3, -8, True),      # a spilled constant below max_entries
    (PERCPU, 0, -8, True),
    (ARRAY, 0, -4, True),      # zero bytes (a store of 0 off a slot's start)
    (ARRAY, 4, -8, False),     # the key is max_entries: the lookup may fail
    (ARRAY, -1, -8, False),
    (HASH, 0, -8, False),      # a hash map's lookup may always fail
    (ARRAY, 1, -4, False),     # a nonzero store off a slot's start is no known number for the kernel
], ids=["array key 3", "percpu key 0", "array zero bytes", "array key 4", "array key -1", "hash key 0",
        "array key 1 unaligned"])
def test_a_lookup_the_kernel_knows_succeeds_needs_no_null_check(the_map: MapInfo, key: int, at: int,
                                                                 safe: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helper_signatures, "CONSTANT_KEY_LOOKUPS", True)
    prog = _lookup_without_null_check(key, at)
    ours = verify_instructions(prog, map_refs={MAP_LDDW: (the_map, None)})
    assert ours.ok == safe, ours.format()
    if not safe:
        assert any(f.code == Code.NULL_DEREF and f.insn == 5 for f in ours.errors), ours.format()
    if KERNEL:
        verdict = kernel_verdict(prog, other_maps={MAP_LDDW: the_map})
        assert verdict.ok == safe, verdict.last_lines
        if not safe:
            assert "invalid mem access 'map_value_or_null'" in verdict.log, verdict.last_lines


@pytest.mark.skipif(not KERNEL or not helper_signatures.CONSTANT_KEY_LOOKUPS,
                    reason="needs a 6.14+ kernel to compare with")
def test_the_rule_is_the_running_kernels() -> None:
    """This kernel accepts the dereference without a NULL check, and so does our verifier, by default."""
    prog = _lookup_without_null_check(3, -8)
    assert kernel_verdict(prog, other_maps={MAP_LDDW: ARRAY}).ok
    assert verify_instructions(prog, map_refs={MAP_LDDW: (ARRAY, None)}).ok


def test_before_6_14_every_array_lookup_may_be_null(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels before 6.14 type every lookup's result as maybe NULL: verifying for one of them, a
    dereference without the check is refused."""
    monkeypatch.setattr(helper_signatures, "CONSTANT_KEY_LOOKUPS", False)
    ours = verify_instructions(_lookup_without_null_check(3, -8), map_refs={MAP_LDDW: (ARRAY, None)})
    assert any(f.code == Code.NULL_DEREF and f.insn == 5 for f in ours.errors), ours.format()


@pytest.mark.parametrize(("release", "expected"), [
    ("6.18.2-amd64", (6, 18)), ("6.14.0", (6, 14)), ("5.15.0-91-generic", (5, 15)), ("6.1-rc3", (6, 1)),
    ("weird", (0, 0)),
])
def test_kernel_release_parsing(release: str, expected: tuple[int, int]) -> None:
    assert helper_signatures._kernel_release(release) == expected
