"""pybpfdsl.testing: scripted helpers, the context managers that install them, and state resets."""

from __future__ import annotations

import random
import sys
import types

import pytest

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.builder import IRBuilder
from pybpfdsl.ir.interpreter import Environment, run_program
from pybpfdsl.lang.helpers import SystemHelpers, current_helpers
from pybpfdsl.lang.state import Array, Global, HashMap, LruHashMap, PerCpuArray
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import FLOAT, u32, u64
from pybpfdsl.testing import (
    FixedHelpers,
    deterministic,
    fixed_clock,
    fixed_random,
    on_cpu,
    reset_state,
)


def test_random_constant_sequence_callable() -> None:
    assert [FixedHelpers(random=7).prandom_u32() for _ in range(3)] == [7, 7, 7]
    h = FixedHelpers(random=[1, 2, 3])
    assert [h.prandom_u32() for _ in range(7)] == [1, 2, 3, 1, 2, 3, 1]  # cycles
    assert h.random_calls == 7
    counter = iter(range(100, 200))
    h = FixedHelpers(random=lambda: next(counter))
    assert [h.prandom_u32() for _ in range(3)] == [100, 101, 102]


def test_seeded_prng_is_reproducible() -> None:
    a = FixedHelpers(seed=42)
    b = FixedHelpers(seed=42)
    xs = [a.prandom_u32() for _ in range(20)]
    assert xs == [b.prandom_u32() for _ in range(20)]
    reference = random.Random(42)
    assert xs == [reference.getrandbits(32) for _ in range(20)]  # documented: random.Random(seed)
    assert all(0 <= x < 2**32 for x in xs)
    assert [FixedHelpers().prandom_u32() for _ in range(2)] == [FixedHelpers(seed=0).prandom_u32()] * 2
    assert xs != [FixedHelpers(seed=43).prandom_u32() for _ in range(20)]


def test_random_validation() -> None:
    with pytest.raises(ValueError):
        FixedHelpers(random=2**32)
    with pytest.raises(ValueError):
        FixedHelpers(random=[1, -1])
    with pytest.raises(ValueError):
        FixedHelpers(random=[])
    with pytest.raises(ValueError):
        FixedHelpers(random=[1], seed=3)
    with pytest.raises(ValueError):
        FixedHelpers(random=lambda: 2**40).prandom_u32()


def test_clock_start_step_and_advance() -> None:
    h = FixedHelpers(clock_ns=1_000)
    assert [h.ktime_get_ns(), h.ktime_get_ns()] == [1_000, 1_000]  # stands still by default
    h.advance(500)
    assert h.ktime_get_ns() == 1_500
    h = FixedHelpers(clock_ns=10, clock_step_ns=5)
    assert [h.ktime_get_ns() for _ in range(3)] == [10, 15, 20]
    assert h.peek_clock_ns() == 25 and h.clock_calls == 3
    h.advance(100)
    assert h.ktime_get_ns() == 125
    with pytest.raises(ValueError):
        h.advance(-1)
    with pytest.raises(ValueError):
        FixedHelpers(clock_step_ns=-1)
    assert FixedHelpers().ktime_get_ns() == 0


def test_clock_sequence_repeats_last_and_must_not_decrease() -> None:
    h = FixedHelpers(clock_ns=[5, 9, 20])
    assert [h.ktime_get_ns() for _ in range(5)] == [5, 9, 20, 20, 20]
    h.advance(1)
    assert h.ktime_get_ns() == 21
    with pytest.raises(ValueError):
        FixedHelpers(clock_ns=[5, 4])
    with pytest.raises(ValueError):
        FixedHelpers(clock_ns=[])


def test_cpu() -> None:
    h = FixedHelpers(cpu=3)
    assert h.cpu_id() == 3
    h.cpu = 1
    assert h.cpu_id() == 1


def test_context_managers_install_and_restore() -> None:
    assert isinstance(current_helpers(), SystemHelpers)
    with deterministic(seed=5, clock_ns=77, cpu=2) as h:
        assert current_helpers() is h
        assert current_helpers().ktime_get_ns() == 77 and current_helpers().cpu_id() == 2
        assert current_helpers().prandom_u32() == FixedHelpers(seed=5).prandom_u32()
    assert isinstance(current_helpers(), SystemHelpers)


