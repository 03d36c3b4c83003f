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

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import z3

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.printer import format_program
from pybpfdsl.verify.equivalence import fib, path_pairs, proof_cache
from pybpfdsl.verify.equivalence.budget import Budget, OutOfBudget, parse_units
from pybpfdsl.verify.equivalence.bytecode_encoding import BytecodeEncoder
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram, load_program
from pybpfdsl.verify.equivalence.context import own_context
from pybpfdsl.verify.equivalence.ir_encoding import IREncoder
from pybpfdsl.verify.equivalence.nonlinear import NonlinearAbstraction, has_runtime_products, shared_cuts
from pybpfdsl.verify.equivalence.normalize import Normalizer
from pybpfdsl.verify.equivalence.observe import (
    Difference,
    Observation,
    differences,
    disagreement,
    normalizer_for,
    observe,
    read_byte,
)
from pybpfdsl.verify.equivalence.paths import MERGE_AFTER_PATHS, Exploration, Unsupported
from pybpfdsl.verify.equivalence.proof_result import ProofResult
from pybpfdsl.verify.equivalence.sweep import sweep
from pybpfdsl.verify.equivalence.symbolic_state import TEST_RUN_FRAME, Inputs, Term
from pybpfdsl.verify.equivalence.terms import is_costly_product, substitute, subterms
from pybpfdsl.verify.subject import Subject

if TYPE_CHECKING:
    from pybpfdsl.bpf.instruction import Instruction

DEFAULT_BUDGET = 300_000_000
"""Resource units (`budget`) of a proof asked for directly (`prove_compiled`, `prove_objects`, the
`prove` command): twice the compile budget."""
COMPILE_BUDGET_DEFAULT = 150_000_000
"""Resource units of the proof `compile()` runs unless `PYBPFDSL_PROVE_BUDGET` says otherwise. The
costliest example, vlan_tagging, needs 58 million (bandwidth_limiter 45 million), wherever it runs (each
proof has a Z3 context of its own, `context`, so the proofs before it in a process change nothing), so this
is more than 2.5x that. Z3 spends 1 to 5
million units a second on these queries, depending on the machine and its load."""


def _compile_budget() -> int:
    text = os.environ.get("PYBPFDSL_PROVE_BUDGET", "").strip()
    if not text:
        return COMPILE_BUDGET_DEFAULT
    try:
        return parse_units(text)
    except ValueError as exc:
        warnings.warn(f"PYBPFDSL_PROVE_BUDGET: {exc}; using {COMPILE_BUDGET_DEFAULT:,} units", stacklevel=1)
        return COMPILE_BUDGET_DEFAULT


PROVE_ON_COMPILE = os.environ.get("PYBPFDSL_PROVE", "1") != "0"
"""Whether `fn.compile()` proves by default (module-level switch; `PYBPFDSL_PROVE=0` turns it off)."""
COMPILE_BUDGET = _compile_budget()
"""Budget (resource units) of the proof `compile()` runs; past it the result is 'unknown' (and `attach`
refuses). Units, not seconds: the verdict is the same on a loaded machine as on an idle one.
`PYBPFDSL_PROVE_BUDGET` sets it (`150M` or `150000000`)."""
_CACHE: dict[str, ProofResult] = {}


@dataclass
class _Side:
    label: str
    exploration: Exploration


def _solver_stats(solver: z3.Solver) -> dict[str, int | float | str]:
    out: dict[str, int | float | str] = {}
    st = solver.statistics()
    for key in st:
        # Not "rlimit count": that is the whole context's counter (`budget.solver_count`).
        if key in ("conflicts", "decisions", "propagations", "memory", "max memory",
                   "sat conflicts", "sat decisions"):
            value = st.get_key_value(key)
            out[key.replace(" ", "_")] = value
    return out


def prove_programs(a_run: Callable[[Budget], Exploration], b_run: Callable[[Budget], Exploration],
                   inputs: Inputs, replay: object, *, labels: tuple[str, str] = ("IR", "bytecode"),
                   budget: int = DEFAULT_BUDGET) -> ProofResult:
    """The generic query over two explorations (either side IR or bytecode); `budget` (resource units,
    see `budget`) bounds the whole proof: exploration, normal forms and solving. Out of it, the verdict is
    "unknown" and says so; within it, the verdict does not depend on the machine or its load."""
    started = time.perf_counter()
    whole = Budget(budget)
    stats: dict[str, int | float | str] = {}
    try:
        result = _prove(a_run, b_run, inputs, replay, labels, whole, stats)
    except OutOfBudget as exc:
        result = ProofResult("unknown", stats=stats, reason=str(exc))
    result.seconds = time.perf_counter() - started
    result.units = stats["units"] = whole.spent
    return result


