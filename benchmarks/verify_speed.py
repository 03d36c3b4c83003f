"""Speed of the userspace verifier, and its verdicts, against a baseline measured in the same run.

`python benchmarks/verify_speed.py [--generated N] [--mutants RATE] [--baseline REV [--baseline-files PATH ...]
| --baseline-path DIR] [--only GLOB]`

The programs (built once, then cached in the temp directory so every run sees the very same bytes):

* ``generated``: ``generate_program(RandomChooser(seed))`` for seeds ``0..N-1`` (tests/generated), compiled
  with ``compile(prove=False, verify=False)``;
* ``examples``: every ``@xdp`` program of ``examples/``;
* ``c``: the C corpus (tests/verify/corpus/c), and ``third-party``: the clang-built objects of
  tests/verify/corpus/third_party (-O2), plus a deterministic share (``--mutants``) of the single-instruction
  mutants of the smaller ones.

Each program is verified once, in this process (``verify_object`` with the settings the corpus tests use
for clang objects: ``allow_uninit_stack_reads`` for the C and third-party ones). With ``--baseline REV``
the same programs are also verified by the package as of git revision ``REV`` (``--baseline-path``: a
directory holding a ``pybpfdsl`` package), in a child process run right after this one's, and the table
gives both times, their ratio and the number of programs whose findings (code, instruction) differ.
Times are CPU seconds (``time.process_time``): the machine may be shared.

Writes ``benchmarks/results/verify_speed.txt``; ``--diffs`` prints every verdict difference.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import hashlib
import importlib
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "verify_speed.txt"
CACHE = Path(tempfile.gettempdir()) / "pybpfdsl-verify-speed"


@dataclass(frozen=True)
class Program:
    kind: str
    name: str
    elf: bytes
    section: str | None
    """The program's section or function (None: the object's first program)."""
    clang: bool
    """Built by clang: verified as the corpus tests verify others' objects (privileged stack reads)."""


def _generated(count: int, workdir: Path) -> list[Program]:
    from tests.generated.checks import load_module
    from tests.generated.program_strategy import RandomChooser, generate_program

    out = []
    for seed in range(count):
        gen = generate_program(RandomChooser(seed))
        try:
            module, _ = load_module(gen.source, workdir, f"g{seed}")
            compiled = getattr(module, gen.function).compile(prove=False, verify=False)
        except Exception:  # a program that does not compile is not a verifier benchmark
            continue
        out.append(Program("generated", f"seed{seed}", compiled.elf, compiled.name, False))
    return out


def _examples() -> list[Program]:
    out = []
    for path in sorted(glob.glob(str(ROOT / "examples" / "*.py"))):
        mod_name = f"examples.{Path(path).stem}"
        if mod_name.endswith("__init__"):
            continue
        module = importlib.import_module(mod_name)
        for attr, v in vars(module).items():
            if getattr(v, "__pybpfdsl_program__", False) and v.__module__ == mod_name:
                c = v.compile(prove=False, verify=False)
                out.append(Program("examples", f"{Path(path).stem}.{attr}", c.elf, c.name, False))
    return out


def _clang_corpora(mutant_rate: float) -> list[Program]:
    from pybpfdsl.bpf.elf import BpfElf
    from tests.verify.corpus import c_corpus
    from tests.verify.corpus import third_party_corpus as tp

    if tp.missing_headers() is not None:
        return []
    out = [Program("c", p.name, p.elf, None, True) for p in c_corpus.programs()]
    for p in tp.programs(("O2",)):
        out.append(Program("third-party", p.name, p.elf, p.function, True))
        if len(BpfElf.from_bytes(p.elf).program(p.function).instructions) <= 150:
            out += [Program("mutants", c.name, c.elf, p.function, True) for c in tp.mutant_cases(p, mutant_rate)]
    return out


def _plain(progs: list[Program]) -> list[tuple[str, str, bytes, str | None, bool]]:
    """The programs as tuples of builtins, for pickling: a pickled :class:`Program` names its class by the
    module it was defined in, ``__main__`` when this file runs as a script, which the baseline's child
    process (and any other importer) cannot resolve."""
    return [(p.kind, p.name, p.elf, p.section, p.clang) for p in progs]


