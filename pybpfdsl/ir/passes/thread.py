"""Presence flags threaded: a block that a constant flag enters on one edge and other values on others is
copied for that edge, until the branch on the flag is decided.

The frontend keeps "header present" as a bool block parameter, 1 on the edge where the header was found
and 0 on the others, and branches on it after the join, sometimes several blocks later. Each copy here
is made for one edge that passes a constant to a bool parameter which, directly or passed on from block
to block, is a branch's condition; the copy's parameters are that edge's arguments, so the constant
travels on to the next block and finally decides the branch. Below the decided branch, the header's
offset is a constant or a value its bounds check dominates again.

Copying needs every block to read only its own values: first every value a block reads from another
block becomes a parameter of its own (`explicit`); `dce` folds the parameters every edge passes one
value back afterwards. Loop heads are not copied (that would unroll loops), and a budget bounds the
copies (`MAX_COPIED`).
"""

from __future__ import annotations

from collections.abc import Callable

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, successors
from pybpfdsl.ir.passes.rewrite import Fresh, copy_block, copy_program, rename, retarget, unused_name
from pybpfdsl.lang.types import BOOL

MAX_COPIED = 200
"""Instructions one run may copy."""
MAX_BLOCK = 4
"""Largest block (instructions) copied. Measured on the examples: blocks of up to 2-5 instructions (the
joins that pass the flags on) give the fewest BPF instructions, 876 slots; 6 gives 870, 8 gives 1017 and larger
blocks more (copies of whole header parsers outweigh the branches saved)."""


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    fresh = Fresh(out)
    explicit(out, fresh)
    budget = min(MAX_COPIED, out.instruction_count())
    while budget > 0:
        found = _candidate(out)
        if found is None:
            break
        source, index, block = found
        budget -= len(block.instrs) + 1
        _copy_for_edge(out, fresh, source, index, block)
    return out


def _reads(b: n.Block) -> list[n.Value]:
    read = [v for i in b.instrs for v in i.operands()]
    return read + (list(b.terminator.operands()) if b.terminator is not None else [])


def _live_in(program: n.Program) -> dict[str, list[n.Value]]:
    """Values each block reads (itself or through its successors) that it does not define, by id."""
    defined = {b.name: set(b.params) | {i.result for i in b.instrs if i.result is not None} for b in program.blocks}
    own = {b.name: {v for v in _reads(b) if v not in defined[b.name]} for b in program.blocks}
    live: dict[str, set[n.Value]] = {name: set(vs) for name, vs in own.items()}
    changed = True
    while changed:
        changed = False
        for b in reversed(program.blocks):
            new = set(live[b.name])
            for s in successors(b):
                new |= {v for v in live[s] if v not in defined[b.name]}
            if new != live[b.name]:
                live[b.name] = new
                changed = True
    return {name: sorted(vs, key=lambda v: v.id) for name, vs in live.items()}


def explicit(program: n.Program, fresh: Fresh) -> None:
    """Every value a block reads but another block defines becomes a parameter of the reading block."""
    live = _live_in(program)
    local = {b.name: {v: fresh.value(v.type, v.hint) for v in live[b.name]} for b in program.blocks
             if b is not program.entry}
    for b in program.blocks:
        names = local.get(b.name, {})
        b.params = b.params + list(names.values())
        b.instrs = [rename(i, names) for i in b.instrs]
        if b.terminator is not None:
            term = rename(b.terminator, names)
            b.terminator = _with_args(term, _passing(names, live))


def _passing(names: dict[n.Value, n.Value], live: dict[str, list[n.Value]]
             ) -> Callable[[str], tuple[n.Value, ...]]:
    """What a block passes to each target's new parameters: its own names of the target's live values."""
    return lambda target: tuple(names.get(v, v) for v in live[target])


def _with_args(term: n.Terminator, extra: Callable[[str], tuple[n.Value, ...]]) -> n.Terminator:
    """`term` with `extra(target)` appended to the arguments of each edge."""
    def edge(e: n.Edge) -> n.Edge:
        return n.Edge(e.target, e.args + extra(e.target))

    if isinstance(term, n.Jump):
        return n.Jump(to=edge(term.to), line=term.line)
    if isinstance(term, n.Branch):
        return n.Branch(cond=term.cond, if_true=edge(term.if_true), if_false=edge(term.if_false), line=term.line,
                        expect=term.expect)
    return term


