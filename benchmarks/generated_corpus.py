"""Generated programs checked end to end (not a timed test):
`python benchmarks/generated_corpus.py [--count N] [--seed S] [--prove-every K] [--budget UNITS] [--packets P]`.

Program i is `generate_program(RandomChooser(seed + i), EXTENDED)` (tests/generated/program_strategy.py, the
whole language; `--features all` draws the programs of `Features()` instead, whose seeds other tests name),
checked as the test sample checks one (tests/generated/checks.py): compiles or a located
DslError, the four executions agree on P random packets (fixed helper results, and action frequencies
against the kernel, for programs that use random()/now_ns()), our verifier's verdict against the kernel's,
and, for every K-th program, the equivalence proof within UNITS resource units (no false verdict).

Prints the table and writes benchmarks/results/generated_corpus.{txt,json} (also every 50 programs, so an
interrupted run leaves its numbers). Problem programs are kept, with their sources, in the JSON.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpfdsl.runtime.libbpf import kernel_bpf_available  # noqa: E402
from tests.generated.checks import Outcome, check_program  # noqa: E402
from tests.generated.program_strategy import (  # noqa: E402
    ALL,
    EXTENDED,
    RandomChooser,
    generate_program,
    packet_batch,
)

FEATURES = {"extended": EXTENDED, "all": ALL}

RESULTS = ROOT / "benchmarks" / "results"


def _table(outcomes: list[Outcome], sources: dict[str, str], args: argparse.Namespace, seconds: float,
           kernel: str) -> tuple[str, dict[str, object]]:
    compiled = [o for o in outcomes if o.compiled]
    dsl_errors = Counter(o.dsl_error for o in outcomes if o.dsl_error is not None)
    unlocated = [o for o in outcomes if o.dsl_error is not None and not o.dsl_error_located]
    tracebacks = [o for o in outcomes if o.traceback]
    disagreements = [o for o in outcomes if o.disagreement]
    statistical = [o for o in outcomes if o.statistical]
    judged = [o for o in outcomes if o.verifier_ok is not None and o.kernel_ok is not None]
    unsafe = [o for o in judged if o.verifier_mismatch == "unsafe accept"]
    alarms = [o for o in judged if o.verifier_mismatch == "false alarm"]
    both_reject = [o for o in judged if not o.verifier_ok and not o.kernel_ok]
    proofs = Counter(o.proof for o in outcomes if o.proof is not None)
    false_proofs = [o for o in outcomes if o.false_proof]
    # A counterexample that replays is a miscompilation (the IR and the bytecode differ on that input) the
    # packets missed: named, and its source kept, like a problem program.
    counterexamples = [o for o in outcomes if o.proof == "counterexample" and not o.false_proof]
    unknown_reasons = Counter(re.sub(r"[\d,.]+", "N", o.proof_reason or "")[:90]
                              for o in outcomes if o.proof == "unknown")
    verify_times = [o.verify_seconds for o in outcomes if o.verify_seconds is not None]
    slowest = sorted((o for o in outcomes if o.verify_seconds is not None and o.verify_seconds > 1.0),
                     key=lambda o: -(o.verify_seconds or 0.0))[:3]
    helpers = [o for o in compiled if o.mode != "exact"]
    alarm_kinds = Counter((o.verifier_error or "").split(":")[0] for o in alarms)
    kernel_refusals = Counter((o.kernel_error or "")[:120] for o in judged if not o.kernel_ok)

    lines = [
        f"generated programs: seeds {args.seed}..{args.seed + len(outcomes) - 1}, {args.packets} packets each, "
        f"proof every {args.prove_every} program(s) at {args.budget:,} units; features: {args.features}; "
        f"kernel: {kernel}; "
        f"{seconds:.0f} s in all",
        "",
        f"{'programs':<50}{len(outcomes):>8}",
        f"{'compiled':<50}{len(compiled):>8}",
        f"{'DslErrors (all located)' if not unlocated else 'DslErrors (UNLOCATED: ' + str(len(unlocated)) + ')':<50}"
        f"{sum(dsl_errors.values()):>8}",
        *(f"    {count:>5}  {message[:100]}" for message, count in dsl_errors.most_common(8)),
        f"{'tracebacks (compiler, verifier, harness)':<50}{len(tracebacks):>8}",
        f"{'execution disagreements (exact or fixed helpers)':<50}{len(disagreements):>8}",
        f"{'  of which with fixed helper results':<50}{sum(o.mode != 'exact' for o in disagreements):>8}"
        f"   (programs with random()/now_ns(): {len(helpers)})",
        f"{'kernel action frequencies differ':<50}{len(statistical):>8}",
        f"{'verifier vs kernel: judged':<50}{len(judged):>8}",
        f"{'  both accept':<50}{sum(bool(o.verifier_ok and o.kernel_ok) for o in judged):>8}",
        f"{'  both reject':<50}{len(both_reject):>8}",
        f"{'  unsafe accepts (ours yes, kernel no)':<50}{len(unsafe):>8}",
        f"{'  false alarms (ours no, kernel yes)':<50}{len(alarms):>8}",
        *(f"    {count:>5}  {kind}" for kind, count in alarm_kinds.most_common()),
        *(f"    kernel refused {count}x: {text}" for text, count in kernel_refusals.most_common(4)),
        f"{'proofs: proven / unknown / counterexample':<50}"
        f"{proofs['proven']:>8} / {proofs['unknown']} / {proofs['counterexample']}",
        *(f"    unknown {count}x: {reason}" for reason, count in unknown_reasons.most_common(4)),
        *(f"    counterexample: {o.name}: {(o.proof_reason or '')[:120]}" for o in counterexamples),
        f"{'false proof verdicts':<50}{len(false_proofs):>8}",
        f"{'our verifier: mean / median / max CPU seconds':<50}"
        + (f"{statistics.mean(verify_times):>8.3f} / {statistics.median(verify_times):.3f} / {max(verify_times):.2f}"
           if verify_times else "       -"),
        *(f"    {o.name}: {o.verify_seconds:.2f} s" for o in slowest),
    ]
    problems = [o for o in outcomes if o.problems() or o in counterexamples]
    if problems:
        lines += ["", "problem programs (sources in generated_corpus.json):"]
        for o in problems[:40]:
            lines.append(f"  {o.name}: {(o.problems() or [f'proof counterexample: {o.proof_reason}'])[0][:150]}")
    data: dict[str, object] = {
        "seed": args.seed, "features": args.features, "count": len(outcomes), "packets": args.packets,
        "prove_every": args.prove_every,
        "budget_units": args.budget, "kernel": kernel, "seconds": round(seconds, 1),
        "compiled": len(compiled), "dsl_errors": dict(dsl_errors), "dsl_errors_unlocated": len(unlocated),
        "tracebacks": len(tracebacks), "disagreements": len(disagreements), "statistical": len(statistical),
        "programs_with_helpers": len(helpers), "judged": len(judged), "unsafe_accepts": len(unsafe),
        "false_alarms": len(alarms), "false_alarm_kinds": dict(alarm_kinds), "both_reject": len(both_reject),
        "proofs": dict(proofs), "proof_unknown_reasons": dict(unknown_reasons), "false_proofs": len(false_proofs),
        "verify_seconds_mean": round(statistics.mean(verify_times), 4) if verify_times else None,
        "verify_seconds_median": round(statistics.median(verify_times), 4) if verify_times else None,
        "verify_slowest": {o.name: round(o.verify_seconds or 0.0, 2) for o in slowest},
        "counterexamples": [o.name for o in counterexamples],
        "problems": [{"name": o.name, "problems": o.problems(), "proof": o.proof, "proof_reason": o.proof_reason,
                      "constructs": o.constructs,
                      "traceback": o.traceback, "source": sources[o.name]} for o in problems],
    }
    return "\n".join(lines) + "\n", data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000, help="programs to generate (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first program (default 0)")
    parser.add_argument("--packets", type=int, default=24, help="packets per program (default 24)")
    parser.add_argument("--prove-every", type=int, default=4, help="prove every K-th program (0: none)")
    parser.add_argument("--budget", type=int, default=10_000_000, help="proof budget in resource units")
    parser.add_argument("--rounds", type=int, default=40, help="rounds of the statistical kernel comparison")
    parser.add_argument("--features", choices=sorted(FEATURES), default="extended",
                        help="extended: every construct the generator knows (default); all: Features(), the "
                             "programs of the seeds other tests name")
    parser.add_argument("--out", type=Path, default=RESULTS / "generated_corpus",
                        help="results path without extension (default benchmarks/results/generated_corpus)")
    args = parser.parse_args(argv)
    # A run stopped from outside (`timeout` sends SIGTERM) says where it was: every thread's stack on stderr.
    faulthandler.register(signal.SIGTERM, all_threads=True, chain=True)
    available, why = kernel_bpf_available()
    kernel = "available" if available else f"UNAVAILABLE ({why})"
    outcomes: list[Outcome] = []
    sources: dict[str, str] = {}
    started = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> str:
        text, data = _table(outcomes, sources, args, time.perf_counter() - started, kernel)
        args.out.with_suffix(".txt").write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
        return text

    with tempfile.TemporaryDirectory(prefix="pybpfdsl-corpus-") as tmp:
        for i in range(args.count):
            seed = args.seed + i
            gen = generate_program(RandomChooser(seed), FEATURES[args.features])
            name = f"gen_{seed}"
            sources[name] = gen.source
            print(f"{name} ...", end="\r", file=sys.stderr, flush=True)  # the program a stalled run is on
            prove = args.budget if args.prove_every and i % args.prove_every == 0 else None
            out = check_program(gen, Path(tmp), name, packet_batch(RandomChooser(10**9 + seed), args.packets),
                                seed=seed, kernel=available, prove_budget=prove, statistical_rounds=args.rounds)
            outcomes.append(out)
            for problem in out.problems():
                print(f"{name}: {problem[:200]}", flush=True)
            if out.proof == "counterexample" and not out.false_proof:
                print(f"{name}: proof counterexample: {(out.proof_reason or '')[:200]}", flush=True)
            if (i + 1) % 50 == 0:
                write()
                print(f"... {i + 1} programs, {time.perf_counter() - started:.0f} s", flush=True)
        print("all programs checked; removing the temporary directory", file=sys.stderr, flush=True)
    print(write(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
