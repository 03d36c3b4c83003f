"""Where the bytecode interpreter's random numbers, clock and CPU number come from.

Helper results for randomness, time and the CPU number are inputs, not meaning: a run takes them from
the :class:`HelperResults` its caller passes, or else from :data:`HELPER_RESULTS` (which the package
points at the DSL's helper source, so pure Python, the IR interpreter and this interpreter share one).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["FIB_ROUTES", "FibHook", "FibAnswer", "HELPER_RESULTS", "HelperHook", "HelperResults"]


class HelperResults(Protocol):
    """Supplies the results of bpf_get_prandom_u32, bpf_ktime_get_ns and bpf_get_smp_processor_id, in
    the order a run asks for them. :class:`pybpfdsl.lang.helpers.HelperSource` has this shape."""

    def prandom_u32(self) -> int: ...
    def ktime_get_ns(self) -> int: ...
    def cpu_id(self) -> int: ...


class _SystemResults:
    """Real randomness, the monotonic clock and CPU 0 (what the kernel gives, approximately)."""

    def __init__(self) -> None:
        self._rng = random.SystemRandom()

    def prandom_u32(self) -> int:
        return self._rng.getrandbits(32)

    def ktime_get_ns(self) -> int:
        return time.monotonic_ns()

    def cpu_id(self) -> int:
        return 0


_SYSTEM_RESULTS = _SystemResults()


@dataclass
class HelperHook:
    """Where a run that is given no :class:`HelperResults` takes them: ``source()``, asked once per run.

    The interpreter may import nothing of the DSL, so the package (``pybpfdsl/__init__.py``) points
    :data:`HELPER_RESULTS` at :func:`pybpfdsl.lang.helpers.current_helpers`; by itself it gives the
    system's randomness and clock."""

    source: Callable[[], HelperResults] = lambda: _SYSTEM_RESULTS


HELPER_RESULTS = HelperHook()


FibAnswer = tuple[int, int, int, int]
"""What bpf_fib_lookup answers for an IPv4 destination: (status, egress ifindex, smac, dmac), the MACs as
48-bit big-endian numbers."""

NOT_FORWARDED = 4  # BPF_FIB_LKUP_RET_NOT_FWDED


@dataclass
class FibHook:
    """Where the interpreter's bpf_fib_lookup finds routes: ``lookup(dst, ingress ifindex)``, dst in host
    order. By itself no route forwards anything; ``pybpfdsl.state_transfer`` points it at the DSL's
    scripted table (:func:`pybpfdsl.lang.fib.use_routes`), which pure Python and the IR interpreter read."""

    lookup: Callable[[int, int], FibAnswer] = lambda dst, ifindex: (NOT_FORWARDED, ifindex, 0, 0)


FIB_ROUTES = FibHook()