def _flags(program: n.Program) -> set[tuple[str, int]]:
    """(block, parameter index) of the bool parameters that are, or are passed on to, a branch condition."""
    found: set[tuple[str, int]] = set()
    feeds: dict[tuple[str, int], list[tuple[str, int]]] = {}  # (target, j) <- (block, k) passing its param
    for b in program.blocks:
        index = {p: k for k, p in enumerate(b.params) if p.type == BOOL}
        term = b.terminator
        if term is None:
            continue
        if isinstance(term, n.Branch) and term.cond in index:
            found.add((b.name, index[term.cond]))
        for e in term.edges():
            for j, a in enumerate(e.args):
                if a in index:
                    feeds.setdefault((e.target, j), []).append((b.name, index[a]))
    work = list(found)
    while work:
        for source in feeds.get(work.pop(), ()):
            if source not in found:
                found.add(source)
                work.append(source)
    return found


def _candidate(program: n.Program) -> tuple[n.Block, int, n.Block] | None:
    """(source block, edge index, target) of an edge worth a copy of its target, or None."""
    cfg = Cfg.of(program)
    blocks = {b.name: b for b in program.blocks}
    flags = _flags(program)
    incoming: dict[str, list[n.Edge]] = {}
    for name in cfg.order:
        term = blocks[name].terminator
        for e in term.edges() if term is not None else ():
            incoming.setdefault(e.target, []).append(e)
    consts = _known(program, incoming)
    for name in cfg.order:
        block = blocks[name]
        if block is program.entry or len(block.instrs) > MAX_BLOCK \
                or any(cfg.dominates(name, p) for p in cfg.preds[name]):
            continue  # the entry, a large block, or a loop head
        edges = incoming.get(name, [])
        if len(edges) < 2:
            continue
        for k, _ in enumerate(block.params):
            if (name, k) not in flags:
                continue
            values = {consts.get(e.args[k], e.args[k]) for e in edges}
            if len(values) < 2:
                continue
            for source_name in cfg.preds[name]:
                term = blocks[source_name].terminator
                assert term is not None
                for index, e in enumerate(term.edges()):
                    if e.target == name and e.args[k] in consts:
                        return blocks[source_name], index, block
    return None


def _known(program: n.Program, incoming: dict[str, list[n.Edge]]) -> dict[n.Value, int]:
    """Constants, and the parameters every edge passes one known constant (in the explicit form a flag
    set in one block reaches the next ones as parameters)."""
    known = {i.out: i.value for b in program.blocks for i in b.instrs if isinstance(i, n.Const)}
    changed = True
    while changed:
        changed = False
        for b in program.blocks:
            edges = incoming.get(b.name, [])
            for k, p in enumerate(b.params):
                if p in known or not edges:
                    continue
                values = {known.get(e.args[k]) for e in edges}
                if len(values) == 1 and None not in values:
                    known[p] = values.pop()  # type: ignore[assignment]
                    changed = True
    return known


def _copy_for_edge(program: n.Program, fresh: Fresh, source: n.Block, index: int, block: n.Block) -> None:
    """Give edge `index` of `source` a copy of `block` of its own, its parameters the edge's arguments."""
    term = source.terminator
    assert term is not None
    name = unused_name(f"{block.name}_", {b.name for b in program.blocks})
    copy = copy_block(block, term.edges()[index], fresh, name)
    copy.terminator = _decided(copy.terminator, copy.instrs, program)
    program.blocks.append(copy)
    retarget(source, index, copy.name)


def _decided(term: n.Terminator | None, instrs: list[n.Instr], program: n.Program) -> n.Terminator | None:
    """A branch on a constant, as the jump it takes (so the next copy sees one edge)."""
    if not isinstance(term, n.Branch):
        return term
    consts = {i.out: i.value for b in program.blocks for i in b.instrs if isinstance(i, n.Const)}
    consts.update({i.out: i.value for i in instrs if isinstance(i, n.Const)})
    if term.cond in consts:
        return n.Jump(to=term.if_true if consts[term.cond] else term.if_false, line=term.line)
    return term
