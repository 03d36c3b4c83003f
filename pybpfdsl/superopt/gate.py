"""The whole-object checks a rewritten object must pass after its windows were proven one by one.

In order: our verifier on every entry program (it must accept what it accepted before), the
bytecode-to-bytecode prover on every entry program (input against output, a budget in Z3 units), and
the kernel (each entry program loaded on its own, `kernel_check`; skipped with the reason where
``bpf()`` is not usable, or where the kernel loads none of the input's programs). A failure of any step keeps the input.
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.verify.analysis.api import is_xdp_section, verify_object

__all__ = ["GateVerdict", "kernel_verdict", "prove_program", "prove_whole", "verifier_accepts"]


@dataclass(frozen=True)
class GateVerdict:
    """``status``: "ok", "failed", "unknown" (the prover ran out of budget) or "skipped"; ``reason`` says why."""

    status: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _entries(elf: bytes, xdp_only: bool = True) -> list[str]:
    """Every entry program: each function of each program section (a section may hold several, e.g.
    xdp-tools' `SEC("xdp")` programs), or the section itself where it has no function symbol; only the
    XDP ones unless asked (the only sections the optimizer edits, and the only type the prover models)."""
    out = []
    for section, prog in BpfElf.from_bytes(elf).programs.items():
        if not xdp_only or is_xdp_section(section):
            out += [f.name for f in prog.functions] or [prog.name]
    return out


def verifier_accepts(before: bytes, after: bytes) -> GateVerdict:
    """Every entry program our verifier accepts in ``before`` it accepts in ``after``."""
    for name in _entries(before):
        if not verify_object(before, name).ok:
            continue
        report = verify_object(after, name)
        if not report.ok:
            return GateVerdict("failed", f"{name}: {report.format(2)}")
    return GateVerdict("ok")


def prove_program(before: bytes, after: bytes, name: str, units: int) -> tuple[str, str]:
    """The bytecode prover's status ("proven", "unknown", "counterexample") on program ``name`` of the two
    objects, and what it said. For any bytes of `.rodata` (`prove_objects`' `any_rodata`): a loader may write
    its configuration there, and the output replaces the input for every loader."""
    from pybpfdsl.verify.equivalence.prove import prove_objects

    try:
        result = prove_objects(before, after, name, budget=units, any_rodata=True)
    except (KeyError, ValueError, NotImplementedError) as exc:
        return "unknown", f"the prover cannot read it: {exc}"
    return result.status, result.summary()


def prove_whole(before: bytes, after: bytes, units: int) -> GateVerdict:
    """The bytecode prover on every entry program (`prove_program`): proven, or the first program it is not."""
    for name in _entries(before):
        if before == after:
            break
        status, said = prove_program(before, after, name, units)
        if status == "proven":
            continue
        return GateVerdict("unknown" if status == "unknown" else "failed", f"{name}: {said[:300]}")
    return GateVerdict("ok")


def kernel_verdict(before: bytes, after: bytes) -> GateVerdict:
    """The kernel loads every entry program of ``after`` (each on its own) whose ``before`` it loads."""
    from pybpfdsl.runtime.libbpf import kernel_bpf_available
    from pybpfdsl.superopt.kernel_check import load_alone

    usable, why = kernel_bpf_available()
    if not usable:
        return GateVerdict("skipped", why)
    loaded = 0
    old, new = BpfElf.from_bytes(before), BpfElf.from_bytes(after)
    for section, prog in old.programs.items():
        for name in [f.name for f in prog.functions] or [prog.name]:
            if load_alone(before, name).loaded:
                continue
            # The kernel refuses the input's program (or lacks what it needs): then nothing may change
            # in it, nor in the subprograms it may call, since no check of the kernel's would see it.
            touched = new.programs[section].instructions != prog.instructions or (
                old.text is not None and new.text is not None and old.text.instructions != new.text.instructions)
            if touched and not is_xdp_section(section):
                return GateVerdict("failed", f"{name}: the kernel does not load the input's program, so it "
                                             "cannot check the output's")
    for name in _entries(before, xdp_only=False):
        if not load_alone(before, name).loaded:
            continue
        got = load_alone(after, name)
        if not got.loaded:
            return GateVerdict("failed", f"{name}: {got.message[:300]}")
        loaded += 1
    return GateVerdict("ok") if loaded else GateVerdict("skipped", "the kernel loads none of the input's programs")
