"""`pybpfdsl prove A.o B.o`: bytecode-against-bytecode equivalence with the translation validator."""

from __future__ import annotations

import argparse
from pathlib import Path

from pybpfdsl.bpf.elf import ElfError
from pybpfdsl.cli_commands.common import EXIT_FAILURE, CliError, load_object
from pybpfdsl.cli_output import print_json

__all__ = ["cmd_prove"]


def cmd_prove(args: argparse.Namespace) -> int:
    from pybpfdsl.verify.equivalence.budget import parse_units
    from pybpfdsl.verify.equivalence.prove import DEFAULT_BUDGET, prove_objects
    from pybpfdsl.verify.equivalence.report import as_json

    try:
        budget = DEFAULT_BUDGET if args.budget is None else parse_units(args.budget)
    except ValueError as exc:
        raise CliError(f"--budget: {exc}") from None
    # Each object read and checked first, so that a bad one is named (truncated, not BPF, no such program).
    a, b = load_object(args.object_a, args.section).data, load_object(args.object_b, args.section).data
    try:
        result = prove_objects(a, b, args.section, budget=budget)
    except (ElfError, KeyError) as exc:
        raise CliError(f"cannot read program {args.section!r} from the objects: {exc}") from None
    cex = result.counterexample
    if args.report:
        text = result.report(full=True)
        try:
            Path(args.report).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.report}: {exc.strerror or exc}") from None
    if args.json:
        print_json({"status": result.status, "seconds": round(result.seconds, 4), "stats": result.stats,
                    "reason": result.reason, "counterexample": None if cex is None else as_json(cex)})
    else:
        print(result.report())
    return 0 if result.proven else EXIT_FAILURE
