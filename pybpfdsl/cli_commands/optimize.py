"""`pybpfdsl optimize IN.o -o OUT.o`: the superoptimizer on any BPF object (clang's too).

Writes OUT.o only when it passed every check that ran (otherwise OUT.o is a copy of IN.o and the exit
status says why); prints the before/after listing with the rewritten windows marked (``*``), the
verdicts (our verifier, the whole-program proof, the kernel) and the cost.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pybpfdsl.cli_commands.common import EXIT_FAILURE, CliError, load_object, positive_int
from pybpfdsl.cli_output import print_json

__all__ = ["add_arguments", "cmd_optimize"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's arguments, for the parser `pybpfdsl.cli` makes."""
    p.add_argument("object", metavar="IN.o", help="the BPF object to optimise")
    p.add_argument("-o", "--output", metavar="OUT.o", required=True, help="where to write the optimised object")
    p.add_argument("--section", help="only this program (section or function name; default: all code)")
    p.add_argument("--budget", type=positive_int, default=600, metavar="N",
                   help="MCMC proposals per window (default 600); steps, not seconds: same result on any machine")
    p.add_argument("--cost", choices=("slots", "latency"), default="slots",
                   help="what to minimise: instruction slots (lddw is 2) or an estimated latency")
    p.add_argument("--seed", type=int, default=0, help="random seed of the search (default 0)")
    p.add_argument("--rules", metavar="FILE", help="rule cache file (default: the user cache directory)")
    p.add_argument("--no-rules", action="store_true", help="neither read nor write the rule cache")
    p.add_argument("--trust-window-proofs", action="store_true",
                   help="accept an output the whole-program prover cannot decide (\"unknown\"), on the window proofs")
    p.add_argument("--no-kernel", action="store_true", help="do not load the result in the kernel")
    p.add_argument("--no-regions", action="store_true",
                   help="do not thread the regions with jumps inside (boolean diamonds) before the window search")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (for scripts)")


def cmd_optimize(args: argparse.Namespace) -> int:
    from pybpfdsl.superopt.api import optimize_object
    from pybpfdsl.superopt.cost import CostModel
    from pybpfdsl.superopt.rules import RuleCache, default_path

    obj = load_object(args.object, args.section)
    rules = None if args.no_rules else RuleCache.load(Path(args.rules) if args.rules else default_path())
    result = optimize_object(obj.data, section=args.section, proposals=args.budget, model=CostModel(args.cost),
                             seed=args.seed, rules=rules, kernel=not args.no_kernel,
                             trust_window_proofs=args.trust_window_proofs, regions=not args.no_regions)
    try:
        Path(args.output).write_bytes(result.after)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    summary = result.summary()
    if args.json:
        print_json(summary)
    else:
        print(result.listing())
        print()
        for r in result.rewrites:
            print(f"rewrote {r.section}:{r.function} at {r.start} (pass {r.pass_no + 1}, {r.source}): "
                  f"{'; '.join(map(str, r.before))}  ->  {'; '.join(map(str, r.after)) or '(nothing)'}")
        before, after = sum(result.slots("before").values()), sum(result.slots("after").values())
        print(f"slots {before} -> {after} ({100 * result.reduction:.1f}% fewer); "
              f"cost ({result.model.value}) {result.cost('before')} -> {result.cost('after')}")
        print(f"verifier: {result.verifier.status}; proof: {result.proof.status}; kernel: {result.kernel.status}")
        for what, verdict in (("verifier", result.verifier), ("proof", result.proof), ("kernel", result.kernel)):
            if verdict.reason:
                print(f"  {what}: {verdict.reason}")
        for note in result.notes:
            print(f"  {note}")
    refused = "failed" in (result.verifier.status, result.proof.status, result.kernel.status)
    return EXIT_FAILURE if refused else 0
