"""Generated programs by construct, in worker processes (not a timed test):
`python benchmarks/generated_features.py [--count N] [--seed S] [--workers W] [--prove-every K] [--budget UNITS]`
(`--report`: the table from what an interrupted run left).

The same programs and checks as benchmarks/generated_corpus.py (program i is
`generate_program(RandomChooser(seed + i))`, checked by tests/generated/checks.py), run by W child processes
so that a program that ends its process (an LLVM fatal error ends the Python process that compiles) is
recorded as a crash and the run goes on with the next seed. The table counts, for each construct the
generator records (issue 16's writes, redirects, tries, per-CPU hash maps, print, float fields, random()
comparisons, and the older ones), the programs that use it and those with a problem, so a bug shows which
feature it comes with. Writes benchmarks/results/generated_features.{txt,json}; the JSON keeps the
source of every problem program, and each worker's records go to a .jsonl beside it as they come.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def work(out: Path, seeds: list[int], prove_every: int, budget: int, packets: int) -> None:
    """Worker: check each seed, appending a "start" line before and the outcome after (a start without
    an outcome is a crash)."""
    import warnings

    from tests.generated.checks import check_program
    from tests.generated.program_strategy import RandomChooser, generate_program, packet_batch

    warnings.simplefilter("ignore")  # DslWarnings of generated float conversions
    directory = Path(tempfile.mkdtemp(prefix="pybpfdsl-features-"))
    for seed in seeds:
        with out.open("a") as f:
            f.write(json.dumps({"start": seed}) + "\n")
        gen = generate_program(RandomChooser(seed))
        started = time.perf_counter()
        prove = budget if prove_every and seed % prove_every == 0 else None
        o = check_program(gen, directory, f"gen_{seed}", packet_batch(RandomChooser(10**9 + seed), packets),
                          seed=seed, kernel=True, prove_budget=prove)
        record = {"seed": seed, "constructs": sorted(gen.constructs), "problems": o.problems(),
                  "compiled": o.compiled, "dsl_error": o.dsl_error, "verifier_ok": o.verifier_ok,
                  "kernel_ok": o.kernel_ok, "kernel_error": o.kernel_error, "proof": o.proof,
                  "seconds": round(time.perf_counter() - started, 2), "traceback": o.traceback,
                  "source": gen.source if o.problems() or o.kernel_ok is False else None}
        with out.open("a") as f:
            f.write(json.dumps(record) + "\n")


def _records(path: Path) -> tuple[list[dict[str, object]], list[int]]:
    done: dict[int, dict[str, object]] = {}
    started: list[int] = []
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if "start" in r:
                started.append(int(r["start"]))
            else:
                done[int(r["seed"])] = r  # type: ignore[arg-type]
    return list(done.values()), [s for s in started if s not in done]


def drive(args: argparse.Namespace, part: int, path: Path) -> None:
    """Run this part's seeds in a worker, starting a new one after each crash."""
    seeds = list(range(args.seed + part, args.seed + args.count, args.workers))
    crashed: set[int] = set()
    while seeds:
        subprocess.run([sys.executable, __file__, "--work", str(path), ",".join(map(str, seeds)),
                        "--prove-every", str(args.prove_every), "--budget", str(args.budget),
                        "--packets", str(args.packets)], cwd=ROOT, check=False)
        records, lost = _records(path)
        crashed |= set(lost)
        finished = {int(r["seed"]) for r in records} | crashed  # type: ignore[call-overload]
        seeds = [s for s in seeds if s not in finished]
    with path.open("a") as f:
        for seed in sorted(crashed):
            f.write(json.dumps({"seed": seed, "constructs": [], "problems": ["crash: the worker process died"],
                                "compiled": False, "crash": True}) + "\n")


def table(records: list[dict[str, object]], seconds: float) -> str:
    problems = [r for r in records if r["problems"]]
    by_construct: Counter[str] = Counter()
    bad_by_construct: Counter[str] = Counter()
    for r in records:
        for c in r["constructs"]:  # type: ignore[attr-defined]
            by_construct[c] += 1
            bad_by_construct[c] += bool(r["problems"])
    kinds = Counter(str(p).split(":")[0] + (": " + str(p).split(":")[1].strip() if str(p).startswith("verifier")
                                            else "") for r in problems for p in r["problems"])  # type: ignore[attr-defined]
    # By the kernel's reason (after " | "), with its numbers left out, not by the refused line.
    refused = Counter(re.sub(r"-?\d+", "N", str(r.get("kernel_error") or "").rpartition(" | ")[2])[:100]
                      for r in records if r.get("kernel_ok") is False)
    proofs = Counter(str(r.get("proof")) for r in records if r.get("proof"))
    compiled = sum(bool(r["compiled"]) for r in records)
    lines = [f"generated programs: {len(records)} in {seconds:.0f} s; compiled {compiled}; "
             f"with a problem {len(problems)}; proofs {dict(proofs)}", "", "problems by kind:"]
    lines += [f"  {n:>5}  {k}" for k, n in kinds.most_common()]
    lines += ["", f"kernel refusals: {sum(r.get('kernel_ok') is False for r in records)} (ours refused "
              f"{sum(r.get('kernel_ok') is False and r.get('verifier_ok') is False for r in records)} of them)"]
    lines += [f"  {n:>5}  {k}" for k, n in refused.most_common(8)]
    lines += ["", f"{'construct':<28}{'programs':>10}{'with a problem':>16}"]
    lines += [f"{c:<28}{n:>10}{bad_by_construct[c]:>16}" for c, n in sorted(by_construct.items())]
    lines += ["", "problem programs (sources in generated_features.json):"]
    lines += [f"  seed {r['seed']}: {str(r['problems'][0])[:150]}" for r in problems[:60]]  # type: ignore[index]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--packets", type=int, default=24)
    parser.add_argument("--prove-every", type=int, default=4, help="prove every K-th seed (0: none)")
    parser.add_argument("--budget", type=int, default=3_000_000, help="proof budget in resource units")
    parser.add_argument("--report", action="store_true",
                        help="only write the table from the records an interrupted run left")
    parser.add_argument("--work", nargs=2, metavar=("OUT", "SEEDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.work:
        work(Path(args.work[0]), [int(s) for s in args.work[1].split(",")], args.prove_every, args.budget,
             args.packets)
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = sorted(RESULTS.glob("generated_features.*.jsonl")) if args.report else \
        [RESULTS / f"generated_features.{part}.jsonl" for part in range(args.workers)]
    started = time.perf_counter()
    if not args.report:
        for path in paths:
            path.unlink(missing_ok=True)
        threads = [threading.Thread(target=drive, args=(args, part, path)) for part, path in enumerate(paths)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    records = sorted((r for path in paths for r in _records(path)[0]), key=lambda r: int(r["seed"]))  # type: ignore[call-overload]
    text = table(records, sum(float(r.get("seconds") or 0) for r in records) / max(1, len(paths))
                 if args.report else time.perf_counter() - started)
    (RESULTS / "generated_features.txt").write_text(text)
    (RESULTS / "generated_features.json").write_text(json.dumps(records, indent=1) + "\n")
    for path in paths:  # the records are in the JSON now
        path.unlink()
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
