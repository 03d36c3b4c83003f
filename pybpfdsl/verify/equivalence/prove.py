"""The query: for every input, the two programs behave the same (SimpleBPF §5.2, K2 §4).

`Inputs` holds every packet (every length up to `MAX_PACKET_LEN`), every initial map and global state
and every sequence of helper results; each program is executed symbolically over them (`ir_encoding`,
`bytecode_encoding`); `observe` merges the paths into outputs, and the solver is asked for an input on
which an output differs. Unsat is a proof; a model is a counterexample (see `counterexample`).

For IR against bytecode there is a second obligation, checked first: no input makes the IR break its
own rules (a packet load outside an established `InBounds`, a load through a null reference). With
that, equivalence also proves the backend's packet guards (which return XDP_ABORTED) unreachable:
the IR never aborts there, so a reachable guard would be a difference in the action.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import z3

from pybpfdsl.ir import nodes as n
from pybpfdsl.verify.equivalence.bytecode_encoding import BytecodeEncoder
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram, load_program
from pybpfdsl.verify.equivalence.ir_encoding import IREncoder
from pybpfdsl.verify.equivalence.nonlinear import NonlinearAbstraction, has_runtime_products, shared_cuts
from pybpfdsl.verify.equivalence.observe import (
    Difference,
    Observation,
    differences,
    disagreement,
    normalizer_for,
    observe,
)
from pybpfdsl.verify.equivalence.paths import MERGE_AFTER_PATHS, Exploration, Unsupported
from pybpfdsl.verify.equivalence.state import Inputs, Term
from pybpfdsl.verify.equivalence.sweep import sweep
from pybpfdsl.verify.equivalence.terms import is_costly_product, substitute, subterms

if TYPE_CHECKING:
    from pybpfdsl.bpf.instruction import Instruction
    from pybpfdsl.program import CompiledProgram
    from pybpfdsl.verify.equivalence.counterexample import Counterexample

Status = Literal["proven", "counterexample", "unknown", "skipped"]
DEFAULT_TIMEOUT_MS = 60_000

PROVE_ON_COMPILE = os.environ.get("PYBPFDSL_PROVE", "1") != "0"
"""Whether `fn.compile()` proves by default (module-level switch; `PYBPFDSL_PROVE=0` turns it off)."""
COMPILE_TIMEOUT_MS = int(os.environ.get("PYBPFDSL_PROVE_TIMEOUT_MS", "20000"))
"""Budget of the proof `compile()` runs; past it the result is 'unknown' (and `attach` refuses). The
token-bucket examples take under 2 s on an idle machine; the budget leaves room for a loaded one and
for programs with longer chains of fixed-point arithmetic."""
_CACHE: dict[str, ProofResult] = {}


@dataclass
class ProofResult:
    """The verdict of one equivalence proof, with its cost."""

    status: Status
    seconds: float = 0.0
    stats: dict[str, int | float | str] = field(default_factory=dict)
    reason: str = ""
    counterexample: Counterexample | None = None

    @property
    def proven(self) -> bool:
        return self.status == "proven"

    def summary(self) -> str:
        head = f"{self.status} in {self.seconds:.3f} s"
        if self.stats:
            head += " (" + ", ".join(f"{k}={v}" for k, v in self.stats.items() if k in _SHOWN) + ")"
        return head + (f": {self.reason}" if self.reason else "")

    def report(self, full: bool = False) -> str:
        """The summary, and for a counterexample the side-by-side replay: a screenful unless `full`."""
        if self.counterexample is None:
            return self.summary()
        return self.summary() + "\n" + self.counterexample.report(full)


_SHOWN = ("paths_a", "paths_b", "solver_checks", "abstracted", "merged", "swept", "sweep_passes", "sweep_undecided",
          "cuts", "refined", "conflicts", "decisions")


def skipped(reason: str = "compile(prove=False)") -> ProofResult:
    return ProofResult("skipped", reason=reason)


@dataclass
class _Side:
    label: str
    exploration: Exploration


def _solver_stats(solver: z3.Solver) -> dict[str, int | float | str]:
    out: dict[str, int | float | str] = {}
    st = solver.statistics()
    for key in st:
        if key in ("conflicts", "decisions", "propagations", "memory", "max memory", "rlimit count",
                   "sat conflicts", "sat decisions"):
            value = st.get_key_value(key)
            out[key.replace(" ", "_")] = value
    return out


def prove_programs(a_run: Callable[[float | None], Exploration], b_run: Callable[[float | None], Exploration],
                   inputs: Inputs, replay: object, *, labels: tuple[str, str] = ("IR", "bytecode"),
                   timeout_ms: int = DEFAULT_TIMEOUT_MS) -> ProofResult:
    """The generic query over two explorations (either side IR or bytecode); `timeout_ms` bounds the
    whole proof (exploration and solving)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_ms / 1000
    try:
        a = _Side(labels[0], a_run(deadline))
        b = _Side(labels[1], b_run(deadline))
    except Unsupported as exc:
        return ProofResult("unknown", time.perf_counter() - started, reason=f"not modelled: {exc}")
    stats: dict[str, int | float | str] = {
        "paths_a": len(a.exploration.outcomes), "paths_b": len(b.exploration.outcomes),
        "solver_checks": a.exploration.solver_checks + b.exploration.solver_checks,
    }
    # Obligation 1: neither side breaks the IR's rules (only IR paths can end in ir_error).
    # Obligation 2: no input on which an output differs.
    # Each first with products and quotients abstract (a proof if unsat), then exactly (the abstract
    # query plus the definitions of its functions: equisatisfiable with the original).
    normalizer = normalizer_for(inputs)
    normalizer.deadline = deadline  # normal forms of merged loops can take long: stay in the budget
    try:
        obs_a, obs_b = observe(a.exploration.outcomes, inputs), observe(b.exploration.outcomes, inputs)
        diffs = differences(obs_a, obs_b)
        abstraction = NonlinearAbstraction(normalizer.normalize)
        abstraction.deadline = deadline
        queries = [(kind, abstraction.rewrite(q)) for kind, q in (
            ("ir_error", z3.Or(obs_a.ir_error, obs_b.ir_error)),
            ("difference", disagreement(obs_a, obs_b, diffs)))]
        sides = ([abstraction.rewrite(t) for t in _observed(obs_a)],
                 [abstraction.rewrite(t) for t in _observed(obs_b)])
        merged = abstraction.merge(inputs.assumptions,
                                   time.monotonic() + (deadline - time.monotonic()) * MERGE_SHARE)
    except Unsupported as exc:
        return ProofResult("unknown", time.perf_counter() - started, stats, reason=str(exc))
    finally:
        normalizer.deadline = None
    stats["abstracted"], stats["merged"] = len(abstraction.applications), len(merged)
    shared = _AbstractParts.of(abstraction, merged, sides, inputs, deadline, stats) \
        if abstraction.applications or _products_by_constants_differ(sides) else None
    for kind, query in queries:
        if shared is not None and _abstractly_unsat(query, abstraction, shared, inputs, deadline, stats):
            continue
        solver = z3.Solver()
        solver.set("timeout", max(1, int((deadline - time.monotonic()) * 1000)))
        solver.add(*inputs.assumptions)
        solver.add(query, *abstraction.definitions())
        verdict = solver.check()
        stats.update(_solver_stats(solver))
        if verdict == z3.unknown:
            return ProofResult("unknown", time.perf_counter() - started, stats, reason=solver.reason_unknown())
        if verdict == z3.sat:
            return _found(solver, kind, diffs if kind == "difference" else [], inputs, a, b, replay, stats,
                          started)
    return ProofResult("proven", time.perf_counter() - started, stats)


