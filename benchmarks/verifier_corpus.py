"""Our verifier against the kernel's on others' clang-built XDP programs and their single-instruction mutants.

The corpus is ``tests/verify/corpus/third_party`` (xdp-tutorial, xdp-tools; sources and licences, see its
README), built with clang at run time at each optimisation level of ``third_party_corpus.BUILDS``. Each
program is loaded into the kernel alone (the oracle) and verified by ours (with the kernel's privileged
setting for uninitialised stack reads). Per corpus: programs, kernel verdicts, ours, unsafe accepts (the
kernel refuses, we accept), false alarms (the kernel accepts, we refuse), acceptance of kernel-accepted
programs, and our mean verification time against the kernel's own ("verification time N usec").

Run: ``.venv/bin/python benchmarks/verifier_corpus.py [--mutant-rate R] [--builds O2,O1,...]``
(needs root for the kernel; writes ``benchmarks/results/verifier_corpus.{txt,json}``). Every mutant that is a
false alarm or an unsafe accept is listed with its program, build, mutation (kind, instruction index and
slot, the instruction before and after), our first error, the kernel's last log line and the command that
reruns just that mutant: ``--only PROGRAM --mutant TAG`` (TAG as in the mutant's name after ``@``, e.g.
``153:offset+1``, or just the instruction index for every mutant there; ``--save-elf DIR`` keeps the objects
for ``pybpfdsl verify`` or bpftool). A run with ``--only`` writes no results unless ``--out`` is given.
``--mutants-from RESULTS.json`` rechecks just the mutants an earlier run listed (and their programs' originals):
whether a fix cleared them, in minutes rather than the full run's hour.
Goals (issue 13): 0 unsafe accepts; >= 95% of kernel-accepted originals accepted; <= 60 ms mean.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pybpfdsl.bpf.elf import BpfElf  # noqa: E402
from pybpfdsl.bpf.instruction import format_instruction, slot_offsets  # noqa: E402
from pybpfdsl.runtime.libbpf import kernel_bpf_available  # noqa: E402
from tests.verify.corpus.third_party_corpus import (  # noqa: E402
    BUILDS,
    Case,
    Outcome,
    ThirdPartyProgram,
    _sampled,
    missing_headers,
    mutant_cases,
    original,
    programs,
    run,
)
from tests.verify.corpus.third_party_report import report  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "results", "verifier_corpus")


@dataclass(frozen=True)
class Mutation:
    """Where a mutant differs from its program: the first changed instruction of the program's function."""

    index: int
    """Instruction index in the function (what the mutant's name says after ``@``)."""
    slot: int
    """The 8-byte slot the kernel log and ``llvm-objdump`` number it by (differs after an ``lddw``)."""
    old: str
    new: str


def mutation(original_elf: bytes, mutant_elf: bytes, function: str) -> Mutation | None:
    """The first instruction of ``function`` that the mutant changed (None if none did)."""
    before = BpfElf.from_bytes(original_elf).program(function)
    after = BpfElf.from_bytes(mutant_elf).program(function)
    slots = slot_offsets(before.instructions)
    for i, (a, b) in enumerate(zip(before.instructions, after.instructions, strict=False)):
        if a != b:
            reloc = before.relocation_at(i)
            return Mutation(i, slots[i], format_instruction(a, reloc), format_instruction(b, reloc))
    return None


def mutant_tag(p: ThirdPartyProgram, case_name: str) -> str:
    """What ``--mutant`` takes to select this one mutant of ``p``: its name after ``PROGRAM@``."""
    return case_name[len(p.name) + 1:] if case_name.startswith(p.name + "@") else case_name


def rerun_command(p: ThirdPartyProgram, case_name: str) -> str:
    return (f"benchmarks/verifier_corpus.py --builds {p.build} --only {shlex.quote(p.name)} "
            f"--mutant {shlex.quote(mutant_tag(p, case_name))}")