def _programs(rows: list[tuple[str, str, bytes, str | None, bool]]) -> list[Program]:
    return [Program(*row) for row in rows]


def corpus(generated: int, mutant_rate: float) -> list[Program]:
    """The programs, from the cache when it holds this selection (keyed by the arguments only: the cache
    pins the bytes, so a compiler change elsewhere does not change what is compared)."""
    key = hashlib.sha256(f"{generated}/{mutant_rate}/v2".encode()).hexdigest()[:16]
    path = CACHE / f"corpus-{key}.pickle"
    if path.exists():
        with open(path, "rb") as f:
            return _programs(pickle.load(f))
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        progs = _generated(generated, Path(d)) + _examples() + _clang_corpora(mutant_rate)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump(_plain(progs), f)
    os.replace(tmp, path)
    return progs


def measure(progs: list[Program]) -> list[dict[str, object]]:
    """Verify each program: CPU seconds, processed instructions, findings (code, instruction, message)."""
    from pybpfdsl.verify.analysis import verify_object

    rows = []
    for p in progs:
        started = time.process_time()
        try:
            r = verify_object(p.elf, p.section, allow_uninit_stack_reads=p.clang)
            findings = sorted({(f.code.value, f.insn, f.message) for f in r.findings})
            processed = r.processed
        except Exception as exc:  # a crash is a verdict too
            findings, processed = [("crash", -1, f"{type(exc).__name__}: {exc}")], 0
        rows.append({"seconds": time.process_time() - started, "processed": processed, "findings": findings})
    return rows


def _baseline_dir(rev: str) -> Path:
    # By commit, not by the name given: ``HEAD`` (or a branch) names another commit after every commit, and a
    # directory cached under the name kept the package of the first run it served.
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    dest = CACHE / f"baseline-{sha[:12]}"
    if not (dest / "pybpfdsl").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "pybpfdsl"], cwd=ROOT, check=True, capture_output=True)
        tar = dest / "src.tar"
        tar.write_bytes(archive.stdout)
        with tarfile.open(tar) as t:
            t.extractall(dest, filter="data")
        tar.unlink()
    return dest


def _tree_with_files(rev: str, files: list[str]) -> Path:
    """This working tree's ``pybpfdsl`` with ``files`` as of ``rev``: in a tree others edit at the same time,
    the baseline that isolates a change of those files from their uncommitted work."""
    dest = Path(tempfile.mkdtemp(prefix="verify-speed-base-"))
    shutil.copytree(ROOT / "pybpfdsl", dest / "pybpfdsl", ignore=shutil.ignore_patterns("__pycache__"))
    for f in files:
        shown = subprocess.run(["git", "show", f"{rev}:{f}"], cwd=ROOT, check=True, capture_output=True)
        (dest / f).write_bytes(shown.stdout)
    return dest


