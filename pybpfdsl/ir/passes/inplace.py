"""In-place map updates: `map_update @m, %k, %v` after a `map_lookup @m, %k` of the same key becomes, where
the lookup found the key, a store of `%v` through the lookup's reference; the update stays for the miss.

`m[k] = f(m.get(k, d))` looks the key up and then calls bpf_map_update_elem, which hashes the key again
and copies the value in; the C one writes would store through the pointer the lookup returned. The two
agree when nothing between them can change or remove the entry:

- no update or delete of the same map on any path from the lookup to the update (on an LRU map another
  key's insert may evict ours; on a hash map a delete frees the element);
- no read of the reference after the update (an update links a new element, so a pointer looked up
  before would see the old one; the store keeps one element);
- the value has no padding (an update writes it as zeros, a store of a record its fields only);
- the map is one whose lookup finds the element an update of that key replaces: hashes (LRU and per-CPU
  too: a program's update and its lookup both see this CPU's copy) and arrays, not an LPM trie (its
  lookup finds the longest prefix, its update the exact one).

The update is BPF_ANY, which on a present key replaces it and returns 0, so the store's path passes the
update's status as the constant 0. An LRU lookup already marks the entry as used, as the update would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, successors
from pybpfdsl.ir.passes.rewrite import Fresh, copy_block, copy_program, retarget, unused_name, uses
from pybpfdsl.ir.types import StructType
from pybpfdsl.lang.state import MapKind
from pybpfdsl.lang.types import ScalarType, i64

IN_PLACE_KINDS = frozenset({MapKind.HASH, MapKind.LRU_HASH, MapKind.PERCPU_HASH, MapKind.LRU_PERCPU_HASH,
                            MapKind.ARRAY, MapKind.PERCPU_ARRAY})
"""Maps whose lookup returns the very element an update of the same key replaces."""
LRU_KINDS = frozenset({MapKind.LRU_HASH, MapKind.LRU_PERCPU_HASH})
"""Maps whose updates may evict other entries (the kernel takes a free element first, key present or not)."""
MAX_JOIN_COPY = 16
"""Largest join (instructions) copied per incoming edge rather than split by a branch on the null test."""
MAX_REWRITES = 16
"""Updates one run rewrites (each splits a block, so the CFG is recomputed after each)."""


@dataclass(frozen=True)
class _Site:
    block: n.Block
    index: int
    """Position of the update in `block`."""
    ref: n.Value
    """The lookup's reference."""


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    if not any(isinstance(i, n.MapUpdate) for b in out.blocks for i in b.instrs):
        return out
    fresh = Fresh(out)
    for _ in range(MAX_REWRITES):
        site = _find(out)
        if site is None:
            break
        _split(out, fresh, site)
    return out


def _find(program: n.Program) -> _Site | None:
    cfg = Cfg.of(program)
    blocks = {b.name: b for b in program.blocks}
    lookups: dict[n.Value, tuple[str, int, n.MapLookup]] = {}
    for name in cfg.order:
        for k, i in enumerate(blocks[name].instrs):
            if isinstance(i, n.MapLookup):
                lookups[i.out] = (name, k, i)
    read_at = _reads(program)
    lru = {m.name for m in program.maps if m.kind in LRU_KINDS}
    for name in cfg.order:
        for k, i in enumerate(blocks[name].instrs):
            if not isinstance(i, n.MapUpdate) or program.map_decl(i.map_name).kind not in IN_PLACE_KINDS \
                    or _padded(program.map_decl(i.map_name).value_type):
                continue
            for ref, (lname, lk, lookup) in lookups.items():
                if lookup.map_name != i.map_name or lookup.key != i.key:
                    continue
                if not _before(cfg, (lname, lk), (name, k)):
                    continue
                if _known_null(program, cfg, blocks, ref, name) is not True \
                        and not (i.map_name in lru and _updated_later(blocks, i.map_name, (name, k))) \
                        and _untouched(cfg, blocks, i.map_name, (lname, lk), (name, k)) \
                        and not _read_after(cfg, blocks, read_at.get(ref, []), (lname, lk), (name, k)):
                    return _Site(blocks[name], k, ref)
    return None


def _known_null(program: n.Program, cfg: Cfg, blocks: dict[str, n.Block], ref: n.Value, name: str) -> bool | None:
    """Whether `ref` is null throughout block `name` (True), non-null (False), or either (None): decided
    by a dominating block whose one way in is an edge of a branch on `is_null ref`."""
    tests = {i.out for b in program.blocks for i in b.instrs if isinstance(i, n.IsNull) and i.ref == ref}
    for d in cfg.dominators(name):
        preds = cfg.preds.get(d, ())
        if len(preds) != 1:
            continue
        term = blocks[preds[0]].terminator
        if isinstance(term, n.Branch) and term.cond in tests and term.if_true.target != term.if_false.target:
            return term.if_true.target == d
    return None