def _prove(a_run: Callable[[Budget], Exploration], b_run: Callable[[Budget], Exploration], inputs: Inputs,
           replay: object, labels: tuple[str, str], whole: Budget,
           stats: dict[str, int | float | str]) -> ProofResult:
    try:
        a = _Side(labels[0], a_run(whole))
        b = _Side(labels[1], b_run(whole))
    except Unsupported as exc:
        return ProofResult("unknown", stats=stats, reason=f"not modelled: {exc}")
    stats.update({
        "paths_a": len(a.exploration.outcomes), "paths_b": len(b.exploration.outcomes),
        "solver_checks": a.exploration.solver_checks + b.exploration.solver_checks,
    })
    # Obligation 1: neither side breaks the IR's rules (only IR paths can end in ir_error).
    # Obligation 2: no input on which an output differs.
    # Each first with products and quotients abstract (a proof if unsat), then exactly (the abstract
    # query plus the definitions of its functions: equisatisfiable with the original).
    normalizer = normalizer_for(inputs)
    normalizer.budget = whole  # normal forms of merged loops can be large: stay in the budget
    try:
        obs_a, obs_b = observe(a.exploration.outcomes, inputs, side=0), observe(b.exploration.outcomes, inputs, side=1)
        diffs = _unpaired(differences(obs_a, obs_b), obs_a, obs_b, inputs, normalizer, whole, stats)
        abstraction = NonlinearAbstraction(normalizer.normalize)
        abstraction.budget = whole
        queries = [(kind, abstraction.rewrite(q)) for kind, q in (
            ("ir_error", z3.Or(obs_a.ir_error, obs_b.ir_error)),
            ("difference", disagreement(obs_a, obs_b, diffs)))]
        sides = ([abstraction.rewrite(t) for t in _observed(obs_a)],
                 [abstraction.rewrite(t) for t in _observed(obs_b)])
        merged = abstraction.merge(inputs.assumptions, whole.share(MERGE_SHARE))
    except Unsupported as exc:
        return ProofResult("unknown", stats=stats, reason=str(exc))
    finally:
        normalizer.budget = None
    stats["abstracted"], stats["merged"] = len(abstraction.applications), len(merged)
    shared = _AbstractParts.of(abstraction, merged, sides, inputs, whole, stats) \
        if abstraction.applications or _products_by_constants_differ(sides) else None
    for kind, query in queries:
        if shared is not None and _abstractly_unsat(query, abstraction, shared, inputs, whole, stats):
            continue
        solver = z3.Solver()
        solver.add(*inputs.assumptions)
        solver.add(query, *abstraction.definitions())
        verdict = whole.check(solver)
        stats.update(_solver_stats(solver))
        if verdict == z3.unknown:
            return ProofResult("unknown", stats=stats, reason=_unknown_reason(solver, whole))
        if verdict == z3.sat:
            return _found(solver, kind, diffs if kind == "difference" else [], inputs, a, b, replay, whole, stats)
    return ProofResult("proven", stats=stats)


def _unpaired(diffs: list[Difference], obs_a: Observation, obs_b: Observation, inputs: Inputs,
              normalizer: Normalizer, whole: Budget, stats: dict[str, int | float | str]) -> list[Difference]:
    """`diffs` less the outputs proven equal path pair by path pair (`path_pairs`): the packet bytes,
    and the action, the packet's bounds and global data where merged paths' chains differ in form.
    Sound only because each is compared where neither program faults, and the query that the IR never
    breaks its rules is proven before the one they leave: there both programs return."""
    packet = [d for d in diffs if d.label == "packet" and d.at is not None]
    others = [d for d in diffs if d.values and d.at is None]
    if not packet:  # (a byte of a moved packet is compared within its bounds: a proof without them is one)
        return diffs  # (programs that do not write the packet: their final query as before)
    outputs = [path_pairs.byte_at(lambda o, at: read_byte(o, at, inputs, normalizer), d.at) for d in packet]
    outputs += [value for d in others for value in d.values]
    proven = path_pairs.proven_outputs(obs_a.returns, obs_b.returns, outputs, inputs.assumptions, normalizer,
                                       whole.share(PAIR_SHARE))
    settled = {id(d) for k, d in enumerate(packet) if k in proven}
    stats["paired"] = paired = len(settled)
    first = len(packet)
    for d in others:
        if all(k in proven for k in range(first, first + len(d.values))):
            settled.add(id(d))
        first += len(d.values)
    stats["paired_outputs"] = len(settled) - paired
    return [d for d in diffs if id(d) not in settled]


