"""The table of the third-party corpus run: per corpus and build, kernel verdicts against ours, unsafe
accepts, false alarms (with our first error) and verification times (``benchmarks/verifier_corpus.py``,
``test_third_party.py``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.verify.corpus.third_party_corpus import BUILDS, PROJECTS, Outcome


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def row(outcomes: list[Outcome]) -> dict[str, Any]:
    accepted = [o for o in outcomes if o.kernel.ok]
    kernel_us = [o.kernel.verify_us for o in outcomes if o.kernel.verify_us is not None]
    return {
        "programs": len(outcomes),
        "kernel_accepted": len(accepted),
        "kernel_refused": len(outcomes) - len(accepted),
        "we_accept": sum(o.ours_ok for o in outcomes),
        "unsafe_accepts": sum(o.unsafe_accept for o in outcomes),
        "false_alarms": sum(o.false_alarm for o in outcomes),
        "acceptance_pct": round(100 * sum(o.ours_ok for o in accepted) / len(accepted), 1) if accepted else None,
        "ours_mean_ms": _round(_mean([o.our_seconds * 1000 for o in outcomes])),
        "ours_max_ms": _round(max((o.our_seconds * 1000 for o in outcomes), default=None)),
        "kernel_verify_mean_ms": _round(_mean([us / 1000 for us in kernel_us])),
        "kernel_load_mean_ms": _round(_mean([o.kernel.load_seconds * 1000 for o in outcomes
                                             if o.kernel.verify_us is not None])),
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


COLUMNS = (("programs", "progs"), ("kernel_accepted", "k-ok"), ("kernel_refused", "k-refuse"),
           ("we_accept", "we-ok"), ("unsafe_accepts", "UNSAFE"), ("false_alarms", "false-alarm"),
           ("acceptance_pct", "accept%"), ("ours_mean_ms", "ours ms"), ("ours_max_ms", "max ms"),
           ("kernel_verify_mean_ms", "kernel ms"), ("kernel_load_mean_ms", "k.load ms"))


def table(title: str, rows: dict[str, dict[str, Any]]) -> list[str]:
    lines = [title, f"{'':26}" + "".join(f"{h:>12}" for _, h in COLUMNS)]
    for name, r in rows.items():
        lines.append(f"{name:26}" + "".join(f"{'-' if r[k] is None else r[k]:>12}" for k, _ in COLUMNS))
    return lines


def report(outcomes: list[Outcome], header: str) -> tuple[str, dict[str, Any]]:
    originals = [o for o in outcomes if o.kind == "original"]
    mutated = [o for o in outcomes if o.kind != "original"]
    corpora = [p.name for p in PROJECTS]
    orig_rows = {c: row([o for o in originals if o.program.corpus == c]) for c in corpora}
    orig_rows["all"] = row(originals)
    for b in BUILDS:
        orig_rows[f"all, build {b}"] = row([o for o in originals if o.program.build == b])
    mut_rows = {c: row([o for o in mutated if o.program.corpus == c]) for c in corpora}
    mut_rows["all"] = row(mutated)
    for kind in sorted({o.kind for o in mutated}):
        mut_rows[kind[:26]] = row([o for o in mutated if o.kind == kind])
    lines = [header, ""]
    lines += table("ORIGINAL PROGRAMS (one per xdp* function per build)", orig_rows)
    lines += ["", *table("SINGLE-INSTRUCTION MUTANTS", mut_rows)]
    unsafe = [o for o in outcomes if o.unsafe_accept]
    lines += ["", f"UNSAFE ACCEPTS (kernel refuses, we accept): {len(unsafe)}"]
    lines += [f"  {o.name}  kernel: {o.kernel.message}" for o in unsafe]
    alarms = [o for o in originals if o.false_alarm]
    by_code = Counter(o.our_error.split(" @")[0] for o in alarms)
    lines += ["", f"FALSE ALARMS ON ORIGINALS (kernel accepts, we refuse): {len(alarms)}; by our first error: "
              + ", ".join(f"{c} {n}" for c, n in by_code.most_common())]
    lines += [f"  {o.name}  {o.our_error[:160]}" for o in alarms]
    m_alarms = Counter(o.our_error.split(" @")[0] for o in mutated if o.false_alarm)
    lines += ["", "false alarms on mutants by our first error: "
              + ", ".join(f"{c} {n}" for c, n in m_alarms.most_common())]
    refused = [o for o in originals if not o.kernel.ok]
    lines += ["", f"ORIGINALS THE KERNEL REFUSES: {len(refused)}"]
    lines += [f"  {o.name}  ours={'ACCEPT' if o.ours_ok else 'refuse'}  kernel: {o.kernel.message[:140]}"
              for o in refused]
    data = {
        "header": header,
        "originals": orig_rows,
        "mutants": mut_rows,
        "unsafe_accepts": [{"name": o.name, "kind": o.kind, "kernel": o.kernel.message} for o in unsafe],
        "false_alarms": [{"name": o.name, "ours": o.our_error} for o in alarms],
        "programs": [{"name": o.name, "kernel_ok": o.kernel.ok, "ours_ok": o.ours_ok, "ours": o.our_error,
                      "ours_ms": round(o.our_seconds * 1000, 2), "kernel_verify_us": o.kernel.verify_us,
                      "kernel": o.kernel.message} for o in originals],
    }
    return "\n".join(lines), data
