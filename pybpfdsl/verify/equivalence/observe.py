"""From the paths of one program to what an observer sees: one term per output, merged over paths.

Paths of one program have mutually exclusive conditions, so each output is an if-then-else chain over
them. The outputs are those the query compares: the action, whether the run faults or breaks the IR's
rules, the packet bytes, every map's final contents, every global variable as one word (other
global-data bytes one by one: `Layout.words`), and each ring buffer's records in order.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import z3

from pybpfdsl.bpf.abi import XdpAction
from pybpfdsl.verify.equivalence.normalize import Normalizer
from pybpfdsl.verify.equivalence.paths import Outcome
from pybpfdsl.verify.equivalence.redirect import target as redirect_target
from pybpfdsl.verify.equivalence.symbolic_state import MAX_PACKET_LEN, Inputs, Term, bytes_to_bv

_NORMALIZERS: weakref.WeakKeyDictionary[Inputs, Normalizer] = weakref.WeakKeyDictionary()


def normalizer_for(inputs: Inputs) -> Normalizer:
    """The normalizer shared by every observation over `inputs` (both sides must share atoms)."""
    found = _NORMALIZERS.get(inputs)
    if found is None:
        # The query assumes the packet length bounded: normal forms may rely on it.
        found = _NORMALIZERS[inputs] = Normalizer([(inputs.length, MAX_PACKET_LEN)])
    return found


def _condition(o: Outcome) -> Term:
    return o.condition


def ite_chain(outcomes: Sequence[Outcome], value: Callable[[Outcome], Term], default: Term,
              condition: Callable[[Outcome], Term] = _condition) -> Term:
    """value(o) under o's condition; `default` where no outcome applies. Equal arms collapse."""
    values = [value(o) for o in outcomes]
    if values and all(v.eq(values[0]) for v in values[1:]):
        return values[0]
    out = default
    for o, v in zip(reversed(outcomes), reversed(values)):
        out = z3.If(condition(o), v, out)
    return out


def any_of(outcomes: Sequence[Outcome], condition: Callable[[Outcome], Term] = _condition) -> Term:
    return z3.Or(*[condition(o) for o in outcomes]) if outcomes else z3.BoolVal(False)


@dataclass
class Observation:
    returns: list[Outcome]
    action: Term
    fault: Term
    ir_error: Term
    packet: Term
    packet_writes: list[Term]
    maps: dict[str, tuple[Term | None, Term]]
    written: dict[str, list[Term]]
    sections: dict[str, list[Term]]
    ring_counts: dict[str, Term]
    ring_records: dict[str, list[Term]]
    head: Term = None
    """Where the packet starts at the end, from where it started (bpf_xdp_adjust_head)."""
    end: Term = None
    """Where it ends, from where it started (bpf_xdp_adjust_tail)."""
    redirect: Term = None
    """The interface an XDP_REDIRECT goes to (bpf_redirect's target)."""
    moved: bool = False
    """Whether some path moves the packet's start or end."""
    start: dict[str, list[Term]] | None = None
    """The global data the program started from, word by word as `sections`."""
    words: dict[str, list[tuple[int, int]]] | None = None
    """(offset, size) of each word of `sections` (`Layout.words`)."""
    length: Term = None
    """The packet's length as received (where a path that never moved the end ends it)."""
    read: Callable[[Term], Term] | None = None
    """The packet byte at an offset as the program leaves it: path by path, each path's read brought
    to its normal form under the path's condition (`Normalizer._select` resolves it through the
    path's stores), so equal bytes of the two programs are one term."""


# Per-output accessors for `ite_chain`; each binds its map, section or ring name (and index) now.

def _map_present(name: str) -> Callable[[Outcome], Term]:
    return lambda o: o.effects.maps[name].present


def _map_value(name: str) -> Callable[[Outcome], Term]:
    return lambda o: o.effects.maps[name].value


def _section_word(name: str, offset: int, size: int) -> Callable[[Outcome], Term]:
    return lambda o: bytes_to_bv(list(o.effects.sections[name][offset:offset + size]))


def _action(o: Outcome) -> Term:
    return o.action


def _head(o: Outcome) -> Term:
    return o.head if o.head is not None else z3.BitVecVal(0, 64)


def _end(length: Term) -> Callable[[Outcome], Term]:
    return lambda o: o.end if o.end is not None else length


def _ring_count(name: str) -> Callable[[Outcome], Term]:
    return lambda o: z3.IntVal(len(o.effects.rings[name]))


def _ring_record(name: str, k: int) -> Callable[[Outcome], Term]:
    return lambda o: o.effects.rings[name][k]


