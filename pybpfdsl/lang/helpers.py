"""Where executions outside the kernel get random numbers, the time and the CPU number.

The kernel's helpers (`bpf_get_prandom_u32`, `bpf_ktime_get_ns`, `bpf_get_smp_processor_id`) are inputs
to a program, not part of its meaning. Pure-Python mode and the IR interpreter read them from the current
`HelperSource`; `pybpfdsl.testing` installs a deterministic one.
"""

from __future__ import annotations

import contextvars
import random as _random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class HelperSource(Protocol):
    """Supplies helper results, in the order a program asks for them."""

    def prandom_u32(self) -> int: ...
    def ktime_get_ns(self) -> int: ...
    def cpu_id(self) -> int: ...


class SystemHelpers:
    """Real randomness and the monotonic clock (what the kernel's helpers give, approximately)."""

    def __init__(self) -> None:
        self._rng = _random.SystemRandom()

    def prandom_u32(self) -> int:
        return self._rng.getrandbits(32)

    def ktime_get_ns(self) -> int:
        return time.monotonic_ns()

    def cpu_id(self) -> int:
        return 0


_current: contextvars.ContextVar[HelperSource] = contextvars.ContextVar("pybpfdsl_helpers")
_SYSTEM = SystemHelpers()


def current_helpers() -> HelperSource:
    return _current.get(_SYSTEM)


@contextmanager
def use_helpers(source: HelperSource) -> Iterator[HelperSource]:
    """Make `source` answer helper calls of executions in this context."""
    token = _current.set(source)
    try:
        yield source
    finally:
        _current.reset(token)
