"""The kernel-differential corpus: every example and construct program plus their mutants, and the C
corpus (``c/*.c``), each loaded into the kernel (libbpf, as root) and run through our verifier; the
table of agreements/disagreements.

Run the whole corpus with ``python -m tests.verify.corpus.differential`` (a few minutes);
``tests/verify/corpus/test_kernel_differential.py`` runs a deterministic sample in the normal suite.

Our verifier runs with ``allow_uninit_stack_reads=True``: the kernel lets privileged loaders (we load
as root) read never-written stack, so that is the setting that decides the same question.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from pybpfdsl.runtime.bpf_object import BpfObject, LoadError
from pybpfdsl.verify.analysis import verify_object
from tests.verify.corpus.mutants import mutants

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "verifier_differential.txt")


@dataclass
class Outcome:
    name: str
    kind: str
    kernel_ok: bool
    ours_ok: bool
    our_codes: tuple[str, ...]
    kernel_log_tail: str = ""
    our_seconds: float = 0.0


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    elf: bytes
    section: str


def _fingerprint() -> str:
    """Of every source the compiled programs depend on: the package, the examples, the constructs."""
    h = hashlib.sha256()
    files = sorted(glob.glob(f"{ROOT}/pybpfdsl/**/*.py", recursive=True)
                   + glob.glob(f"{ROOT}/examples/*.py") + [f"{ROOT}/tests/differential/constructs.py"])
    for path in files:
        h.update(path.encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:24]


def _compile_all() -> list[tuple[str, bytes, str]]:
    mods = [f"examples.{os.path.basename(p)[:-3]}" for p in sorted(glob.glob(f"{ROOT}/examples/*.py"))
            if not p.endswith("__init__.py")] + ["tests.differential.constructs"]
    out = []
    for mn in mods:
        m = importlib.import_module(mn)
        for n, v in vars(m).items():
            if getattr(v, "__pybpfdsl_program__", False) and v.__module__ == mn:
                c = v.compile(prove=False, verify=False)  # the corpus needs the bytes
                out.append((n, c.elf, c.name))
    return out


def programs() -> Iterator[tuple[str, bytes, str]]:
    """Every example and construct program, compiled (cached in the temp directory by a fingerprint of
    all the sources involved: compiling them all takes about a minute)."""
    import pickle
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"pybpfdsl-dsl-corpus-{_fingerprint()}.pickle")
    try:
        with open(path, "rb") as f:
            cached: list[tuple[str, bytes, str]] = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        cached = _compile_all()
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(cached, f)
        os.replace(tmp, path)
    yield from cached


def kernel_accepts(elf: bytes, name: str) -> tuple[bool, str]:
    try:
        obj = BpfObject.load(elf, name[:15], log_level=0)
    except LoadError as exc:
        return False, str(exc.log)[-300:]
    obj.close()
    return True, ""


def _sampled(name: str, rate: float) -> bool:
    """Deterministic: the same mutants are chosen on every run and machine."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return h < rate * (1 << 64)


def cases(mutant_rate: float = 1.0, with_c: bool = True) -> list[Case]:
    """Every original, the mutants chosen at ``mutant_rate`` (1.0: all), and the C corpus."""
    out: list[Case] = []
    for name, elf, section in programs():
        out.append(Case(name, "original", elf, section))
        for m in mutants(elf, section, name):
            if mutant_rate >= 1.0 or _sampled(m.name, mutant_rate):
                out.append(Case(m.name, m.kind, m.elf, section))
    if with_c:
        from tests.verify.corpus.c_corpus import clang
        from tests.verify.corpus.c_corpus import programs as c_programs

        if clang() is not None:
            for p in c_programs():
                out.append(Case(p.name, "c corpus (" + ("safe" if p.expect_ok else "unsafe") + ")", p.elf, "prog"))
    return out