def _child(path: Path, progs_file: Path, out_file: Path) -> None:
    """Run :func:`measure` with the package found under ``path`` (the tests' helpers from this tree)."""
    code = (f"import sys, json, pickle; sys.path[:0] = [{str(path)!r}, {str(ROOT)!r}];\n"
            "import benchmarks.verify_speed as vs\n"
            f"progs = vs._programs(pickle.load(open({str(progs_file)!r}, 'rb')))\n"
            f"json.dump(vs.measure(progs), open({str(out_file)!r}, 'w'))\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(path))


def _stats(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{1000 * statistics.mean(xs):8.1f} {1000 * statistics.median(xs):7.1f} {1000 * max(xs):8.1f}"


def _key(findings: object) -> set[tuple[str, int]]:
    return {(str(c), int(i)) for c, i, _ in findings}  # type: ignore[attr-defined]


def table(progs: list[Program], new: list[dict[str, object]], base: list[dict[str, object]] | None) -> str:
    kinds = [*dict.fromkeys(p.kind for p in progs), "all"]
    lines = ["verify time per program, CPU ms (mean / median / max)" + (", this tree vs baseline" if base else ""),
             f"{'corpus':<12} {'n':>4}  {'mean':>8} {'median':>7} {'max':>8}"
             + (f"   {'base mean':>9} {'median':>7} {'max':>8}  {'speed-up':>8} {'verdicts differ':>15}" if base
                else "")]
    for k in kinds:
        idx = [i for i, p in enumerate(progs) if k in ("all", p.kind)]
        t_new = [float(new[i]["seconds"]) for i in idx]  # type: ignore[arg-type]
        line = f"{k:<12} {len(idx):>4}  {_stats(t_new)}"
        if base:
            t_base = [float(base[i]["seconds"]) for i in idx]  # type: ignore[arg-type]
            differ = sum(_key(new[i]["findings"]) != _key(base[i]["findings"]) for i in idx)
            ratio = sum(t_base) / max(sum(t_new), 1e-9)
            line += f"   {_stats(t_base)}  {ratio:7.2f}x {differ:>15}"
        lines.append(line)
    if base:
        exact = sum(new[i]["findings"] == base[i]["findings"] and new[i]["processed"] == base[i]["processed"]
                    for i in range(len(progs)))
        lines.append(f"findings (with their messages) and processed counts identical: {exact} of {len(progs)}")
    slow = sorted(range(len(progs)), key=lambda i: -float(new[i]["seconds"]))[:8]  # type: ignore[arg-type]
    lines.append("slowest here: " + ", ".join(f"{progs[i].kind}/{progs[i].name} "
                                               f"{1000 * float(new[i]['seconds']):.0f} ms" for i in slow))  # type: ignore[arg-type]
    return "\n".join(lines)


def diffs(progs: list[Program], new: list[dict[str, object]], base: list[dict[str, object]]) -> list[str]:
    out = []
    for p, n, b in zip(progs, new, base, strict=True):
        kn, kb = _key(n["findings"]), _key(b["findings"])
        if kn != kb:
            out.append(f"{p.kind}/{p.name}: only here {sorted(kn - kb)}, only in baseline {sorted(kb - kn)}")
        elif n["findings"] != b["findings"] or n["processed"] != b["processed"]:
            out.append(f"{p.kind}/{p.name}: same verdicts; messages or processed counts differ "
                       f"({n['processed']} here, {b['processed']} in baseline)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--generated", type=int, default=60)
    ap.add_argument("--mutants", type=float, default=0.05)
    ap.add_argument("--baseline", help="git revision whose pybpfdsl is the baseline")
    ap.add_argument("--baseline-path", help="directory holding the baseline's pybpfdsl package")
    ap.add_argument("--baseline-files", nargs="+", metavar="PATH",
                    help="with --baseline REV: the baseline is this working tree with only these files as of REV")
    ap.add_argument("--diffs", action="store_true", help="print every program whose findings differ")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--only", metavar="GLOB", help="only the programs whose kind/name matches (fnmatch); not written")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    progs = corpus(args.generated, args.mutants)
    if args.only:
        progs = [p for p in progs if fnmatch.fnmatch(f"{p.kind}/{p.name}", args.only)]
        args.no_write = True
    base = None
    if args.baseline or args.baseline_path:
        if args.baseline_files and args.baseline:
            path = _tree_with_files(args.baseline, args.baseline_files)
        else:
            path = Path(args.baseline_path) if args.baseline_path else _baseline_dir(args.baseline)
        with tempfile.TemporaryDirectory() as d:
            pf, of = Path(d) / "progs.pickle", Path(d) / "base.json"
            with open(pf, "wb") as f:
                pickle.dump(_plain(progs), f)
            new = measure(progs)
            _child(path.resolve(), pf, of)
            base = json.loads(of.read_text())
    else:
        new = measure(progs)
    new = json.loads(json.dumps(new))  # the same shapes as the child's (tuples become lists)
    text = table(progs, new, base)
    if base and args.diffs:
        text += "\n" + "\n".join(diffs(progs, new, base))
    print(text)
    if not args.no_write:
        RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