def test_fixed_random_and_clock_compose() -> None:
    with deterministic(seed=1, clock_ns=50, cpu=4), fixed_random([9, 8]) as r:
        src = current_helpers()
        assert [src.prandom_u32() for _ in range(3)] == [9, 8, 9]
        assert src.ktime_get_ns() == 50 and src.cpu_id() == 4  # from the outer source
        assert r.random_calls == 3
        with fixed_clock(1_000, step_ns=10) as clock:
            src = current_helpers()
            assert src.ktime_get_ns() == 1_000 and src.ktime_get_ns() == 1_010
            clock.advance(90)
            assert src.ktime_get_ns() == 1_110
            assert src.prandom_u32() == 8  # still the fixed_random sequence
        assert current_helpers().ktime_get_ns() == 50
    with fixed_random(seed=123):
        assert current_helpers().prandom_u32() == FixedHelpers(seed=123).prandom_u32()
    for ambiguous in (123, True):  # a value or a seed? the user says which
        with pytest.raises(TypeError, match="ambiguous"), fixed_random(ambiguous):  # type: ignore[arg-type]
            pass


def test_on_cpu_selects_per_cpu_copy() -> None:
    hits = PerCpuArray(u64, 4)
    hits.raw_update(0, 1)
    with on_cpu(2, hits):
        assert current_helpers().cpu_id() == 2
        hits.raw_update(0, 5)
        assert hits.raw_lookup(0) == 5
    assert hits.current_cpu == 0
    assert hits[0] == 6
    assert hits.per_cpu(0) == [1, 5]
    with pytest.raises(TypeError), on_cpu(1, Array(u64, 2)):  # type: ignore[arg-type]
        pass


def _random_program() -> n.Program:
    """return prandom_u32() % 4 + ktime low bits: shows the interpreter takes helpers from the context."""
    b = IRBuilder()
    b.set_block(b.new_block("entry"))
    r = b.emit(n.CallHelper(b.value(u32), n.Helper.PRANDOM_U32))
    b.terminate(n.Return(r))
    return n.Program("rnd", "rnd.py", 1, b.blocks)


def test_interpreter_uses_fixed_random() -> None:
    prog = _random_program()
    env = Environment(maps={}, globals={})
    with fixed_random([11, 22]):
        actions = [run_program(prog, b"\x00" * 14, env).action for _ in range(3)]
    assert actions == [11, 22, 11]


class Pair(Struct):
    a: u32
    b: u32


def test_reset_state_objects() -> None:
    g = Global(u64, 5)
    f = Global(FLOAT, 0.5)
    h = HashMap(u32, u64, max_entries=8)
    lru = LruHashMap(u32, Pair, max_entries=2)
    arr = Array(u64, 4)
    pc = PerCpuArray(u64, 2)
    g.value = 99
    f.value = 2.25
    h[1] = 10
    h[2] = 20
    lru[3] = Pair(1, 2)
    arr[2] = 7
    with on_cpu(3, pc):
        pc.raw_update(1, 4)
    reset_state(g, f, h, lru, arr, pc)
    assert g.value == 5 and f.value == 0.5
    assert len(h) == 0 and len(lru) == 0
    assert [arr[i] for i in range(4)] == [0, 0, 0, 0]
    assert pc[1] == 0 and pc.per_cpu(1) == [0]


def test_reset_state_module() -> None:
    mod = types.ModuleType("fake_dsl_module")
    mod.counter = Global(u32, 1)  # type: ignore[attr-defined]
    mod.table = HashMap(u32, u32, max_entries=4)  # type: ignore[attr-defined]
    mod.other = 3  # type: ignore[attr-defined]
    mod.counter.value = 9  # type: ignore[attr-defined]
    mod.table[1] = 1  # type: ignore[attr-defined]
    sys.modules["fake_dsl_module"] = mod
    try:
        reset_state(mod)
    finally:
        del sys.modules["fake_dsl_module"]
    assert mod.counter.value == 1  # type: ignore[attr-defined]
    assert len(mod.table) == 0  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        reset_state(42)  # type: ignore[arg-type]