def observe(outcomes: Sequence[Outcome], inputs: Inputs, normalize: bool = True, side: int | None = None
            ) -> Observation:
    """The outputs of one program's paths. With `normalize`, every value and condition is brought to
    the canonical form of `normalize` (shared by every observation over `inputs`), so outputs equal by
    modular arithmetic are the same term on both sides (LLVM reassociates and strength-reduces).
    `side` is the program's number among those reading `inputs` (its own initial global data)."""
    returns = [o for o in outcomes if o.kind == "return"]
    faults = [o for o in outcomes if o.kind == "fault"]
    errors = [o for o in outcomes if o.kind == "ir_error"]
    initial = inputs.initial_effects(side)
    normalizer = normalizer_for(inputs)

    def canon(t: Term) -> Term:
        return normalizer.normalize(t) if normalize else t

    def on(o: Outcome) -> Term:
        return canon(o.condition)

    def under(o: Outcome, t: Term) -> Term:
        return normalizer.normalize_under(t, o.condition) if normalize else t

    def chain(over: Sequence[Outcome], value: Callable[[Outcome], Term], default: Term) -> Term:
        return ite_chain(over, lambda o: under(o, value(o)), canon(default), on)

    action = chain(returns, lambda o: o.action, z3.BitVecVal(0, 32))
    packet = chain(returns, lambda o: o.packet if o.packet is not None else inputs.packet, inputs.packet)
    maps: dict[str, tuple[Term | None, Term]] = {}
    written: dict[str, list[Term]] = {}
    for name, state in initial.maps.items():
        present = None if state.present is None else chain(returns, _map_present(name), state.present)
        maps[name] = (present, chain(returns, _map_value(name), state.value))
        written[name] = [canon(k) for o in outcomes for k in o.effects.written.get(name, ())]
    sections: dict[str, list[Term]] = {}
    start: dict[str, list[Term]] = {}
    for name, data in initial.sections.items():
        start[name] = [bytes_to_bv(list(data[off:off + size])) for off, size in inputs.layout.words(name)]
        sections[name] = [chain(returns, _section_word(name, off, size), first)
                          for (off, size), first in zip(inputs.layout.words(name), start[name])]
    counts: dict[str, Term] = {}
    records: dict[str, list[Term]] = {}
    for name in initial.rings:
        longest = max((len(o.effects.rings[name]) for o in returns), default=0)
        counts[name] = chain(returns, _ring_count(name), z3.IntVal(0))
        records[name] = []
        for k in range(longest):
            having = [o for o in returns if len(o.effects.rings[name]) > k]
            width = having[0].effects.rings[name][k].size()
            records[name].append(chain(having, _ring_record(name, k), z3.BitVecVal(0, width)))
    writes = list({t.get_id(): t for t in (canon(p) for o in returns for p in o.packet_writes)}.values())

    def read(at: Term) -> Term:
        # Normalized as a whole: the chain repeats its paths' conditions (if c then 0 else (if not c
        # then x else 0)), and equal bytes of the two programs must be one term to drop out.
        return canon(chain(returns, lambda o: read_byte(o, at, inputs, normalizer), z3.Select(inputs.packet, at)))
    head = chain(returns, lambda o: o.head if o.head is not None else z3.BitVecVal(0, 64), z3.BitVecVal(0, 64))
    end = chain(returns, lambda o: o.end if o.end is not None else inputs.length, inputs.length)
    redirect = chain(returns, lambda o: o.effects.redirect, initial.redirect)
    return Observation(returns, action, any_of(faults, on), any_of(errors, on), packet, writes, maps, written,
                       sections, counts, records, head, end, redirect,
                       moved=not (head.eq(z3.BitVecVal(0, 64)) and end.eq(inputs.length)), start=start,
                       read=read if normalize else None,
                       words={name: list(inputs.layout.words(name)) for name in initial.sections},
                       length=inputs.length)


RESOLVE_UNITS = 200_000
"""Solver resource units of one question whether a store at a computed offset may hit a byte read
(`read_byte`): a few comparisons of offsets under a path's condition."""


def read_byte(o: Outcome, at: Term, inputs: Inputs, normalizer: Normalizer) -> Term:
    """The packet byte at `at` as path `o` leaves it, read past the path's stores that cannot hit it
    (the normal forms tell them apart, `Normalizer.apart`, or the path's condition does) down to the
    store that does: a header's byte is then the byte the program wrote there, whatever it wrote at
    offsets its parse computed (a UDP checksum at 4 * ihl + 20 is not the IPv4 checksum at 24 where
    ihl >= 5). A store the condition does not decide stops the walk (the read stays a read of it)."""
    array = o.packet if o.packet is not None else inputs.packet
    budget = normalizer.budget
    where = normalizer.poly(at)
    while True:
        # Past the stores the normal forms tell apart (a run at one base plus constants in one step).
        array = normalizer.past_stores(array, where)
        if not z3.is_app_of(array, z3.Z3_OP_STORE):
            break
        offset = array.arg(1)
        if offset.eq(at) or normalizer.normalize(offset).eq(normalizer.normalize(at)):
            return array.arg(2)
        if budget is None:
            break
        solver = z3.Solver()
        solver.add(*inputs.assumptions, o.condition, offset == at)
        if budget.check(solver, RESOLVE_UNITS) != z3.unsat:
            break
        array = array.arg(0)
    return z3.Select(array, at)