def _unknown_reason(solver: z3.Solver, budget: Budget) -> str:
    """Why a check said unknown: the budget ran out (Z3 then says "canceled" or "max. resource limit
    exceeded"; said in the budget's words), or Z3's own reason."""
    if budget.left == 0:
        return f"the budget ({budget.describe()}) ran out while solving the final query"
    return str(solver.reason_unknown())


REFINEMENT_ROUNDS = 20
"""Spurious abstract counterexamples ruled out before the exact query takes over."""
# Shares of what is left of the proof's budget (resource units, like the budget itself): a phase that may
# help (merging, sweeping, the abstract query) cannot starve the exact query, whatever it meets.
PAIR_SHARE = 0.3
"""Part of the budget left after exploring that proving packet bytes path pair by path pair may use."""
MERGE_SHARE = 0.3
"""Part of the budget left after exploring that merging equal applications may use."""
ABSTRACT_SHARE = 0.6
"""Part of the remaining budget the abstract query may use before the exact one gets the rest."""
SWEEP_SHARE = 0.5
"""Part of the budget left after merging that finding and merging equal subterms (`sweep`) may use."""
GENERALIZED_SHARE = 0.4
"""Part of the abstract budget the generalized query (shared arithmetic cut out) may use."""
SHORTER_PACKET_UNITS = 3_000_000
"""Resource units of each question for a shorter packet in a counterexample (the first model is kept
when none answers in them)."""


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
           sides: tuple[list[Term], list[Term]], inputs: Inputs, budget: Budget,
           stats: dict[str, int | float | str]) -> _AbstractParts:
        def merge(t: Term) -> Term:
            return substitute(t, merged)

        lemmas = [merge(lemma) for lemma in abstraction.lemmas]
        side_a, side_b = [merge(t) for t in sides[0]], [merge(t) for t in sides[1]]
        swept = sweep(side_a, side_b, inputs.assumptions, lemmas, budget.share(SWEEP_SHARE))
        stats["swept"], stats["sweep_passes"], stats["sweep_undecided"] = swept.pairs, swept.passes, swept.undecided
        return _AbstractParts(merged, swept.stages, swept.lemmas, shared_cuts(swept.side_a, swept.side_b))

    def rewrite(self, t: Term) -> Term:
        t = substitute(t, self.merged)
        for stage in self.swept:
            t = substitute(t, stage)
        return t


def _abstractly_unsat(query: Term, abstraction: NonlinearAbstraction, parts: _AbstractParts, inputs: Inputs,
                      whole: Budget, stats: dict[str, int | float | str]) -> bool:
    """Whether the abstract `query` (rewritten by `parts`) is unsatisfiable: then it is unsatisfiable
    with the real operations too, a proof; otherwise nothing is known. First generalized further at
    the arithmetic both sides share (`shared_cuts`), then with spurious models refined."""
    budget = whole.share(ABSTRACT_SHARE)
    abstract = parts.rewrite(query)
    lemmas, cuts = parts.lemmas, parts.cuts
    if cuts:
        generalized = z3.Solver()
        generalized.add(*inputs.assumptions)
        generalized.add(substitute(abstract, cuts), *[substitute(lemma, cuts) for lemma in lemmas])
        if budget.share(GENERALIZED_SHARE).check(generalized) == z3.unsat:
            stats["cuts"] = len(cuts)
            stats.update(_solver_stats(generalized))
            return True
    solver = z3.Solver()
    solver.add(*inputs.assumptions)
    solver.add(abstract, *lemmas)
    verdict = budget.check(solver)
    for _ in range(REFINEMENT_ROUNDS):
        if verdict != z3.sat:
            break
        refinements = abstraction.refine(solver.model())
        if not refinements:
            break  # the model respects the real operations where it matters: the exact query decides
        solver.add(*refinements)
        verdict = budget.check(solver)
    stats["refined"] = abstraction.refinements
    if verdict == z3.unsat:
        stats.update(_solver_stats(solver))
    return bool(verdict == z3.unsat)


