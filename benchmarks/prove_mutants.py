"""The prover against the kernel on single-instruction mutants (not a timed test).

`python benchmarks/prove_mutants.py [--rate R] [--only NAME ...] [--no-examples] [--no-clang]`

Every subject (the examples, compiled without the proof, and the clang-built XDP programs of
`tests/verify/corpus/c/ok_*.c` and `tests/verify/equivalence/c/*.c`) is mutated one instruction at a
time (`tests/verify/equivalence/mutants.edits`); each mutant the kernel loads runs beside the original
on the same packets and states (`tests/verify/equivalence/ground_truth.py`) and is proved against it.
Prints the table (mutants, kernel-refused, kernel-different, caught, missed, false "proven", false
counterexamples) and every finding, and writes benchmarks/results/prove_mutants.json and .txt (only
for a full run: `--rate 1` and no `--only`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.verify.equivalence import ground_truth as gt  # noqa: E402

FINDINGS = (gt.FALSE_PROVEN, gt.FALSE_CEX, gt.CRASH, gt.MISSED, gt.UNCONFIRMED)


def _subjects(examples: bool, clang: bool, only: list[str]) -> list[gt.Subject]:
    out: list[gt.Subject] = []
    if clang:
        out += [gt.clang_subject(p) for p in gt.c_sources()]
    if examples:
        out += gt.example_subjects()
    return [s for s in out if not only or s.name in only]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1.0, help="fraction of each subject's mutants (deterministic)")
    ap.add_argument("--only", nargs="*", default=[], help="subject names")
    ap.add_argument("--no-examples", action="store_true")
    ap.add_argument("--no-clang", action="store_true")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    frames = gt.packets()
    judgements: list[gt.Judgement] = []
    per_subject: dict[str, dict[str, int]] = {}
    for subject in _subjects(not args.no_examples, not args.no_clang, args.only):
        chosen = [m for m in gt.mutants_of(subject) if args.rate >= 1.0 or gt.sampled(m.name, args.rate)]
        done = gt.judge_all(subject, chosen, frames)
        judgements += done
        per_subject[subject.name] = gt.table(done)
        t = per_subject[subject.name]
        print(f"{subject.name:28} {subject.origin:8} mutants {t['mutants']:4} refused {t['kernel_refused']:4} "
              f"different {t['kernel_different']:4} caught {t['caught']:4} missed {t['missed_unknown']:3} "
              f"false-proven {t['false_proven']:2} false-cex {t['false_counterexamples']:2} "
              f"crashed {t['prover_crashed']:2}", flush=True)
        for j in done:
            if j.outcome in FINDINGS:
                print(f"    {j.outcome}: {j.name} ({j.description}) {j.reason[:160]}", flush=True)
                if j.witness:
                    print(f"        kernel: {j.witness[:300]}", flush=True)
    summary = gt.table(judgements)
    elapsed = time.perf_counter() - started
    lines = ["prove_mutants: the prover's verdict on single-instruction mutants, the kernel as the oracle",
             f"budget per proof: {gt.PROOF_BUDGET:,} Z3 resource units; {len(frames)} packets x 4 starting states; "
             f"{elapsed:.0f} s in all", ""]
    lines += [f"{k:30} {v}" for k, v in summary.items()]
    lines.append("")
    for outcome in FINDINGS:
        found = [j for j in judgements if j.outcome == outcome]
        if found:
            lines.append(f"{outcome} ({len(found)}):")
            for j in found:
                lines.append(f"  {j.name} ({j.description}): proof {j.proof}: {j.reason[:200]}")
                if j.witness:
                    lines.append(f"      kernel: {j.witness[:400]}")
            lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.rate >= 1.0 and not args.only:
        out = ROOT / "benchmarks" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / "prove_mutants.txt").write_text(text + "\n")
        rows = [j.__dict__ for j in judgements if j.outcome != gt.REFUSED]
        (out / "prove_mutants.json").write_text(json.dumps(
            {"summary": summary, "per_subject": per_subject, "budget_units": gt.PROOF_BUDGET,
             "seconds": round(elapsed, 1), "mutants": rows}, indent=1) + "\n")
    return 1 if summary["false_proven"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