REFINEMENT_ROUNDS = 20
"""Spurious abstract counterexamples ruled out before the exact query takes over."""
MERGE_SHARE = 0.3
"""Part of the budget left after exploring that merging equal applications may use."""
ABSTRACT_SHARE = 0.6
"""Part of the remaining budget the abstract query may use before the exact one gets the rest."""
SWEEP_SHARE = 0.5
"""Part of the budget left after merging that finding and merging equal subterms (`sweep`) may use."""
GENERALIZED_SHARE = 0.4
"""Part of the abstract budget the generalized query (shared arithmetic cut out) may use."""


def _products_by_constants_differ(sides: tuple[list[Term], list[Term]]) -> bool:
    """Whether the two sides write their products by constants (`is_costly_product`) differently.
    Then they are swept as products and quotients are; otherwise the normal forms have done what
    sweeping would (a hash's `h * 31` steps are one polynomial on both sides)."""
    return subterms(sides[0], is_costly_product).keys() != subterms(sides[1], is_costly_product).keys()


def _observed(obs: Observation) -> list[Term]:
    """Every output term of one side (to find the subterms the two sides share)."""
    out = [obs.action, *obs.packet_writes, *[b for data in obs.sections.values() for b in data]]
    out += [v for present, value in obs.maps.values() for v in (present, value) if v is not None]
    out += [r for records in obs.ring_records.values() for r in records]
    return out