def _found(solver: z3.Solver, kind: str, diffs: list[Difference], inputs: Inputs, a: _Side, b: _Side,
           replay: object, budget: Budget, stats: dict[str, int | float | str]) -> ProofResult:
    from pybpfdsl.verify.equivalence.counterexample import extract

    # Prefer a short packet: a person has to read it (each bound is one more solver call).
    model = solver.model()
    # Prefer inputs the interpreters replay as the solver sees them (BPF_PROG_TEST_RUN's frame).
    preferred = inputs.replay_preferences()
    # Prefer clock readings a person can read and a test can reproduce: below 2**31 ns (the first two
    # seconds after boot), what a one-instruction constant load gives in place of the call.
    preferred += [z3.ULT(v, 2**31) for v in inputs.streams["ktime"]]
    # Prefer lookups the interpreters' scripted routing table can answer (`fib.replayable`).
    preferred += fib.replayable(inputs)
    solver.push()
    if preferred:
        solver.add(*preferred)
        if budget.check(solver, SHORTER_PACKET_UNITS) == z3.sat:
            model = solver.model()
        else:
            solver.pop()
            solver.push()
    for bound in (64, 128, 512):
        solver.push()
        solver.add(z3.ULE(inputs.length, bound))
        found = budget.check(solver, SHORTER_PACKET_UNITS) == z3.sat
        if found:
            model = solver.model()
        solver.pop()
        if found:
            break
    solver.pop()
    cex = extract(model, inputs, kind, diffs, a.exploration.outcomes, b.exploration.outcomes, (a.label, b.label),
                  replay)
    stats.update(_solver_stats(solver))
    reason = "the IR breaks its own rules on some input" if kind == "ir_error" else \
        "the programs differ in " + ", ".join(cex.differing)
    if not cex.reproduced:  # the model is no real difference (an imprecise encoding): never say "counterexample"
        note = "; in its inputs an LRU map update evicts entries, which the interpreters do not replay" \
            if _evicts(model, inputs, budget) else ""
        note += _unreplayed_frame(model, inputs)
        return ProofResult("unknown", stats=stats,
                           reason=f"{reason} says the solver, but {cex.replay_note()}{note}", counterexample=cex)
    return ProofResult("counterexample", stats=stats, reason=reason, counterexample=cex)


def _unreplayed_frame(model: z3.ModelRef, inputs: Inputs) -> str:
    """A note when the model's XDP frame is not BPF_PROG_TEST_RUN's, the one the interpreters run."""
    if inputs.frame is None:
        return ""
    headroom, end = (model.eval(t, model_completion=True).as_long() for t in inputs.frame)
    notes = []
    if inputs.metadata is not None:
        meta = model.eval(inputs.metadata, model_completion=True).as_signed_long()
        if meta:
            notes.append("no metadata (data_meta = data + 1)" if meta < 0 else
                         f"{meta} bytes of metadata before the packet (data_meta)")
    if (headroom, end) != TEST_RUN_FRAME:
        notes.append(f"{headroom} bytes of headroom and the frame's end {end} bytes after the packet's start")
    return "; in its inputs the driver gives " + " and ".join(notes) + \
        ", which the interpreters do not replay" if notes else ""


def _evicts(model: z3.ModelRef, inputs: Inputs, budget: Budget) -> bool:
    """Whether `model` has some LRU map update evict an entry (`Inputs.kept` false somewhere)."""
    for kept in inputs.evictions.values():
        probe = z3.Solver()
        probe.add(z3.Not(z3.Select(model.eval(kept, model_completion=True), z3.FreshConst(kept.domain()))))
        if budget.check(probe, SHORTER_PACKET_UNITS) == z3.sat:
            return True
    return False