def ours(case: Case) -> tuple[bool, tuple[str, ...], float]:
    started = time.perf_counter()
    r = verify_object(case.elf, case.section, allow_uninit_stack_reads=True)
    return r.ok, tuple(sorted({f.code.value for f in r.errors})), time.perf_counter() - started


def _ours_by_index(i: int) -> tuple[bool, tuple[str, ...], float]:
    return ours(_WORK[i])


_WORK: list[Case] = []


def run(all_cases: list[Case], workers: int | None = None) -> list[Outcome]:
    """Our analysis runs in ``workers`` forked processes (default: one per CPU) while the kernel loads
    run in a thread of this one (ctypes releases the GIL during the system calls)."""
    import multiprocessing

    n = workers or os.cpu_count() or 1
    out: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        futures: list[Future[tuple[bool, str]]] = [pool.submit(kernel_accepts, c.elf, c.section) for c in all_cases]
        if n > 1 and "fork" in multiprocessing.get_all_start_methods():
            _WORK[:] = all_cases
            with multiprocessing.get_context("fork").Pool(n) as procs:
                results = procs.map(_ours_by_index, range(len(all_cases)), chunksize=8)
            _WORK.clear()
        else:
            results = [ours(c) for c in all_cases]
        for c, fut, (ok, codes, secs) in zip(all_cases, futures, results, strict=True):
            k_ok, log = fut.result()
            out.append(Outcome(c.name, c.kind, k_ok, ok, codes, log, secs))
    return out


def run_corpus(mutant_rate: float = 1.0) -> list[Outcome]:
    return run(cases(mutant_rate))


def table(outcomes: list[Outcome], diffs: bool = True) -> str:
    rows = Counter((o.kind, o.kernel_ok, o.ours_ok) for o in outcomes)
    kinds = sorted({o.kind for o in outcomes})
    lines = [f"{'kind':28} {'n':>5} {'agree':>6} {'we-accept-kernel-rejects':>25} {'kernel-accepts-we-reject':>25}"]
    for k in kinds:
        n = sum(v for (kk, _, _), v in rows.items() if kk == k)
        agree = rows[(k, True, True)] + rows[(k, False, False)]
        lines.append(f"{k:28} {n:5} {agree:6} {rows[(k, False, True)]:25} {rows[(k, True, False)]:25}")
    s = summary(outcomes)
    lines.append(f"total {s['total']}; agreements {s['agreements']}; we-accept-kernel-rejects (unsafe accepts) "
                 f"{s['unsafe_accepts']}; kernel-accepted {s['kernel_accepted']}, we accept {s['we_accept']} "
                 f"({s['precision']:.1f}%)")
    by_code = Counter(c for o in outcomes if o.kernel_ok and not o.ours_ok for c in o.our_codes)
    if by_code:
        lines.append("kernel-accepts-we-reject by our error code: "
                     + ", ".join(f"{c} {n}" for c, n in by_code.most_common()))
    if diffs:
        for o in outcomes:
            if o.kernel_ok != o.ours_ok:
                lines.append(f"  diff {o.name:45} kernel={'ok' if o.kernel_ok else 'reject'} "
                             f"ours={'ok' if o.ours_ok else ','.join(o.our_codes)}")
    return "\n".join(lines)


def summary(outcomes: list[Outcome]) -> dict[str, float]:
    accepted = [o for o in outcomes if o.kernel_ok]
    ours_ok = [o for o in accepted if o.ours_ok]
    return {
        "total": len(outcomes),
        "agreements": sum(o.kernel_ok == o.ours_ok for o in outcomes),
        "unsafe_accepts": sum(not o.kernel_ok and o.ours_ok for o in outcomes),
        "kernel_accepted": len(accepted),
        "we_accept": len(ours_ok),
        "precision": 100 * len(ours_ok) / max(1, len(accepted)),
    }


def write_results(text: str, path: str = RESULTS) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    text = table(run_corpus(rate))
    print(text)
    if rate >= 1.0:
        write_results("full corpus (python -m tests.verify.corpus.differential)\n" + text)
