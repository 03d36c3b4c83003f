"""Block parameters a dominating test decides: below a branch whose outcome rules out all but some of the
edges into an earlier join, a parameter of that join is the value those edges pass.

The header parse joins every path (IPv4, IPv6, TCP, UDP, none of them) in one block whose parameters
are the results, such as where the payload starts. A program that then tests `eth.type == 0x8100`
learns on that side that the frame took the parse's "another ethertype" edge, whose payload offset is
the constant 14: every other edge into the join lies under a test `ethertype == 0x0800` or `== 0x86dd`,
which contradicts it. Below the test, the parameter is replaced by what the remaining edges pass, and
the parse's results nobody reads any more go (`dce`, and LLVM's dead branches).

Facts are what a branch's edge establishes, `key == c` or `key != c`: the branch's bool condition
itself, an operand of an `eq`/`ne` comparison with a constant, or the packet bytes a load at a constant
offset read (compared as a big-endian number, whatever the load's byte order, so a test of the same
bytes loaded little-endian speaks of the same key). An edge into the join is ruled out when no path
through it to the branch is consistent with the facts the paths establish (searched backwards, within
`BUDGET` steps; out of budget, the edge counts as possible).

Sound because every value and packet byte it reasons about has one value per run before the branch:
only branches whose every predecessor (transitively) lies on no cycle are used, and packet facts only
where no operation before the branch may write or move the packet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, constant_offset, definitions
from pybpfdsl.ir.passes.cse import PACKET_UNCHANGED
from pybpfdsl.ir.passes.rewrite import Fresh, copy_program, rename
from pybpfdsl.lang.arith import CmpOp
from pybpfdsl.lang.types import ScalarType

BUDGET = 4000
"""Steps (blocks visited by the backward searches) one run may take; the examples take a few hundred."""

Key = tuple[object, ...]
"""("value", id) for an SSA value, ("packet", offset, width) for packet bytes read at a constant offset."""


@dataclass(frozen=True)
class Fact:
    key: Key
    equal: bool
    constant: int

    def contradicts(self, other: Fact) -> bool:
        if self.key != other.key:
            return False
        if self.equal and other.equal:
            return self.constant != other.constant
        return self.equal != other.equal and self.constant == other.constant


Facts = frozenset[Fact]


def _consistent(facts: Facts) -> bool:
    by_key: dict[Key, list[Fact]] = {}
    for f in facts:
        by_key.setdefault(f.key, []).append(f)
    return not any(a.contradicts(b) for group in by_key.values() for a in group for b in group)


class _Budget:
    def __init__(self, steps: int) -> None:
        self.steps = steps

    def take(self) -> bool:
        self.steps -= 1
        return self.steps >= 0


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    cfg = Cfg.of(out)
    blocks = {b.name: b for b in out.blocks}
    facts = _EdgeFacts(out, cfg)
    upstream = _Upstream(out, cfg)
    budget = _Budget(BUDGET)
    fresh = Fresh(out)
    changed = False
    for x_name in cfg.order:
        x = blocks[x_name]
        term = x.terminator
        if not isinstance(term, n.Branch) or term.if_true.target == term.if_false.target \
                or not upstream.acyclic(x_name):
            continue
        packet = upstream.packet_unchanged(x_name)
        for index, edge in enumerate(term.edges()):
            decided = facts.of_branch(x, index, packet)
            if not decided or not cfg.only_edge_from(edge.target, x_name):
                continue
            search = _Search(facts, cfg, blocks, budget, packet)
            changed |= _replace_below(out, cfg, blocks, edge.target, search, decided | facts.entering(x_name, packet),
                                      fresh)
    return out if changed else copy_program(program)


def _replace_below(program: n.Program, cfg: Cfg, blocks: dict[str, n.Block], top: str, search: _Search,
                   known: Facts, fresh: Fresh) -> bool:
    """Replace, in the blocks `top` dominates, the parameters of earlier blocks that `known` decides."""
    region = [name for name in cfg.order if cfg.dominates(top, name)]
    inside = set(region)
    owner = {p: b.name for b in program.blocks for p in b.params if b.name not in inside}
    used: list[n.Value] = []
    for name in region:
        for v in _reads(blocks[name]):
            if v in owner and v not in used:
                used.append(v)
    names: dict[n.Value, n.Value] = {}
    consts: list[n.Instr] = []
    defs = definitions(program)
    for p in used:
        found = search.values(p, owner[p], known)
        if found is None or len(found) != 1:
            continue
        (value,) = found
        if isinstance(value, tuple):
            _, t, k = value
            assert isinstance(t, ScalarType) and isinstance(k, int)
            new = fresh.value(t, p.hint)
            consts.append(n.Const(new, k, line=_first_line(blocks[top])))
            names[p] = new
        elif _defined_above(value, top, cfg, defs, program):
            names[p] = value
    if not names:
        return False
    for name in region:
        b = blocks[name]
        b.instrs = [rename(i, names) for i in b.instrs]
        if b.terminator is not None:
            b.terminator = rename(b.terminator, names)
    blocks[top].instrs = consts + blocks[top].instrs
    return True


def _first_line(b: n.Block) -> int:
    if b.instrs:
        return b.instrs[0].line
    return b.terminator.line if b.terminator is not None else 0


def _defined_above(v: n.Value, top: str, cfg: Cfg, defs: dict[n.Value, n.Instr], program: n.Program) -> bool:
    """Whether `v` is defined in a block that strictly dominates `top`."""
    for b in program.blocks:
        if v in b.params or (v in defs and any(i is defs[v] for i in b.instrs)):
            return b.name != top and b.name in cfg.preds and cfg.dominates(b.name, top)
    return False


def _reads(b: n.Block) -> Iterator[n.Value]:
    for i in b.instrs:
        yield from i.operands()
    if b.terminator is not None:
        yield from b.terminator.operands()


class _Upstream:
    """For each block: whether the blocks that reach it (itself included) lie on no cycle, and whether
    none of them may change the packet."""

    def __init__(self, program: n.Program, cfg: Cfg) -> None:
        self.blocks = {b.name: b for b in program.blocks}
        self.cfg = cfg
        self.reaching: dict[str, set[str]] = {}
        cyclic: set[str] = set()
        for name in cfg.order:
            if name in self._reach(name, strict=True):
                cyclic.add(name)
        self.cyclic = cyclic
        self.writers = {b.name for b in program.blocks
                        if not all(isinstance(i, PACKET_UNCHANGED) for i in b.instrs)}

    def _reach(self, name: str, strict: bool = False) -> set[str]:
        """Blocks with a path to `name` (of at least one edge when `strict`)."""
        seen: set[str] = set()
        work = list(self.cfg.preds.get(name, ()))
        while work:
            b = work.pop()
            if b not in seen:
                seen.add(b)
                work.extend(self.cfg.preds.get(b, ()))
        return seen if strict else seen | {name}

    def _reaching(self, name: str) -> set[str]:
        if name not in self.reaching:
            self.reaching[name] = self._reach(name)
        return self.reaching[name]

    def acyclic(self, name: str) -> bool:
        return not (self._reaching(name) & self.cyclic)

    def packet_unchanged(self, name: str) -> bool:
        return not (self._reaching(name) & self.writers)


class _EdgeFacts:
    """The facts each branch edge establishes, and those that hold on entry to each block (on every path:
    the edges' facts met over the predecessors, in an order where those come first)."""

    def __init__(self, program: n.Program, cfg: Cfg) -> None:
        self.defs = definitions(program)
        self.blocks = {b.name: b for b in program.blocks}
        self.cfg = cfg
        self.entry: dict[str, Facts] = {}
        for name in cfg.order:
            incoming = [self.on_edge(p, name) for p in set(cfg.preds.get(name, ()))]
            if any(f is None for f in incoming) or not incoming:
                self.entry[name] = frozenset()  # the entry, or a loop head
                continue
            common: Facts | None = None
            for facts in incoming:
                assert facts is not None
                common = facts if common is None else common & facts
            self.entry[name] = common or frozenset()

    def on_edge(self, source: str, target: str) -> Facts | None:
        """What holds on every edge from `source` to `target`; None when `source` is not yet known."""
        if source not in self.entry:
            return None
        b = self.blocks[source]
        term = b.terminator
        assert term is not None
        per_edge = [self.of_branch(b, k, packet=True) for k, e in enumerate(term.edges()) if e.target == target]
        common = per_edge[0]
        for f in per_edge[1:]:
            common &= f
        return self.entry[source] | common

    def entering(self, name: str, packet: bool) -> Facts:
        return frozenset(f for f in self.entry.get(name, frozenset()) if packet or f.key[0] != "packet")

    def of_branch(self, b: n.Block, index: int, packet: bool) -> Facts:
        """The facts edge `index` of `b`'s terminator establishes (none for a jump)."""
        term = b.terminator
        if not isinstance(term, n.Branch) or term.if_true.target == term.if_false.target:
            return frozenset()
        taken = index == 0
        found = {Fact(("value", term.cond.id), True, 1 if taken else 0)}
        cmp = self.defs.get(term.cond)
        if isinstance(cmp, n.Compare) and cmp.op in (CmpOp.EQ, CmpOp.NE):
            equal = (cmp.op is CmpOp.EQ) == taken
            for value, other in ((cmp.lhs, cmp.rhs), (cmp.rhs, cmp.lhs)):
                k = self._constant(other)
                if k is None:
                    continue
                found.add(Fact(("value", value.id), equal, k))
                bytes_fact = self._packet_fact(value, k, equal)
                if bytes_fact is not None and packet:
                    found.add(bytes_fact)
        return frozenset(found)

    def _constant(self, v: n.Value) -> int | None:
        d = self.defs.get(v)
        return d.value if isinstance(d, n.Const) and isinstance(d.value, int) else None

    def _packet_fact(self, v: n.Value, k: int, equal: bool) -> Fact | None:
        """`v == k` (or `!=`) as a fact about the packet bytes `v` was loaded from, if it was: through
        widening conversions of an unsigned integer, which keep its value."""
        d = self.defs.get(v)
        while isinstance(d, n.Convert) and _widens(d.value.type, d.out.type):
            d = self.defs.get(d.value)
        if not isinstance(d, n.LoadPacket):
            return None
        base, offset = constant_offset(d.offset, self.defs)
        if base is not None or not 0 <= k < 1 << (8 * d.width):
            return None
        if not d.big_endian:
            k = int.from_bytes(k.to_bytes(d.width, "little"), "big")
        return Fact(("packet", offset, d.width), equal, k)


def _widens(source: object, target: object) -> bool:
    return (isinstance(source, ScalarType) and isinstance(target, ScalarType) and not source.signed
            and not source.is_bool and not source.is_fixed and not target.is_bool and not target.is_fixed
            and target.bits > source.bits)


Found = n.Value | tuple[str, object, int]
"""What an edge passes: a value, or ("const", type, k) for a constant (two constants of one value agree)."""


class _Search:
    """The backward walk from a join to the entry: which of its edges a set of facts leaves possible,
    and what those pass to a parameter."""

    def __init__(self, facts: _EdgeFacts, cfg: Cfg, blocks: dict[str, n.Block], budget: _Budget,
                 packet: bool) -> None:
        self.facts = facts
        self.cfg = cfg
        self.blocks = blocks
        self.budget = budget
        self.packet = packet
        self.memo: dict[tuple[str, Facts], bool] = {}

    def _relevant(self, facts: Facts) -> Facts:
        return facts if self.packet else frozenset(f for f in facts if f.key[0] != "packet")

    def _edges_into(self, name: str) -> Iterator[tuple[n.Block, int, n.Edge]]:
        for source in dict.fromkeys(self.cfg.preds.get(name, ())):
            b = self.blocks[source]
            assert b.terminator is not None
            for k, e in enumerate(b.terminator.edges()):
                if e.target == name:
                    yield b, k, e

    def possible(self, name: str, known: Facts) -> bool:
        """Whether some path from the entry through block `name` is consistent with `known`."""
        known = self._relevant(known | self.facts.entry.get(name, frozenset()))
        if not _consistent(known):
            return False
        if name not in self.cfg.idom:
            return True  # the entry
        memo = self.memo.get((name, known))
        if memo is not None:
            return memo
        if not self.budget.take():
            return True
        result = any(self.possible(b.name, known | self.facts.of_branch(b, k, self.packet))
                     for b, k, _ in self._edges_into(name))
        self.memo[(name, known)] = result
        return result

    def values(self, p: n.Value, owner: str, known: Facts) -> set[Found] | None:
        """What parameter `p` of block `owner` may hold where `known` holds (None: anything)."""
        block = self.blocks[owner]
        if owner not in self.cfg.idom or not self.budget.take():
            return None  # the entry's parameters are the program's inputs; or out of steps
        k = block.params.index(p)
        found: set[Found] = set()
        for b, index, e in self._edges_into(owner):
            along = known | self.facts.of_branch(b, index, self.packet)
            if not self.possible(b.name, along):
                continue
            arg = e.args[k]
            if arg in b.params and b.name in self.cfg.idom:
                more = self.values(arg, b.name, along)
                if more is None:
                    return None
                found |= more
            else:
                d = self.facts.defs.get(arg)
                found.add(("const", arg.type, d.value) if isinstance(d, n.Const) else arg)
            if len(found) > 1:
                return found
        return found
