"""Our verifier against the kernel's on others' clang-built XDP programs and their single-instruction mutants.

The corpus is ``tests/verify/corpus/third_party`` (xdp-tutorial, xdp-tools; sources and licences, see its
README), built with clang at run time at each optimisation level of ``third_party_corpus.BUILDS``. Each
program is loaded into the kernel alone (the oracle) and verified by ours (with the kernel's privileged
setting for uninitialised stack reads). Per corpus: programs, kernel verdicts, ours, unsafe accepts (the
kernel refuses, we accept), false alarms (the kernel accepts, we refuse), acceptance of kernel-accepted
programs, and our mean verification time against the kernel's own ("verification time N usec").

Run: ``.venv/bin/python benchmarks/verifier_corpus.py [--mutant-rate R] [--builds O2,O1,...]``
(needs root for the kernel; writes ``benchmarks/results/verifier_corpus.{txt,json}``).
Goals (issue 13): 0 unsafe accepts; >= 95% of kernel-accepted originals accepted; <= 60 ms mean.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pybpfdsl.bpf.elf import BpfElf  # noqa: E402
from pybpfdsl.runtime.libbpf import kernel_bpf_available  # noqa: E402
from tests.verify.corpus.third_party_corpus import (  # noqa: E402
    BUILDS,
    _sampled,
    missing_headers,
    mutant_cases,
    original,
    programs,
    run,
)
from tests.verify.corpus.third_party_report import report  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "results", "verifier_corpus")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutant-rate", type=float, default=1.0, help="fraction of mutants (deterministic sample)")
    ap.add_argument("--builds", default=",".join(BUILDS), help="comma-separated builds of BUILDS")
    ap.add_argument("--mutate-up-to", type=int, default=0,
                    help="mutate only programs of at most this many instructions (0: all)")
    ap.add_argument("--mutant-from", type=float, default=0.0,
                    help="leave out the mutants that rate's sample holds: --mutant-from 0.1 --mutant-rate 0.15 "
                         "checks mutants no run at rate 0.1 checked (the samples are nested)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", default=OUT, help="results path without extension")
    args = ap.parse_args()
    why = missing_headers()
    if why:
        sys.exit(f"cannot build the corpus: {why}")
    ok, reason = kernel_bpf_available()
    if not ok:
        sys.exit(f"kernel bpf() unavailable ({reason}): the kernel is the oracle here")
    builds = tuple(args.builds.split(","))
    started = time.time()
    progs = programs(builds)
    outcomes = run([original(p) for p in progs], args.workers)
    for i, p in enumerate(progs):  # one program's mutants at a time: each is a whole copy of its object
        if args.mutate_up_to and len(BpfElf.from_bytes(p.elf).program(p.function).instructions) > args.mutate_up_to:
            continue
        cases = [c for c in mutant_cases(p, args.mutant_rate)
                 if not (args.mutant_from and _sampled(c.name, args.mutant_from))]
        outcomes += run(cases, args.workers)
        print(f"[{i + 1}/{len(progs)}] {p.name}: {len(outcomes) - len(progs)} mutants so far", file=sys.stderr)
    header = (f"verifier corpus: {len(progs)} programs (builds {', '.join(builds)}), mutants at rate "
              f"{args.mutant_rate}" + (f" less those at rate {args.mutant_from}" if args.mutant_from else "")
              + (f" of programs of <= {args.mutate_up_to} instructions" if args.mutate_up_to
                                       else "") + f": {len(outcomes) - len(progs)}; {time.time() - started:.0f} s; "
              "ours ms = CPU time of our analysis, kernel ms = the kernel's own 'verification time'")
    text, data = report(outcomes, header)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".txt", "w") as f:
        f.write(text + "\n")
    with open(args.out + ".json", "w") as f:
        json.dump(data, f, indent=1)
    print(f"wrote {args.out}.txt and .json")


if __name__ == "__main__":
    main()