def prove_ir_bytecode(program: n.Program, bytecode: BytecodeProgram, replay: object = None,
                      budget: int = DEFAULT_BUDGET) -> ProofResult:
    """Prove bytecode equivalent to its IR within `budget` resource units. `replay` (a `Replayer`) runs
    a counterexample concretely. In a Z3 context of its own (`context`): its verdict and units do not
    depend on the proofs before it."""
    with own_context():
        return _prove_ir_bytecode(program, bytecode, replay, budget)


def _prove_ir_bytecode(program: n.Program, bytecode: BytecodeProgram, replay: object, budget: int) -> ProofResult:
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
    return prove_programs(lambda spend: ir.run(spend, merge_after),
                          lambda spend: bc.run(spend, merge_after), inputs, replay, budget=budget)


def prove_compiled(subject: Subject, instructions: list[Instruction] | None = None,
                   budget: int = DEFAULT_BUDGET) -> ProofResult:
    """Prove a compiled program's bytecode (or `instructions` substituted for it) equivalent to its IR
    within `budget` resource units (`fn.compile().subject`)."""
    from pybpfdsl.verify.equivalence.counterexample import CompiledReplayer

    bytecode = load_program(subject.elf, subject.section)
    if instructions is not None:
        bytecode = bytecode.with_instructions(instructions)
    return prove_ir_bytecode(subject.program, bytecode, CompiledReplayer(subject, bytecode), budget)


def prove_on_compile(subject: Subject, budget: int | None = None) -> ProofResult:
    """The proof `compile()` attaches, within `budget` resource units (by default `COMPILE_BUDGET`):
    cached by the object's and the IR's hash, in this process and on disk (`proof_cache`), so an
    unchanged program is proved once, not at every compile nor in every process."""
    units = COMPILE_BUDGET if budget is None else budget
    # The budget is part of the key: an "unknown" may become "proven" with more units, never with the
    # same (and re-proving an unknown at every compile would spend the whole budget each time).
    key = proof_cache.compiled_key(subject.elf, format_program(subject.program), units)
    cached = _CACHE.get(key) or proof_cache.lookup(key)  # this process's verdicts, then other processes'
    if cached is not None:
        _CACHE[key] = cached
        return cached
    result = prove_compiled(subject, budget=units)
    _CACHE[key] = result
    proof_cache.store(key, result)
    return result


def prove_objects(elf_a: bytes, elf_b: bytes, name: str, name_b: str | None = None,
                  budget: int = DEFAULT_BUDGET, *, any_rodata: bool = False) -> ProofResult:
    """Prove two BPF objects' programs equivalent (bytecode against bytecode, one encoder) within
    `budget` resource units.

    By default each object's `.rodata` holds its own bytes, as the objects are loaded as they are (a
    counterexample is then replayed, and confirmed, with them). `any_rodata`: `.rodata` holds the same
    unknown bytes in both (each its own where they differ), so the proof holds whatever a loader writes
    there before loading (a libbpf skeleton's configuration, libxdp's dispatcher): the superoptimizer's
    gate asks this, since its output replaces the input for every loader."""
    from pybpfdsl.verify.equivalence.counterexample import ObjectReplayer

    key = proof_cache.objects_key(elf_a, elf_b, name, name_b or name, (budget, "any .rodata") if any_rodata else budget)
    cached = proof_cache.lookup(key)
    if cached is not None:
        return cached
    a = load_program(elf_a, name, fixed_rodata=not any_rodata)
    b = load_program(elf_b, name_b or name, fixed_rodata=not any_rodata)
    if a.layout.maps != b.layout.maps:
        return ProofResult("unknown", reason="the objects declare different maps")
    if {k: a.layout.section_size(k) for k in a.layout.sections} != \
            {k: b.layout.section_size(k) for k in b.layout.sections}:
        return ProofResult("unknown", reason="the objects' global data differ in sections or sizes")
    with own_context():  # its verdict and units do not depend on the proofs before it (`context`)
        inputs = Inputs(a.layout, b.layout)  # where their initial bytes differ, each starts from its own
        result = prove_programs(BytecodeEncoder(a, inputs).run, BytecodeEncoder(b, inputs).run, inputs,
                                ObjectReplayer(a, b), labels=("A", "B"), budget=budget)
    proof_cache.store(key, result)
    return result
