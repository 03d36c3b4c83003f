"""Proof verdicts kept on disk, so that a program is proved once, not once per process.

Every `pybpfdsl` command, test worker and `make demo` is a new process; without this, each spent the
whole proof again on the same bytes (20 s for one token bucket). A verdict is stored under a key that
covers everything it depends on:

- both sides' bytes: the object and the IR text (`compiled_key`), or the two objects and the names of
  their programs (`objects_key`);
- the budget: an "unknown" may become "proven" with a larger one;
- the pybpfdsl version, the z3 version, and a hash of the prover's own source files (`prover_digest`:
  the equivalence proof, the instruction set and its semantics, the IR and the language's arithmetic).
  The version alone would not do during development: a changed prover must never reuse a verdict the
  old one gave, and the version number does not change with every edit.

What is kept: the status, the resource units and the seconds the proof took, its statistics and the
reason. Not kept:

- a counterexample: its report (the packet, the state, both replays side by side) is what the user
  needs, and it is not serialised here; such a proof runs again and derives it again.
- an "unknown" that a wall-clock limit decided (a Z3 timeout, the safety net under the unit budgets):
  it says how busy the machine was, not what the program is, and the next run may prove it.

The cache lives in `$XDG_CACHE_HOME/pybpfdsl/proofs` (`~/.cache/pybpfdsl/proofs` when the variable is
unset), one JSON file per key. `PYBPFDSL_CACHE=0` turns it off. Both variables are read at each use, so
a test can point them elsewhere. Writes are atomic (a temporary file renamed into place), so a reader
sees a whole entry or none; an entry that cannot be read or does not have the expected form is ignored
(and overwritten by the next proof). A cache that cannot be written (read-only home, full disk) only
costs the time of proving again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from pybpfdsl.verify.equivalence.proof_result import ProofResult

__all__ = ["cache_directory", "compiled_key", "enabled", "lookup", "objects_key", "prover_digest", "store"]

_log = logging.getLogger("pybpfdsl.verify.proof_cache")

FORMAT = 1
"""Version of the entries' layout; part of every key, so a new layout never reads an old file."""
CACHED_STATUSES = ("proven", "unknown")
_WALL_CLOCK_MARKERS = ("timeout", "canceled", "cancelled", "safety net", "time budget")
"""Words in an "unknown" reason that say a wall-clock limit decided it (Z3's `reason_unknown()` after a
timeout; the prover's own time limits)."""
_PROVER_ROOMS = ("verify/equivalence", "bpf", "ir", "lang")
"""The packages whose source decides a verdict: the prover, the instruction set and its semantics table,
the IR it reads and the language's arithmetic the IR encoding uses."""


def enabled() -> bool:
    """Whether verdicts are read from and written to disk (`PYBPFDSL_CACHE=0` turns it off)."""
    return os.environ.get("PYBPFDSL_CACHE", "1").strip() != "0"


def cache_directory() -> Path:
    """Where entries live: `$XDG_CACHE_HOME/pybpfdsl/proofs`, or `~/.cache/pybpfdsl/proofs`."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    # The XDG specification: a relative value is invalid and is ignored.
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "pybpfdsl" / "proofs"


def _version() -> str:
    """The installed pybpfdsl's version (read from its metadata: the prover sits below the package's
    top, which defines `__version__`); "unknown" when the source runs without being installed, where
    the hash of the source files alone tells one prover from another."""
    try:
        return importlib.metadata.version("pybpfdsl")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def prover_digest() -> str:
    """A hash of the source files of the packages a verdict depends on (`_PROVER_ROOMS`), with the
    pybpfdsl and z3 versions. Computed once per process."""
    import z3

    package = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    h.update(f"pybpfdsl {_version()}; z3 {z3.get_version_string()}; format {FORMAT}\n".encode())
    for room in _PROVER_ROOMS:
        for path in sorted((package / room).rglob("*.py")):
            h.update(path.relative_to(package).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _key(kind: str, parts: list[bytes], budget: object) -> str:
    h = hashlib.sha256()
    h.update(f"{kind}\0{prover_digest()}\0budget={budget!r}\0".encode())
    for part in parts:
        # Length-prefixed: no two different lists of parts hash the same bytes.
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


def compiled_key(elf: bytes, ir: str, budget: object) -> str:
    """The key of a proof of an object against its IR (`prove_on_compile`) within `budget`."""
    return _key("ir-bytecode", [elf, ir.encode()], budget)


def objects_key(elf_a: bytes, elf_b: bytes, name_a: str, name_b: str, budget: object) -> str:
    """The key of a proof of program `name_a` of one object against `name_b` of another (`prove_objects`)."""
    return _key("objects", [elf_a, elf_b, name_a.encode(), name_b.encode()], budget)


def _path(key: str) -> Path:
    return cache_directory() / f"{key}.json"


def lookup(key: str) -> ProofResult | None:
    """The verdict stored under `key`, or None (off, absent, unreadable or malformed). A verdict read
    here says so in its statistics (`cache: hit`)."""
    if not enabled():
        return None
    try:
        entry = json.loads(_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, unreadable, or not JSON (json's errors are ValueErrors)
        return None
    return _from_entry(entry)


def _from_entry(entry: Any) -> ProofResult | None:

    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        return None
    status, seconds, stats, reason, units = (entry.get(k) for k in ("status", "seconds", "stats", "reason", "units"))
    if status not in CACHED_STATUSES or not isinstance(seconds, int | float) or not isinstance(reason, str):
        return None
    if not isinstance(units, int) or isinstance(units, bool):
        return None
    if not isinstance(stats, dict) or not all(
            isinstance(k, str) and isinstance(v, int | float | str) for k, v in stats.items()):
        return None
    return ProofResult(status, float(seconds), {**stats, "cache": "hit"}, reason, units=units)


def worth_keeping(result: ProofResult) -> bool:
    """Whether `result` is a verdict on the program that the next run would give too: "proven", or an
    "unknown" that no wall-clock limit decided. Never a counterexample (see the module's docstring)."""
    if result.status == "proven":
        return True
    if result.status != "unknown":
        return False
    reason = result.reason.lower()
    return not any(marker in reason for marker in _WALL_CLOCK_MARKERS)


def store(key: str, result: ProofResult) -> None:
    """Keep `result` under `key` when it is `worth_keeping` and the cache is on. Never raises: a cache
    that cannot be written costs only the time of proving again."""
    if not enabled() or not worth_keeping(result):
        return
    stats = {k: v for k, v in result.stats.items() if k != "cache"}
    entry = {"format": FORMAT, "status": result.status, "seconds": result.seconds, "units": result.units,
             "stats": stats, "reason": result.reason}
    path = _path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside its final name and renamed over it: readers in other processes see the old
        # entry or the new one, never half a file.
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(entry, out)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, TypeError, ValueError) as exc:  # TypeError/ValueError: stats json cannot hold
        _log.debug("not caching the proof %s: %s", key[:16], exc)

