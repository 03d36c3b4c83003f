"""Late computation: an instruction moves down to where its result is used, so the paths that do not use it
do not compute it, and a value used only after a helper call is not computed (and kept) across it.

Where it goes: the nearest block dominating every use (a use on an edge counts in the block that jumps),
just before its first use there, or before that block's terminator when the uses lie below it. It moves
only past a helper call or a write (a store, a map update, a packet move): LLVM sinks values past plain
code itself, knowing the registers, but it does not move them past a call or a store to memory it cannot
see, so those moves are the ones the IR can add (made everywhere, they changed no example and grew
generated programs by 9 slots over 40 seeds, LLVM's layout perturbed). It moves to a block below its own
only when some path from its block leaves the program without passing that block (else no path saves
anything). Never into a loop: the new block must not be reached again without passing the old one, so it
runs at most as often as before. Never out of a join (a block with several edges in): `thread` copies a
join small enough into each edge, and a join emptied into its successors would be copied whole (a
generated program's header parse join: 127 slots to 195).

What moves:

- pure operations but constants (LLVM places those at their uses itself): their operands are defined
  above the old place, and no path from there to the new place defines them again without passing the
  old place (it dominates the new one), so they read the same values;
- loads, where nothing on any path from the old place to the new one can change what they read
  (`_may_change`): a global no store to it, a map value no store through a reference into that map, no
  update or delete of that map; the packet nothing that writes or moves it. A packet read also crosses no
  helper call and enters no block holding one: the backend reads a load through the pointer its bounds
  check tested only when no call lies between them (`backend/packet_facts.py`), else it checks again.

Past a helper call (r0-r5 are clobbered, so a value live across one is kept in r6-r9 or spilled), a move
trades the result's live range for its operands': it is made only when at most one operand is neither a
constant nor read after the new place anyway, so no more values live across the call than before (one
operand: as many, and the operand's own definition may then follow: a global's load and its mask both
move, and nothing is live across).
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, successors
from pybpfdsl.ir.passes.cse import PACKET_UNCHANGED
from pybpfdsl.ir.passes.rewrite import copy_program
from pybpfdsl.ir.types import MapValueRef

PACKET_LOADS: tuple[type[n.Instr], ...] = (n.LoadPacket, n.PacketLen)
LOADS: tuple[type[n.Instr], ...] = (*PACKET_LOADS, n.LoadGlobal, n.LoadValue)
NO_CALL: tuple[type[n.Instr], ...] = (
    n.PureInstr, n.PacketLen, n.InBounds, n.LoadPacket, n.StorePacket, n.IsNull, n.LoadValue, n.StoreValue,
    n.LoadGlobal, n.StoreGlobal)
"""Operations the backend lowers without a helper call (anything else, added later too, counts as one)."""
READS: tuple[type[n.Instr], ...] = (n.PacketLen, n.InBounds, n.LoadPacket, n.IsNull, n.LoadValue, n.LoadGlobal)
"""Operations with effects that only read: LLVM moves values past these itself."""
MAX_MOVES = 4096
"""Moves one run makes at most (each is one instruction; real programs make tens)."""


@dataclass(frozen=True)
class _Place:
    block: str
    index: int
    """Position in the block's instructions (its length: before the terminator)."""


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    sinker = _Sinker(out)
    for _ in range(MAX_MOVES):
        if not sinker.move_one():
            break
    return out


def _is_call(i: n.Instr) -> bool:
    return not isinstance(i, NO_CALL)


def _may_change(writer: n.Instr, load: n.Instr) -> bool:
    """Whether `writer` may change what `load` reads (or, for a packet read, whether it calls a helper:
    see the module's docstring). Operations this does not know count as changing everything."""
    if isinstance(load, PACKET_LOADS):
        return not isinstance(writer, PACKET_UNCHANGED) or _is_call(writer)
    if isinstance(load, n.LoadGlobal):
        if isinstance(writer, n.StoreGlobal):
            return writer.name == load.name
        return not isinstance(writer, (*PACKET_UNCHANGED, n.StorePacket, n.AdjustPacket))
    if isinstance(load, n.LoadValue):
        assert isinstance(load.ref.type, MapValueRef)
        if isinstance(writer, n.StoreValue):  # another lookup's reference may point at the same value
            return writer.ref.type == load.ref.type
        if isinstance(writer, (n.MapUpdate, n.MapDelete)):
            return writer.map_name == load.ref.type.map_name
        return not isinstance(writer, (*PACKET_UNCHANGED, n.StorePacket, n.AdjustPacket))
    return False