@dataclass(frozen=True)
class _AbstractParts:
    """What both obligations' abstract queries share: equal applications merged, then equal subterms
    of the two sides swept together (`sweep`), the lemmas so rewritten, and the arithmetic both sides
    still share (`shared_cuts`)."""

    merged: list[tuple[Term, Term]]
    swept: list[list[tuple[Term, Term]]]
    lemmas: list[Term]
    cuts: list[tuple[Term, Term]]

    @staticmethod
    def of(abstraction: NonlinearAbstraction, merged: list[tuple[Term, Term]],
           sides: tuple[list[Term], list[Term]], inputs: Inputs, deadline: float,
           stats: dict[str, int | float | str]) -> _AbstractParts:
        def merge(t: Term) -> Term:
            return substitute(t, merged)

        lemmas = [merge(lemma) for lemma in abstraction.lemmas]
        side_a, side_b = [merge(t) for t in sides[0]], [merge(t) for t in sides[1]]
        swept = sweep(side_a, side_b, inputs.assumptions, lemmas,
                      time.monotonic() + (deadline - time.monotonic()) * SWEEP_SHARE)
        stats["swept"], stats["sweep_passes"], stats["sweep_undecided"] = swept.pairs, swept.passes, swept.undecided
        return _AbstractParts(merged, swept.stages, swept.lemmas, shared_cuts(swept.side_a, swept.side_b))

    def rewrite(self, t: Term) -> Term:
        t = substitute(t, self.merged)
        for stage in self.swept:
            t = substitute(t, stage)
        return t


def _abstractly_unsat(query: Term, abstraction: NonlinearAbstraction, parts: _AbstractParts, inputs: Inputs,
                      deadline: float, stats: dict[str, int | float | str]) -> bool:
    """Whether the abstract `query` (rewritten by `parts`) is unsatisfiable: then it is unsatisfiable
    with the real operations too, a proof; otherwise nothing is known. First generalized further at
    the arithmetic both sides share (`shared_cuts`), then with spurious models refined."""
    budget_end = time.monotonic() + (deadline - time.monotonic()) * ABSTRACT_SHARE
    abstract = parts.rewrite(query)
    lemmas, cuts = parts.lemmas, parts.cuts
    if cuts:
        generalized = z3.Solver()
        generalized.set("timeout", max(1, int((budget_end - time.monotonic()) * 1000 * GENERALIZED_SHARE)))
        generalized.add(*inputs.assumptions)
        generalized.add(substitute(abstract, cuts), *[substitute(lemma, cuts) for lemma in lemmas])
        if generalized.check() == z3.unsat:
            stats["cuts"] = len(cuts)
            stats.update(_solver_stats(generalized))
            return True
    solver = z3.Solver()
    solver.set("timeout", max(1, int((budget_end - time.monotonic()) * 1000)))
    solver.add(*inputs.assumptions)
    solver.add(abstract, *lemmas)
    verdict = solver.check()
    for _ in range(REFINEMENT_ROUNDS):
        if verdict != z3.sat:
            break
        refinements = abstraction.refine(solver.model())
        if not refinements:
            break  # the model respects the real operations where it matters: the exact query decides
        solver.add(*refinements)
        solver.set("timeout", max(1, int((budget_end - time.monotonic()) * 1000)))
        verdict = solver.check()
    stats["refined"] = abstraction.refinements
    if verdict == z3.unsat:
        stats.update(_solver_stats(solver))
    return bool(verdict == z3.unsat)


