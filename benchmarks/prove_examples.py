"""Proof time of every example program (not a timed test): `python benchmarks/prove_examples.py`.

Prints a table (compile time as the baseline, proof time, status, paths, solver conflicts) and writes
benchmarks/results/prove_examples.json. Target: under 2 s each, median under 0.5 s.
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
from pybpfdsl.verify.equivalence.prove import prove_compiled  # noqa: E402

MODULES = sorted(p.stem for p in (ROOT / "examples").glob("*.py") if p.stem not in ("__init__", "demo"))


def main(timeout_ms: int = 10_000) -> int:
    rows = []
    for mod in MODULES:
        module = importlib.import_module(f"examples.{mod}")
        for prog in [v for v in vars(module).values() if isinstance(v, XdpProgram)]:
            started = time.perf_counter()
            compiled = prog.compile(prove=False)
            compile_s = time.perf_counter() - started
            result = prove_compiled(compiled, timeout_ms=timeout_ms)
            rows.append({"program": prog.name, "compile_seconds": round(compile_s, 4),
                         "prove_seconds": round(result.seconds, 4), "status": result.status,
                         "reason": result.reason, **{k: result.stats.get(k) for k in ("paths_a", "paths_b",
                                                                                        "conflicts")}})
            r = rows[-1]
            print(f"{r['program']:24} compile {r['compile_seconds']:7.3f} s  prove {r['prove_seconds']:7.3f} s  "
                  f"{r['status']:14} paths {r['paths_a']}/{r['paths_b']} conflicts {r['conflicts']}", flush=True)
    proven = [r["prove_seconds"] for r in rows if r["status"] == "proven"]
    summary = {"programs": len(rows), "proven": len(proven), "timeout_ms": timeout_ms,
               "median_prove_seconds_all": statistics.median(r["prove_seconds"] for r in rows) if rows else None,
               "median_prove_seconds_proven": statistics.median(proven) if proven else None,
               "max_prove_seconds_proven": max(proven) if proven else None}
    print(json.dumps(summary, indent=1))
    out = ROOT / "benchmarks" / "results" / "prove_examples.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
