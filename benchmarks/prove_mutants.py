"""The prover against the kernel on single-instruction mutants (not a timed test).

`python benchmarks/prove_mutants.py [--rate R] [--example-rate R] [--only NAME ...] [--no-examples] [--no-clang]
[--out NAME]`

Every subject (the examples, compiled without the proof, and the clang-built XDP programs of
`tests/verify/corpus/c/ok_*.c` and `tests/verify/equivalence/c/*.c`) is mutated one instruction at a
time (`tests/verify/equivalence/mutants.edits`); each mutant the kernel loads runs beside the original
on the same packets and states (`tests/verify/equivalence/ground_truth.py`) and is proved against it.
Prints the table (mutants, kernel-refused, kernel-different, caught, missed, false "proven", false
counterexamples) and every finding, and writes benchmarks/results/prove_mutants.json and .txt (`--out`
names another pair; the header records the rates). The committed prove_mutants.* merge (`--merge`) the
earlier full table with a later rerun of every clang subject (`--no-examples --out prove_mutants_clang`);
the examples' rows are the earlier run's, checked again on a 1% sample (`--no-clang --example-rate 0.01
--out prove_mutants_examples_sample`). The examples' mutants cost 1-20 s of solving each
(the clang programs' 0.1-0.5 s): `--example-rate` samples them.
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
        # Smallest first: their proofs are the cheapest, so a stopped run has covered the most subjects.
        out += sorted(gt.example_subjects(), key=lambda s: len(s.elf))
    return [s for s in out if not only or s.name in only]


def _write(args: argparse.Namespace, judgements: list[gt.Judgement], per_subject: dict[str, dict[str, int]],
           frames: int, elapsed: float, final: bool, rates: str = "") -> dict[str, int]:
    """The table and findings so far, to the results files (after every subject, so a long run that is
    stopped still leaves what it measured) and, at the end, to the terminal."""
    summary = {k: sum(t[k] for t in per_subject.values()) for k in gt.table([])}
    lines = ["prove_mutants: the prover's verdict on single-instruction mutants, the kernel as the oracle",
             f"budget per proof: {gt.PROOF_BUDGET:,} Z3 resource units; {frames} packets x 4 starting states; "
             f"{elapsed:.0f} s in all" + ("" if final else f" (stopped early: {len(per_subject)} subjects done)"),
             rates or (f"mutants sampled at rate {args.rate} (clang), {args.example_rate or args.rate} (examples)"
                       + (f"; only {' '.join(args.only)}" if args.only else "")), ""]
    lines += [f"{k:30} {v}" for k, v in summary.items()]
    lines += ["", f"{'kind (kernel-loadable mutants)':32} {'loaded':>6} {'kernel-different':>16} {'caught':>6} "
              f"{'missed':>6} {'false proven':>12} {'proven, same':>12}"]
    for kind in sorted({j.kind for j in judgements}):
        of = [j for j in judgements if j.kind == kind and j.outcome != gt.REFUSED]
        lines.append(f"{kind:32} {len(of):6} {sum(j.kernel == 'different' for j in of):16} "
                     f"{sum(j.outcome == gt.CAUGHT for j in of):6} {sum(j.outcome == gt.MISSED for j in of):6} "
                     f"{sum(j.outcome == gt.FALSE_PROVEN for j in of):12} "
                     f"{sum(j.outcome == gt.AGREE_PROVEN for j in of):12}")
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
    if final:
        print(text)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.out}.txt").write_text(text + "\n")
    # Refusals are counted per subject; a caught mutant's witness is cut short (the findings keep theirs).
    rows = [{**j.__dict__, "witness": j.witness if j.outcome in FINDINGS else j.witness[:120]}
            for j in judgements if j.outcome != gt.REFUSED]
    (out / f"{args.out}.json").write_text(json.dumps(
        {"summary": summary, "per_subject": per_subject, "budget_units": gt.PROOF_BUDGET,
         "rates": {"clang": args.rate, "examples": args.example_rate or args.rate},
         "seconds": round(elapsed, 1), "complete": final, "mutants": rows}, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1.0, help="fraction of each subject's mutants (deterministic)")
    ap.add_argument("--example-rate", type=float, default=None, help="for the examples (default: --rate)")
    ap.add_argument("--only", nargs="*", default=[], help="subject names")
    ap.add_argument("--out", default="prove_mutants", help="results file name, without extension")
    ap.add_argument("--no-examples", action="store_true")
    ap.add_argument("--no-clang", action="store_true")
    ap.add_argument("--merge", nargs="*", default=[],
                    help="combine these results (.json; a later file's subjects replace an earlier one's)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    frames = gt.packets()
    judgements: list[gt.Judgement] = []
    per_subject: dict[str, dict[str, int]] = {}
    if args.merge:
        # Runs made separately (the clang subjects in full, the examples sampled) as one table.
        seconds = 0.0
        notes = []
        for path in args.merge:
            data = json.loads(Path(path).read_text())
            # A later file's subject replaces an earlier one's (a subject rerun after a harness fix).
            judgements = [j for j in judgements if j.name.split("@")[0] not in data["per_subject"]]
            per_subject.update(data["per_subject"])
            judgements += [gt.Judgement(**row) for row in data["mutants"]]
            seconds += data["seconds"]
            notes.append(f"{Path(path).name}: {len(data['per_subject'])} subjects, rates {data['rates']}"
                         + ("" if data.get("complete", True) else " (stopped early)"))
        summary = _write(args, judgements, per_subject, len(frames), seconds, final=True,
                         rates="merged (the time is the sum of the runs'): " + "; ".join(notes))
        return 1 if summary["false_proven"] else 0
    for subject in _subjects(not args.no_examples, not args.no_clang, args.only):
        rate = args.example_rate if subject.origin == "example" and args.example_rate is not None else args.rate
        chosen = [m for m in gt.mutants_of(subject) if rate >= 1.0 or gt.sampled(m.name, rate)]
        done = gt.judge_all(subject, chosen, frames)
        judgements += done
        per_subject[subject.name] = gt.table(done)
        t = per_subject[subject.name]
        print(f"{subject.name:28} {subject.origin:8} mutants={t['mutants']:<4} refused={t['kernel_refused']:<4} "
              f"different={t['kernel_different']:<4} caught={t['caught']:<4} missed={t['missed_unknown']:<3} "
              f"false-proven={t['false_proven']:<2} false-cex={t['false_counterexamples']:<2} "
              f"crashed={t['prover_crashed']}", flush=True)
        for j in done:
            if j.outcome in FINDINGS:
                print(f"    {j.outcome}: {j.name} ({j.description}) {j.reason[:160]}", flush=True)
                if j.witness:
                    print(f"        kernel: {j.witness[:300]}", flush=True)
        _write(args, judgements, per_subject, len(frames), time.perf_counter() - started, final=False)
    summary = _write(args, judgements, per_subject, len(frames), time.perf_counter() - started, final=True)
    return 1 if summary["false_proven"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
