"""Analysis time of the userspace verifier against the kernel verifier's, measured in the same run.

Programs: the examples and construct programs (compiled by pybpfdsl), the C corpus
(``tests/verify/corpus/c``, built with clang if installed), and generated straight-line and branchy
programs of 250 to 4000 instructions (growth). For each: our analysis time (best of ``REPEAT``), the
kernel's load time (wall time of the load, best of ``REPEAT``: it is dominated by verification for
these programs) and the kernel's ``verified_insns`` from ``bpf_prog_info``. Ratios are ours/kernel.

Run: ``.venv/bin/python benchmarks/verify_time.py`` (writes ``benchmarks/results/verify_time.json``).
Targets from the issue: under 50 ms per example; near-linear growth up to 4000 instructions.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pybpfdsl.bpf.instruction import Instruction  # noqa: E402
from pybpfdsl.bpf.random_programs import generate  # noqa: E402
from pybpfdsl.runtime.bpf_object import BpfObject, LoadError  # noqa: E402
from pybpfdsl.runtime.libbpf import BpfProgInfo, get_libbpf, kernel_bpf_available  # noqa: E402
from pybpfdsl.runtime.raw_load import RawLoadError, prog_load  # noqa: E402
from pybpfdsl.verify.analysis import verify_instructions, verify_object  # noqa: E402

REPEAT = 3
SIZES = (250, 500, 1000, 2000, 4000)
OUT = os.path.join(ROOT, "benchmarks", "results", "verify_time.json")


def best(fn: Callable[[], Any], repeat: int = REPEAT) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def verified_insns(fd: int) -> int:
    info = BpfProgInfo()
    get_libbpf().obj_get_info_by_fd(fd, info)
    return int(info.verified_insns)


def kernel_elf(elf: bytes, section: str) -> tuple[float | None, int | None]:
    def load() -> tuple[int | None, BpfObject | None]:
        try:
            obj = BpfObject.load(elf, section[:15], log_level=0)
        except LoadError:
            return None, None
        return verified_insns(next(iter(obj.programs.values()))), obj

    times, insns = [], None
    for _ in range(REPEAT):
        t = time.perf_counter()
        insns, obj = load()
        times.append(time.perf_counter() - t)
        if obj is not None:
            obj.close()
    return (min(times), insns) if insns is not None else (None, None)


def kernel_raw(insns: tuple[Instruction, ...]) -> tuple[float | None, int | None]:
    times, count = [], None
    for _ in range(REPEAT):
        t = time.perf_counter()
        try:
            fd = prog_load(insns)
        except RawLoadError:
            return None, None
        times.append(time.perf_counter() - t)
        count = verified_insns(fd)
        os.close(fd)
    return min(times), count


def straight_line(n: int, seed: int = 0) -> tuple[Instruction, ...]:
    """ALU, stack stores and loads on r0..r5: no branches; ends with r0 = XDP_PASS."""
    rng = random.Random(seed)
    out = [Instruction(0xB7, r, 0, 0, rng.randrange(1 << 16)) for r in range(6)]
    alu = (0x07, 0x17, 0x27, 0x47, 0x57, 0xA7, 0x0F, 0x1F, 0x4F, 0x5F, 0xAF, 0x04, 0x0C, 0x77, 0x67)
    while len(out) < n - 2:
        k = rng.random()
        dst, src = rng.randrange(6), rng.randrange(6)
        if k < 0.15:
            out.append(Instruction(0x7B, 10, src, -8 * rng.randint(1, 8), 0))
        elif k < 0.25:
            out.append(Instruction(0x79, dst, 10, -8 * rng.randint(1, 8), 0))  # may read unwritten stack
        else:
            op = rng.choice(alu)
            if op & 0x08:  # register source: imm must be 0
                out.append(Instruction(op, dst, src, 0, 0))
            else:  # immediate source: src must be 0
                imm = rng.randint(0, 31) if op in (0x77, 0x67) else rng.randint(1, 1000)
                out.append(Instruction(op, dst, 0, 0, imm))
    # Initialise the whole frame used above first, so every load reads written stack.
    init = [Instruction(0x7A, 10, 0, -8 * i, 0) for i in range(1, 9)]
    return (*init, *out, Instruction(0xB7, 0, 0, 0, 2), Instruction(0x95))


def row(name: str, kind: str, n: int, ours: float, ok: bool, k_time: float | None,
        k_insns: int | None) -> dict[str, Any]:
    return {"name": name, "kind": kind, "insns": n, "ours_ms": round(ours * 1000, 3), "ours_ok": ok,
            "kernel_ms": None if k_time is None else round(k_time * 1000, 3), "kernel_verified_insns": k_insns,
            "ratio": None if not k_time else round(ours / k_time, 2)}


def main() -> None:
    available, reason = kernel_bpf_available()
    if not available:
        print(f"kernel bpf() unavailable ({reason}): kernel columns will be empty")
    rows: list[dict[str, Any]] = []
    from tests.verify.corpus.differential import programs

    for name, elf, section in programs():
        t, r = best(lambda e=elf, s=section: verify_object(e, s))  # type: ignore[misc]
        kt, ki = kernel_elf(elf, section) if available else (None, None)
        rows.append(row(name, "example/construct", len(r.instructions), t, r.ok, kt, ki))
    from tests.verify.corpus.c_corpus import clang
    from tests.verify.corpus.c_corpus import programs as c_programs

    if clang() is not None:
        for p in c_programs():
            t, r = best(lambda e=p.elf: verify_object(e, "prog", allow_uninit_stack_reads=True))  # type: ignore[misc]
            kt, ki = kernel_elf(p.elf, "prog") if available else (None, None)
            rows.append(row(p.name, "c corpus", len(r.instructions), t, r.ok, kt, ki))
    else:
        print("clang not installed: C corpus skipped")
    for n in SIZES:
        for kind, insns in (("straight-line", straight_line(n)),
                            ("branchy", generate(n, body_length=n).instructions)):
            t, r = best(lambda i=insns: verify_instructions(i))  # type: ignore[misc]
            kt, ki = kernel_raw(insns) if available else (None, None)
            rows.append(row(f"{kind}-{n}", f"growth {kind}", len(insns), t, r.ok, kt, ki))
    print(f"{'program':34} {'kind':22} {'insns':>6} {'ours ms':>9} {'ok':>3} {'kernel ms':>10} "
          f"{'k.verified':>10} {'ratio':>7}")
    for x in rows:
        ok = "y" if x["ours_ok"] else "n"
        print(f"{x['name'][:34]:34} {x['kind']:22} {x['insns']:6} {x['ours_ms']:9.2f} {ok:>3} "
              f"{'-' if x['kernel_ms'] is None else format(x['kernel_ms'], '.2f'):>10} "
              f"{'-' if x['kernel_verified_insns'] is None else x['kernel_verified_insns']:>10} "
              f"{'-' if x['ratio'] is None else x['ratio']:>7}")
    ex = [x for x in rows if x["kind"] == "example/construct"]
    over = [x["name"] for x in ex if x["ours_ms"] > 50]
    summary: dict[str, Any] = {
        "examples_max_ms": max(x["ours_ms"] for x in ex),
        "examples_over_50ms": over,
        "growth": {k: {x["insns"]: x["ours_ms"] for x in rows if x["kind"] == f"growth {k}"}
                   for k in ("straight-line", "branchy")},
    }
    for k, pts in summary["growth"].items():
        sizes = sorted(pts)
        if len(sizes) >= 2:
            a, b = sizes[0], sizes[-1]
            summary[f"{k}_ms_per_insn_ratio_{b}_vs_{a}"] = round((pts[b] / b) / (pts[a] / a), 2)
    print(json.dumps(summary, indent=1))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"rows": rows, "summary": summary}, f, indent=1)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    ctypes.set_errno(0)
    main()
