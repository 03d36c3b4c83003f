"""The analysis engine's shortcuts give what the work they skip would have given.

The verifier is made faster by not redoing work whose result is known: a further narrowing pass over
a program without loops (it reads nothing of the pass before it), a stack slot whose join is itself.
Each test runs the shortcut and the full computation side by side and asks for the same answer.
"""

from __future__ import annotations

import copy

import pytest

from pybpfdsl.bpf.instruction import slot_offsets
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.bpf.random_programs import generate
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.cfg import build_cfg
from pybpfdsl.verify.analysis.fixpoint import narrow, propagate
from pybpfdsl.verify.analysis.liveness import live_in
from pybpfdsl.verify.analysis.partitions import MAX_PARTS, Partitioner, Parts
from pybpfdsl.verify.analysis.precision import Precision, precise_in
from pybpfdsl.verify.analysis.transfer import Env
from pybpfdsl.verify.analysis.values import ScalarValue, join_values
from pybpfdsl.verify.domains.scalar import Scalar


def _env(seed: int) -> Env:
    code = generate(seed).instructions
    slots = slot_offsets(code)
    return Env(code, {s: i for i, s in enumerate(slots)}, slots)


@pytest.mark.parametrize("seed", range(12))
def test_narrowing_without_loops_counts_the_passes_it_skips(seed: int) -> None:
    """A loop-free program: one narrowing pass and the count of the others gives the same states and the
    same count of instructions processed as doing every pass (forced here by a loop head that no
    instruction is)."""
    env = _env(seed)
    cfg = build_cfg(env)
    assert not cfg.heads, "the random programs jump forward only"
    part = Partitioner(MAX_PARTS, live_in(env.insns, cfg.succs))
    pre: dict[int, Parts] = {0: {}}
    part.put(pre[0], 0, st.entry_state())
    propagate(env, cfg, pre, [(0, 0)], {}, part=part)
    full_pre, full_part, full_cfg = {i: dict(p) for i, p in pre.items()}, copy.deepcopy(part), copy.copy(cfg)
    full_cfg.heads = {-1}
    quick = narrow(env, cfg, pre, st.entry_state(), part)
    full = narrow(env, full_cfg, full_pre, st.entry_state(), full_part)
    assert quick == full
    assert pre == full_pre


def test_stack_join_keeps_a_stack_nothing_changes() -> None:
    """Equal slots join to the slot itself, and a stack whose slots all stay is returned as it is (states
    that share it keep sharing it, so the next comparison of them is an identity test)."""
    one = ScalarValue(Scalar.const(1))
    a = stk.write(stk.empty_stack(), -8, 8, one)
    b = stk.write(stk.empty_stack(), -8, 8, ScalarValue(Scalar.const(1)))
    assert a is not b and a == b
    assert stk.join(a, b) is a
    c = stk.write(stk.empty_stack(), -8, 8, ScalarValue(Scalar.const(2)))
    joined = stk.join(a, c)
    assert joined is not a
    assert stk.read(joined, -8, 8) == join_values(one, ScalarValue(Scalar.const(2)))
    assert all(x is y for x, y in zip(joined[:-1], a[:-1], strict=True))


def test_memoized_value_join_is_the_join() -> None:
    """The engine's memo of register-value joins answers what the join computes, first time and again."""
    from pybpfdsl.verify.analysis import cache as cc
    from pybpfdsl.verify.analysis.values import UNINIT, CtxPtr, PacketPtr, StackPtr

    values = [UNINIT, ScalarValue(Scalar.const(0)), ScalarValue(Scalar.urange(3, 9)), CtxPtr(Scalar.const(0)),
              PacketPtr(Scalar.const(14)), PacketPtr(Scalar.urange(0, 40), 7, 2), StackPtr(Scalar.const(-8))]
    for a in values:
        for b in values:
            assert cc.join_values(a, b) == join_values(a, b)
            assert cc.join_values(a, b) == join_values(a, b)


@pytest.mark.parametrize("seed", range(12))
def test_precision_decided_one_jump_at_a_time_is_solved_from_nothing(seed: int) -> None:
    """The exploration's precision, updated from the jump just decided (a worklist from it), is at every
    step the solution computed again from all the jumps decided so far."""
    env = _env(seed)
    cfg = build_cfg(env)
    jumps = [i for i, k in enumerate(env.kinds) if k == Kind.JCOND]
    assert jumps, "the random programs have conditional jumps"
    incremental = Precision(env, cfg.succs)
    assert incremental.bits == precise_in(env, cfg.succs)
    decided: set[int] = set()
    for i in jumps[::-1]:  # later jumps first: their operands flow back over most of the program
        decided.add(i)
        incremental.decide(i)
        assert incremental.bits == precise_in(env, cfg.succs, frozenset(decided))


def test_scalar_equality_is_field_equality() -> None:
    """Scalars compare equal exactly when every component does (the hand-written ``__eq__`` against the
    components' own), whether their hashes are cached or not."""
    values = [Scalar.const(0), Scalar.const(1), Scalar.urange(0, 255), Scalar.urange(0, 255), Scalar.top(),
              Scalar.srange(-4, 4), Scalar.const(0, 32), Scalar.top(32), Scalar.bottom()]
    for a in values:
        for b in values:
            same = (a.tnum, a.u64, a.s64, a.u32, a.s32) == (b.tnum, b.u64, b.s64, b.u32, b.s32)
            assert (a == b) is same
            hash(a)
            assert (a == b) is same, "with a's hash cached"
            hash(b)
            assert (a == b) is same, "with both hashes cached"
