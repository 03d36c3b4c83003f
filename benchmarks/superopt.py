"""The superoptimizer on clang-built objects and on the examples: slots before and after, and verdicts.

`python benchmarks/superopt.py [--budget N] [--only SUBSTR ...] [--no-third-party] [--no-corpus]
[--no-examples] [--out NAME]`, and `--rules-study [--max-slots N]` for the rule cache's measurement
(`rules_study`, results in benchmarks/results/superopt_rules.{txt,json}).

Subjects: the C corpus's accepted programs (`tests/verify/corpus/c/ok_*.c`) built at -O1, -O2 and -O3,
the third-party corpus (xdp-tutorial, xdp-tools, katran; `tests/verify/corpus/third_party/`) at -O1,
-O2 and -O3, each object's *best* build (fewest code slots) being the input, and the examples compiled
by pybpfdsl. Each object is optimised whole (every code section) with the default search (budget in
proposals per window, never seconds; seed 0) and no rule cache (each row stands alone). Each output is
counted twice: as `pybpfdsl optimize` gives it by default (proven whole: by the path-exploring prover,
or by the lock-step proof where that prover cannot decide; the column says "lockstep" then) and with
`--trust-window-proofs` (an output neither proof decides kept on its window proofs). The
kernel then loads every XDP program of the output on its own (as the third-party corpus does) wherever
it loads the input's, and runs each on the same frames as the input's (BPF_PROG_TEST_RUN, fresh maps):
actions and packets must agree. A row counts the object's code slots (lddw = 2), all sections. Writes
benchmarks/results/<out>.json and .txt.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpfdsl.bpf.elf import BpfElf  # noqa: E402
from pybpfdsl.superopt.api import WHOLE_PROOF_UNITS, optimize_object  # noqa: E402
from pybpfdsl.superopt.kernel_check import load_alone  # noqa: E402
from pybpfdsl.superopt.rules import RuleCache  # noqa: E402
from tests.verify.corpus import third_party_corpus as tp  # noqa: E402
from tests.verify.corpus.c_corpus import CLANG_FLAGS, _arch_include  # noqa: E402
from tests.verify.corpus.c_corpus import HERE as C_HERE  # noqa: E402

LEVELS = ("-O1", "-O2", "-O3")


@dataclass
class Row:
    name: str
    origin: str
    build: str
    functions: list[str]
    before: int
    after: int
    """Slots of the output accepted on its window proofs (the whole-program proof "proven" or "unknown")."""
    proof: str
    verifier: str
    kernel: str
    rewrites: int
    proposals: int
    seconds: float
    reason: str = ""
    proven_by: str = ""
    """"paths" (the bytecode prover), "lock-step" (the prover undecided, the lock-step proof proved it),
    "window proofs" (neither decided), "" (unchanged)."""

    @property
    def reduction(self) -> float:
        return (self.before - self.after) / self.before if self.before else 0.0

    @property
    def proven_reduction(self) -> float:
        """The reduction counting only outputs proven whole (by paths or in lock step; the others as 0)."""
        return self.reduction if self.proof == "ok" else 0.0

    @property
    def paths_reduction(self) -> float:
        """The reduction counting only outputs the path-exploring prover proved."""
        return self.reduction if self.proof == "ok" and self.proven_by != "lock-step" else 0.0


def _slots(elf: bytes) -> int:
    e = BpfElf.from_bytes(elf)
    return sum(p.slots for p in e.programs.values()) + (e.text.slots if e.text is not None else 0)


def _corpus_objects() -> list[tuple[str, str, dict[str, bytes]]]:
    cc = shutil.which("clang")
    assert cc is not None, "clang is not installed"
    out = []
    tmp = Path(tempfile.mkdtemp(prefix="superopt-bench-"))
    for src in sorted(Path(C_HERE).glob("ok_*.c")):
        builds = {}
        for level in LEVELS:
            dst = tmp / f"{src.stem}{level}.o"
            flags = [f for f in CLANG_FLAGS if f != "-O2"]
            subprocess.run([cc, level, *flags, *_arch_include(), "-I", str(C_HERE), "-c", str(src), "-o", str(dst)],
                           check=True, capture_output=True)
            builds[level] = dst.read_bytes()
        out.append((src.stem, "clang corpus", builds))
    shutil.rmtree(tmp)
    return out


def _third_party_objects() -> list[tuple[str, str, dict[str, bytes]]]:
    tp.BUILDS.setdefault("O3", ("-O3",))
    by_source: dict[str, dict[str, bytes]] = {}
    for prog in tp.programs(("O1", "O2", "O3")):
        by_source.setdefault(f"{prog.corpus}/{prog.source}", {})[f"-{prog.build}"] = prog.elf
    return [(name, "clang third-party", builds) for name, builds in sorted(by_source.items())]


def _example_objects() -> list[tuple[str, str, dict[str, bytes]]]:
    from tests.verify.equivalence import ground_truth as gt

    return [(s.name, "example", {"pybpfdsl": s.elf}) for s in gt.example_subjects()]


def _packets() -> list[bytes]:
    """Frames every XDP program can take: IPv4 TCP/UDP/ICMP, IPv6 UDP, ARP, a VLAN tag, a bare Ethernet
    header, and bytes that parse as nothing."""
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"

    def ipv4(proto: int, payload: bytes) -> bytes:
        return eth + b"\x08\x00" + bytes([0x45, 0, 0, 20 + len(payload), 0, 1, 0x40, 0, 64, proto, 0, 0,
                                             10, 0, 0, 1, 10, 0, 0, 2]) + payload

    ports = b"\x30\x39\x00\x50"
    ipv6 = eth + b"\x86\xdd" + b"\x60\x00\x00\x00\x00\x10\x11\x40" + b"\x20\x01" + bytes(14) + b"\x20\x01" + \
        bytes(13) + b"\x01" + ports + b"\x00\x10\x00\x00" + bytes(8)
    return [ipv4(6, ports + bytes(8) + b"\x50\x02\x20\x00" + bytes(4)),
            ipv4(17, ports + b"\x00\x10\x00\x00" + bytes(8)),
            ipv4(1, b"\x08\x00\x00\x00\x00\x01\x00\x01" + bytes(8)), ipv6,
            eth + b"\x08\x06" + bytes(28), eth + b"\x81\x00\x00\x05\x08\x00" + ipv4(17, ports + bytes(12))[14:],
            eth + b"\x08\x00", bytes(range(64))]


PACKETS = _packets()


def _varies(before: bytes, after: bytes, function: str, frame: int, runs: int = 16) -> bool:
    """Whether the answers of ``runs`` more runs of each program on one frame overlap (a random program)."""
    packets = [PACKETS[frame]] * runs
    answers = [set(load_alone(elf, function, packets).runs) for elf in (before, after)]
    return bool(answers[0] & answers[1]) and (len(answers[0]) > 1 or len(answers[1]) > 1)


def _kernel(before: bytes, after: bytes) -> str:
    """"ok" when every XDP program the kernel loads from the input it loads from the output, and both
    give the same action and packet on every frame of `PACKETS` (each from fresh maps); "DIFFERENT" or
    "REFUSED" name the first program that does not."""
    verdicts = []
    for function, _section in tp.entries(before):
        want = load_alone(before, function, PACKETS)
        if not want.loaded:
            verdicts.append("input-refused")
            continue
        # A frame on which the input itself differs from run to run (bytes a grown tail leaves as they
        # were) says nothing about the output: only the frames the input answers the same twice count.
        again = load_alone(before, function, PACKETS)
        stable = [i for i in range(len(PACKETS)) if want.runs[i] == again.runs[i]]
        got = load_alone(after, function, PACKETS)
        if got.loaded:
            # A program that draws random numbers (bpf_get_prandom_u32) may answer the same twice by
            # chance: a frame the output answers otherwise counts only if no further run of either
            # program on it answers as the other did.
            stable = [i for i in stable if got.runs[i] == want.runs[i] or not _varies(before, after, function, i)]
        if not got.loaded:
            verdicts.append(f"REFUSED {function}: {got.message[:150]}")
        elif any(got.runs[i] != want.runs[i] for i in stable):
            n = next(i for i in stable if got.runs[i] != want.runs[i])
            verdicts.append(f"DIFFERENT {function} on packet {n}: {want.runs[n][0]} vs {got.runs[n][0]}")
        else:
            verdicts.append("ok" if len(stable) == len(PACKETS) else f"ok ({len(PACKETS) - len(stable)} frames "
                            "vary in the input itself)")
    bad = [v for v in verdicts if v.startswith(("REFUSED", "DIFFERENT"))]
    if bad:
        return bad[0]
    oks = [v for v in verdicts if v.startswith("ok")]
    return max(oks, key=len) if oks else "skipped (the input does not load)"


def run(name: str, origin: str, builds: dict[str, bytes], budget: int, proof_units: int = WHOLE_PROOF_UNITS) -> Row:
    build, elf = min(builds.items(), key=lambda kv: (_slots(kv[1]), kv[0]))
    started = time.perf_counter()
    result = optimize_object(elf, proposals=budget, trust_window_proofs=True, whole_proof_units=proof_units)
    seconds = time.perf_counter() - started
    # The gate loaded every program of the output the kernel loads from the input (refused rewrites were
    # dropped there); the corpus's own loader confirms it here, independently.
    kernel = _kernel(elf, result.after) if result.after != elf else "unchanged"
    reasons = "; ".join([f"{k}: {v.reason[:160]}" for k, v in
                         (("verifier", result.verifier), ("proof", result.proof)) if v.reason] + result.notes)
    return Row(name, origin, build, [f for f, _ in tp.entries(elf)], _slots(elf), _slots(result.after),
               result.proof.status, result.verifier.status, kernel, len(result.rewrites),
               sum(log.proposals for log in result.logs), round(seconds, 2), reasons, result.proven_by)


def _write(rows: list[Row], out: str, budget: int, final: bool, notes: tuple[str, ...] = ()) -> None:
    changed = [r for r in rows if r.after < r.before]
    mean = statistics.mean(r.reduction for r in rows) if rows else 0.0
    proven = statistics.mean(r.proven_reduction for r in rows) if rows else 0.0
    median = statistics.median(r.proven_reduction for r in rows) if rows else 0.0
    paths = statistics.mean(r.paths_reduction for r in rows) if rows else 0.0
    lock = sum(r.proof == "ok" and r.proven_by == "lock-step" for r in rows)
    secs = [r.seconds for r in rows]
    lines = [f"superopt: {len(rows)} objects, budget {budget} proposals per window, seed 0, no rule cache"
             + ("" if final else " (partial)"),
             f"mean reduction {100 * proven:.2f}% (median {100 * median:.2f}%) counting only outputs proven whole "
             f"(the default of `pybpfdsl optimize`): {100 * paths:.2f}% by the path-exploring prover alone, the rest "
             f"by the lock-step proof where that prover could not decide ({lock} objects); {100 * mean:.2f}% with "
             f"--trust-window-proofs (also outputs neither proof decided, on their window proofs and the kernel); "
             f"{len(changed)} objects smaller; total slots {sum(r.before for r in rows)} -> "
             f"{sum(r.after for r in rows)}",
             f"kernel refusals of an output: {sum(r.kernel.startswith('REFUSED') for r in rows)}; outputs the kernel "
             f"ran differently from their input: {sum(r.kernel.startswith('DIFFERENT') for r in rows)}; "
             f"outputs no whole-program proof decided (resting on window proofs): "
             f"{sum(r.proof == 'unknown' for r in rows)}; refuted: {sum(r.proof == 'failed' for r in rows)}",
             f"time per object: mean {statistics.mean(secs) if secs else 0:.1f} s, median "
             f"{statistics.median(secs) if secs else 0:.1f} s, max {max(secs, default=0):.1f} s (2-core machine, "
             "shared; no result depends on it: every budget is in proposals or solver units)", *notes,
             "", f"{'object':62} {'origin':18} {'build':8} {'before':>6} {'after':>6} {'red.%':>6} "
             f"{'proof':8} {'kernel':10} {'sec':>6}"]
    for r in rows:
        proof = "lockstep" if r.proof == "ok" and r.proven_by == "lock-step" else r.proof
        lines.append(f"{r.name[:62]:62} {r.origin:18} {r.build:8} {r.before:6} {r.after:6} "
                     f"{100 * r.reduction:6.1f} {proof:8} {r.kernel[:40]:10} {r.seconds:6.1f}")
    notes = [f"  {r.name}: {r.reason}" for r in rows if r.reason and "no rewrite" not in r.reason]
    if notes:
        lines += ["", "why a check did not say ok:", *notes]
    res = ROOT / "benchmarks" / "results"
    study = res / "superopt_rules.txt"
    if final and out == "superopt" and study.exists():
        # The rule cache is measured apart (`rules_study`: every row above runs without a cache).
        lines += ["", "rule cache (--rules-study; the table in superopt_rules.txt):",
                  *(f"  {line}" for line in study.read_text().splitlines()[:3])]
    text = "\n".join(lines)
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{out}.txt").write_text(text + "\n")
    (res / f"{out}.json").write_text(json.dumps({"budget": budget, "complete": final, "mean_reduction": mean,
                                                 "mean_proven_reduction": proven, "mean_paths_reduction": paths,
                                                 "rows": [asdict(r) | {"reduction": round(r.reduction, 4)}
                                                          for r in rows]}, indent=1) + "\n")
    if final:
        print(text)


@dataclass
class StudyRow:
    name: str
    phase: str
    """"train" (the C corpus in order, one cache growing), "search" (held out, no cache), "rules" (held
    out, the trained cache's rules alone, no search)."""
    before: int
    after: int
    by_rule: int
    """Rewrites the cache gave (each proven again for its window)."""
    rewrites: int
    proposals: int
    cpu: float
    proof: str
    rules: int
    """Rules in the cache after this object."""


def rules_study(budget: int, max_slots: int, proof_units: int = WHOLE_PROOF_UNITS) -> list[StudyRow]:
    """Do the rules one program's search proves make the next program cheaper? (EPSO's claim.)

    Train: the C corpus, object after object, with one cache that starts empty and keeps what each
    search proves; a row counts the rewrites the cache gave that object (rules from the objects before
    it). Held out: each third-party object of at most ``max_slots`` slots optimised twice, by the search
    without a cache and by the trained cache's rules alone (no proposal at all): slots and CPU time
    (`time.process_time`, this process only) of each. Every output is gated as `pybpfdsl optimize`
    gates it (our verifier, the kernel, the whole-program proof)."""
    rows: list[StudyRow] = []
    cache = RuleCache(None)

    def one(name: str, phase: str, elf: bytes, proposals: int, rules: RuleCache | None) -> None:
        started = time.process_time()
        result = optimize_object(elf, proposals=proposals, rules=rules, whole_proof_units=proof_units)
        cpu = time.process_time() - started
        rows.append(StudyRow(name, phase, _slots(elf), _slots(result.after),
                             sum(r.source == "rule" for r in result.rewrites), len(result.rewrites),
                             sum(log.proposals for log in result.logs), round(cpu, 2), result.proof.status,
                             len(cache.rules)))
        r = rows[-1]
        print(f"{phase} {name}: {r.before} -> {r.after} ({r.by_rule} by rule; {r.cpu:.1f} s CPU)", flush=True)

    for name, _origin, builds in _corpus_objects():
        _build, elf = min(builds.items(), key=lambda kv: (_slots(kv[1]), kv[0]))
        one(name, "train", elf, budget, cache)
    for name, _origin, builds in _third_party_objects():
        _build, elf = min(builds.items(), key=lambda kv: (_slots(kv[1]), kv[0]))
        if _slots(elf) > max_slots:
            continue
        one(name, "search", elf, budget, None)
        one(name, "rules", elf, 0, cache)
    _write_study(rows, budget, max_slots)
    return rows


def _write_study(rows: list[StudyRow], budget: int, max_slots: int) -> None:
    def red(r: StudyRow) -> float:
        return (r.before - r.after) / r.before if r.before and r.proof == "ok" else 0.0

    train = [r for r in rows if r.phase == "train"]
    search = [r for r in rows if r.phase == "search"]
    alone = {r.name: r for r in rows if r.phase == "rules"}
    later = train[len(train) // 2:]
    lines = [f"rule cache (EPSO): budget {budget} proposals per window; CPU seconds by time.process_time",
             f"train: {len(train)} C-corpus objects in order, one cache: {train[-1].rules if train else 0} rules; "
             f"{sum(r.by_rule for r in train)} of {sum(r.rewrites for r in train)} kept rewrites came from rules found "
             f"on earlier objects ({sum(r.by_rule for r in later)} of {sum(r.rewrites for r in later)} in the second "
             f"half); mean proven reduction {100 * statistics.mean(map(red, train)) if train else 0:.2f}%",
             f"held out: {len(search)} third-party objects of <= {max_slots} slots: search without a cache "
             f"{100 * statistics.mean(map(red, search)) if search else 0:.2f}% mean proven reduction in "
             f"{sum(r.cpu for r in search):.0f} s CPU ({sum(r.proposals for r in search)} proposals); the trained "
             f"rules alone {100 * statistics.mean(red(alone[r.name]) for r in search) if search else 0:.2f}% in "
             f"{sum(alone[r.name].cpu for r in search):.0f} s CPU (0 proposals), "
             f"{sum(alone[r.name].by_rule for r in search)} rule rewrites; objects the rules alone made smaller: "
             f"{sum(alone[r.name].after < r.before for r in search)}",
             "", f"{'object':62} {'phase':6} {'before':>6} {'after':>6} {'rule':>4} {'all':>4} {'cpu s':>7} proof"]
    for r in rows:
        lines.append(f"{r.name[:62]:62} {r.phase:6} {r.before:6} {r.after:6} {r.by_rule:4} {r.rewrites:4} "
                     f"{r.cpu:7.1f} {r.proof}")
    res = ROOT / "benchmarks" / "results"
    (res / "superopt_rules.txt").write_text("\n".join(lines) + "\n")
    (res / "superopt_rules.json").write_text(json.dumps({"budget": budget, "max_slots": max_slots,
                                                        "rows": [asdict(r) for r in rows]}, indent=1) + "\n")
    print("\n".join(lines[:3]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--budget", type=int, default=600, help="MCMC proposals per window")
    ap.add_argument("--only", nargs="*", default=[], help="objects whose name contains one of these")
    ap.add_argument("--no-corpus", action="store_true")
    ap.add_argument("--no-third-party", action="store_true")
    ap.add_argument("--no-examples", action="store_true")
    ap.add_argument("--out", default="superopt")
    ap.add_argument("--proof-units", type=int, default=WHOLE_PROOF_UNITS,
                    help="Z3 units of the whole-program proof of each entry program")
    ap.add_argument("--render", action="store_true", help="only write the .txt again from the .json")
    ap.add_argument("--merge", metavar="NAME", help="with --render: rows of results NAME.json replace those of "
                    "the same object (a rerun of some objects)")
    ap.add_argument("--note", nargs="*", default=[], help="with --render: lines to add under the summary")
    ap.add_argument("--rules-study", action="store_true", help="measure the rule cache (`rules_study`)")
    ap.add_argument("--max-slots", type=int, default=120, help="with --rules-study: the held-out objects' size")
    args = ap.parse_args(argv)
    if args.rules_study:
        os.environ.setdefault("PYBPFDSL_CACHE", "0")
        rules_study(args.budget, args.max_slots, args.proof_units)
        return 0
    if args.render:
        res = ROOT / "benchmarks" / "results"
        data = json.loads((res / f"{args.out}.json").read_text())
        fields = set(Row.__dataclass_fields__)
        rows = [Row(**{k: v for k, v in r.items() if k in fields}) for r in data["rows"]]
        if args.merge:
            newer = {r["name"]: Row(**{k: v for k, v in r.items() if k in fields})
                     for r in json.loads((res / f"{args.merge}.json").read_text())["rows"]}
            names = {r.name for r in rows}
            rows = [newer.get(r.name, r) for r in rows] + [r for r in newer.values() if r.name not in names]
        _write(rows, args.out, data["budget"], final=True, notes=tuple(args.note))
        return 0
    os.environ.setdefault("PYBPFDSL_CACHE", "0")
    subjects = []
    if not args.no_corpus:
        subjects += _corpus_objects()
    if not args.no_third_party:
        subjects += _third_party_objects()
    if not args.no_examples:
        subjects += _example_objects()
    subjects = [s for s in subjects if not args.only or any(o in s[0] for o in args.only)]
    rows: list[Row] = []
    for name, origin, builds in subjects:
        rows.append(run(name, origin, builds, args.budget, args.proof_units))
        print(f"{name}: {rows[-1].before} -> {rows[-1].after} proof {rows[-1].proof} kernel {rows[-1].kernel} "
              f"({rows[-1].seconds:.1f} s)", flush=True)
        _write(rows, args.out, args.budget, final=False)
    _write(rows, args.out, args.budget, final=True)
    bad = [r for r in rows if r.kernel.startswith(("REFUSED", "DIFFERENT"))]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
