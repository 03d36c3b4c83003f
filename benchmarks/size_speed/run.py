"""`make bench`: every benchmark program, compiled both ways, checked for agreement, measured, reported."""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.size_speed import agreement, measure, report
from benchmarks.size_speed.clang_build import best_build, build, slots
from benchmarks.size_speed.programs import BENCHMARKS, C_DIR, Benchmark

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _c_loc(path: Path) -> int:
    """Lines of the twin that are neither blank nor comments (the shared headers are not counted)."""
    count, in_comment = 0, False
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if in_comment:
            in_comment = "*/" not in line
            continue
        if line.startswith("/*"):
            in_comment = "*/" not in line
            continue
        if line and not line.startswith("//"):
            count += 1
    return count


def _commit() -> str:
    """HEAD, marked `+uncommitted` when the package's files differ from it (the run measured those)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "pybpfdsl"], capture_output=True, text=True,
                           cwd=ROOT)
    return (head.stdout.strip() or "unknown") + (" +uncommitted pybpfdsl changes" if dirty.stdout.strip() else "")


def measure_one(bench: Benchmark, empty: bytes) -> report.Record:
    prog = bench.program()
    switch = measure.passes_switch()
    variants: dict[str, bool | None] = {"on": True, "off": False} if switch else {"on": None}
    ours: dict[str, tuple[bytes, float]] = {
        key: measure.median_seconds(measure.compile_ours(prog, passes)) for key, passes in variants.items()}
    best, builds = best_build(bench.c_file, bench.name)
    clang_seconds = sorted(build(bench.c_file, bench.name, best.opt, best.cpu).seconds
                           for _ in range(measure.COMPILE_TRIALS))[measure.COMPILE_TRIALS // 2]

    hot = [label for label, _ in bench.packets].index(bench.hot)
    c_trace = agreement.interp_trace(bench, best.elf)
    traces = {key: agreement.interp_trace(bench, elf) for key, (elf, _) in ours.items()}
    problems: list[str] = []
    for key, trace in traces.items():
        problems += [f"[passes {key}] {p}" for p in agreement.interp_disagreements(bench, trace, c_trace)]
    for other in builds:  # the twin decides alike at every configuration, not only the one measured
        if other is not best:
            trace = agreement.interp_trace(bench, other.elf)
            problems += [f"[clang {other.config}] {p}"
                         for p in agreement.interp_disagreements(bench, traces["on"], trace)]
    problems += agreement.kernel_disagreements(bench, ours["on"][0], best.elf, traces["on"])

    objects = {f"ours_{key}": (elf, bench.name) for key, (elf, _) in ours.items()}
    objects["clang"] = (best.elf, bench.name)
    # The hot packet's path needs the state the packet sequence starts from (a map entry it finds), with
    # the timing globals over it (a bucket that never empties in hundreds of thousands of runs).
    kernel, empty_ns = measure.kernel_numbers(objects, (empty, "empty"), bench.hot_packet(),
                                              {**bench.globals_init, **bench.timing_globals}, bench.map_init)
    versus = measure.paired(kernel["ours_on"], kernel["clang"])

    rec: report.Record = {
        "name": bench.name,
        "dsl_loc": prog.lower().dsl_loc,
        "c_loc": _c_loc(bench.c_file),
        "clang_config": best.config,
        "clang_slots_by_config": {b.config: b.slots for b in builds},
        "hot_packet": bench.hot,
        "ours_bpf_insns": slots(ours["on"][0], bench.name),
        "clang_bpf_insns": best.slots,
        "ours_xlated_insns": kernel["ours_on"].xlated,
        "clang_xlated_insns": kernel["clang"].xlated,
        "ours_jit_insns": kernel["ours_on"].jited,
        "clang_jit_insns": kernel["clang"].jited,
        "ours_exec_insns": traces["on"].steps[hot],
        "clang_exec_insns": c_trace.steps[hot],
        "ours_ns": round(kernel["ours_on"].ns, 2),
        "clang_ns": round(kernel["clang"].ns, 2),
        "ours_raw_ns": kernel["ours_on"].raw_ns,
        "clang_raw_ns": kernel["clang"].raw_ns,
        "ours_kernel_ns": round(kernel["ours_on"].kernel_ns, 2),
        "clang_kernel_ns": round(kernel["clang"].kernel_ns, 2),
        "ns_diff": round(versus.median, 2),
        "ns_diff_interval": [round(versus.low, 2), round(versus.high, 2)],
        "ns_ours_faster": f"{versus.a_faster}/{versus.samples}",
        "ours_compile_ms": ours["on"][1] * 1000,
        "clang_compile_ms": clang_seconds * 1000,
        "empty_ns": empty_ns,
        "disagreements": problems,
    }
    if "off" in ours:
        rec.update({
            "ours_bpf_insns_nopasses": slots(ours["off"][0], bench.name),
            "ours_jit_insns_nopasses": kernel["ours_off"].jited,
            "ours_exec_insns_nopasses": traces["off"].steps[hot],
            "ours_ns_nopasses": round(kernel["ours_off"].ns, 2),
            "ours_compile_ms_nopasses": ours["off"][1] * 1000,
        })
    for metric, _ in report.RATIOS:
        rec[f"{metric}_ratio"] = report.ratio(rec, metric)
    paper = report.SIMPLEBPF_PAPER.get(bench.name)
    if paper is not None:
        rec["simplebpf_paper_bpf_insns"], rec["simplebpf_paper_jit_insns"] = paper
    return rec


def _options(argv: list[str] | None) -> tuple[list[str], int]:
    """The programs named (none: all, and the results are written) and the loads of each object."""
    parser = argparse.ArgumentParser(prog="benchmarks/size_speed.py", description=__doc__)
    parser.add_argument("programs", nargs="*", help="measure only these (prints the table, writes nothing)")
    parser.add_argument("--loads", type=int, default=measure.LOADS,
                        help=f"loads of each object (default {measure.LOADS}); more narrow the interval of "
                             "ours - C (a number other than the default prints without writing)")
    args = parser.parse_args(argv or [])
    if args.loads < 2:
        parser.error("--loads needs at least 2 loads")
    known = {b.name for b in BENCHMARKS}
    unknown = [p for p in args.programs if p not in known]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)} (there are: {', '.join(sorted(known))})")
    return args.programs, args.loads


def main(argv: list[str] | None = None) -> int:
    names, loads = _options(argv)
    writes = not names and loads == measure.LOADS
    measure.LOADS = loads
    started = time.perf_counter()
    empty = build(C_DIR / "empty.c", "empty", "-O2", "v3").elf
    records = []
    for bench in BENCHMARKS:
        if names and bench.name not in names:
            continue
        print(f"measuring {bench.name} ...", file=sys.stderr, flush=True)
        records.append(measure_one(bench, empty))
    meta: report.Record = {
        "commit": _commit(),
        "kernel": f"Linux {platform.release()} {platform.machine()}",
        "passes_switch": measure.passes_switch(),
        "trials": measure.TRIALS,
        "repeat": measure.REPEAT,
        "loads": measure.LOADS,
        "empty_ns_median": statistics.median(rec["empty_ns"] for rec in records) if records else 0.0,
        "seconds": round(time.perf_counter() - started, 1),
    }
    table = report.markdown(records, meta)
    print(table)
    if writes:
        md, js, png = report.write(RESULTS, records, meta)
        print(f"wrote {md.relative_to(ROOT)}, {js.relative_to(ROOT)}"
              + (f", {png.relative_to(ROOT)}" if png else " (no chart: matplotlib is not installed)"))
    return 1 if any(rec["disagreements"] for rec in records) else 0
