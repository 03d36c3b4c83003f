"""`optimize_object`: the superoptimizer's one entry point (the CLI's `optimize` and, later,
`fn.compile(optimize=...)` call it).

It runs the window search (`optimizer`) and, with the tails, the drops (`drops`: instructions the path prover
proves unneeded), then the whole-object gate (`gate`): our verifier, the
bytecode prover and the lock-step proof (`lockstep`, pass by pass), the kernel. The output counts as proven when the
path-exploring prover proves it, or, where that prover cannot decide (its budget ran out, a helper it
does not model), when the lock-step proof does; `proven_by` says which. When the verifier, the prover
(with a counterexample) or the kernel refuses the result, the last pass's output is dropped and the one
before it tried, down to the input: the object returned is always one that passed, or the input itself.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pybpfdsl.bpf.disasm import format_listing
from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.cost import CostModel, cost
from pybpfdsl.superopt.drops import drops_pass
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.gate import GateVerdict, kernel_verdict, prove_whole, verifier_accepts
from pybpfdsl.superopt.lockstep import LockstepVerdict, RegionHints, prove_lockstep
from pybpfdsl.superopt.optimizer import PassLog, Rewrite, SearchOptions, optimise_code
from pybpfdsl.superopt.rules import RuleCache
from pybpfdsl.superopt.search import SearchBudget
from pybpfdsl.superopt.z3_context import own_context
from pybpfdsl.verify.analysis.api import is_xdp_section

__all__ = ["OptimizeResult", "optimize_object"]

WHOLE_PROOF_UNITS = 20_000_000
"""Z3 units for the whole-object proof of each entry program."""


@dataclass
class OptimizeResult:
    """The output object, what was rewritten, and the verdicts of every check."""

    before: bytes
    after: bytes
    rewrites: list[Rewrite]
    logs: list[PassLog]
    model: CostModel
    verifier: GateVerdict
    proof: GateVerdict
    kernel: GateVerdict
    kept_passes: int
    notes: list[str] = field(default_factory=list)
    proven_by: str = ""
    """"paths" (the bytecode prover), "lock-step" (`lockstep`, the prover undecided), "window proofs"
    (neither decided: kept only with ``trust_window_proofs``), or "" (unchanged, or the input kept)."""

    def _code(self, elf: bytes) -> dict[str, tuple[Instruction, ...]]:
        e = BpfElf.from_bytes(elf)
        out = {name: prog.instructions for name, prog in e.programs.items()}
        if e.text is not None and e.text.instructions:
            out[".text"] = e.text.instructions
        return out

    def slots(self, which: str = "after") -> dict[str, int]:
        code = self._code(self.after if which == "after" else self.before)
        return {name: sum(i.slots for i in insns) for name, insns in code.items()}

    def cost(self, which: str = "after") -> int:
        code = self._code(self.after if which == "after" else self.before)
        return sum(cost(insns, self.model) for insns in code.values())

    @property
    def reduction(self) -> float:
        """Fraction of slots removed over all code sections."""
        before = sum(self.slots("before").values())
        return (before - sum(self.slots("after").values())) / before if before else 0.0

    def listing(self) -> str:
        """Before and after, section by section; ``*`` marks instructions of rewritten windows."""
        lines: list[str] = []
        before, after = self._code(self.before), self._code(self.after)
        for name, old in before.items():
            new = after.get(name, ())
            old_text, new_text = format_listing(old), format_listing(new)
            matcher = difflib.SequenceMatcher(a=[_shape(i) for i in old], b=[_shape(i) for i in new], autojunk=False)
            changed_a: set[int] = set()
            changed_b: set[int] = set()
            for tag, a0, a1, b0, b1 in matcher.get_opcodes():
                if tag != "equal":
                    changed_a.update(range(a0, a1))
                    changed_b.update(range(b0, b1))
            lines.append(f"== {name}: before ({sum(i.slots for i in old)} slots)")
            lines += [("* " if n in changed_a else "  ") + t for n, t in enumerate(old_text)]
            lines.append(f"== {name}: after ({sum(i.slots for i in new)} slots)")
            lines += [("* " if n in changed_b else "  ") + t for n, t in enumerate(new_text)]
        return "\n".join(lines)

    def summary(self) -> dict[str, object]:
        return {
            "slots_before": self.slots("before"), "slots_after": self.slots("after"),
            "cost_model": self.model.value, "cost_before": self.cost("before"), "cost_after": self.cost("after"),
            "reduction": round(self.reduction, 4),
            "rewrites": [{"pass": r.pass_no, "section": r.section, "function": r.function, "at": r.start,
                          "before": [str(i) for i in r.before], "after": [str(i) for i in r.after],
                          "from": r.source} for r in self.rewrites],
            "proposals": sum(log.proposals for log in self.logs),
            "window_proofs": sum(log.proofs for log in self.logs),
            "refuted_by_proof": sum(log.refuted for log in self.logs),
            "verifier": self.verifier.status, "proof": self.proof.status, "kernel": self.kernel.status,
            "proven_by": self.proven_by,
            "reasons": {k: v.reason for k, v in (("verifier", self.verifier), ("proof", self.proof),
                                                   ("kernel", self.kernel)) if v.reason},
            "notes": self.notes,
        }


def _shape(insn: Instruction) -> tuple[int, int, int, int]:
    """An instruction without its jump distance (which moves when code before its target is removed)."""
    if insn.jump_offset is not None:
        return insn.opcode, insn.dst, insn.src, 0
    return insn.opcode, insn.dst, insn.src, insn.off ^ (insn.imm << 16)


def optimize_object(elf: bytes, *, section: str | None = None, proposals: int = 600,
                    model: CostModel = CostModel.SLOTS, seed: int = 0, rules: RuleCache | Path | None = None,
                    passes: int = 5, window: int = 6, whole_proof_units: int = WHOLE_PROOF_UNITS,
                    kernel: bool = True, trust_window_proofs: bool = False, all_types: bool = True,
                    regions: bool = True, tails: bool = True) -> OptimizeResult:
    """Optimise the code of ``elf`` (the section or function ``section``, or every code section).

    ``proposals`` is the MCMC budget per window; ``rules`` a loaded cache, a path to one, or None for
    no cache. The whole-program proof must say "proven" (the path prover, or the lock-step proof where
    that one cannot decide) unless ``trust_window_proofs``, which also accepts "unknown" on the strength
    of the window proofs alone. ``all_types`` also optimises programs other than XDP (tracepoints beside
    an XDP program): the lock-step proof must prove those and the kernel load them. ``regions`` threads
    the regions with jumps inside first; where the output with them is proven by neither whole-program
    proof, the search runs again without them (their segments are what the proofs could not decide). ``tails`` sends
    jumps to an exit to a tail ``r0 = K; exit`` where r0 holds K (`exit_tails`); the lock-step proof does not
    decide those, so where the path prover does not either, the search runs again without them first; with
    them goes the last pass, the instructions the path prover proves unneeded dropped (`drops`). The
    result is deterministic given the arguments (no budget is in seconds), whatever ran before it in the process
    (every Z3 query of the call goes to a context of its own, `z3_context`).
    """
    with own_context():
        return _optimize(elf, section, proposals, model, seed, rules, passes, window, whole_proof_units, kernel,
                         trust_window_proofs, all_types, regions, tails)


def _optimize(elf: bytes, section: str | None, proposals: int, model: CostModel, seed: int,
              rules: RuleCache | Path | None, passes: int, window: int, whole_proof_units: int, kernel: bool,
              trust_window_proofs: bool, all_types: bool, regions: bool, tails: bool = True) -> OptimizeResult:
    cache = RuleCache.load(rules) if isinstance(rules, Path) else rules
    opts = SearchOptions(SearchBudget(proposals=proposals), model, seed, window, passes, all_types, regions,
                         tails=tails)
    objects, logs = optimise_code(elf, section, opts, cache)
    if tails:
        logs.append(PassLog())
        objects.append(_drops(objects[-1], section, len(logs) - 1, logs[-1]))
    notes: list[str] = []

    def safe(candidate: bytes) -> tuple[GateVerdict, GateVerdict]:
        ver = verifier_accepts(elf, candidate)
        kern = kernel_verdict(elf, candidate) if kernel and ver.ok else GateVerdict(
            "skipped", "not asked" if not kernel else "the verifier refused")
        return ver, kern

    accepted: bytes = elf
    stages = [elf]  # the object after each pass that changed it: the lock-step proof goes stage by stage
    hints: list[RegionHints] = []  # the regions each stage replaced (a segment of its own in lock step)
    kept: list[Rewrite] = []
    for p, log in enumerate(logs):
        if objects[p] != accepted or objects[p + 1] == accepted:
            continue  # nothing new, or an earlier pass was filtered: this pass's edits no longer apply
        ver, kern = safe(objects[p + 1])
        if ver.ok and kern.status != "failed":
            accepted, kept = objects[p + 1], kept + log.rewrites
            stages.append(accepted)
            hints.append(_region_hints(log.rewrites))
            continue
        if log.rewrites and all(r.source == "drop" for r in log.rewrites):
            # Each drop was proven on the program with the drops before it made: the longest prefix that passes.
            good = _longest_prefix(objects[p], log.rewrites, lambda c: _passes(safe(c)))
        elif any(r.source in ("tail", "coalesce") for r in log.rewrites):
            good = []  # a dropped r0 = K rests on the retargets beside it, a renamed use on the pair: all or none
        else:
            good = _keep_safe(objects[p], log.rewrites, lambda c: _passes(safe(c)))
        refused = [r for r in log.rewrites if r not in good]
        notes.append(f"pass {p + 1}: {len(refused)} of {len(log.rewrites)} rewrites refused by the "
                     f"{'verifier' if not ver.ok else 'kernel'} ({(ver.reason or kern.reason)[:200]})")
        if cache is not None:
            for r in refused:
                cache.forget(r.before, r.live_out, r.known, r.widths)
        accepted, kept = _apply(objects[p], good), kept + good
        if accepted != stages[-1]:
            stages.append(accepted)
            hints.append(_region_hints(good))
    verdicts = (GateVerdict("skipped", "no rewrite"),) * 3
    proven_by = ""
    if accepted != elf:
        ver, kern = safe(accepted)
        proof = prove_whole(elf, accepted, whole_proof_units)
        lock = _lockstep_chain(stages, hints)
        if proof.ok and _changed_beyond_xdp(elf, accepted):
            # The path prover looked at the XDP programs only: the others rest on the lock-step proof.
            proof = GateVerdict("unknown", "programs other than XDP changed, which the path prover does not model")
        if proof.ok:
            proven_by = "paths"
        elif proof.status == "unknown" and lock.proven:
            proof = GateVerdict("ok", f"proven in lock step ({lock.segments} segment pairs); the path prover "
                                      f"did not decide: {proof.reason[:200]}")
            proven_by = "lock-step"
        elif proof.status == "unknown":
            proven_by = "window proofs"
            notes.append(f"lock-step proof {lock.status}: {lock.reason[:200]}")
        verdicts = (ver, proof, kern)
        if not (proof.ok or (trust_window_proofs and proof.status == "unknown")):
            if tails and any(r.source in ("tail", "sum", "coalesce", "drop") for r in kept):
                again = optimize_object(elf, section=section, proposals=proposals, model=model, seed=seed,
                                        rules=cache, passes=passes, window=window,
                                        whole_proof_units=whole_proof_units, kernel=kernel,
                                        trust_window_proofs=trust_window_proofs, all_types=all_types,
                                        regions=regions, tails=False)
                again.notes.insert(0, f"with the exit tails, the whole-program proof {proof.status} "
                                      f"({proof.reason[:200]}): searched again without them")
                return again
            if regions and any(r.source == "region" for r in kept):
                again = optimize_object(elf, section=section, proposals=proposals, model=model, seed=seed,
                                        rules=cache, passes=passes, window=window,
                                        whole_proof_units=whole_proof_units, kernel=kernel,
                                        trust_window_proofs=trust_window_proofs, all_types=all_types, regions=False,
                                        tails=tails)
                again.notes.insert(0, f"with the regions threaded, the whole-program proof {proof.status} "
                                      f"({proof.reason[:200]}): searched again without them")
                return again
            notes.append(f"whole-program proof {proof.status}: the input is kept ({proof.reason[:200]})")
            accepted, kept, proven_by = elf, [], ""
    if cache is not None and kept:
        cache.save()
    return OptimizeResult(elf, accepted, kept, logs, model, *verdicts, kept_passes=len({r.pass_no for r in kept}),
                          notes=notes, proven_by=proven_by)


def _drops(elf_bytes: bytes, section: str | None, pass_no: int, log: PassLog) -> bytes:
    """The last pass, after the search: `drops.drops_pass` on the XDP programs (of ``section``, if one is named),
    each drop a rewrite of source "drop" (an instruction dropped, proven by the path prover)."""
    elf = BpfElf.from_bytes(elf_bytes)
    sections = list(elf.programs) if section is None else [elf.program(section).section]
    out, made = drops_pass(elf_bytes, sections)
    for sec, function, start, insn in made:
        log.rewrites.append(Rewrite(pass_no, sec, function, start, (insn,), (), 0, "drop"))
    log.proofs += len(made)
    return out


def _region_hints(rewrites: Sequence[Rewrite]) -> RegionHints:
    out: dict[str, list[tuple[int, int, int]]] = {}
    for r in rewrites:
        if r.source == "region":
            out.setdefault(r.section, []).append((r.start, len(r.before), len(r.after)))
    return out


def _lockstep_chain(stages: Sequence[bytes], hints: Sequence[RegionHints] = ()) -> LockstepVerdict:
    """The lock-step proof of each pass's output against its input (equality is transitive). Pass by pass
    because each pass's window proofs assumed its own input's liveness: a later pass may drop a write
    whose reader an earlier pass removed, which the first input's liveness would still call live."""
    segments = 0
    for n, (a, b) in enumerate(itertools.pairwise(stages)):
        verdict = prove_lockstep(a, b, regions=hints[n] if n < len(hints) else None)
        if not verdict.proven:
            return LockstepVerdict(verdict.status, f"stage {n + 1}: {verdict.reason}")
        segments += verdict.segments
    return LockstepVerdict("proven", segments=segments)


