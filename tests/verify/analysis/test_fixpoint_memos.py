"""The fixpoint's memos answer what the computation they stand for answers, for the program asked about.

The analysis keeps the join of a point's partitions (the driver and the loop pass both ask for it at every
point) and each program's tested registers (a partitioner per run of the fixpoint asks for them) instead of
computing them again. A memo keyed by identity must never answer for other states or another program.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import slot_offsets
from pybpfdsl.bpf.random_programs import generate
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis import liveness
from pybpfdsl.verify.analysis import partitions as pt
from pybpfdsl.verify.analysis.cfg import build_cfg
from pybpfdsl.verify.analysis.fixpoint import propagate
from pybpfdsl.verify.analysis.liveness import live_in
from pybpfdsl.verify.analysis.partitions import MAX_PARTS, Partitioner, Parts, joined
from pybpfdsl.verify.analysis.transfer import Env


def _env(seed: int) -> Env:
    code = generate(seed).instructions
    slots = slot_offsets(code)
    return Env(code, {s: i for i, s in enumerate(slots)}, slots)


def _fixpoint(env: Env) -> dict[int, Parts]:
    cfg = build_cfg(env)
    part = Partitioner(MAX_PARTS, live_in(env.insns, cfg.succs))
    pre: dict[int, Parts] = {0: {}}
    part.put(pre[0], 0, st.entry_state())
    propagate(env, cfg, pre, [(0, 0)], {}, part=part)
    return pre


def _fold(parts: Parts) -> st.State | None:
    out: st.State | None = None
    for s in parts.values():
        out = st.join(out, s)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_joined_partitions_are_their_join_every_time(seed: int) -> None:
    """The memoized join of each point's partitions is the join of them, asked once or twice, and a point
    whose partitions changed since gets the join of the new ones, not the memo of the old."""
    pre = _fixpoint(_env(seed))
    several = [p for p in pre.values() if len(p) > 1]
    for parts in pre.values():
        assert joined(parts) == _fold(parts)
        assert joined(parts) == _fold(parts)
    other = next(iter(pre.values()))
    for parts in several:
        before = joined(parts)
        changed = dict(parts)
        key = next(iter(changed))
        changed[key] = next(iter(other.values()))
        assert joined(changed) == _fold(changed)
        assert joined(parts) == before
    pt.forget()
    for parts in pre.values():
        assert joined(parts) == _fold(parts)
    assert joined({}) is None and joined(None) is None


def test_each_program_gets_its_own_tested_registers() -> None:
    """Partitioners of the same program share its tested registers; one of another program, asked in
    between, gets that program's."""
    envs = [_env(seed) for seed in (1, 2, 1)]
    cfgs = [build_cfg(e) for e in envs]
    for env, cfg in [*zip(envs, cfgs, strict=True), (envs[0], cfgs[0]), (envs[1], cfgs[1])]:
        for _ in range(2):
            part = Partitioner(MAX_PARTS, live_in(env.insns, cfg.succs))
            part.learn(env.insns, cfg.succs)
            assert part.tested == liveness.tested_in(env.insns, cfg.succs)
