"""Proof cost of every example program (not a timed test): `python benchmarks/prove_examples.py [UNITS]`.

Prints a table (compile time as the baseline, proof time, the resource units the proof spent, status,
paths, solver conflicts) and writes benchmarks/results/prove_examples.json. The budget is in Z3
resource units (default: `COMPILE_BUDGET`, what `compile()` gives a proof), so the statuses are the same
on any machine; the units spent are too, and the seconds are what this machine took. The compile
budget is chosen as at least 5x the largest `units` of an example. Target: under 2 s each, median under
0.5 s. The construct programs of the differential suite (one per language construct) follow in a second
group: they are not examples, but they show which constructs the prover handles within the budget.
"""

from __future__ import annotations

import importlib
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pybpfdsl.program import XdpProgram  # noqa: E402
from pybpfdsl.verify.equivalence.budget import parse_units  # noqa: E402
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled  # noqa: E402

MODULES = [f"examples.{p.stem}" for p in sorted((ROOT / "examples").glob("*.py")) if p.stem not in ("__init__", "demo")]
CONSTRUCTS = "tests.differential.constructs"
REALISTIC = "tests.verify.equivalence.realistic"
"""Programs written as a mesh engineer would (issue 12 §6); they count with the examples."""


def main(budget: int = COMPILE_BUDGET) -> int:
    rows = []
    for mod in [*MODULES, REALISTIC, CONSTRUCTS]:
        module = importlib.import_module(mod)
        group = "construct" if mod == CONSTRUCTS else "example"
        for prog in [v for v in vars(module).values() if isinstance(v, XdpProgram)]:
            started = time.perf_counter()
            compiled = prog.compile(prove=False)
            compile_s = time.perf_counter() - started
            result = prove_compiled(compiled.subject, budget=budget)
            rows.append({"group": group, "program": prog.name, "compile_seconds": round(compile_s, 4),
                         "prove_seconds": round(result.seconds, 4), "units": result.units, "status": result.status,
                         "reason": result.reason, **{k: result.stats.get(k) for k in ("paths_a", "paths_b",
                                                                                        "conflicts")}})
            r = rows[-1]
            print(f"{r['program']:24} compile {r['compile_seconds']:7.3f} s  prove {r['prove_seconds']:7.3f} s  "
                  f"{r['units']:>13,} units  {r['status']:14} paths {r['paths_a']}/{r['paths_b']} "
                  f"conflicts {r['conflicts']}", flush=True)
    examples = [r for r in rows if r["group"] == "example"]
    proven = [r["prove_seconds"] for r in examples if r["status"] == "proven"]
    summary = {"programs": len(examples), "proven": len(proven), "budget_units": budget,
               "max_units_examples": max((r["units"] for r in examples), default=None),
               "median_prove_seconds_all": statistics.median(r["prove_seconds"] for r in examples) if rows else None,
               "median_prove_seconds_proven": statistics.median(proven) if proven else None,
               "max_prove_seconds_proven": max(proven) if proven else None,
               "constructs": sum(1 for r in rows if r["group"] == "construct"),
               "constructs_proven": sum(1 for r in rows if r["group"] == "construct" and r["status"] == "proven")}
    print(json.dumps(summary, indent=1))
    out = ROOT / "benchmarks" / "results" / "prove_examples.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(parse_units(sys.argv[1]) if len(sys.argv) > 1 else COMPILE_BUDGET))
