"""Putting a program on an interface: compile it, put it through every check, then link it.

    with attach(port_acl_filter, "eth0") as a:     # or port_acl_filter.attach("eth0")
        port_acl[8080] = DENY                       # live: the kernel map changes at once
        a.replace(port_acl_filter_v2)               # atomic swap, maps (and counters) carried over

`attach` checks the target (interface, mode, pin path, not busy), compiles the program (or takes a
`LoadedProgram`), runs the gates in `GATES` in order (pybpfdsl's own safety verifier, whose errors name
the Python line; the Z3 proof that the bytecode does what the IR says; the kernel verifier, which loads
the program), and only when all pass creates the BPF link (`runtime.attachment`). `Attachment.replace`
does the same for a new version of a running program: it is loaded reusing the running program's maps
and swapped in with `bpf_link_update` only after passing every gate. On any failure nothing changes on
the interface and no state is lost.

Failures are the `AttachError` family of `runtime.attach_errors`; a failed gate is `AttachRefused`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from pybpfdsl.program import CompiledProgram, XdpProgram
from pybpfdsl.runtime.attach_errors import AttachRefused, privileged_load
from pybpfdsl.runtime.attachment import AttachTarget, LinkAttachment
from pybpfdsl.runtime.errors import KernelVerifierError
from pybpfdsl.runtime.loaded import LoadedProgram, PendingReplacement
from pybpfdsl.runtime.replacement import plan_replacement
from pybpfdsl.runtime.xdp_link import Mode

__all__ = [
    "GATES",
    "Attachment",
    "Candidate",
    "Gate",
    "GateResult",
    "KernelVerifierGate",
    "ProofGate",
    "UserspaceVerifierGate",
    "attach",
]

_log = logging.getLogger("pybpfdsl.runtime")


# -- gates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict; `reason` says why (shown to the user when the gate fails)."""

    passed: bool
    reason: str = ""


@dataclass
class Candidate:
    """What the gates judge: a program on its way to an interface.

    `program`/`compiled` are the DSL function and its compilation (None when a `LoadedProgram` was
    given to `attach`); `prog_fd` is set once the kernel has loaded (and verified) the program, by
    `load()`, which the kernel verifier gate calls; gates placed after it can use the fd.
    """

    name: str
    ifname: str
    action: Literal["attach", "replace"]
    program: XdpProgram | None
    compiled: CompiledProgram | None
    prog_fd: int | None = None
    loader: Callable[[], int] | None = field(default=None, repr=False)

    def load(self) -> int:
        """Load the program into the kernel (once); raises `KernelVerifierError` if it is rejected."""
        if self.prog_fd is None:
            if self.loader is None:
                raise RuntimeError(f"candidate {self.name!r} has no way to be loaded")
            self.prog_fd = self.loader()
        return self.prog_fd


@runtime_checkable
class Gate(Protocol):
    """A check a program must pass before it is attached (or swapped in). `check` returns a
    `GateResult`; gates run in the order of the list given to `attach` (default `GATES`)."""

    name: str

    def check(self, candidate: Candidate) -> GateResult: ...


class KernelVerifierGate:
    """The kernel verifier: loads the program; fails with the verifier's complaint, on the Python line."""

    name = "kernel verifier"

    def check(self, candidate: Candidate) -> GateResult:
        try:
            candidate.load()
        except KernelVerifierError as exc:
            return GateResult(False, str(exc))
        return GateResult(True, "the kernel loaded the program")


class ProofGate:
    """The Z3 equivalence proof of bytecode against IR: refuses a program that is not proven (a
    counterexample, or unknown within the budget). Uses the verdict `compile()` recorded, or proves
    now when there is none (`attach` compiles without proving, `fn.load()` too); verdicts are cached
    by the object's bytes, on disk as well, so a program is proved once."""

    name = "equivalence proof"

    def check(self, candidate: Candidate) -> GateResult:
        # Looked up at each check, not bound at import: tests stand in for the prover.
        from pybpfdsl.verify.equivalence import prove

        compiled = candidate.compiled
        if compiled is None:
            return GateResult(False, _NO_COMPILED)
        proof = compiled.proof
        if proof is None or proof.status == "skipped":
            proof = prove.prove_on_compile(compiled.subject)
        if proof.status != "proven":
            return GateResult(False, proof.report() + _override_hint(self.name))
        return GateResult(True, proof.summary())


class UserspaceVerifierGate:
    """pybpfdsl's own safety verifier: refuses what it cannot show safe, explaining the Python line."""

    name = "userspace verifier"

    def check(self, candidate: Candidate) -> GateResult:
        from pybpfdsl.verify.analysis import api

        compiled = candidate.compiled
        if compiled is None:
            return GateResult(False, _NO_COMPILED)
        report = compiled.verification if compiled.verification is not None else api.verify_program(compiled.subject)
        if not report.ok:
            return GateResult(False, report.format() + _override_hint(self.name))
        return GateResult(True, f"verified {len(report.instructions)} instructions")


_NO_COMPILED = ("no compiled program to check: attach the @xdp function itself, or a LoadedProgram made by "
                "fn.load()")