class _Sinker:
    """The program's blocks, where each value is defined and read, and the control flow (which sinking
    does not change)."""

    def __init__(self, program: n.Program) -> None:
        self.cfg = Cfg.of(program)
        self.blocks = {b.name: b for b in program.blocks if b.name in self.cfg.preds}
        self.depth = {name: len(list(self.cfg.dominators(name))) for name in self.cfg.order}
        self.home: dict[n.Value, str] = {}
        for b in self.blocks.values():
            for i in b.instrs:
                if i.result is not None:
                    self.home[i.result] = b.name
        self.readers: dict[n.Value, list[str]] = {}
        """Per value, the blocks reading it (once per read: a block reading it twice is listed twice)."""
        for b in self.blocks.values():
            for i in b.instrs:
                for v in i.operands():
                    self.readers.setdefault(v, []).append(b.name)
            if b.terminator is not None:
                for v in b.terminator.operands():
                    self.readers.setdefault(v, []).append(b.name)
        self.cyclic = self._cyclic()
        self.exits_avoiding: dict[tuple[str, str], bool] = {}
        self.tried: set[n.Value] = set()
        """Values found where they belong (tried again when a reader of theirs moves)."""

    def move_one(self) -> bool:
        """Move one instruction (the lowest first, so a chain follows its last link down); False when
        none moves."""
        for name in reversed(self.cfg.order):
            b = self.blocks[name]
            for k in range(len(b.instrs) - 1, -1, -1):
                i = b.instrs[k]
                if i.result is None or i.result in self.tried or not self._movable(i):
                    continue
                target = self._target(i, _Place(name, k))
                if target is None:
                    self.tried.add(i.result)
                    continue
                self._move(i, _Place(name, k), target)
                self.tried.difference_update(i.operands())  # their readers moved: they may follow
                return True
        return False

    @staticmethod
    def _movable(i: n.Instr) -> bool:
        return (isinstance(i, n.PureInstr) and not isinstance(i, n.Const)) or isinstance(i, LOADS)

    def _target(self, i: n.Instr, at: _Place) -> _Place | None:
        """Where `i`, now at `at`, should go (None: where it is)."""
        assert i.result is not None
        readers = self.readers.get(i.result, [])
        if not readers:
            return None
        lowest = readers[0]
        for r in readers[1:]:
            lowest = self._common_dominator(lowest, r)
        block = self.blocks[lowest]
        first = next((k for k, j in enumerate(block.instrs) if i.result in j.operands()), len(block.instrs))
        if lowest == at.block:
            if first <= at.index + 1:
                return None
            target = _Place(lowest, first)
            crossed = block.instrs[at.index + 1:first]
            if not any(_is_call(j) for j in crossed):
                return None  # within a block only past a call: elsewhere the order is the backend's to choose
        else:
            if not self.cfg.dominates(at.block, lowest) or self._enters_loop(at.block, lowest) \
                    or not self._exit_avoids(at.block, lowest) or len(self.cfg.preds.get(at.block, ())) > 1:
                return None
            target = _Place(lowest, first)
            crossed = self._crossed(at, target)
        if not any(isinstance(j, n.EffectInstr) and not isinstance(j, READS) for j in crossed):
            return None  # LLVM sinks past plain code itself, knowing the registers; an IR move only perturbs it
        if isinstance(i, LOADS) and any(_may_change(j, i) for j in crossed):
            return None
        if isinstance(i, PACKET_LOADS) and lowest != at.block \
                and any(_is_call(j) for j in self.blocks[lowest].instrs):
            return None
        if any(_is_call(j) for j in crossed) and not self._follows(i, at, target, crossed):
            return None
        return target

    def _common_dominator(self, a: str, b: str) -> str:
        while self.depth[a] > self.depth[b]:
            a = self.cfg.idom[a]
        while self.depth[b] > self.depth[a]:
            b = self.cfg.idom[b]
        while a != b:
            a, b = self.cfg.idom[a], self.cfg.idom[b]
        return a

    def _cyclic(self) -> set[str]:
        """Blocks on some cycle."""
        found: set[str] = set()
        for name in self.cfg.order:
            if name in self._reached_from(name, avoid=None):
                found.add(name)
        return found

    def _reached_from(self, origin: str, avoid: str | None) -> set[str]:
        """Blocks reached from `origin` in one step or more, not through `avoid`."""
        seen: set[str] = set()
        work = [s for s in successors(self.blocks[origin]) if s != avoid]
        while work:
            name = work.pop()
            if name in seen:
                continue
            seen.add(name)
            work.extend(s for s in successors(self.blocks[name]) if s != avoid)
        return seen

    def _enters_loop(self, old: str, new: str) -> bool:
        """Whether block `new` may run again before `old` does (it lies on a cycle that avoids `old`)."""
        return new in self.cyclic and new in self._reached_from(new, avoid=old)

    def _exit_avoids(self, old: str, new: str) -> bool:
        """Whether some path from `old` leaves the program without passing `new` (one that a move from
        `old` to `new` spares the computation)."""
        key = (old, new)
        if key not in self.exits_avoiding:
            reached = self._reached_from(old, avoid=new) - {new}
            self.exits_avoiding[key] = any(isinstance(self.blocks[b].terminator, n.Return) for b in reached)
        return self.exits_avoiding[key]

    def _crossed(self, at: _Place, target: _Place) -> list[n.Instr]:
        """The instructions some path from just after `at` to just before `target` may run (`at`'s block
        dominates `target`'s; paths through `at`'s block again start over there)."""
        old, new = at.block, target.block
        forward = self._reached_from(old, avoid=old) | {old}
        backward: set[str] = set()
        work = [new]
        while work:
            name = work.pop()
            for p in self.cfg.preds.get(name, ()):
                if p != old and p not in backward:
                    backward.add(p)
                    work.append(p)
        middle = (forward & backward) - {old, new}
        crossed = list(self.blocks[old].instrs[at.index + 1:]) + list(self.blocks[new].instrs[:target.index])
        for name in middle:
            crossed.extend(self.blocks[name].instrs)
        return crossed

    def _follows(self, i: n.Instr, at: _Place, target: _Place, crossed: list[n.Instr]) -> bool:
        """Whether moving `i` from `at` to `target`, past `crossed` (which holds a call), keeps no value
        live across the call that was not: its operands are constants or read there anyway, or the one
        that is not is defined just above it, for `i` alone, by an instruction that can follow it down
        under the same condition (a load and the mask of it, a chain of conversions)."""
        kept = self._kept_operands(i, target)
        if len(kept) != 1:
            return not kept
        v = kept[0]
        if self.home.get(v) != at.block or len(self.readers.get(v, [])) != 1:
            return False
        block = self.blocks[at.block]
        k = next(k for k, j in enumerate(block.instrs) if j.result == v)
        d = block.instrs[k]
        if not self._movable(d) or k > at.index:
            return False
        below = list(block.instrs[k + 1:at.index]) + crossed
        if isinstance(d, LOADS) and any(_may_change(j, d) for j in below):
            return False
        return self._follows(d, _Place(at.block, k), target, below)

    def _kept_operands(self, i: n.Instr, target: _Place) -> list[n.Value]:
        """Operands of `i` a move to `target` makes live there where they were not: neither constants
        nor read at or after `target` by another instruction."""
        later = self._reached_from(target.block, avoid=None)
        block = self.blocks[target.block]
        tail = [j for j in block.instrs[target.index:] if j is not i]
        kept: list[n.Value] = []
        for v in dict.fromkeys(i.operands()):
            if isinstance(self._definition(v), n.Const):
                continue
            if any(v in j.operands() for j in tail) or (block.terminator is not None
                                                        and v in block.terminator.operands()):
                continue
            if any(r in later for r in self.readers.get(v, [])):
                continue
            kept.append(v)
        return kept

    def _definition(self, v: n.Value) -> n.Instr | None:
        home = self.home.get(v)
        if home is None:
            return None
        return next((j for j in self.blocks[home].instrs if j.result == v), None)

    def _move(self, i: n.Instr, at: _Place, target: _Place) -> None:
        assert i.result is not None
        old, new = self.blocks[at.block], self.blocks[target.block]
        del old.instrs[at.index]
        index = target.index - 1 if at.block == target.block else target.index
        new.instrs.insert(index, i)
        self.home[i.result] = target.block
        for v in i.operands():
            readers = self.readers[v]
            readers.remove(at.block)
            readers.append(target.block)