def _padded(t: ScalarType | StructType) -> bool:
    """Whether a value of type `t` has padding bytes: an update copies them in as zeros, the backend's store
    of a record writes its fields only, so the bytes between them would keep what they held."""
    return isinstance(t, StructType) and sum(f.type.size for f in t.cls.fields()) != t.cls.size()


def _updated_later(blocks: dict[str, n.Block], map_name: str, update: tuple[str, int]) -> bool:
    """Whether another update of LRU map `map_name` may run after this one. The proofs number an LRU map's
    updates in the order they run, each evicting its own (unknown) set of entries; a store in place of
    this update would give every later one the number of the one before, so the two programs would
    evict differently there. Where no update follows, the store evicts nothing where the update may
    have evicted anything, which the kernel's LRU allows too."""
    name, k = update
    if any(_writes(i, map_name) and isinstance(i, n.MapUpdate) for i in blocks[name].instrs[k + 1:]):
        return True
    seen: set[str] = set()
    work = list(successors(blocks[name]))
    while work:
        b = work.pop()
        if b in seen:
            continue
        seen.add(b)
        if any(isinstance(i, n.MapUpdate) and i.map_name == map_name for i in blocks[b].instrs):
            return True
        work.extend(successors(blocks[b]))
    return False


def _before(cfg: Cfg, a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Whether instruction `a` dominates instruction `b`."""
    if a[0] == b[0]:
        return a[1] < b[1]
    return cfg.dominates(a[0], b[0])


def _writes(i: n.Instr, map_name: str) -> bool:
    return isinstance(i, (n.MapUpdate, n.MapDelete)) and i.map_name == map_name


def _between(cfg: Cfg, blocks: dict[str, n.Block], start: str, end: str) -> set[str]:
    """Blocks some path from the end of `start` to the start of `end` passes through without running `start`
    again (`end` itself among them when such a path enters it twice)."""
    forward = _reached(start, lambda name: successors(blocks[name]), start)
    backward = _reached(end, lambda name: cfg.preds.get(name, ()), start)
    return forward & backward


def _reached(origin: str, step: Callable[[str], Iterable[str]], avoid: str) -> set[str]:
    """The blocks `step` (successors or predecessors) leads to from `origin` in one step or more, never
    through `avoid`."""
    found: set[str] = set()
    work = [s for s in step(origin) if s != avoid]
    while work:
        name = work.pop()
        if name in found:
            continue
        found.add(name)
        work.extend(s for s in step(name) if s != avoid)
    return found


def _untouched(cfg: Cfg, blocks: dict[str, n.Block], map_name: str, lookup: tuple[str, int],
               update: tuple[str, int]) -> bool:
    """Whether no update or delete of `map_name` can run after the lookup and before the update."""
    (lname, lk), (uname, uk) = lookup, update
    if lname == uname:
        return not any(_writes(i, map_name) for i in blocks[lname].instrs[lk + 1:uk])
    tail = blocks[lname].instrs[lk + 1:]
    head = blocks[uname].instrs[:uk]
    middle = [i for name in _between(cfg, blocks, lname, uname) for i in blocks[name].instrs]
    return not any(_writes(i, map_name) for i in (*tail, *head, *middle))


def _reads(program: n.Program) -> dict[n.Value, list[tuple[str, int]]]:
    """Where each value is read: (block, position), the terminator at position len(instrs)."""
    found: dict[n.Value, list[tuple[str, int]]] = {}
    for b in program.blocks:
        for k, i in enumerate(b.instrs):
            for v in i.operands():
                found.setdefault(v, []).append((b.name, k))
        if b.terminator is not None:
            for v in b.terminator.operands():
                found.setdefault(v, []).append((b.name, len(b.instrs)))
    return found


def _read_after(cfg: Cfg, blocks: dict[str, n.Block], reads: list[tuple[str, int]], lookup: tuple[str, int],
                update: tuple[str, int]) -> bool:
    """Whether the reference may be read after the update (before the lookup runs again)."""
    lname, uname = lookup[0], update[0]
    later = _reached(uname, lambda name: successors(blocks[name]), lname)
    return any(name in later or (name == uname and k > update[1]) for name, k in reads)


def _null_test(program: n.Program, cfg: Cfg, ref: n.Value, site: _Site) -> n.Value | None:
    """An `is_null` of `ref` computed before the update (on every path to it), if there is one."""
    for b in program.blocks:
        for k, i in enumerate(b.instrs):
            if isinstance(i, n.IsNull) and i.ref == ref and _before(cfg, (b.name, k), (site.block.name, site.index)):
                return i.out
    return None


def _split(program: n.Program, fresh: Fresh, site: _Site) -> None:
    """Split the update's block: a branch on the lookup's null test, the update where it missed, the store
    where it found the key, and the rest of the block after both (where the lookup is known to have found
    the key, only the store)."""
    block, update = site.block, site.block.instrs[site.index]
    assert isinstance(update, n.MapUpdate) and block.terminator is not None
    cfg = Cfg.of(program)
    status_read = uses(program).get(update.out, 0) > 0
    store = n.StoreValue(ref=site.ref, value=update.value, line=update.line)
    if _known_null(program, cfg, {b.name: b for b in program.blocks}, site.ref, block.name) is False:
        ok = [n.Const(out=update.out, value=0, line=update.line)] if status_read else []
        block.instrs[site.index:site.index + 1] = [store, *ok]
        return
    if _copy_join(program, cfg, fresh, site):
        return
    head = block.instrs[:site.index]
    missed = _null_test(program, cfg, site.ref, site)
    if missed is None:
        missed = fresh.value(n.BOOL, "missed")
        head.append(n.IsNull(out=missed, ref=site.ref, line=update.line))
    taken = {b.name for b in program.blocks}
    names = [unused_name(f"{block.name}_{what}", taken) for what in ("miss", "found", "after")]
    miss_status = fresh.value(i64, update.out.hint)
    miss = n.Block(names[0], [], [n.MapUpdate(out=miss_status, map_name=update.map_name, key=update.key,
                                              value=update.value, line=update.line)],
                   n.Jump(to=n.Edge(names[2], (miss_status,) if status_read else ()), line=update.line))
    found_instrs: list[n.Instr] = [store]
    found_args: tuple[n.Value, ...] = ()
    if status_read:
        zero = fresh.value(i64)
        found_instrs.append(n.Const(out=zero, value=0, line=update.line))
        found_args = (zero,)
    found = n.Block(names[1], [], found_instrs, n.Jump(to=n.Edge(names[2], found_args), line=update.line))
    after = n.Block(names[2], [update.out] if status_read else [], block.instrs[site.index + 1:], block.terminator)
    block.instrs = head
    block.terminator = n.Branch(cond=missed, if_true=n.Edge(miss.name), if_false=n.Edge(found.name),
                                line=update.line)
    at = program.blocks.index(block) + 1
    program.blocks[at:at] = [found, miss, after]


def _edge_knows(program: n.Program, cfg: Cfg, blocks: dict[str, n.Block], ref: n.Value, source: str,
                index: int) -> bool | None:
    """Whether `ref` is null on edge `index` of block `source` (None when that edge does not tell)."""
    term = blocks[source].terminator
    tests = {i.out for b in program.blocks for i in b.instrs if isinstance(i, n.IsNull) and i.ref == ref}
    if isinstance(term, n.Branch) and term.cond in tests and term.if_true.target != term.if_false.target:
        return index == 0
    return _known_null(program, cfg, blocks, ref, source)


def _copy_join(program: n.Program, cfg: Cfg, fresh: Fresh, site: _Site) -> bool:
    """When the update's block is a join each of whose edges knows whether the lookup found the key (the
    `get(key, default)` shape: the miss edge brings the default, the hit edge the loaded value), give each
    edge a copy of it: the found copies store in place with no branch, and the miss copy computes on the
    default, which `fold` then folds. Not for a loop head, a block larger than `MAX_JOIN_COPY`, or one
    whose values are read elsewhere (the copies would need new parameters below)."""
    block = site.block
    blocks = {b.name: b for b in program.blocks}
    preds = cfg.preds.get(block.name, ())
    if len(preds) < 2 or len(block.instrs) > MAX_JOIN_COPY or block is program.entry \
            or any(cfg.dominates(block.name, p) for p in preds):
        return False
    own = {i.result for i in block.instrs if i.result is not None} | set(block.params)
    for b in program.blocks:
        if b is not block and any(v in own for v in _reads_of(b)):
            return False
    edges: list[tuple[n.Block, int]] = []
    for name in dict.fromkeys(preds):
        term = blocks[name].terminator
        assert term is not None
        for index, e in enumerate(term.edges()):
            if e.target == block.name:
                if _edge_knows(program, cfg, blocks, site.ref, name, index) is None:
                    return False
                edges.append((blocks[name], index))
    taken = {b.name for b in program.blocks}
    at = program.blocks.index(block)
    for source, index in edges:
        copy = copy_block(block, _edge(source, index), fresh, unused_name(f"{block.name}_", taken))
        retarget(source, index, copy.name)
        at += 1
        program.blocks.insert(at, copy)
    program.blocks.remove(block)
    return True


def _reads_of(b: n.Block) -> list[n.Value]:
    read = [v for i in b.instrs for v in i.operands()]
    return read + (list(b.terminator.operands()) if b.terminator is not None else [])


def _edge(source: n.Block, index: int) -> n.Edge:
    assert source.terminator is not None
    return source.terminator.edges()[index]
