"""Optimise the code of a BPF object window by window: cached rules first, the regions' threading
(`region_threading`, one pass of its own so the lock-step proof can name its regions), then the MCMC search.

Each pass cuts every windowable run (`windows`) into windows of ``window`` instructions (each pass
shifted against the one before, so a rewrite can span an earlier pass's cuts), tries the rule cache on
every sub-window, searches the windows no rule changed, and writes the object again (`elf_rewrite`).
Only window rewrites proven under their liveness are made; the whole-object checks (`gate`) come after.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import InsnClass, Kind, Source, source
from pybpfdsl.superopt.coalesce import coalesce_pass
from pybpfdsl.superopt.cost import CostModel, cost
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.exit_tails import exit_tails
from pybpfdsl.superopt.region import RegionCode, prove_region
from pybpfdsl.superopt.region_threading import Region, reads_on_entry, regions_of, thread
from pybpfdsl.superopt.rules import RuleCache
from pybpfdsl.superopt.search import SearchBudget, read_before_written, search_window
from pybpfdsl.superopt.store_merge import store_merge_pass
from pybpfdsl.superopt.sums import sums_pass
from pybpfdsl.superopt.window_check import prove_window
from pybpfdsl.superopt.windows import Run, core_relocated_slots, facts_at, functions_of, runs_of
from pybpfdsl.verify.analysis.api import is_xdp_section
from pybpfdsl.verify.analysis.liveness import registers_of

__all__ = ["Rewrite", "SearchOptions", "optimise_code"]


@dataclass(frozen=True)
class SearchOptions:
    budget: SearchBudget = field(default_factory=SearchBudget)
    model: CostModel = CostModel.SLOTS
    seed: int = 0
    window: int = 6
    passes: int = 5
    all_types: bool = True
    """Also optimise programs other than XDP (proven in lock step, checked by the kernel)."""
    regions: bool = True
    """First thread the regions with jumps inside (`region_threading`), each proven (`region`)."""
    copies: bool = True
    """Then drop the register copies redundant on every path (`_copies_pass`)."""
    tails: bool = True
    """Then send jumps to an exit to a tail setting the r0 they hold, dropping the r0 = K that dies (`exit_tails`),
    and write a sum another register holds as its copy (`sums`): the passes only the path prover proves."""


@dataclass(frozen=True)
class Rewrite:
    """One proven window rewrite, as made in pass ``pass_no`` (indices are that pass's input's)."""

    pass_no: int
    section: str
    function: str
    start: int
    before: tuple[Instruction, ...]
    after: tuple[Instruction, ...]
    live_out: int
    source: str
    """Where it came from: "rule" (the cache), "search", "region" (`region_threading`), "copy" (`_copies_pass`),
    "tail" (`exit_tails`), "sum" (`sums`) or "coalesce" (`coalesce`)."""
    known: tuple[tuple[int, int], ...] = ()
    """The constants known on entry to the window (part of its precondition)."""
    widths: tuple[tuple[int, int], ...] = ()
    """The registers known on entry to fit in fewer bits (register, bits): the rest of its precondition."""
    exits: tuple[tuple[int, int], ...] = ()
    """A region's rewrite (source "region"): (position in ``after``, instruction index of the pass's
    input) of each jump that leaves it (`elf_rewrite.Replacement.exits`)."""

    @property
    def replacement(self) -> Replacement:
        return Replacement(self.start, len(self.before), self.after, self.exits)


@dataclass
class PassLog:
    rewrites: list[Rewrite] = field(default_factory=list)
    proposals: int = 0
    proofs: int = 0
    refuted: int = 0


def _sections(elf: BpfElf, section: str | None, all_types: bool) -> list[str]:
    # XDP programs and the subprograms in .text; other program types (tracepoints beside xdp-bench's
    # programs) too where asked: the path prover does not model them, so only the lock-step proof and
    # the kernel check them.
    code = [*(name for name in elf.programs if all_types or is_xdp_section(name)),
            *([".text"] if elf.text is not None else [])]
    if section is None:
        return code
    prog = elf.program(section)
    return [prog.section]


def _facts(run: Run, at: int, window: Sequence[Instruction]) -> tuple[dict[int, int], dict[int, int]]:
    """The constants and widths known on entry to ``window`` (at ``at`` in ``run``), of the registers it
    reads or writes only: a candidate reads on entry only what the window reads (`search_window`), and
    may leave unwritten what the window writes (``r0 = 2`` dropped where r0 holds 2), so facts of the
    other registers cannot matter to its proof; and a rewrite beside it that changes what those hold
    (drops a mask of a register this window never names) then does not void this one (`_consistent`)."""
    need = read_before_written(window) | _writes(window)
    return ({r: v for r, v in run.known_at(at).items() if need >> r & 1},
            {r: v for r, v in run.widths_at(at).items() if need >> r & 1})


def _writes(code: Sequence[Instruction]) -> int:
    return sum(1 << r for insn in code for r in registers_of(insn)[1])


def _needed(window: Sequence[Instruction], rewrite: Sequence[Instruction], live: int, known: dict[int, int],
            widths: dict[int, int], units: int) -> tuple[dict[int, int], dict[int, int]]:
    """The facts the proof of ``rewrite`` needs: of the registers either reads on entry, or one of them
    writes and the other passes through. Proven again under those alone (when fewer), so that
    `_consistent` keeps the rewrite wherever they still hold, whatever its neighbours did to the rest."""
    need = read_before_written(window) | read_before_written(rewrite) | (_writes(window) ^ _writes(rewrite))
    fewer = ({r: v for r, v in known.items() if need >> r & 1}, {r: v for r, v in widths.items() if need >> r & 1})
    if fewer != (known, widths) and prove_window(window, rewrite, live, units, *fewer).proven:
        return fewer
    return known, widths


def _apply_rules(run: Run, rules: RuleCache, units: int,
                 model: CostModel) -> list[tuple[int, int, tuple[Instruction, ...], dict[int, int], dict[int, int]]]:
    """(offset in run, length, rewrite, constants and widths assumed) of every cached rule that matches
    and is proven again here."""
    found: list[tuple[int, int, tuple[Instruction, ...], dict[int, int], dict[int, int]]] = []
    i = 0
    lengths = rules.lengths
    while i < len(run.code):
        for n in lengths:
            if i + n > len(run.code):
                continue
            window = run.code[i:i + n]
            known, widths = _facts(run, i, window)
            rewrite = rules.lookup(window, run.live_after[i + n - 1], known, widths)
            if rewrite is not None and cost(rewrite, model) < cost(window, model) \
                    and prove_window(window, rewrite, run.live_after[i + n - 1], units, known, widths).proven:
                found.append((i, n, rewrite, known, widths))
                rules.used += 1
                i += n
                break
        else:
            i += 1
    return found


def _rule_core(window: Sequence[Instruction], rewrite: Sequence[Instruction]) -> tuple[int, int]:
    """The prefix and suffix lengths ``window`` and ``rewrite`` share: the rest is what the rewrite changed,
    the part another program is likely to contain too (a rule of the whole window matches only windows
    cut at the same places around the same neighbours)."""
    p = 0
    while p < min(len(window), len(rewrite)) and window[p] == rewrite[p]:
        p += 1
    s = 0
    while s < min(len(window), len(rewrite)) - p and window[-1 - s] == rewrite[-1 - s]:
        s += 1
    return p, s


def _learn(rules: RuleCache, run: Run, lo: int, window: tuple[Instruction, ...],
           rewrite: tuple[Instruction, ...], live: int) -> None:
    """Store the proven rewrite of ``window`` (at ``lo`` in ``run``) as a rule, and its changed core as a
    second one under the core's own liveness and constants. The core's rule is a hint like any other:
    it is proven again wherever it matches (its equality does not follow from the window's)."""
    rules.add(window, live, rewrite, *_facts(run, lo, window))
    p, s = _rule_core(window, rewrite)
    if (p or s) and p < len(window) - s:
        end = lo + len(window) - s - 1
        core = window[p:len(window) - s]
        rules.add(core, run.live_after[end] if s else live, rewrite[p:len(rewrite) - s], *_facts(run, lo + p, core))


def _one_pass(elf_bytes: bytes, sections: Sequence[str], opts: SearchOptions, pass_no: int,
              rules: RuleCache | None, log: PassLog, rules_only: bool = False, phase: int = 0) -> bytes:
    """One pass over every run: the cached rules only (``rules_only``), or the search, which stores what
    it proves in ``rules``; ``phase`` shifts the windows' cuts against the pass before."""
    elf = BpfElf.from_bytes(elf_bytes)
    core = core_relocated_slots(elf)
    edits: dict[str, list[Replacement]] = {}
    shift = phase * (opts.window // 2 + 1) % opts.window  # 0, 4, 2, ... for windows of 6
    for sec in sections:
        prog = elf.program(sec) if sec != ".text" else elf.text
        assert prog is not None
        for run in runs_of(prog, core.get(sec, set())):
            if rules_only:
                assert rules is not None
                for at, n, rewrite, known, widths in _apply_rules(run, rules, opts.budget.proof_units, opts.model):
                    edits.setdefault(sec, []).append(Replacement(run.start + at, n, rewrite))
                    log.rewrites.append(Rewrite(pass_no, sec, run.function, run.start + at, run.code[at:at + n],
                                                rewrite, run.live_after[at + n - 1], "rule",
                                                tuple(sorted(known.items())), tuple(sorted(widths.items()))))
                continue
            cuts = list(range(0, len(run.code), opts.window))
            if shift and len(run.code) > shift:
                cuts = [0, *list(range(shift, len(run.code), opts.window))]
            for lo, hi in zip(cuts, [*cuts[1:], len(run.code)]):
                if hi - lo < 1:
                    continue
                window = run.code[lo:hi]
                live = run.live_after[hi - 1]
                rng = random.Random(f"{opts.seed}:{phase}:{sec}:{run.start + lo}:{len(window)}")
                known, widths = _facts(run, lo, window)
                result = search_window(window, live, rng, opts.budget, opts.model, known, widths)
                log.proposals += result.proposals
                log.proofs += result.proofs
                log.refuted += result.refuted
                if result.replacement is not None:
                    known, widths = _needed(window, result.replacement, live, known, widths, opts.budget.proof_units)
                    edits.setdefault(sec, []).append(Replacement(run.start + lo, hi - lo, result.replacement))
                    log.rewrites.append(Rewrite(pass_no, sec, run.function, run.start + lo, window,
                                                result.replacement, live, "search", tuple(sorted(known.items())),
                                                tuple(sorted(widths.items()))))
                    if rules is not None:
                        _learn(rules, run, lo, window, result.replacement, live)
    return _consistent(elf_bytes, edits, log, pass_no)


_MAX_REFUSED = 40
"""Region proofs that may fail in one section before the pass gives up on it (a budget in proofs)."""


def _region_pass(elf_bytes: bytes, sections: Sequence[str], opts: SearchOptions, pass_no: int,
                 log: PassLog) -> bytes:
    """Every region whose threaded form (`region_threading.thread`) is cheaper (or as cheap and reads fewer
    registers on entry, `_frees_a_register`), the cheapest first and none overlapping another, each proven
    equal (`region.prove_region`) before it is kept."""
    elf = BpfElf.from_bytes(elf_bytes)
    core = core_relocated_slots(elf)
    edits: dict[str, list[Replacement]] = {}
    for sec in sections:
        prog = elf.program(sec) if sec != ".text" else elf.text
        assert prog is not None
        found: list[tuple[int, int, int, Region, RegionCode]] = []
        for region in regions_of(prog, core.get(sec, set())):
            new = thread(region)
            if new is None:
                continue
            saved = cost(region.original.code, opts.model) - cost(new.code, opts.model)
            if saved > 0 or (saved == 0 and _frees_a_register(region, new)):
                found.append((-saved, len(region.original.code), -region.start, region, new))
        found.sort(key=lambda f: f[:3])
        taken: list[tuple[int, int]] = []
        refused = 0
        for _, n, _, region, new in found:
            lo, hi = region.start, region.start + n
            if any(lo < b and a < hi for a, b in taken):
                continue
            if refused >= _MAX_REFUSED:
                break
            log.proofs += 1
            verdict = prove_region(region.original, new, dict(region.live_at), opts.budget.proof_units,
                                   dict(region.known), dict(region.widths))
            if not verdict.proven:
                log.refuted += verdict.status == "different"
                refused += 1
                continue
            taken.append((lo, hi))
            edits.setdefault(sec, []).append(Replacement(lo, n, new.code, new.exits))
            log.rewrites.append(Rewrite(pass_no, sec, region.function, lo, region.original.code, new.code, 0,
                                        "region", region.known, region.widths, new.exits))
    return _consistent(elf_bytes, edits, log, pass_no)


def _frees_a_register(region: Region, new: RegionCode) -> bool:
    """Whether ``new`` reads on entry fewer registers than the region it replaces (and no other): a value
    set before it that only a path it decided read is dead then, and a later pass drops what set it
    (clang's ``r7 = 0`` returned on the way where a lookup gave NULL, where r0 already holds 0)."""
    live_at = dict(region.live_at)
    before, after = reads_on_entry(region.original, live_at), reads_on_entry(new, live_at)
    return after != before and not after & ~before


def _copies_pass(elf_bytes: bytes, sections: Sequence[str], pass_no: int, log: PassLog) -> bytes:
    """Every register copy ``rX = rY`` where rX already holds rY's value on every path to it (`known_equal`:
    each way into a join made the same copy, or copied the other way) dropped. No window sees this: the
    copies that make it redundant lie in other blocks. Each drop keeps every equality the analysis finds
    (the copy changed nothing), so the drops of one pass never void each other."""
    elf = BpfElf.from_bytes(elf_bytes)
    core = core_relocated_slots(elf)
    edits: dict[str, list[Replacement]] = {}
    for sec in sections:
        prog = elf.program(sec) if sec != ".text" else elf.text
        assert prog is not None
        for fn in functions_of(prog, core.get(sec, set())):
            for i, insn in enumerate(fn.code):
                if insn.kind == Kind.MOV and insn.cls == InsnClass.ALU64 and source(insn.opcode) == Source.X \
                        and insn.off == 0 and i not in fn.patched and fn.equal[i].get(insn.dst, 0) >> insn.src & 1:
                    edits.setdefault(sec, []).append(Replacement(fn.lo + i, 1, ()))
                    log.rewrites.append(Rewrite(pass_no, sec, fn.name, fn.lo + i, (insn,), (), 0, "copy"))
    return rewrite_code(elf_bytes, edits) if edits else elf_bytes


def _tails_pass(elf_bytes: bytes, sections: Sequence[str], pass_no: int, log: PassLog) -> bytes:
    """`exit_tails.exit_tails` as a pass of its own (source "tail": a retargeted jump, or a dropped r0 = K)."""
    out, made = exit_tails(elf_bytes, sections)
    for sec, (function, start, before, after, exits) in made:
        log.rewrites.append(Rewrite(pass_no, sec, function, start, before, after, 0, "tail", exits=exits))
    return out


def _sums_pass(elf_bytes: bytes, sections: Sequence[str], pass_no: int, log: PassLog) -> bytes:
    """`sums.sums_pass` as a pass of its own (source "sum": ``rA += rB`` as a copy of the register holding it)."""
    out, made = sums_pass(elf_bytes, sections)
    for sec, function, start, before, after in made:
        log.rewrites.append(Rewrite(pass_no, sec, function, start, (before,), (after,), 0, "sum"))
    return out


def _coalesce_pass(elf_bytes: bytes, sections: Sequence[str], pass_no: int, log: PassLog) -> bytes:
    """`coalesce.coalesce_pass` as a pass of its own (source "coalesce": a copy combined in the register
    that dies there, the copy renamed after it)."""
    out, made = coalesce_pass(elf_bytes, sections)
    for sec, function, start, before, after, exits in made:
        log.rewrites.append(Rewrite(pass_no, sec, function, start, before, after, 0, "coalesce", exits=exits))
    return out


def _merge_pass(elf_bytes: bytes, sections: Sequence[str], opts: SearchOptions, pass_no: int, log: PassLog) -> bytes:
    """`store_merge.store_merge_pass` as a pass of its own (source "search": a run's byte-wise stores of one value
    as wider stores, proven over the run like a window; it assumes no constant or width)."""
    out, made = store_merge_pass(elf_bytes, sections, opts.budget.proof_units)
    for sec, function, start, before, after, live in made:
        log.rewrites.append(Rewrite(pass_no, sec, function, start, before, after, live, "search"))
    log.proofs += len(made)
    return out


def _consistent(elf_bytes: bytes, edits: dict[str, list[Replacement]], log: PassLog, pass_no: int) -> bytes:
    """The pass's output, without the rewrites whose precondition the others broke.

    Each window was proven against the pass's input: its liveness and the constants known on entry.
    Rewrites made together keep the liveness (a candidate reads no register its window did not), but not
    the constants: one window may drop ``r1 = 0`` where r1 is dead, and the next drop its own ``r1 = 0``
    because r1 held 0 on entry. So the constants (and widths) each rewrite assumed must still be known on
    entry to it in the output; a rewrite whose are not is dropped, until all hold."""
    mine = [r for r in log.rewrites if r.pass_no == pass_no]
    while True:
        if not any(edits.values()):
            return elf_bytes
        out = rewrite_code(elf_bytes, edits)
        elf = BpfElf.from_bytes(out)
        core = core_relocated_slots(elf)
        broken: list[Rewrite] = []
        for sec, reps in edits.items():
            prog = elf.program(sec) if sec != ".text" else elf.text
            assert prog is not None
            facts = facts_at(prog, core.get(sec, set()))
            for r in (r for r in mine if r.section == sec):
                shift = sum(e.count - len(e.code) for e in reps if e.start < r.start)
                here, bits = facts.get(r.start - shift, ({}, {}))
                if any(here.get(reg) != v for reg, v in r.known) or any(bits.get(reg, 64) > w for reg, w in r.widths):
                    broken.append(r)
        if not broken:
            return out
        for r in broken:
            edits[r.section] = [e for e in edits[r.section] if e.start != r.start]
            log.rewrites.remove(r)
            mine.remove(r)


def optimise_code(elf_bytes: bytes, section: str | None, opts: SearchOptions,
                  rules: RuleCache | None) -> tuple[list[bytes], list[PassLog]]:
    """The object after each pass (the input first) and what each pass did. With a non-empty rule cache
    the first pass applies its rules alone (EPSO: a cheap pass of proven patterns), and the search
    passes then work on its output, so a rule never keeps the search from a window."""
    sections = _sections(BpfElf.from_bytes(elf_bytes), section, opts.all_types)
    objects = [elf_bytes]
    logs = []
    if rules is not None and rules.rules:
        log = PassLog()
        objects.append(_one_pass(objects[-1], sections, opts, 0, rules, log, rules_only=True))
        logs.append(log)
    if opts.regions:
        log = PassLog()
        objects.append(_region_pass(objects[-1], sections, opts, len(logs), log))
        logs.append(log)
    if opts.copies:
        log = PassLog()
        objects.append(_copies_pass(objects[-1], sections, len(logs), log))
        logs.append(log)
    if opts.tails:
        log = PassLog()
        objects.append(_tails_pass(objects[-1], sections, len(logs), log))
        logs.append(log)
        log = PassLog()
        objects.append(_sums_pass(objects[-1], sections, len(logs), log))
        logs.append(log)
        log = PassLog()
        objects.append(_coalesce_pass(objects[-1], sections, len(logs), log))
        logs.append(log)
    if opts.budget.proposals > 0:
        log = PassLog()
        objects.append(_merge_pass(objects[-1], sections, opts, len(logs), log))
        logs.append(log)
    for phase in range(opts.passes if opts.budget.proposals > 0 else 0):
        log = PassLog()
        objects.append(_one_pass(objects[-1], sections, opts, len(logs), rules, log, phase=phase))
        logs.append(log)
    return objects, logs
