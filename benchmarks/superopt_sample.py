"""The superoptimizer on a sample of small objects, with listings: for before/after comparisons of the search.

`python benchmarks/superopt_sample.py --out NAME [--budget N] [--max-slots N] [--passes N] [--only SUBSTR ...]`
optimises the C corpus's objects and the third-party objects of at most ``--max-slots`` slots (each
object's best clang build, as `benchmarks/superopt.py` picks it) with the default search (seed 0, no
rule cache) and writes per object the slots before and after, the proven reduction, the verdicts, the
CPU seconds of the process (`time.process_time`, never wall clock: the machine is shared) and the listing,
into NAME.json (and NAME.txt, the summary). Runs the kernel check like `pybpfdsl optimize`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from superopt import _corpus_objects, _slots, _third_party_objects  # noqa: E402

from pybpfdsl.superopt.api import optimize_object  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="path without suffix")
    ap.add_argument("--budget", type=int, default=600)
    ap.add_argument("--max-slots", type=int, default=120)
    ap.add_argument("--passes", type=int, default=None, help="search passes (default: the optimizer's)")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--no-corpus", action="store_true")
    ap.add_argument("--no-third-party", action="store_true")
    args = ap.parse_args(argv)
    subjects = ([] if args.no_corpus else _corpus_objects()) + ([] if args.no_third_party else _third_party_objects())
    rows = []
    for name, origin, builds in subjects:
        if args.only and not any(s in name for s in args.only):
            continue
        build, elf = min(builds.items(), key=lambda kv: (_slots(kv[1]), kv[0]))
        if _slots(elf) > args.max_slots:
            continue
        t0 = time.process_time()
        res = optimize_object(elf, proposals=args.budget,
                              **({} if args.passes is None else {"passes": args.passes}))
        cpu = time.process_time() - t0
        before, after = _slots(elf), _slots(res.after)
        rows.append({"name": name, "origin": origin, "build": build, "before": before, "after": after,
                     "reduction": (before - after) / before if before else 0.0, "proof": res.proof.status,
                     "proven_by": res.proven_by, "kernel": res.kernel.status, "verifier": res.verifier.status,
                     "cpu": round(cpu, 2), "proposals": sum(g.proposals for g in res.logs),
                     "window_proofs": sum(g.proofs for g in res.logs),
                     "refuted": sum(g.refuted for g in res.logs), "rewrites": len(res.rewrites),
                     "notes": res.notes, "listing": res.listing()})
        print(f"{name:60s} {before:5d} {after:5d} {rows[-1]['reduction']*100:5.1f}% {res.proof.status:8s} "
              f"{res.kernel.status:8s} {cpu:6.1f}s", flush=True)
    Path(args.out + ".json").write_text(json.dumps(rows, indent=1))
    red = [r["reduction"] for r in rows]
    lines = [f"{len(rows)} objects, budget {args.budget}, seed 0: mean reduction {statistics.mean(red)*100:.2f}% "
             f"(median {statistics.median(red)*100:.2f}%), slots {sum(r['before'] for r in rows)} -> "
             f"{sum(r['after'] for r in rows)}, CPU {sum(r['cpu'] for r in rows):.0f} s"]
    lines += [f"{r['name']:60s} {r['before']:5d} {r['after']:5d} {r['reduction']*100:5.1f}% {r['proof']:8s} "
              f"{r['kernel']:8s} {r['cpu']:6.1f}s" for r in rows]
    Path(args.out + ".txt").write_text("\n".join(lines) + "\n")
    print(lines[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
