"""bpf_spin_lock: our verifier against the kernel's on one C program per rule of the kernel's lock
(``tests/verify/corpus/c/*spin_lock*.c``, each with its expected verdict on the first line).

The rules (``verify/analysis/locks.py``): the lock is a map value's ``struct bpf_spin_lock`` that the
map's BTF declares, taken through a value that is not NULL at the lock's offset; one lock at a time; no
other helper call and no exit while it is held; the unlock names the same lock (the same lookup's
value); nothing reads or writes the lock's bytes itself. Each refusal is the kernel's, and ours must
refuse it too (an accept would be unsound); the two programs the kernel accepts we accept.
"""

from __future__ import annotations

import os

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_object
from tests.verify.corpus.c_corpus import HERE, _expectation, build, clang
from tests.verify.corpus.differential import kernel_accepts

LOCK_PROGRAMS = sorted(f for f in os.listdir(HERE) if "_spin_" in f"_{f}" and f.endswith(".c"))


def _built(name: str) -> bytes:
    cc = clang()
    if cc is None:
        pytest.skip("clang is not installed")
    return build(os.path.join(HERE, name), cc)


@pytest.mark.parametrize("name", LOCK_PROGRAMS)
def test_ours_agrees_with_the_kernel(name: str) -> None:
    elf = _built(name)
    expect_ok, what = _expectation(os.path.join(HERE, name))
    report = verify_object(elf, "prog", allow_uninit_stack_reads=True)
    assert report.ok == expect_ok, f"{name} ({what}): {[str(e) for e in report.errors]}"
    available, reason = kernel_bpf_available()
    if not available:
        pytest.skip(f"kernel bpf() unavailable: {reason}")
    kernel_ok, log = kernel_accepts(elf, "xdp")
    assert kernel_ok == expect_ok, f"{name}: the kernel says {kernel_ok}: {log}"


def test_every_rule_has_a_program() -> None:
    assert len(LOCK_PROGRAMS) >= 10
    assert sum(1 for n in LOCK_PROGRAMS if not n.startswith("bad_")) >= 2


@pytest.mark.parametrize(("name", "words"), [
    ("bad_spin_lock_twice.c", "one lock at a time"),
    ("bad_spin_unlock_none.c", "without a lock held"),
    ("bad_spin_unlock_other.c", "different lock"),
    ("bad_spin_lock_call_held.c", "a function call while holding a lock"),
    ("bad_spin_lock_exit_held.c", "an exit while holding a lock"),
    ("bad_spin_lock_direct_read.c", "struct bpf_spin_lock at offset 0"),
    ("bad_spin_lock_no_lock_map.c", "has no bpf_spin_lock"),
    ("bad_spin_lock_wrong_offset.c", "does not point to map locks's bpf_spin_lock"),
])
def test_each_refusal_names_its_rule(name: str, words: str) -> None:
    report = verify_object(_built(name), "prog", allow_uninit_stack_reads=True)
    assert any(words in e.message for e in report.errors), [str(e) for e in report.errors]
    assert all(e.code in (Code.LOCK, Code.MAP_BOUNDS) for e in report.errors), [str(e) for e in report.errors]