def detail(o: Outcome, case: Case) -> dict[str, Any]:
    """One mutant false alarm or unsafe accept, with what a developer needs to reproduce and fix it."""
    p = o.program
    m = mutation(p.elf, case.elf, p.function)
    return {
        "name": o.name, "program": p.name, "corpus": p.corpus, "source": p.source, "function": p.function,
        "build": p.build, "kind": o.kind,
        "insn": None if m is None else m.index, "slot": None if m is None else m.slot,
        "old": None if m is None else m.old, "new": None if m is None else m.new,
        "ours": o.our_error, "kernel_ok": o.kernel.ok, "kernel": o.kernel.message,
        "ours_ms": round(o.our_seconds * 1000, 2), "kernel_verify_us": o.kernel.verify_us,
        "rerun": rerun_command(p, o.name),
    }


def _code(d: dict[str, Any]) -> str:
    return str(d["ours"]).split(" @")[0] or "(accepted)"


def detail_lines(title: str, found: list[dict[str, Any]], by_error: bool) -> list[str]:
    """The listing of mutant false alarms (grouped by our first error's code) or unsafe accepts."""
    lines = ["", f"{title}: {len(found)}"]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in found:
        groups[_code(d) if by_error else d["kind"]].append(d)
    for key, ds in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f" {key}: {len(ds)}")
        for d in ds:
            where = "?" if d["insn"] is None else f"@{d['insn']} (slot {d['slot']})"
            lines.append(f"  {d['name']}  [{d['kind']}] {where}: {d['old']}  ->  {d['new']}")
            lines.append(f"    ours:   {d['ours'] or 'accepted'}")
            lines.append(f"    kernel: {d['kernel'] if not d['kernel_ok'] else 'accepted'}")
            lines.append(f"    rerun:  {d['rerun']}")
    return lines


def select_programs(progs: list[ThirdPartyProgram], only: str | None) -> list[ThirdPartyProgram]:
    """``--only``: the program of that exact name, else those whose name contains it."""
    if not only:
        return progs
    exact = [p for p in progs if p.name == only]
    return exact or [p for p in progs if only in p.name]


def select_mutants(cases: list[Case], p: ThirdPartyProgram, tag: str) -> list[Case]:
    """``--mutant TAG``: the mutant named ``PROGRAM@TAG``, or with a bare index every mutant at it."""
    return [c for c in cases if mutant_tag(p, c.name) == tag
            or (tag.isdigit() and mutant_tag(p, c.name).split(":")[0] == tag)]


