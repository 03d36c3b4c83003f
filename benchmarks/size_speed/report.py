"""The benchmark's outputs: a markdown table (printed and written), one JSON record per program, and a
chart of ours/C ratios (written only where matplotlib is installed)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.size_speed.measure import interval_confidence

Record = dict[str, Any]

RATIOS = (("bpf_insns", "BPF slots"), ("jit_insns", "JIT insns"), ("exec_insns", "executed insns"),
          ("ns", "ns/packet"))

SIMPLEBPF_PAPER = {
    "simplebpf_logging": (67, 67),
    "simplebpf_logging_fault": (79, 101),
    "simplebpf_fault_optimizable": (43, 56),
}
"""SimpleBPF Table 1, post-optimization eBPF: (BPF instructions, JIT instructions)."""


def _pair(rec: Record, metric: str, fmt: str = "{}") -> str:
    """`off/on` for ours (only `on` when the build has no passes switch) then ` / C`."""
    def show(value: Any) -> str:
        return "-" if value is None else fmt.format(value)
    on = show(rec[f"ours_{metric}"])
    off = rec.get(f"ours_{metric}_nopasses")
    ours = f"{show(off)}→{on}" if off is not None else on
    return f"{ours} / {show(rec[f'clang_{metric}'])}"


def _versus(rec: Record) -> str:
    """The paired difference ours - C in ns per packet and its interval over loads, `-` when not measured."""
    if rec.get("ns_diff") is None:
        return "-"
    low, high = rec["ns_diff_interval"]
    return f"{rec['ns_diff']:+.2f} [{low:+.2f}, {high:+.2f}]"


def ratio(rec: Record, metric: str) -> float | None:
    ours, theirs = rec[f"ours_{metric}"], rec[f"clang_{metric}"]
    if ours is None or theirs is None or theirs <= 0 or ours <= 0:
        return None
    return float(ours) / float(theirs)


def geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def markdown(records: Sequence[Record], meta: Record) -> str:
    loads = int(meta.get("loads", 8))
    confidence = f"{interval_confidence(loads):.0%}"
    lines = [
        "| program | DSL lines | C lines | clang best | BPF slots | JIT insns | executed insns | ns/packet "
        f"| ours − C ns [{confidence}] | compile ms | twin agrees |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for rec in records:
        agrees = "yes" if not rec["disagreements"] else f"NO ({len(rec['disagreements'])})"
        paper = SIMPLEBPF_PAPER.get(rec["name"])
        name = rec["name"] + (f" (paper {paper[0]}/{paper[1]})" if paper else "")
        lines.append(
            f"| {name} | {rec['dsl_loc']} | {rec['c_loc']} | {rec['clang_config']} | {_pair(rec, 'bpf_insns')} "
            f"| {_pair(rec, 'jit_insns')} | {_pair(rec, 'exec_insns')} | {_pair(rec, 'ns', '{:.1f}')} "
            f"| {_versus(rec)} "
            f"| {rec['ours_compile_ms']:.0f} / {rec['clang_compile_ms']:.0f} | {agrees} |")
    means = []
    for metric, label in RATIOS:
        values = [r for r in (ratio(rec, metric) for rec in records) if r is not None]
        means.append(f"{label} {geomean(values):.2f}x")
    lines += [
        "",
        "Cells read `ours / C` (ours `off→on` when the build has an IR-passes switch). Geometric mean of "
        "ours/C: " + ", ".join(means) + ".",
        f"IR passes switch: {meta['passes_switch'] or 'none in this build (ours = the default compile)'}; "
        f"ns/packet: CPU time of a BPF_PROG_TEST_RUN of {meta['repeat']} runs of the hot packet per run, "
        f"median over {meta['trials']} shuffled rounds x {meta.get('loads', 1)} loads of each object, minus the "
        f"empty program's median ({meta['empty_ns_median']:.1f} ns); ours − C: each load's median "
        f"difference in the same rounds, their median over the loads and an interval over the loads ({confidence} "
        f"for {loads} loads; below 0: ours faster; holding 0: no difference shown); executed insns: the "
        "bytecode interpreter on the hot packet; BPF slots count lddw as 2; clang best = fewest slots over "
        "-O1/-O2/-O3 x -mcpu=v2/v3. Commit " + meta["commit"] + ", " + meta["kernel"] + ".",
    ]
    return "\n".join(lines) + "\n"


def write(results_dir: Path, records: Sequence[Record], meta: Record) -> tuple[Path, Path, Path | None]:
    results_dir.mkdir(parents=True, exist_ok=True)
    md = results_dir / "size_speed.md"
    md.write_text("# Size and speed: pybpfdsl against hand-written C (clang)\n\n" + markdown(records, meta))
    js = results_dir / "size_speed.json"
    js.write_text(json.dumps({"meta": meta, "programs": list(records)}, indent=1, default=str) + "\n")
    return md, js, chart(results_dir / "size_speed.png", records)


def chart(path: Path, records: Sequence[Record]) -> Path | None:
    """Grouped bars of ours/C per program and metric; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [rec["name"] for rec in records]
    width = 0.8 / len(RATIOS)
    fig, ax = plt.subplots(figsize=(12, 5))
    for i, (metric, label) in enumerate(RATIOS):
        values = [ratio(rec, metric) or 0.0 for rec in records]
        ax.bar([x + i * width for x in range(len(names))], values, width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + width * (len(RATIOS) - 1) / 2 for x in range(len(names))])
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("pybpfdsl / clang (lower is better)")
    ax.set_title("pybpfdsl against hand-written C, same run")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
