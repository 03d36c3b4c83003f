"""The kernel-differential corpus: every example and construct program plus their mutants, each loaded
into the kernel (libbpf, as root) and run through our verifier; the table of agreements/disagreements."""

from __future__ import annotations

import glob
import importlib
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from pybpfdsl.runtime.bpf_object import BpfObject, LoadError
from pybpfdsl.verify.analysis import verify_object
from tests.verify.corpus.mutants import mutants

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@dataclass
class Outcome:
    name: str
    kind: str
    kernel_ok: bool
    ours_ok: bool
    our_codes: tuple[str, ...]
    kernel_log_tail: str = ""


def programs() -> Iterator[tuple[str, bytes, str]]:
    mods = [f"examples.{os.path.basename(p)[:-3]}" for p in sorted(glob.glob(f"{ROOT}/examples/*.py"))
            if not p.endswith("__init__.py")] + ["tests.differential.constructs"]
    for mn in mods:
        m = importlib.import_module(mn)
        for n, v in vars(m).items():
            if getattr(v, "__pybpfdsl_program__", False) and v.__module__ == mn:
                c = v.compile()
                yield n, c.elf, c.name


def kernel_accepts(elf: bytes, name: str) -> tuple[bool, str]:
    try:
        obj = BpfObject.load(elf, name[:15], log_level=0)
    except LoadError as exc:
        return False, str(exc.log)[-300:]
    obj.close()
    return True, ""


def judge(name: str, kind: str, elf: bytes, section: str) -> Outcome:
    k_ok, log = kernel_accepts(elf, section)
    r = verify_object(elf, section)
    return Outcome(name, kind, k_ok, r.ok, tuple(sorted({f.code.value for f in r.errors})), log)


def run_corpus(limit_per_program: int | None = None) -> list[Outcome]:
    out: list[Outcome] = []
    for name, elf, section in programs():
        out.append(judge(name, "original", elf, section))
        for i, m in enumerate(mutants(elf, section, name)):
            if limit_per_program is not None and i >= limit_per_program:
                break
            out.append(judge(m.name, m.kind, m.elf, section))
    return out


POLICY = {"uninit-stack", "pointer-leak", "exit-value"}
"""Stricter-than-root-kernel rules we keep on purpose (the kernel applies them to unprivileged loaders)."""


def table(outcomes: list[Outcome]) -> str:
    rows = Counter((o.kind, o.kernel_ok, o.ours_ok) for o in outcomes)
    kinds = sorted({o.kind for o in outcomes})
    lines = [f"{'kind':28} {'n':>5} {'agree':>6} {'unsafe-acc':>10} {'we-reject-kernel-ok':>20}"]
    for k in kinds:
        n = sum(v for (kk, _, _), v in rows.items() if kk == k)
        agree = rows[(k, True, True)] + rows[(k, False, False)]
        lines.append(f"{k:28} {n:5} {agree:6} {rows[(k, False, True)]:10} {rows[(k, True, False)]:20}")
    accepted = [o for o in outcomes if o.kernel_ok]
    ours = [o for o in accepted if o.ours_ok]
    unsafe = [o for o in outcomes if not o.kernel_ok and o.ours_ok]
    lines.append(f"total {len(outcomes)}; agreements {sum(o.kernel_ok == o.ours_ok for o in outcomes)}; "
                 f"unsafe accepts {len(unsafe)}; kernel-accepted {len(accepted)}, we accept {len(ours)} "
                 f"({100 * len(ours) / max(1, len(accepted)):.1f}%)")
    for o in outcomes:
        if o.kernel_ok != o.ours_ok:
            lines.append(f"  diff {o.name:45} kernel={'ok' if o.kernel_ok else 'reject'} "
                         f"ours={'ok' if o.ours_ok else ','.join(o.our_codes)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(run_corpus()))