def _changed_beyond_xdp(before: bytes, after: bytes) -> bool:
    """Whether code a non-XDP program runs changed (its section, or .text where such a program exists)."""
    old, new = BpfElf.from_bytes(before), BpfElf.from_bytes(after)
    others = [s for s in old.programs if not is_xdp_section(s)]
    if any(old.programs[s].instructions != new.programs[s].instructions for s in others):
        return True
    return bool(others) and old.text is not None and new.text is not None \
        and old.text.instructions != new.text.instructions


def _passes(verdicts: tuple[GateVerdict, GateVerdict]) -> bool:
    return verdicts[0].ok and verdicts[1].status != "failed"


def _apply(base: bytes, rewrites: Sequence[Rewrite]) -> bytes:
    edits: dict[str, list[Replacement]] = {}
    for r in rewrites:
        edits.setdefault(r.section, []).append(r.replacement)
    return rewrite_code(base, edits) if edits else base


def _keep_safe(base: bytes, rewrites: Sequence[Rewrite], ok: Callable[[bytes], bool],
               kept: Sequence[Rewrite] = ()) -> list[Rewrite]:
    """A subset of one pass's ``rewrites`` (disjoint windows of ``base``) that ``ok`` accepts on top of
    ``kept``: all of them if it accepts that, else each half in turn (a rewrite alone that it refuses is
    dropped). About k log n checks for k refused rewrites among n."""
    if not rewrites:
        return []
    if ok(_apply(base, [*kept, *rewrites])):
        return list(rewrites)
    if len(rewrites) == 1:
        return []
    half = len(rewrites) // 2
    first = _keep_safe(base, rewrites[:half], ok, kept)
    return first + _keep_safe(base, rewrites[half:], ok, [*kept, *first])


def _longest_prefix(base: bytes, rewrites: Sequence[Rewrite], ok: Callable[[bytes], bool]) -> list[Rewrite]:
    """The longest prefix of ``rewrites`` (a chain: each proven on ``base`` with the ones before it made) that
    ``ok`` accepts, found by halving (about log n checks; the empty prefix is ``base`` itself)."""
    lo, hi = 0, len(rewrites) - 1  # the whole chain was refused
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(_apply(base, rewrites[:mid])):
            lo = mid
        else:
            hi = mid - 1
    return list(rewrites[:lo])
