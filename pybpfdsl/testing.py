"""Deterministic helpers and state resets for unit tests of DSL programs.

Executions outside the kernel (plain Python, the IR interpreter) take random numbers, the time and the
CPU number from the current `HelperSource` (see `pybpfdsl.lang.helpers`). This module provides a fully
scripted one, `FixedHelpers`, and context managers that install it:

    with deterministic(seed=1, clock_ns=1_000):   # everything fixed
        ...
    with fixed_random([0, 0xFFFFFFFF]):            # only random; time and CPU as before
        with fixed_clock(5_000, step_ns=100) as clock:
            ...
            clock.advance(1_000_000)

Semantics (stable, tests may rely on them):

- Random values. An `int` given to `FixedHelpers(random=...)` is returned by every call. A sequence is
  returned in order and then *cycles* from its start (so a test that runs a program N times with
  `[a, b]` sees a, b, a, b, ...). A callable is called once per helper call. With no values, a
  `random.Random(seed)` PRNG (seed 0 when not given) supplies `getrandbits(32)`: the same seed gives
  the same numbers on every run and platform. Given values must lie in [0, 2**32) (`ValueError`
  otherwise, also for a callable's result).
- Clock. `clock_ns` as an int is the first reading; each reading then moves the clock forward by
  `clock_step_ns` (default 0: time stands still until `advance`). As a sequence, readings are its
  values in order, and the last value repeats once it is exhausted (a clock never jumps back).
  `advance(ns)` moves every later reading forward by `ns` in both modes. Readings must stay in
  [0, 2**64).
- CPU: `cpu_id()` returns the `cpu` attribute (settable).
- The context managers `fixed_random` and `fixed_clock` override only their own helper and delegate
  the others to whatever source was current when they were entered, so they compose by nesting.
  `deterministic` replaces all three.
"""

from __future__ import annotations

import itertools
import random as _random
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from pybpfdsl.lang.helpers import HelperSource, current_helpers, use_helpers
from pybpfdsl.lang.percpu_hash import LruPerCpuHashMap, PerCpuHashMap
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import (
    BpfMap,
    Global,
    PerCpuArray,
    StateObject,
)

__all__ = [
    "FixedHelpers",
    "deterministic",
    "fixed_clock",
    "fixed_random",
    "on_cpu",
    "reset_state",
]

_U32_LIMIT: Final = 1 << 32
_U64_LIMIT: Final = 1 << 64


