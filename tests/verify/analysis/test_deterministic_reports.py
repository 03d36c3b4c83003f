"""The verifier's report on a program (its findings with their messages, and the count of instructions
processed) is a function of the program alone: not of the programs verified before it in the same
process, nor of the process (its memory layout, its hash seed).

Found when it was not: the fixpoint engine kept the partitions to re-run at a point in a set, which
iterates in hash order; partition keys hold None, whose hash in Python 3.11 is its address, so every
process ran the partitions in its own order, and with widening that changed the counts (up to ~2% on
29 of the 502 benchmark programs) and the wording of some messages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis import partitions, verify_object
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.values import (
    PacketPtr,
    ScalarValue,
    StackPtr,
    join_values,
    narrow_values,
    widen_values,
)
from pybpfdsl.verify.domains.scalar import Scalar
from tests.generated.checks import load_module
from tests.generated.program_strategy import RandomChooser, generate_program

ROOT = Path(__file__).resolve().parents[3]

SEEDS = (19, 21, 142, 122)
"""Generated programs whose report changed from one process to another (loops, partitions, widening)."""
OTHERS = (2, 3, 8)
"""Programs verified before them in the same process."""

Report = tuple[int, list[tuple[str, int, str]]]


def _report(elf: bytes, section: str) -> Report:
    r = verify_object(elf, section)
    return r.processed, sorted({(f.code.value, f.insn, f.message) for f in r.findings})


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[bytes, str]]:
    d = tmp_path_factory.mktemp("generated")
    out = {}
    for seed in (*SEEDS, *OTHERS):
        gen = generate_program(RandomChooser(seed))
        module, _ = load_module(gen.source, d, f"g{seed}")
        compiled = getattr(module, gen.function).compile(prove=False, verify=False)
        out[seed] = (compiled.elf, compiled.name)
    return out


class _Salt:
    """A partition-key element that changes the key's hash (and so a set's order) but not its equality."""

    def __init__(self, salt: int) -> None:
        self.salt = salt

    def __hash__(self) -> int:
        return self.salt

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Salt)


@pytest.fixture
def salted(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Run with partition keys whose hashes depend on a salt, as keys holding None depend on the process."""
    original = partitions.partition_key

    def use(salt: int) -> None:
        def key(s: State, live: int = (1 << 11) - 1, critical: int = 0) -> object:
            return (*original(s, live, critical), _Salt(salt))  # type: ignore[misc]

        monkeypatch.setattr(partitions, "partition_key", key)

    return use


@pytest.mark.parametrize("seed", SEEDS)
def test_report_does_not_depend_on_hashes(programs: dict[int, tuple[bytes, str]], salted: Callable[[int], None],
                                          seed: int) -> None:
    """The same program under partition keys hashed three ways: the same report (a set iterated in hash
    order decided which partition the fixpoint re-ran first)."""
    reports = []
    for salt in (1, 7919, 104729):
        salted(salt)
        reports.append(_report(*programs[seed]))
    assert reports[1] == reports[0]
    assert reports[2] == reports[0]


def test_report_does_not_depend_on_what_ran_before(programs: dict[int, tuple[bytes, str]]) -> None:
    """Each program verified first, then again after every other one in the same process: the same report."""
    first = {seed: _report(*programs[seed]) for seed in SEEDS}
    for seed in OTHERS:
        _report(*programs[seed])
    again = {seed: _report(*programs[seed]) for seed in reversed(SEEDS)}
    assert again == first


_CHILD = """
import json, sys
from pybpfdsl.verify.analysis import verify_object
progs = json.load(sys.stdin)
out = {}
for seed, (elf, section) in progs:
    r = verify_object(bytes.fromhex(elf), section)
    out[seed] = [r.processed, sorted({(f.code.value, f.insn, f.message) for f in r.findings})]
json.dump(out, sys.stdout)
"""


def test_report_does_not_depend_on_the_process(programs: dict[int, tuple[bytes, str]]) -> None:
    """The programs verified in two other processes (other hash seeds, other memory layouts, other
    orders): the reports this process gives."""
    here = {str(seed): list(_report(*programs[seed])) for seed in SEEDS}
    here = json.loads(json.dumps(here))
    for hash_seed, order in (("1", SEEDS), ("2", tuple(reversed((*OTHERS, *SEEDS))))):
        progs = [(seed, (programs[seed][0].hex(), programs[seed][1])) for seed in order]
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        child = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(progs), capture_output=True,
                               text=True, cwd=ROOT, env=env, check=True)
        there = json.loads(child.stdout)
        assert {s: there[s] for s in here} == here


def test_identity_shortcuts_are_exact() -> None:
    """State joins skip registers and slots that are the same object (``x is y``); which equal values are
    the same object depends on the caches, so a value combined with an equal one must give that value,
    as the skip does: even a widened (unreduced) scalar, whose domain join with itself is its reduction."""
    w = Scalar.urange(0, 10).widen(Scalar.urange(0, 20))
    copy = Scalar(w.tnum, w.u64, w.s64, w.u32, w.s32)
    assert copy == w and copy is not w and w.join(copy) != w  # the case that needs the guard
    for v, twin in ((ScalarValue(w), ScalarValue(copy)), (StackPtr(w), StackPtr(copy)),
                    (PacketPtr(w, 3, 2), PacketPtr(copy, 3, 2))):
        assert join_values(v, twin) == v
        assert widen_values(v, twin) == v
        assert narrow_values(v, twin) == v
        assert stk.Slot(0xFF, v, 8).join(stk.Slot(0xFF, twin, 8)) == stk.Slot(0xFF, v, 8)
    s = st.entry_state().set_reg(2, ScalarValue(w), 1)
    t = st.entry_state().set_reg(2, ScalarValue(copy), 1)
    assert st.join(s, t, 5) == st.join(s, s, 5) == s
    assert st.widen(s, t, (), 5) == s