def listed_mutants(path: str) -> dict[str, set[str]]:
    """Program name -> the names of its mutants an earlier run's JSON lists as false alarms or unsafe accepts."""
    with open(path) as f:
        data = json.load(f)
    out: dict[str, set[str]] = defaultdict(set)
    for d in data.get("mutant_false_alarms", []) + data.get("mutant_unsafe_accepts", []):
        out[d["program"]].add(d["name"])
    return dict(out)


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
    ap.add_argument("--only", default=None,
                    help="just this program (its name as listed, e.g. 'xdp-tools/xdp-filter/xdpfilt_alw_tcp.c:"
                         "xdpfilt_alw_tcp[O1]', or a part of it)")
    ap.add_argument("--mutant", default=None,
                    help="with --only: just this mutant (its name after '@', e.g. '153:offset+1', or an "
                         "instruction index), whatever the sample rate; the original is left out")
    ap.add_argument("--mutants-from", default=None,
                    help="a results JSON of an earlier run: recheck just its mutant false alarms and unsafe accepts "
                         "(and their programs' originals), e.g. whether a fix cleared them")
    ap.add_argument("--save-elf", default=None, help="write each checked object (original, mutants) to this directory")
    ap.add_argument("--out", default=None, help="results path without extension (default: "
                    "benchmarks/results/verifier_corpus; none with --only)")
    args = ap.parse_args()
    if args.mutant and not args.only:
        sys.exit("--mutant needs --only PROGRAM")
    listed = listed_mutants(args.mutants_from) if args.mutants_from else None
    out = args.out or (None if args.only else OUT)
    why = missing_headers()
    if why:
        sys.exit(f"cannot build the corpus: {why}")
    ok, reason = kernel_bpf_available()
    if not ok:
        sys.exit(f"kernel bpf() unavailable ({reason}): the kernel is the oracle here")
    builds = tuple(args.builds.split(","))
    started = time.time()
    progs = select_programs(programs(builds), args.only)
    if listed is not None:
        progs = [p for p in progs if p.name in listed]
    if not progs:
        sys.exit(f"no program named {args.only!r} in builds {', '.join(builds)}")
    firsts = [] if args.mutant else [original(p) for p in progs]
    _save(args.save_elf, firsts)
    outcomes = run(firsts, args.workers)
    alarms: list[dict[str, Any]] = []
    unsafe: list[dict[str, Any]] = []
    for i, p in enumerate(progs):  # one program's mutants at a time: each is a whole copy of its object
        if args.mutate_up_to and not args.mutant and listed is None \
                and len(BpfElf.from_bytes(p.elf).program(p.function).instructions) > args.mutate_up_to:
            continue
        if args.mutant:
            cases = select_mutants(mutant_cases(p, 1.0), p, args.mutant)
        elif listed is not None:
            cases = [c for c in mutant_cases(p, 1.0) if c.name in listed[p.name]]
        else:
            cases = [c for c in mutant_cases(p, args.mutant_rate)
                     if not (args.mutant_from and _sampled(c.name, args.mutant_from))]
        _save(args.save_elf, cases)
        done = run(cases, args.workers)
        outcomes += done
        for o, c in zip(done, cases, strict=True):
            if not (o.false_alarm or o.unsafe_accept or args.mutant):
                continue
            d = detail(o, c)
            if o.false_alarm:
                alarms.append(d)
            elif o.unsafe_accept:
                unsafe.append(d)
            # as they come, so a long run's partial results can be read (and acted on) from its log
            what = "FALSE ALARM" if o.false_alarm else "UNSAFE ACCEPT" if o.unsafe_accept else "agrees"
            print(f"{what}: {json.dumps(d)}", file=sys.stderr)
        print(f"[{i + 1}/{len(progs)}] {p.name}: {len(outcomes) - len(firsts)} mutants so far", file=sys.stderr)
    if args.mutant:
        chosen = f"mutant {args.mutant}"
    elif listed is not None:
        chosen = f"the mutants {args.mutants_from} lists as false alarms or unsafe accepts"
    else:
        chosen = (f"mutants at rate {args.mutant_rate}"
                  + (f" less those at rate {args.mutant_from}" if args.mutant_from else "")
                  + (f" of programs of <= {args.mutate_up_to} instructions" if args.mutate_up_to else ""))
    header = (f"verifier corpus: {len(progs)} programs (builds {', '.join(builds)}"
              + (f"; --only {args.only}" if args.only else "") + f"), {chosen}: {len(outcomes) - len(firsts)}; "
              f"{time.time() - started:.0f} s; "
              "ours ms = CPU time of our analysis, kernel ms = the kernel's own 'verification time'")
    text, data = report(outcomes, header)
    text += "\n" + "\n".join(detail_lines("MUTANT UNSAFE ACCEPTS (kernel refuses, we accept), by kind", unsafe, False)
                             + detail_lines("MUTANT FALSE ALARMS (kernel accepts, we refuse), by our first error",
                                            alarms, True))
    data["mutant_unsafe_accepts"] = unsafe
    data["mutant_false_alarms"] = alarms
    print(text)
    if out is None:
        return
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".txt", "w") as f:
        f.write(text + "\n")
    with open(out + ".json", "w") as f:
        json.dump(data, f, indent=1)
    print(f"wrote {out}.txt and .json")


def _save(directory: str | None, cases: list[Case]) -> None:
    if directory is None:
        return
    os.makedirs(directory, exist_ok=True)
    for c in cases:
        name = c.name.replace("/", "_").replace(":", "_").replace("[", "_").replace("]", "").replace("@", "_at")
        with open(os.path.join(directory, name + ".o"), "wb") as f:
            f.write(c.elf)


if __name__ == "__main__":
    main()