def _check_u32(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {value!r}")
    if not 0 <= value < _U32_LIMIT:
        raise ValueError(f"{what} must be a u32 value in [0, 2**32), got {value}")
    return value


def _check_u64(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {value!r}")
    if not 0 <= value < _U64_LIMIT:
        raise ValueError(f"{what} must lie in [0, 2**64), got {value}")
    return value


class FixedHelpers:
    """A `HelperSource` whose every answer is scripted (see the module docstring for the rules).

    `random_calls` and `clock_calls` count the helper calls answered so far, so a test can check how
    often a program asked.
    """

    def __init__(
        self,
        random: int | Sequence[int] | Callable[[], int] | None = None,
        clock_ns: int | Sequence[int] | None = None,
        cpu: int = 0,
        seed: int | None = None,
        *,
        clock_step_ns: int = 0,
    ) -> None:
        """Script the helpers: `random` values (or a PRNG seeded with `seed`), the clock's readings
        (starting at `clock_ns`, moving by `clock_step_ns` per reading) and the CPU number."""
        self._random_const: int | None = None
        self._random_seq: tuple[int, ...] | None = None
        self._random_fn: Callable[[], int] | None = None
        self._rng: _random.Random | None = None
        if random is None:
            self._rng = _random.Random(0 if seed is None else seed)
        elif seed is not None:
            raise ValueError("give either random values or a seed, not both")
        elif callable(random):
            self._random_fn = random
        elif isinstance(random, int):
            self._random_const = _check_u32(random, "random value")
        else:
            values = tuple(_check_u32(v, "random value") for v in random)
            if not values:
                raise ValueError("the sequence of random values is empty")
            self._random_seq = values
        self._random_index = 0

        self._clock_seq: tuple[int, ...] | None = None
        self._clock_now = 0
        if clock_ns is None:
            pass
        elif isinstance(clock_ns, int):
            self._clock_now = _check_u64(clock_ns, "clock_ns")
        else:
            readings = tuple(_check_u64(v, "clock reading") for v in clock_ns)
            if not readings:
                raise ValueError("the sequence of clock readings is empty")
            if any(b < a for a, b in itertools.pairwise(readings)):
                raise ValueError("clock readings must not decrease (ktime is monotonic)")
            self._clock_seq = readings
        if clock_step_ns < 0:
            raise ValueError("clock_step_ns must not be negative (ktime is monotonic)")
        self._clock_step = clock_step_ns
        self._clock_index = 0
        self._clock_offset = 0

        self.cpu = cpu
        self.random_calls = 0
        self.clock_calls = 0

    # HelperSource

    def prandom_u32(self) -> int:
        """The next scripted random value."""
        self.random_calls += 1
        if self._rng is not None:
            return self._rng.getrandbits(32)
        if self._random_fn is not None:
            return _check_u32(self._random_fn(), "the random callable's result")
        if self._random_seq is not None:
            value = self._random_seq[self._random_index % len(self._random_seq)]
            self._random_index += 1
            return value
        assert self._random_const is not None
        return self._random_const

    def ktime_get_ns(self) -> int:
        """The next clock reading."""
        self.clock_calls += 1
        reading = self.peek_clock_ns()
        if self._clock_seq is not None:
            self._clock_index += 1
        else:
            self._clock_now += self._clock_step
        return reading

    def cpu_id(self) -> int:
        """The CPU the program runs on (the `cpu` attribute)."""
        return self.cpu

    # Control

    def peek_clock_ns(self) -> int:
        """What the next `ktime_get_ns` will return, without consuming a reading."""
        if self._clock_seq is not None:
            base = self._clock_seq[min(self._clock_index, len(self._clock_seq) - 1)]
        else:
            base = self._clock_now
        return _check_u64(base + self._clock_offset, "clock reading")

    def advance(self, ns: int) -> None:
        """Move the clock forward by `ns` nanoseconds (`ValueError` if negative)."""
        if ns < 0:
            raise ValueError("the clock cannot go backwards (ktime is monotonic)")
        self._clock_offset += ns

    def __repr__(self) -> str:
        return f"<FixedHelpers random_calls={self.random_calls} clock={self.peek_clock_ns()} cpu={self.cpu}>"


class _Overlay:
    """A HelperSource taking each helper from one of two sources: the override or the outer one."""

    def __init__(self, outer: HelperSource, inner: HelperSource, *, random: bool = False,
                 clock: bool = False, cpu: bool = False) -> None:
        self._random = inner if random else outer
        self._clock = inner if clock else outer
        self._cpu = inner if cpu else outer

    def prandom_u32(self) -> int:
        return self._random.prandom_u32()

    def ktime_get_ns(self) -> int:
        return self._clock.ktime_get_ns()

    def cpu_id(self) -> int:
        return self._cpu.cpu_id()


@contextmanager
def fixed_random(values: Sequence[int] | Callable[[], int] | None = None, *,
                 seed: int | None = None) -> Iterator[FixedHelpers]:
    """Scripted random numbers for executions in this context; other helpers stay as they were.

    `values` are the 32-bit results themselves, in order (cycled), or a callable producing them;
    `seed=` gives a reproducible pseudo-random stream instead. Yields the `FixedHelpers` that answers,
    e.g. to read `random_calls`.
    """
    if isinstance(values, int):  # bool included: ambiguous between "this value" and "this seed"
        raise TypeError(f"fixed_random({values!r}) is ambiguous: write fixed_random([{values!r}]) for that "
                        f"value every time, or fixed_random(seed={values!r}) for a seeded stream")
    if (values is None) == (seed is None):
        raise TypeError("fixed_random takes either values or seed=")
    source = FixedHelpers(seed=seed) if values is None else FixedHelpers(random=values)
    with use_helpers(_Overlay(current_helpers(), source, random=True)):
        yield source


@contextmanager
def fixed_clock(start_ns: int | Sequence[int] = 0, step_ns: int = 0) -> Iterator[FixedHelpers]:
    """A scripted clock for executions in this context; other helpers stay as they were.

    Readings start at `start_ns` and move by `step_ns` each (or follow a sequence); the yielded
    `FixedHelpers` has `advance(ns)`.
    """
    source = FixedHelpers(clock_ns=start_ns, clock_step_ns=step_ns)
    with use_helpers(_Overlay(current_helpers(), source, clock=True)):
        yield source


@contextmanager
def deterministic(seed: int = 0, clock_ns: int = 0, cpu: int = 0,
                  clock_step_ns: int = 0) -> Iterator[FixedHelpers]:
    """Fully reproducible helpers: a PRNG seeded with `seed`, a clock starting at `clock_ns` that
    moves only by `clock_step_ns` per reading and by `advance`, and CPU `cpu`."""
    source = FixedHelpers(seed=seed, clock_ns=clock_ns, cpu=cpu, clock_step_ns=clock_step_ns)
    with use_helpers(source):
        yield source


@contextmanager
def on_cpu(cpu: int, *maps: PerCpuArray | PerCpuHashMap | LruPerCpuHashMap) -> Iterator[None]:
    """Run as if on CPU `cpu`: the CPU helper answers `cpu`, and each given per-CPU map's
    pure-Python executions touch that CPU's copy. Restores both on exit."""
    for m in maps:
        if not isinstance(m, PerCpuArray | PerCpuHashMap | LruPerCpuHashMap):
            raise TypeError(f"on_cpu takes per-CPU maps (PerCpuArray, PerCpuHashMap, LruPerCpuHashMap), not {m!r}")
    before = [m.current_cpu for m in maps]
    source = FixedHelpers(cpu=cpu)
    try:
        for m in maps:
            m.current_cpu = cpu
        with use_helpers(_Overlay(current_helpers(), source, cpu=True)):
            yield
    finally:
        for m, old in zip(maps, before):
            m.current_cpu = old


def _state_objects(items: Iterable[object]) -> Iterator[StateObject]:
    for item in items:
        if isinstance(item, StateObject):
            yield item
        elif isinstance(item, types.ModuleType):
            # Every state object the module declares at top level (what a DSL program can use).
            yield from (v for v in vars(item).values() if isinstance(v, StateObject))
        else:
            raise TypeError(f"reset_state takes state objects or modules, not {item!r}")


def reset_state(*state_objects: StateObject | types.ModuleType) -> None:
    """Restore each `Global` to its declared initial value and empty each map (and ring buffer).

    "Empty" means what a freshly loaded program would see: hash maps lose every key; arrays (also
    per-CPU ones, on every CPU) hold zeros. A module argument stands for all the state objects it
    defines at top level. Works on bound objects too, by writing to the kernel.
    """
    for obj in _state_objects(state_objects):
        if isinstance(obj, Global):
            obj.reset()
        elif isinstance(obj, BpfMap | RingBuf):
            obj.clear()  # arrays zero every element; a ring buffer drops its pending records
        else:
            raise TypeError(f"reset_state does not know how to reset {obj!r}")