def _override_hint(gate: str) -> str:
    return ("\nto attach without this check (at your own risk), pass "
            f"gates=[g for g in pybpfdsl.deploy.GATES if g.name != {gate!r}]")


GATES: list[Gate] = [UserspaceVerifierGate(), ProofGate(), KernelVerifierGate()]
"""The checks every program passes before `attach`/`replace`, in order: our verifier (whose errors name
the Python line), the Z3 proof that the bytecode does what the IR says, then the kernel verifier, which
loads it. Nothing reaches an interface unless all pass."""


def _run_gates(candidate: Candidate, gates: Iterable[Gate] | None) -> None:
    chosen = list(GATES if gates is None else gates)
    if not any(isinstance(g, KernelVerifierGate) for g in chosen):
        chosen.append(KernelVerifierGate())  # nothing reaches an interface without the kernel's verdict
    for gate in chosen:
        result = gate.check(candidate)
        _log.debug("gate %s on %s: %s", gate.name, candidate.name, result)
        if not result.passed:
            raise AttachRefused(candidate.name, candidate.ifname, candidate.action, gate.name, result.reason)


# -- compile, check, attach -------------------------------------------------------------------------


class Attachment(LinkAttachment):
    """A program attached to an interface through a BPF link; create with `attach`.

    Context manager: leaving the block detaches (also a pinned link). `detach()` is idempotent and
    copies the kernel's state back into the state objects (when `attach` loaded the program). An
    attachment that is never detached stays until the process exits (or, pinned, until `detach`).
    `program` is the `@xdp` function running (None when a `LoadedProgram` was attached).
    """

    program: XdpProgram | None = None

    def replace(self, new: XdpProgram, *, gates: Iterable[Gate] | None = None) -> None:
        """Swap `new` in for the running program, atomically (`bpf_link_update`).

        `new` is compiled and loaded reusing the running program's maps of the same name (contents
        kept) and its `.bss`/`.data` sections when their layout is unchanged (otherwise Globals of the
        same name start from the running program's current values), and must pass every gate. A map or
        Global of the same name with a different type raises `IncompatibleReplacement` before anything
        is loaded. On any failure the running program, its maps and its state bindings are unchanged.
        Afterwards the state objects are bound to the new program's (same) maps.
        """
        with self._lock:
            self._ensure_attached()
            compiled = new.compile(prove=False)  # the proof gate proves (once: verdicts are cached)
            lowered = compiled.lowered
            plan = plan_replacement(self.loaded, lowered.program, compiled.elf, self.ifname)
            pending: list[PendingReplacement] = []

            def loader() -> int:
                with privileged_load(new.name):
                    p = self.loaded.load_replacement(compiled.elf, lowered.program, lowered.state,
                                                     reuse_maps=plan.reuse, keep=plan.keep,
                                                     source_lines=compiled.source_lines())
                pending.append(p)
                return p.prog_fd

            candidate = Candidate(new.name, self.ifname, "replace", new, compiled, loader=loader)
            try:
                _run_gates(candidate, gates)
            except BaseException:
                for p in pending:
                    p.discard()
                raise
            self.switch_to(pending[0])  # discards the replacement itself if the swap fails
            self.program = new


def attach(target: XdpProgram | LoadedProgram, ifname: str, mode: Mode = "auto", pin: str | None = None, *,
           gates: Iterable[Gate] | None = None) -> Attachment:
    """Attach an `@xdp` program (compiled and loaded here) or a `LoadedProgram` to `ifname`.

    `mode`: "native" (driver XDP), "skb" (generic XDP, any interface) or "auto" (native, falling back to
    skb when the driver cannot; `Attachment.mode` says which was used). `pin`: a path on bpffs where the
    link is pinned so that it outlives this process. `gates`: the checks to pass (default `GATES`; the
    kernel verifier always runs). Raises the `AttachError` subclasses of `runtime.attach_errors`; on any
    failure nothing is attached and a program loaded here is unloaded again.
    """
    where = AttachTarget.check(ifname, mode, pin)
    loaded_box: list[LoadedProgram] = []
    if isinstance(target, LoadedProgram):
        loaded_box.append(target)
        candidate = Candidate(target.program.name, ifname, "attach", None, target.compiled, prog_fd=target.fd)
        owns = False
        program = None
    elif isinstance(target, XdpProgram):
        # Proving is the proof gate's business: it runs if and only if the gates include it.
        compiled = target.compile(prove=False)
        lowered = compiled.lowered
        owns = True
        program = target

        def loader() -> int:
            with privileged_load(target.name):
                lp = LoadedProgram.load(compiled.elf, lowered.program, lowered.state,
                                        source_lines=compiled.source_lines())
            loaded_box.append(lp)
            return lp.fd

        candidate = Candidate(target.name, ifname, "attach", target, compiled, loader=loader)
    else:
        raise TypeError(f"attach takes an @xdp program or a LoadedProgram, not {type(target).__name__}")

    try:
        _run_gates(candidate, gates)
        attachment = Attachment.link(loaded_box[0], where, owns_loaded=owns)
    except BaseException:
        if owns:
            for lp in loaded_box:
                lp.close()
        raise
    attachment.program = program
    return attachment
