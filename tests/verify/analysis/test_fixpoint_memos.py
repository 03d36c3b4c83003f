"""The fixpoint's memos answer what the computation they stand for answers, for the program asked about.

The analysis keeps the join of a point's partitions (the driver and the loop pass both ask for it at every
point) and each program's tested registers (a partitioner per run of the fixpoint asks for them) instead of
computing them again, and the findings of the final states from the last narrowing pass, which steps them
anyway. A memo keyed by identity must never answer for other states or another program.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.bpf.random_programs import generate
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis import partitions as pt
from pybpfdsl.verify.analysis.cfg import build_cfg
from pybpfdsl.verify.analysis.checks import Sink, VerifierFinding
from pybpfdsl.verify.analysis.critical import critical_in
from pybpfdsl.verify.analysis.fixpoint import narrow, propagate
from pybpfdsl.verify.analysis.liveness import live_in
from pybpfdsl.verify.analysis.partitions import MAX_PARTS, Partitioner, Parts, joined
from pybpfdsl.verify.analysis.transfer import Env, step


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
            assert part.tested == critical_in(env.insns, cfg.succs)


def _loop(bound: int) -> tuple[Instruction, ...]:
    """A counted loop that reads the packet at its counter unchecked on odd bounds (a finding in the body,
    at every pass): ``for (i = 0; i < bound; i++) sum += *(u8 *)(data + i)``."""
    return (
        Instruction(0xB7, 3, 0, 0, 0),         # 0: r3 = 0
        Instruction(0xB7, 0, 0, 0, 0),         # 1: r0 = 0
        Instruction(0x61, 2, 1, 0, 0),         # 2: r2 = data
        Instruction(0xBF, 4, 2, 0, 0),         # 3: loop: r4 = r2
        Instruction(0x0F, 4, 3, 0, 0),         # 4: r4 += r3
        Instruction(0x71, 5, 4, 0, 0),         # 5: r5 = *(u8 *)(r4 + 0)   (never checked)
        Instruction(0x0F, 0, 5, 0, 0),         # 6: r0 += r5
        Instruction(0x07, 3, 0, 0, 1),         # 7: r3 += 1
        Instruction(0xA5, 3, 0, -5, bound),    # 8: if r3 < bound goto loop
        Instruction(0x95, 0, 0, 0, 0),         # 9: exit
    )


@pytest.mark.parametrize("program", [*(f"random{seed}" for seed in range(8)), "loop3", "loop40"])
def test_last_narrowing_pass_finds_what_a_walk_over_the_final_states_finds(program: str) -> None:
    """The findings the last narrowing pass collects at each point are those of stepping the point's final
    states, in order, with the checks on (what the driver walked over them all again for)."""
    if program.startswith("random"):
        env = _env(int(program[6:]))
    else:
        code = _loop(int(program[4:]))
        slots = slot_offsets(code)
        env = Env(code, {s: i for i, s in enumerate(slots)}, slots)
    cfg = build_cfg(env)
    part = Partitioner(MAX_PARTS, live_in(env.insns, cfg.succs))
    pre: dict[int, Parts] = {0: {}}
    part.put(pre[0], 0, st.entry_state())
    propagate(env, cfg, pre, [(0, 0)], {}, part=part)
    found: dict[int, list[VerifierFinding]] = {}
    narrow(env, cfg, pre, st.entry_state(), part, found)
    walked: dict[int, list[VerifierFinding]] = {}
    for idx in sorted(pre):
        sink = Sink(active=True)
        for s in pre[idx].values():
            step(env, idx, s, sink)
        if sink.findings:
            walked[idx] = sink.findings
    assert found == walked
    if program == "loop3":
        assert found, "the unchecked read is found"