def _found(solver: z3.Solver, kind: str, diffs: list[Difference], inputs: Inputs, a: _Side, b: _Side,
           replay: object, stats: dict[str, int | float | str], started: float) -> ProofResult:
    from pybpfdsl.verify.equivalence.counterexample import extract

    # Prefer a short packet: a person has to read it (each bound is one more solver call).
    model = solver.model()
    for bound in (64, 128, 512):
        solver.push()
        solver.add(z3.ULE(inputs.length, bound))
        found = solver.check() == z3.sat
        if found:
            model = solver.model()
        solver.pop()
        if found:
            break
    cex = extract(model, inputs, kind, diffs, a.exploration.outcomes, b.exploration.outcomes, (a.label, b.label),
                  replay)
    stats.update(_solver_stats(solver))
    reason = "the IR breaks its own rules on some input" if kind == "ir_error" else \
        "the programs differ in " + ", ".join(cex.differing)
    if not cex.reproduced:  # the model is no real difference (an imprecise encoding): never say "counterexample"
        return ProofResult("unknown", stats=stats, reason=f"{reason} says the solver, but {cex.replay_note()}",
                           counterexample=cex)
    return ProofResult("counterexample", time.perf_counter() - started, stats, reason, cex)


def prove_ir_bytecode(program: n.Program, bytecode: BytecodeProgram, replay: object = None,
                      timeout_ms: int = DEFAULT_TIMEOUT_MS) -> ProofResult:
    """Prove bytecode equivalent to its IR. `replay` (a `Replayer`) runs a counterexample concretely."""
    inputs = Inputs(bytecode.layout)
    try:
        ir = IREncoder(program, inputs)
    except Unsupported as exc:
        return ProofResult("unknown", reason=f"not modelled: {exc}")
    bc = BytecodeEncoder(bytecode, inputs)
    # With products or quotients, paths are merged from the start: the abstraction matches them by
    # operands, and a bytecode path split at a branch the IR writes as a select (min, max, the zero
    # guard) carries path-specific operands that match the IR's only under that path's condition; a
    # merged state has the IR's if-then-else instead.
    merge_after = 0 if has_runtime_products(program) else MERGE_AFTER_PATHS
    return prove_programs(lambda deadline: ir.run(deadline, merge_after),
                          lambda deadline: bc.run(deadline, merge_after), inputs, replay, timeout_ms=timeout_ms)


def prove_compiled(compiled: CompiledProgram, instructions: list[Instruction] | None = None,
                   timeout_ms: int = DEFAULT_TIMEOUT_MS) -> ProofResult:
    """Prove `compiled`'s bytecode (or `instructions` substituted for it) equivalent to its IR."""
    from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer

    bytecode = load_program(compiled.elf, compiled.name)
    if instructions is not None:
        bytecode = bytecode.with_instructions(instructions)
    return prove_ir_bytecode(compiled.lowered.program, bytecode, CompiledReplayer(compiled, bytecode), timeout_ms)


def prove_on_compile(compiled: CompiledProgram, timeout_ms: int | None = None) -> ProofResult:
    """The proof `compile()` attaches: cached by the object's and the IR's hash, so recompiling an
    unchanged program (as the test suite does many times) proves it once."""
    budget = COMPILE_TIMEOUT_MS if timeout_ms is None else timeout_ms
    # The budget is part of the key: an "unknown" may succeed with more time, never with the same time
    # (and re-proving an unknown at every compile would spend the whole budget each time).
    key = hashlib.sha256(compiled.elf + compiled.ir.encode() + str(budget).encode()).hexdigest()
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    result = prove_compiled(compiled, timeout_ms=budget)
    _CACHE[key] = result
    return result


def prove_objects(elf_a: bytes, elf_b: bytes, name: str, name_b: str | None = None,
                  timeout_ms: int = DEFAULT_TIMEOUT_MS) -> ProofResult:
    """Prove two BPF objects' programs equivalent (bytecode against bytecode, one encoder)."""
    from pybpfdsl.verify.equivalence.counterexample import ObjectReplayer

    a = load_program(elf_a, name)
    b = load_program(elf_b, name_b or name)
    if a.layout.maps != b.layout.maps:
        return ProofResult("unknown", reason="the objects declare different maps")
    inputs = Inputs(a.layout)
    return prove_programs(BytecodeEncoder(a, inputs).run, BytecodeEncoder(b, inputs).run, inputs,
                          ObjectReplayer(a, b), labels=("A", "B"), timeout_ms=timeout_ms)