@dataclass(frozen=True)
class Difference:
    """One output the two programs may disagree on, and the condition under which they do."""

    label: str
    differs: Term
    at: Term = None
    """The offset of a packet byte's difference (None for other outputs)."""
    values: tuple[Callable[[Outcome], Term], ...] = ()
    """For an output compared only where neither program faults: what one return path leaves in it
    (each of its parts), so that it can be proven path pair by path pair (`path_pairs`)."""


def differences(a: Observation, b: Observation) -> list[Difference]:
    """Every way the two observations can differ when neither program faults; plus a fault on one side."""
    out = [Difference("fault", a.fault != b.fault), Difference("action", a.action != b.action, values=(_action,))]
    if not (a.head.eq(b.head) and a.end.eq(b.end)):
        out.append(Difference("packet", z3.Or(a.head != b.head, a.end != b.end), values=(_head, _end(a.length))))
    for p in {t.get_id(): t for t in [*a.packet_writes, *b.packet_writes]}.values():
        # A byte written outside the packet as it ends (cut off by an adjust) is not seen.
        if a.read is not None and b.read is not None:
            mine, theirs = a.read(p), b.read(p)
            if mine.eq(theirs):
                continue
            differs = mine != theirs
        else:
            differs = z3.Select(a.packet, p) != z3.Select(b.packet, p)
        out.append(Difference("packet", z3.And(p >= a.head, p < a.end, differs) if a.moved or b.moved else differs,
                              p))
    if not a.redirect.eq(b.redirect):
        redirected = z3.And(a.action == XdpAction.REDIRECT, b.action == XdpAction.REDIRECT)
        differs = redirect_target(a.redirect) != redirect_target(b.redirect)
        out.append(Difference("redirect target", z3.And(redirected, differs)))
    for name, (pa, va) in a.maps.items():
        if name not in b.maps:
            continue
        pb, vb = b.maps[name]
        for k in [*a.written[name], *b.written.get(name, [])]:
            if pa is None or pb is None:
                here = z3.Select(va, k) != z3.Select(vb, k)
                out.append(Difference(f"map {name}", here))
                continue
            both = z3.And(z3.Select(pa, k), z3.Select(pb, k))
            out.append(Difference(f"map {name}", z3.Or(z3.Select(pa, k) != z3.Select(pb, k),
                                                       z3.And(both, z3.Select(va, k) != z3.Select(vb, k)))))
    for name, data in a.sections.items():
        other = b.sections.get(name)
        if other is None or len(other) != len(data):
            continue
        starts = zip(a.start[name], b.start[name]) if a.start and b.start else [(None, None)] * len(data)
        for i, ((x, y), (sx, sy)) in enumerate(zip(zip(data, other), starts)):
            if x.eq(y):
                continue
            word = (_section_word(name, *a.words[name][i]),) if a.words else ()
            if sx is None or sx.eq(sy):
                out.append(Difference(f"global data {name}+{i}", x != y, values=word))
            else:  # the objects start apart here: a byte differs only where a program changed it
                out.append(Difference(f"global data {name}+{i}", z3.Or(*[
                    z3.And(bx != by, z3.Or(bx != z3.Extract(hi, lo, sx), by != z3.Extract(hi, lo, sy)))
                    for lo in range(0, x.size(), 8) for hi in [lo + 7]
                    for bx, by in [(z3.Extract(hi, lo, x), z3.Extract(hi, lo, y))]])))
    for name, count in a.ring_counts.items():
        if name not in b.ring_counts:
            continue
        if count.eq(b.ring_counts[name]) and not a.ring_records[name] and not b.ring_records[name]:
            continue  # neither logs anything there
        out.append(Difference(f"ring buffer {name} count", count != b.ring_counts[name]))
        # Record k is observed only where a run logged more than k records. Its term is that of the
        # paths that did (`observe` collapses equal arms without their conditions), and elsewhere the
        # two sides' terms are free to differ: merged paths leave arms for inputs that log nothing.
        for k, (x, y) in enumerate(zip(a.ring_records[name], b.ring_records[name])):
            out.append(Difference(f"ring buffer {name} record {k}", z3.And(count > k, x != y)))
    return out


def disagreement(a: Observation, b: Observation, diffs: list[Difference]) -> Term:
    both_fine = z3.And(z3.Not(a.fault), z3.Not(b.fault))
    rest = [d.differs for d in diffs if d.label != "fault"]
    return z3.Or(a.fault != b.fault, z3.And(both_fine, z3.Or(*rest) if rest else z3.BoolVal(False)))
