"""The kernel's own exploration of a program, simulated: how many instructions it processes.

The kernel (``do_check``/``is_state_visited`` in kernel/bpf/verifier.c) follows one path at a time,
depth first: at a conditional jump that can go both ways it pushes the jump's target and goes on with
the fall-through. At *prune points* (conditional jumps, jump targets, the instruction after a call)
it compares the current state with the states it stored there: a stored state whose paths are all
explored (``branches == 0``) and that includes the current one (ranges within, packet range at most)
ends the path. Only some states are stored, and that is what makes loops expensive:

* a state is stored only after at least 2 jumps and 8 instructions since the last stored one;
* inside a loop (a stored state at the same point is still being explored: an earlier iteration on
  this path) only after 20 jumps or 100 instructions, unless 40 jumps accumulated since the path's
  last stored state;
* a stored state that misses more than ``3 * hits + 3`` comparisons (made when a state could be
  stored) is dropped.

States are compared as the kernel compares them (:mod:`.precision`): dead registers and stack
slots do not count, nor numbers the kernel did not mark precise; a jump on numbers that goes one
way only on some path, or a register added to a pointer, makes its operands precise from then on.
The count is the kernel's ``insn_processed``: an arrival that a stored state prunes counts too (the
kernel counts an instruction before it looks for such a state), and the jump history that forces a
state after 40 entries gets an entry for a jump target after that look, as the kernel's does. On
issue 13's payload sum (``range(16)`` to ``range(96)``, 26 header-parsing paths into the loop) this
is the kernel's count to the instruction (tests/verify/analysis/test_loop_entries.py). Each
instruction is stepped with our own transfer functions (:func:`.transfer.step`), so elsewhere the
count is an estimate: where our values are less precise than the kernel's, or our precision marks
differ from its per-path ones, the counts differ (tests/verify/analysis/test_loop_cost.py).

The simulation costs about as much as the kernel's count, so it stops at ``work`` steps (a verdict of
``None``: the caller falls back to a coarser estimate), or sooner (``shallow``) where a path runs a
loop for many iterations: the kernel's count of such a loop multiplies with each, so one that has
not ended early will not end within a bigger budget either (``range(5000)`` with a branch).

Long because the walk and its state comparison are one hot loop, written out in place: each call or
indirection they were split into cost measurable time per step (session 17 and 18's speed work).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from pybpfdsl.bpf.abi import BPF_COMPLEXITY_LIMIT_INSNS
from pybpfdsl.bpf.opcode import AluOp, Kind, Source, alu_op, source
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.abstract_state import MAYBE_LOCKED, Frame, Lock, State
from pybpfdsl.verify.analysis.cfg import Cfg
from pybpfdsl.verify.analysis.checks import QUIET
from pybpfdsl.verify.analysis.precision import (
    TOP,
    Precision,
    stack_live_in,
)
from pybpfdsl.verify.analysis.transfer import Env, step
from pybpfdsl.verify.analysis.values import (
    OneOf,
    PacketPtr,
    Pid,
    ScalarValue,
    Value,
    alternatives,
    is_pointer,
    value_le,
)

__all__ = ["EXPLORE_WORK", "Exploration", "explore", "prune_points"]

EXPLORE_WORK = 60_000
"""Instructions the simulation may step before it gives up: it steps each instruction it counts, at
some 10 microseconds each (9 on xdp-filter, of which 5-6 in :func:`.transfer.step`), so this bounds its
time to about a second (a loop it cannot finish, ``range(200000)``, costs that much on top of the closed
form's refusal)."""

MIN_JMPS, MIN_INSNS = 2, 8
"""A state is stored only after this many jumps and instructions since the last one (kernel heuristic)."""
LOOP_JMPS, LOOP_INSNS = 20, 100
"""... and, in a loop, only after this many jumps or instructions."""
FORCE_HISTORY = 40
"""Jumps since the path's last stored state that force a new one (the kernel's jump-history bound)."""
_JUMPS = frozenset({Kind.JA, Kind.GOTOL, Kind.JCOND, Kind.MAY_GOTO, Kind.CALL, Kind.EXIT})


def prune_points(env: Env, cfg: Cfg) -> tuple[frozenset[int], frozenset[int]]:
    """(prune points, jump points) as the kernel marks them (``visit_insn``): conditional jumps and
    their targets, unconditional jumps' targets, the instruction after a call; jump points are the
    targets and the instructions after calls."""
    prune: set[int] = set()
    jump: set[int] = set()
    for i, kind in enumerate(env.kinds):
        succs = cfg.succs[i]
        if kind in (Kind.JCOND, Kind.MAY_GOTO):
            prune.add(i)
            targets = [t for t in succs if t != i + 1]
        elif kind in (Kind.JA, Kind.GOTOL):
            targets = list(succs)
        elif kind == Kind.CALL:
            targets = [t for t in succs if t != i + 1] + ([i + 1] if i + 1 < len(env.kinds) else [])
            if len(succs) > 1 or env.insns[i].is_pseudo_call:  # into a subprogram or a callback
                prune.add(i)
        else:
            continue
        prune.update(targets)
        jump.update(targets)
    for back in env.return_to.values():  # a callee copy's exit returns after its call
        prune.add(back)
        jump.add(back)
    return frozenset(prune), frozenset(jump)


@dataclass(eq=False, slots=True)
class _Stored:
    """A stored state, and how many paths from it are still to explore (0: done, it may prune)."""

    state: State
    parent: _Stored | None
    form: _Form
    """``state`` as compared (:func:`_form`) with the precision of ``version``."""
    version: int
    branches: int = 1
    hits: int = 0
    misses: int = 0


@dataclass(eq=False, slots=True)
class _Form:
    """A state as the kernel compares it at one prune point: its live registers and live stack slots
    (in the order of :func:`_live_lists`, the same for every state compared there), numbers it did not
    mark precise unknown, and the packet facts the live pointers carry. Registers and slots that are dead
    there are left out: they are the same (uninitialised, empty) in every state compared there."""

    regs: tuple[Value, ...]
    stack: tuple[stk.Slot, ...]
    pkt_min: int
    ranges: tuple[tuple[Pid, int], ...]
    frames: tuple[Frame, ...]
    lock: Lock | None
    consts: tuple[tuple[int, int], ...]
    """The constant registers (precise numbers only), (register, value) pairs."""


@dataclass
class Exploration:
    """What the simulated exploration found."""

    processed: int
    """Instructions the kernel is estimated to process (up to just past its limit)."""
    complete: bool | None
    """True: every path ended within the limit; False: the limit was passed (at ``last``); None: the
    simulation gave up (``work`` exhausted) before either."""
    last: int = -1
    """The instruction processed last (where the limit was passed)."""
    steps: int = 0
    """Instructions this simulation stepped (our cost)."""
    head_visits: dict[int, int] = field(default_factory=dict)
    """Loop head → the most times one path passed it (its iterations, times those of enclosing loops)."""


_REGS = (1 << 11) - 1


@lru_cache(maxsize=1 << 12)
def _live_lists(live: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(the live registers, the live stack slots) of a liveness mask (slots from bit 11)."""
    return (tuple(i for i in range(11) if live >> i & 1),
            tuple(i for i in range(stk.SLOTS) if live >> (i + 11) & 1))


def _form(s: State, live: int, precise: int) -> _Form:
    """The state as the kernel compares it (see :class:`_Form`): dead registers and stack slots (bits 11
    and up of ``live``) do not count, nor numbers it did not mark precise (:mod:`.precision`), nor which
    instruction wrote what."""
    live_regs, live_slots = _live_lists(live)
    sregs = s.regs
    regs: list[Value] = []
    consts: list[tuple[int, int]] = []
    held: set[Pid | None] = set()
    for i in live_regs:
        v = sregs[i]
        if type(v) is ScalarValue:
            if not precise >> i & 1:
                v = TOP
            else:
                if v.link is not None:
                    v = ScalarValue(v.value)
                if (c := v.value.const_value) is not None:
                    consts.append((i, c))
        elif type(v) is PacketPtr:
            held.add(v.pid)
        regs.append(v)
    stack, spilled = _form_stack(s.stack, live_slots, live >> 11, precise >> 11)
    # The kernel knows a packet range only through the pointers that carry it: one no live pointer
    # holds is forgotten (ours is kept per pointer id, and for the packet's start as ``pkt_min``).
    ranges = s.ranges
    pkt_min = s.pkt_min
    if ranges or pkt_min:
        held.update(spilled)
        if None not in held:
            pkt_min = 0
        kept = [r for r in ranges if r[0] in held]
        if len(kept) != len(ranges):
            ranges = tuple(kept)
    return _Form(tuple(regs), stack, pkt_min, ranges, s.frames, s.lock, tuple(consts))


_STACKS: dict[tuple[int, int, int], tuple[stk.Stack, tuple[stk.Slot, ...], frozenset[Pid | None]]] = {}
_STACKS_MAX = 1 << 14
_VAGUE: dict[int, tuple[stk.Slot, stk.Slot]] = {}
"""A slot's identity → (the slot, the slot with its spilled number unknown), see :func:`_form_stack`."""


def _form_stack(stack: stk.Stack, slots: tuple[int, ...], live: int, precise: int,
                ) -> tuple[tuple[stk.Slot, ...], frozenset[Pid | None]]:
    """The live ``slots`` of ``stack`` as the kernel compares them (imprecise spilled numbers unknown;
    ``live`` and ``precise`` are slot bits), and the ids of the packet pointers spilled there. Cached by
    the stack's identity: the states of a path share their stack until a store, so one comes back at prune
    point after prune point (the entry keeps it alive, so its id is not reused while the entry exists)."""
    key = (id(stack), live, precise)
    hit = _STACKS.get(key)
    if hit is not None and hit[0] is stack:
        return hit[1], hit[2]
    out: list[stk.Slot] = []
    pids: set[Pid | None] = set()
    for i in slots:
        slot = stack[i]
        v = slot.spill
        if v is not None:
            if type(v) is ScalarValue:
                if not precise >> i & 1:
                    vague = _VAGUE.get(id(slot))
                    if vague is None or vague[0] is not slot:
                        if len(_VAGUE) >= _STACKS_MAX:
                            _VAGUE.clear()
                        vague = _VAGUE[id(slot)] = (slot, stk.Slot(slot.init, TOP, slot.size, slot.zero))
                    slot = vague[1]
            elif isinstance(v, PacketPtr):
                pids.add(v.pid)
        out.append(slot)
    if len(_STACKS) >= _STACKS_MAX:
        _STACKS.clear()
    live_slots = tuple(out)
    shared = _SHARED.get(live_slots)
    if shared is None:
        if len(_SHARED) >= _STACKS_MAX:
            _SHARED.clear()
        shared = _SHARED[live_slots] = live_slots
    entry = _STACKS[key] = (stack, shared, frozenset(pids))
    return entry[1], entry[2]


_SHARED: dict[tuple[stk.Slot, ...], tuple[stk.Slot, ...]] = {}
"""Live slots as compared, one tuple per content: equal ones are the same object, so comparisons stop at
identity, and :data:`_STACK_LE` finds a comparison made before by the two tuples' identities."""
_STACK_LE: dict[tuple[int, int], tuple[tuple[stk.Slot, ...], tuple[stk.Slot, ...], bool]] = {}
"""(id of a live-slot tuple, id of another) → (the two, whether the first is included in the second); the
entry keeps both alive, so their ids are not reused while it exists."""


def _stack_le(a: tuple[stk.Slot, ...], b: tuple[stk.Slot, ...]) -> bool:
    """Whether live slots ``a`` are included in ``b`` (:meth:`.stack.Slot.le` slot by slot), remembered: the
    same stored stack is compared with the same few stacks of new states again and again."""
    if a is b:
        return True
    key = (id(a), id(b))
    hit = _STACK_LE.get(key)
    if hit is not None and hit[0] is a and hit[1] is b:
        return hit[2]
    if len(_STACK_LE) >= _STACKS_MAX:
        _STACK_LE.clear()
    out = True
    for x, y in zip(a, b):
        if x is not y and not x.le(y):
            out = False
            break
    _STACK_LE[key] = (a, b, out)
    return out


def _covered(old: _Form, s: State, live_regs: tuple[int, ...], precise: int, live_slots: tuple[int, ...],
             live: int) -> bool:
    """Whether ``old`` includes ``s`` as the kernel compares them where ``old`` was stored, with its
    precision: :func:`.abstract_state.le` of their forms (:func:`_form`), told from ``s`` itself, so that its
    form is made only when it is stored. ``live_regs``, ``live_slots``: the live registers and stack slots there
    (the orders of ``old.regs`` and ``old.stack``); ``live``, ``precise``: the liveness and precision bits there.
    The live slots of ``s`` as compared (:func:`_form_stack`) are made only by a comparison that gets that far
    (and then cached by its stack's identity, which the states of a path share).

    The quick tests first: a packet fact of ``old`` that ``s`` lacks (its form keeps only some of its facts,
    so it lacks it too), or a constant register of ``old`` (live and precise there) that is not the same
    constant in ``s`` (a loop counter most often): most comparisons fail on them."""
    if s.pkt_min < old.pkt_min:
        return False
    if old.ranges:
        ranges = s.ranges
        if ranges is not old.ranges:
            for p, n in old.ranges:
                for q, m in ranges:
                    if q == p:
                        if m < n:
                            return False
                        break
                else:
                    return False
    regs = s.regs
    for i, c in old.consts:
        v = regs[i]
        if type(v) is not ScalarValue or v.value.const_value != c:
            return False
    for i, y in zip(live_regs, old.regs):
        x = regs[i]
        if x is y:
            continue
        if type(x) is ScalarValue and not precise >> i & 1:
            x = TOP  # (a number not marked precise: any number is within the stored one's, or none is)
            if x is y:
                continue
        if type(x) is PacketPtr and type(y) is PacketPtr:
            # (value_le's rule for two packet pointers, without the tests before it: most comparisons
            # that fail on a register fail here, on the offset a header path left)
            if not (x.off.le(y.off) and (y.pid is None or (x.pid == y.pid and x.delta == y.delta))
                    and y.end <= x.end):
                return False
        elif not value_le(x, y):
            return False
    if s.lock != old.lock and old.lock != MAYBE_LOCKED:
        return False
    slots, spilled = _form_stack(s.stack, live_slots, live >> 11, precise >> 11)
    if old.pkt_min or old.ranges:
        # The form of ``s`` has the packet facts that a live pointer holds (see :func:`_form`).
        held = set(spilled)
        for i in live_regs:
            v = regs[i]
            if type(v) is PacketPtr:
                held.add(v.pid)
        if old.pkt_min and None not in held:
            return False
        for p, _ in old.ranges:
            if p not in held:
                return False
    if not _stack_le(slots, old.stack):
        return False
    if s.frames is old.frames or not (s.frames or old.frames):
        return True
    return st.le(State((), (), (), frames=s.frames), State((), (), (), frames=old.frames))


def _on_numbers(env: Env, idx: int, s: State) -> bool:
    """Whether the jump at ``idx`` compares numbers (the kernel marks only those precise)."""
    insn = env.insns[idx]
    regs = (insn.dst, insn.src) if source(insn.opcode) == Source.X else (insn.dst,)
    return all(isinstance(s.regs[r], ScalarValue) for r in regs)


def explore(env: Env, cfg: Cfg, entry: State, live: list[int], pre: dict[int, State], work: int = EXPLORE_WORK,
            limit: int = BPF_COMPLEXITY_LIMIT_INSNS, shallow: tuple[int, int] | None = None) -> Exploration:
    """Simulate the kernel's exploration from ``entry`` (see the module docstring); ``live``: the
    live registers (:func:`.liveness.live_in`); ``pre``: the fixpoint's invariant (what may point
    into the stack, for :func:`.precision.stack_live_in`); ``shallow``: (steps, iterations): give up
    after that many steps if a path has passed a loop head more than that many times by then.

    Precision (:mod:`.precision`) is found as the kernel finds it, as paths decide jumps and add
    numbers to pointers: the first time a jump on numbers goes one way only, or a register is added
    to a pointer, its operands and their sources become precise everywhere, and stored states are
    compared on them from then on."""
    decided: set[int] = set()
    marked: set[tuple[int, int]] = set()
    slots = stack_live_in(env, cfg.succs, pre)
    live = [r | (m << 11) for r, m in zip(live, slots, strict=True)]
    precision = Precision(env, cfg.succs)
    precise = precision.bits  # (updated in place as jumps are decided)
    version = 0
    prune, jump_points = prune_points(env, cfg)
    heads = sorted(cfg.heads)
    head_pos = {h: k for k, h in enumerate(heads)}
    most = [0] * len(heads)
    kinds = env.kinds
    code, decoded = env.insns, env.decoded
    n = len(code)
    # What each instruction asks of the loop, looked up once (a Kind's hash is a Python call, and three
    # set lookups per step cost more than one list index). An instruction with no flag goes on to the next
    # one, with nothing to look at but the counts: ``run[i]`` of them in a row from ``i`` are stepped in a
    # tight loop (the last instruction is flagged: a path falls off the program there).
    flags = [(_HEAD if i in head_pos else 0) | (_JUMP_POINT if i in jump_points else 0)
             | (_PRUNE if i in prune else 0) | (_IS_JUMP if kinds[i] in _JUMPS else 0)
             | (_JCOND if kinds[i] == Kind.JCOND else 0) | (_OFFSET if _offsets_by_register(env, i) else 0)
             | (_OTHER if kinds[i] not in _FALLS_THROUGH or i == n - 1 else 0)
             for i in range(n)]
    run = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        if not flags[i]:
            run[i] = run[i + 1] + 1
    ops = [(fn, insn, reads) for (fn, reads, _), insn in zip(decoded, code, strict=True)]
    lists = [_live_lists(lv) for lv in live]
    sink = QUIET
    stored: dict[int, list[_Stored]] = {}
    insns = jmps = prev_insns = prev_jmps = 0
    steps = 0
    budget, deep = (work, 0) if shallow is None else (min(work, shallow[0]), shallow[1])
    # A path: (instruction, state, its last stored state, jump points since then, visits of each head).
    pending: list[tuple[int, State, _Stored | None, int, tuple[int, ...]]] = []
    idx, s, parent, history, visits = 0, st.untracked(entry), None, 0, (0,) * len(heads)

    def end_path(p: _Stored | None) -> None:
        while p is not None:
            p.branches -= 1
            if p.branches:
                return
            p = p.parent

    while True:
        f = flags[idx]
        if not f and insns + (k := run[idx]) <= limit and steps + k <= budget:
            # Plain instructions (most of them): counted and stepped, nothing else to look at. ``step``
            # written out (a call less per step): its split of the registers that hold values of several
            # types, where the instruction reads one, is the rare case.
            end = idx + k
            insns += k
            steps += k
            while idx < end:
                fn, insn, reads = ops[idx]
                sregs = s.regs
                for r in reads:
                    if type(sregs[r]) is OneOf:
                        break
                else:
                    s = fn(env, idx, insn, s, sink)[0][1]
                    idx += 1
                    continue
                break
            if idx == end:
                continue
            insns -= end - idx - 1  # (counted: this instruction, not those after it)
            steps -= end - idx - 1
            out = step(env, idx, s, sink)
        else:
            # The kernel counts an instruction before it looks for a state that prunes it there: a pruned
            # arrival is processed too (do_check: ++insn_processed, then is_state_visited).
            insns += 1
            if insns > limit:
                return Exploration(insns, False, idx, steps, _visits(heads, most))
            if f & _HEAD:
                k = head_pos[idx]
                visits = (*visits[:k], visits[k] + 1, *visits[k + 1:])
                most[k] = max(most[k], visits[k])
            ended = False
            if f & _PRUNE:
                force = history > FORCE_HISTORY
                add = force or (jmps - prev_jmps >= MIN_JMPS and insns - prev_insns >= MIN_INSNS)
                here = stored.get(idx)
                if here:
                    lv, pr = live[idx], precise[idx]
                    live_regs, live_slots = lists[idx]
                    pkt_min = s.pkt_min  # (the first quick test of :func:`_covered`, written out: most fail it)
                    if not add:
                        # Only a hit changes the list here: a miss is counted, and a state dropped for
                        # its misses, only where a new state would be stored. So the newest state that
                        # prunes this one is all there is to find.
                        for j in range(len(here) - 1, -1, -1):
                            old = here[j]
                            if old.branches:
                                continue
                            if old.version != version:
                                old.form = _form(old.state, lv, pr)
                                old.version = version
                            form = old.form
                            if pkt_min >= form.pkt_min and _covered(form, s, live_regs, pr, live_slots, lv):
                                old.hits += 1
                                ended = True
                                break
                    else:
                        in_loop_quiet = (not force and jmps - prev_jmps < LOOP_JMPS
                                         and insns - prev_insns < LOOP_INSNS)
                        keep: list[_Stored] = []
                        for j in range(len(here) - 1, -1, -1):  # newest first, as the kernel's list
                            old = here[j]
                            if old.branches:
                                if in_loop_quiet:
                                    add = False
                                if add:
                                    old.misses += 1
                                if old.misses > old.hits * 3 + 3:
                                    continue
                                keep.append(old)
                                continue
                            if old.version != version:
                                old.form = _form(old.state, lv, pr)
                                old.version = version
                            form = old.form
                            if pkt_min >= form.pkt_min and _covered(form, s, live_regs, pr, live_slots, lv):
                                old.hits += 1
                                ended = True
                                keep.extend(here[:j + 1][::-1])
                                break
                            if add:
                                old.misses += 1
                            if old.misses > old.hits * 3 + 3:
                                continue
                            keep.append(old)
                        if len(keep) != len(here):
                            here[:] = keep[::-1]
                elif here is None:
                    here = stored[idx] = []
                if not ended and add:
                    new = _Stored(s, parent, _form(s, live[idx], precise[idx]), version)
                    here.append(new)
                    parent, history = new, 0
                    prev_jmps, prev_insns = jmps, insns
            if ended:
                end_path(parent)
                if not pending:
                    return Exploration(insns, True, idx, steps, _visits(heads, most))
                idx, s, parent, history, visits = pending.pop()
                continue
            # The kernel records a jump target in the path's jump history after it looked for a state
            # there (a new state starts with an empty history, then this instruction's entry).
            if f & _JUMP_POINT:
                history += 1
            steps += 1
            if steps > budget:
                if steps > work or max(most, default=0) > deep:
                    return Exploration(insns, None, idx, steps, _visits(heads, most))
                budget = work  # shallow loops: the whole budget
            if f & _IS_JUMP:
                jmps += 1
            if f & _OFFSET and (bit := _added_to_pointer(env, idx, s)) and (idx, bit) not in marked:
                marked.add((idx, bit))
                precision.mark(idx, bit)
                version += 1
            fn, insn, reads = ops[idx]
            sregs = s.regs
            for r in reads:
                if type(sregs[r]) is OneOf:
                    out = step(env, idx, s, sink)
                    break
            else:
                out = fn(env, idx, insn, s, sink)
        if len(out) == 1:  # the common case: one way on (a jump decided, or no jump)
            t, o = out[0]
            if 0 <= t < n:
                if f & _JCOND and idx not in decided and _on_numbers(env, idx, s):
                    decided.add(idx)
                    precision.decide(idx)
                    version += 1
                idx, s = t, o
                continue
        elif out:
            succ = [(t, o) for t, o in out if 0 <= t < n]
            if len(succ) == 1 and f & _JCOND and idx not in decided and _on_numbers(env, idx, s):
                decided.add(idx)
                precision.decide(idx)
                version += 1
            if succ:
                if len(succ) == 2:  # the fall-through first; the rest wait
                    if succ[1][0] == idx + 1 and succ[0][0] != idx + 1:
                        succ.reverse()
                else:
                    succ.sort(key=_not_fall_through(idx))
                for t, o in succ[:0:-1]:
                    if parent is not None:
                        parent.branches += 1
                    pending.append((t, o, parent, history, visits))
                idx, s = succ[0]
                continue
        end_path(parent)
        if not pending:
            return Exploration(insns, True, idx, steps, _visits(heads, most))
        idx, s, parent, history, visits = pending.pop()


_HEAD, _JUMP_POINT, _PRUNE, _IS_JUMP, _JCOND, _OFFSET, _OTHER = 1, 2, 4, 8, 16, 32, 64
"""Bits of ``explore``'s per-instruction flags (``_OTHER``: none of the others, but not a plain instruction)."""
_FALLS_THROUGH = frozenset({Kind.ALU, Kind.SDIV, Kind.NEG, Kind.MOV, Kind.MOVSX, Kind.ADDR_SPACE_CAST, Kind.END,
                            Kind.BSWAP, Kind.LDDW, Kind.LDX, Kind.LDX_SX, Kind.ST, Kind.STX, Kind.ATOMIC})
"""The kinds of instruction that always go on to the next one, in one state (:func:`.transfer.step` gives
``[(idx + 1, state)]`` for them, where no register they read holds values of several types)."""


def _offsets_by_register(env: Env, idx: int) -> bool:
    """Whether the instruction at ``idx`` adds or subtracts a register (to a pointer, on some paths)."""
    insn = env.insns[idx]
    return (env.kinds[idx] == Kind.ALU and source(insn.opcode) == Source.X
            and alu_op(insn.opcode) in (AluOp.ADD, AluOp.SUB))


def _added_to_pointer(env: Env, idx: int, s: State) -> int:
    """The register bit of the number that the instruction at ``idx`` adds to a pointer in ``s`` (0 if
    none): the kernel marks it precise (``adjust_reg_min_max_vals``), so states that reach the
    instruction with different offsets are kept apart where it is compared."""
    insn = env.insns[idx]
    d, r = s.regs[insn.dst], s.regs[insn.src]
    if type(r) is ScalarValue and any(is_pointer(a) for a in alternatives(d)):
        return 1 << insn.src
    if type(d) is ScalarValue and any(is_pointer(a) for a in alternatives(r)):
        return 1 << insn.dst
    return 0


def _not_fall_through(idx: int) -> Callable[[tuple[int, State]], bool]:
    return lambda ts: ts[0] != idx + 1


def _visits(heads: list[int], most: list[int]) -> dict[int, int]:
    return {h: m for h, m in zip(heads, most, strict=True) if m}

