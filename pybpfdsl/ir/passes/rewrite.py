"""What every pass does to a program: copy it, rename values in instructions and edges, mint values.

Passes never change the program they are given (the compiler proves the bytecode against the
frontend's IR, and the IR ⇔ IR proof needs the before and the after): `copy_program` gives each pass
blocks of its own. Instructions are frozen records, so renaming one builds a new one.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import IRType
from pybpfdsl.lang.types import ScalarType

T = TypeVar("T", n.Instr, n.Terminator)


def copy_program(program: n.Program, blocks: list[n.Block] | None = None) -> n.Program:
    """A program with the same declarations and copies of its blocks (or `blocks`)."""
    if blocks is None:
        blocks = [n.Block(b.name, list(b.params), list(b.instrs), b.terminator) for b in program.blocks]
    return n.Program(program.name, program.source_file, program.first_line, blocks, program.maps,
                     program.globals, program.ringbufs)


def _renamed(x: object, names: dict[n.Value, n.Value]) -> object:
    if isinstance(x, n.Value):
        return resolve(x, names)
    if isinstance(x, n.Edge):
        return n.Edge(x.target, tuple(resolve(a, names) for a in x.args))
    if isinstance(x, tuple):
        return tuple(_renamed(v, names) for v in x)
    return x


def resolve(v: n.Value, names: dict[n.Value, n.Value]) -> n.Value:
    """What `v` stands for after renaming (renamings may chain)."""
    while v in names:
        v = names[v]
    return v


def rename(item: T, names: dict[n.Value, n.Value]) -> T:
    """`item` reading `names[v]` wherever it read `v` (its own result, `out`, is kept)."""
    if not names:
        return item
    changes: dict[str, Any] = {}
    for f in fields(item):
        if f.name in ("out", "line"):
            continue
        old = getattr(item, f.name)
        new = _renamed(old, names)
        if new != old:
            changes[f.name] = new
    return replace(item, **changes) if changes else item


def rename_all(program: n.Program, names: dict[n.Value, n.Value]) -> None:
    """Apply `names` to every instruction and terminator of `program` (in place: a pass's own copy)."""
    if not names:
        return
    for b in program.blocks:
        b.instrs = [rename(i, names) for i in b.instrs]
        if b.terminator is not None:
            b.terminator = rename(b.terminator, names)


class Fresh:
    """Values with ids no value of the program has."""

    def __init__(self, program: n.Program) -> None:
        ids = [p.id for b in program.blocks for p in b.params]
        ids += [i.result.id for b in program.blocks for i in b.instrs if i.result is not None]
        self.next = max(ids, default=-1) + 1

    def value(self, t: IRType, hint: str = "") -> n.Value:
        v = n.Value(self.next, t, hint)
        self.next += 1
        return v


def copy_block(block: n.Block, edge: n.Edge, fresh: Fresh, name: str) -> n.Block:
    """A copy of `block` named `name` for `edge`: its parameters read the edge's arguments, its results are
    new values (the block's own are still defined in the original, which other edges may keep)."""
    names: dict[n.Value, n.Value] = dict(zip(block.params, edge.args, strict=True))
    instrs: list[n.Instr] = []
    for i in block.instrs:
        i = rename(i, names)
        if i.result is not None:
            new = fresh.value(i.result.type, i.result.hint)
            names[i.result] = new
            changes: dict[str, Any] = {"out": new}  # every instruction with a result names it `out`
            i = replace(i, **changes)
        instrs.append(i)
    term = rename(block.terminator, names) if block.terminator is not None else None
    return n.Block(name, [], instrs, term)


def retarget(source: n.Block, index: int, target: str) -> None:
    """Point edge `index` of `source` at `target`, which takes no arguments."""
    term, edge = source.terminator, n.Edge(target)
    if isinstance(term, n.Jump):
        source.terminator = n.Jump(to=edge, line=term.line)
    elif isinstance(term, n.Branch):
        source.terminator = n.Branch(cond=term.cond, if_true=edge if index == 0 else term.if_true,
                                     if_false=edge if index == 1 else term.if_false, line=term.line,
                                     expect=term.expect)


def unused_name(prefix: str, taken: set[str]) -> str:
    """`prefix` and the first number that makes a block name not in `taken` (which then holds it too)."""
    k = 0
    while f"{prefix}{k}" in taken:
        k += 1
    taken.add(f"{prefix}{k}")
    return f"{prefix}{k}"


def constant(t: ScalarType, pattern: int) -> int:
    """A bit pattern of type `t` as the `Const` field holds it (signed types and floats signed)."""
    if t.is_bool:
        return 1 if pattern else 0
    pattern &= (1 << t.bits) - 1
    if (t.signed or t.is_fixed) and pattern >> (t.bits - 1):
        pattern -= 1 << t.bits
    return pattern


def uses(program: n.Program) -> dict[n.Value, int]:
    """How many times each value is read (by instructions, terminators and edges)."""
    count: dict[n.Value, int] = {}
    for b in program.blocks:
        for i in b.instrs:
            for v in i.operands():
                count[v] = count.get(v, 0) + 1
        if b.terminator is not None:
            for v in b.terminator.operands():
                count[v] = count.get(v, 0) + 1
    return count
