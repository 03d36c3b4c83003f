"""Proof verdicts on disk (`proof_cache`): proved once across processes, never a stale or foreign verdict.

Each test points `XDG_CACHE_HOME` at its own empty directory (the suite's conftest already gives the
session one of its own; these tests need to know exactly what is in it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pybpfdsl.verify.equivalence import proof_cache
from pybpfdsl.verify.equivalence.prove import ProofResult

PROGRAM = '''
from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, u64, xdp

seen = Global(u64, 0)


@xdp
def count_udp(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    seen.value += 1
    return XDP_DROP if udp.dport == PORT else XDP_PASS
'''

PROVE_AND_REPORT = '''
import json, sys
sys.path.insert(0, sys.argv[1])
import cached_program
compiled = cached_program.count_udp.compile(prove=True)
print(json.dumps({"status": compiled.proof.status, "cache": compiled.proof.stats.get("cache"),
                  "seconds": compiled.proof.seconds}))
'''


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("PYBPFDSL_CACHE", raising=False)
    return home


def _prove_in_a_new_process(program_dir: Path, env: dict[str, str]) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", PROVE_AND_REPORT, str(program_dir)], capture_output=True,
                          text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _write_program(directory: Path, port: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cached_program.py").write_text(textwrap.dedent(PROGRAM).replace("PORT", str(port)))
    return directory


def _entries(home: Path) -> list[Path]:
    return sorted((home / "pybpfdsl" / "proofs").glob("*.json"))


def test_a_second_process_reads_the_first_ones_verdict(cache_home: Path, tmp_path: Path) -> None:
    program = _write_program(tmp_path / "prog", 53)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    env.pop("PYBPFDSL_CACHE", None)
    first = _prove_in_a_new_process(program, env)
    assert first == {"status": "proven", "cache": None, "seconds": first["seconds"]}
    assert len(_entries(cache_home)) == 1
    second = _prove_in_a_new_process(program, env)
    assert second["status"] == "proven" and second["cache"] == "hit"
    assert second["seconds"] == first["seconds"]  # the time the proof took, not the time of reading it


def test_a_program_with_other_bytes_is_proved_again(cache_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    env.pop("PYBPFDSL_CACHE", None)
    first = _prove_in_a_new_process(_write_program(tmp_path / "a", 53), env)
    other = _prove_in_a_new_process(_write_program(tmp_path / "b", 5353), env)
    assert first["cache"] is None and other["cache"] is None
    assert other["status"] == "proven"
    assert len(_entries(cache_home)) == 2


def test_pybpfdsl_cache_0_neither_reads_nor_writes(cache_home: Path, tmp_path: Path) -> None:
    program = _write_program(tmp_path / "prog", 53)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYBPFDSL_CACHE": "0"}
    assert _prove_in_a_new_process(program, env)["cache"] is None
    assert _entries(cache_home) == []
    del env["PYBPFDSL_CACHE"]
    _prove_in_a_new_process(program, env)  # now an entry exists...
    env["PYBPFDSL_CACHE"] = "0"
    assert _prove_in_a_new_process(program, env)["cache"] is None  # ...and is not read


# -- the cache on its own --------------------------------------------------------------------------------

def _proven() -> ProofResult:
    return ProofResult("proven", 1.25, {"paths_a": 3, "paths_b": 4, "rlimit_count": 12345}, "", units=12_345_678)


def test_a_stored_verdict_comes_back_with_its_statistics(cache_home: Path) -> None:
    key = proof_cache.compiled_key(b"\x7fELF object", "ir text", 1000)
    assert proof_cache.lookup(key) is None
    proof_cache.store(key, _proven())
    back = proof_cache.lookup(key)
    assert back is not None
    assert (back.status, back.seconds, back.units, back.reason) == ("proven", 1.25, 12_345_678, "")
    assert back.stats == {"paths_a": 3, "paths_b": 4, "rlimit_count": 12345, "cache": "hit"}
    assert back.counterexample is None


def test_every_part_of_the_key_matters() -> None:
    base = proof_cache.compiled_key(b"object", "ir", 1000)
    assert base == proof_cache.compiled_key(b"object", "ir", 1000)
    assert len({base, proof_cache.compiled_key(b"object!", "ir", 1000),
                proof_cache.compiled_key(b"object", "ir!", 1000),
                proof_cache.compiled_key(b"object", "ir", 2000),
                proof_cache.compiled_key(b"objec", "tir", 1000)}) == 5  # parts are not just concatenated
    pair = proof_cache.objects_key(b"a", b"b", "xdp", "xdp", 1000)
    assert len({pair, proof_cache.objects_key(b"b", b"a", "xdp", "xdp", 1000),
                proof_cache.objects_key(b"a", b"b", "xdp", "other", 1000),
                proof_cache.objects_key(b"a", b"b", "xdp", "xdp", 1001)}) == 4


def test_a_changed_prover_source_changes_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = proof_cache.compiled_key(b"object", "ir", 1000)
    monkeypatch.setattr(proof_cache, "prover_digest", lambda: "another prover")
    assert proof_cache.compiled_key(b"object", "ir", 1000) != key


def test_the_prover_digest_covers_the_prover_and_the_semantics_table() -> None:
    import hashlib

    package = Path(proof_cache.__file__).resolve().parents[2]
    files = {p.relative_to(package).as_posix() for room in proof_cache._PROVER_ROOMS
             for p in (package / room).rglob("*.py")}
    assert {"verify/equivalence/prove.py", "verify/equivalence/proof_cache.py", "bpf/semantics.py"} <= files
    assert len(proof_cache.prover_digest()) == len(hashlib.sha256().hexdigest())


_GOOD = {"format": 1, "status": "proven", "seconds": 1.0, "units": 1, "stats": {}, "reason": ""}
CORRUPT = {
    "empty": b"",
    "truncated": json.dumps(_GOOD).encode()[:20],
    "binary": b"\xff\xfe\x00",
    "list": b"[]",
    "fields-missing": b'{"format": 1}',
    "counterexample": json.dumps({**_GOOD, "status": "counterexample"}).encode(),
    "seconds-as-text": json.dumps({**_GOOD, "seconds": "1"}).encode(),
    "units-as-text": json.dumps({**_GOOD, "units": "1"}).encode(),
    "stats-not-scalars": json.dumps({**_GOOD, "stats": {"a": [1]}}).encode(),
    "other-format": json.dumps({**_GOOD, "format": 99}).encode(),
}


def test_a_well_formed_entry_is_read(cache_home: Path) -> None:
    # The corrupt entries below are this one with one thing wrong.
    key = proof_cache.compiled_key(b"object", "ir", 1000)
    path = proof_cache.cache_directory() / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_GOOD))
    back = proof_cache.lookup(key)
    assert back is not None and (back.status, back.units) == ("proven", 1)


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_entry_is_ignored_and_replaced(cache_home: Path, content: bytes) -> None:
    key = proof_cache.compiled_key(b"object", "ir", 1000)
    path = proof_cache.cache_directory() / f"{key}.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert proof_cache.lookup(key) is None
    proof_cache.store(key, _proven())
    back = proof_cache.lookup(key)
    assert back is not None and back.status == "proven"


def test_a_counterexample_and_a_timed_out_unknown_are_not_kept(cache_home: Path) -> None:
    verdicts = {
        "counterexample": ProofResult("counterexample", 0.5, {}, "the programs differ in action"),
        "z3 timeout": ProofResult("unknown", 20.0, {}, "timeout"),
        "safety net": ProofResult("unknown", 600.0, {}, "the wall-clock safety net (600 s) ran out while solving"),
        "skipped": ProofResult("skipped", 0.0, {}, "compile(prove=False)"),
    }
    for what, verdict in verdicts.items():
        key = proof_cache.compiled_key(what.encode(), "ir", 1000)
        proof_cache.store(key, verdict)
        assert proof_cache.lookup(key) is None, what
    assert _entries(cache_home) == []


def test_an_unknown_decided_by_the_unit_budget_is_kept(cache_home: Path) -> None:
    # The same budget in resource units gives the same "unknown" on any machine: proving again would
    # spend the whole budget for nothing.
    key = proof_cache.compiled_key(b"object", "ir", 1000)
    proof_cache.store(key, ProofResult("unknown", 3.0, {}, "the budget (1,000 units) ran out while sweeping"))
    back = proof_cache.lookup(key)
    assert back is not None and back.status == "unknown" and "1,000 units" in back.reason


def test_pybpfdsl_cache_0_turns_the_cache_off(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = proof_cache.compiled_key(b"object", "ir", 1000)
    monkeypatch.setenv("PYBPFDSL_CACHE", "0")
    proof_cache.store(key, _proven())
    assert _entries(cache_home) == []
    monkeypatch.delenv("PYBPFDSL_CACHE")
    proof_cache.store(key, _proven())
    monkeypatch.setenv("PYBPFDSL_CACHE", "0")
    assert proof_cache.lookup(key) is None


def test_an_unwritable_cache_costs_nothing_but_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    key = proof_cache.compiled_key(b"object", "ir", 1000)
    proof_cache.store(key, _proven())  # does not raise
    assert proof_cache.lookup(key) is None


def test_no_temporary_file_is_left_behind(cache_home: Path) -> None:
    for i in range(3):
        proof_cache.store(proof_cache.compiled_key(bytes([i]), "ir", 1000), _proven())
    names = [p.name for p in (cache_home / "pybpfdsl" / "proofs").iterdir()]
    assert len(names) == 3 and all(name.endswith(".json") and not name.startswith(".") for name in names)
