"""A proof's verdict and resource units do not depend on what ran before it in the process.

Budgets are Z3 resource units so that a verdict is the same on any machine; but Z3's counts depend on
its context's history (hash-consed terms, their ids, its caches), so a proof sharing Z3's main context
with earlier proofs spent up to 3x the units it spends alone. Under pytest-xdist the tests a worker runs
before a proof vary from run to run, so a proof near its budget would flip between "proven" and
"unknown". Each proof therefore runs in a Z3 context of its own (`verify/equivalence/context.py`): the
same proof spends exactly the same units in a fresh process as after other proofs, which this checks
for a proof of bytecode against its IR, of two objects, and one that ends in a counterexample.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import z3

from pybpfdsl.verify.equivalence import prove as prove_module
from pybpfdsl.verify.equivalence.context import own_context
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, ProofResult, prove_compiled, prove_objects
from tests.verify.equivalence import test_arithmetic_patterns as patterns
from tests.verify.equivalence.test_prove_objects import SOURCE

ROOT = Path(__file__).resolve().parents[3]

_PROVE_ONE = """
import json, sys
sys.path.insert(0, {root!r})
from tests.verify.equivalence.test_deterministic_units import subject_result
print(json.dumps(subject_result({subject!r}, {objects!r})))
"""


def subject_result(subject: str, objects: dict[str, str]) -> dict[str, object]:
    """The proof `subject` names (a program of `test_arithmetic_patterns`, `module.program`, or
    `objects:A:B` for two of the ELF files in `objects`), as what must be the same wherever it runs."""
    result: ProofResult
    if subject.startswith("objects:"):
        _, a, b = subject.split(":")
        result = prove_objects(Path(objects[a]).read_bytes(), Path(objects[b]).read_bytes(), "filter",
                               budget=prove_module.DEFAULT_BUDGET)
    else:
        module, _, name = subject.rpartition(".")
        compiled = getattr(importlib.import_module(module) if module else patterns, name).compile(prove=False)
        result = prove_compiled(compiled.subject, budget=COMPILE_BUDGET)
    stats = {k: v for k, v in result.stats.items() if "memory" not in k}
    return {"status": result.status, "units": result.units, "stats": stats}


def _in_fresh_process(subject: str, objects: dict[str, str], hash_seed: str = "0") -> dict[str, object]:
    env = {**os.environ, "PYBPFDSL_CACHE": "0", "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", _PROVE_ONE.format(root=str(ROOT), subject=subject, objects=objects)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def _build(tmp: Path, name: str, opt: str, low: str) -> str:
    src = tmp / f"{name}.c"
    src.write_text(SOURCE.replace("ETHERTYPE_LOW", low))
    out = tmp / f"{name}.o"
    subprocess.run(["clang", opt, "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", str(src),
                    "-o", str(out)], check=True)
    return str(out)


@pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")
def test_a_proof_spends_the_same_units_in_a_fresh_process_as_after_other_proofs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYBPFDSL_CACHE", "0")
    objects = {"o1": _build(tmp_path, "o1", "-O1", "0xdd"), "o2": _build(tmp_path, "o2", "-O2", "0xdd"),
               "other": _build(tmp_path, "other", "-O2", "0xde")}
    # Proven (merging, sweeping and cutting shared arithmetic), two objects proven, two objects that differ.
    subjects = ["float_times_float", "objects:o1:o2", "objects:o2:other"]
    alone = {s: _in_fresh_process(s, objects) for s in subjects}
    assert [alone[s]["status"] for s in subjects] == ["proven", "proven", "counterexample"]

    # Other proofs first, each different from the subjects, and the subjects after one another.
    for other in ("int_over_int", "float_comparison", "float_to_int"):
        subject_result(other, objects)
    after_others = {s: subject_result(s, objects) for s in reversed(subjects)}
    for s in subjects:
        assert after_others[s] == alone[s], s


def test_a_proof_leaves_the_main_context_as_it_found_it() -> None:
    before = z3.main_ctx()
    result = prove_compiled(patterns.float_comparison.compile(prove=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven"
    assert z3.main_ctx() is before
    x = z3.BitVec("x", 8)  # the main context still works for the caller's own terms
    assert z3.simplify(x + 1 - 1).eq(x)


def test_a_context_of_its_own_is_fresh_and_given_back_on_an_error() -> None:
    before = z3.main_ctx()
    with pytest.raises(RuntimeError), own_context() as ctx:
        assert z3.main_ctx() is ctx and ctx is not before
        assert z3.BitVecVal(1, 8).ctx is ctx  # terms built without a context are built in the proof's
        raise RuntimeError("a proof that fails")
    assert z3.main_ctx() is before


def test_a_proof_spends_the_same_units_whatever_the_hash_seed() -> None:
    # Python salts the hashes of strings per process: a proof that merges states built its merged terms
    # in the order of sets of map names and IR values, so their Z3 ids and the solver's work (8.5 or
    # 7.1 million units for this one) changed with PYTHONHASHSEED.
    runs = [_in_fresh_process("examples.rate_limiter.rate_limiter", {}, seed) for seed in ("0", "1")]
    assert runs[0]["status"] == "proven"
    assert runs[0] == runs[1]
