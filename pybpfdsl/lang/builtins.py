"""DSL built-in functions: helpers a program calls, usable from plain Python too.

Called from Python (outside a DSL execution) they answer from the current `HelperSource`, so a test that
fixes randomness or time sees the same values the DSL execution sees.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from pybpfdsl.lang import fixed
from pybpfdsl.lang.fib import FibResult, lookup
from pybpfdsl.lang.helpers import current_helpers
from pybpfdsl.lang.redirect import redirect_to

P = ParamSpec("P")
R = TypeVar("R")


def random() -> float:
    """A uniformly random float in [0, 1), with 32 random bits (`bpf_get_prandom_u32() / 2**32`)."""
    return fixed.to_float(current_helpers().prandom_u32() & 0xFFFFFFFF)


def randint(lo: int, hi: int) -> int:
    """A random integer in [lo, hi] (both ends included): `lo + (prandom_u32() * (hi - lo + 1)) >> 32`."""
    span = hi - lo + 1
    return lo + (((current_helpers().prandom_u32() & 0xFFFFFFFF) * span) >> 32)


def prandom_u32() -> int:
    """32 pseudo-random bits (`bpf_get_prandom_u32`)."""
    return current_helpers().prandom_u32() & 0xFFFFFFFF


def now_ns() -> int:
    """Nanoseconds of the monotonic clock (`bpf_ktime_get_ns`)."""
    return current_helpers().ktime_get_ns() & ((1 << 64) - 1)


def cpu_id() -> int:
    """The CPU running the program (`bpf_get_smp_processor_id`)."""
    return current_helpers().cpu_id() & 0xFFFFFFFF


def ip(address: str) -> int:
    """An IPv4 address as a u32 in host order, as `pkt.ipv4.src` reads it: `ip("10.0.0.1") == 0x0A000001`."""
    return int(ipaddress.IPv4Address(address))


def bounded(condition: bool, max_iterations: int) -> bool:
    """Spelling of a bounded loop: `while bounded(cond, 64):` runs at most 64 times.

    Only meaningful as a `while` condition in a DSL function; the compiler counts the iterations.
    """
    return condition


def likely(condition: object) -> bool:
    """A condition that usually holds: `if likely(cond):` is `if cond:`, with the usual path laid out as
    the one that runs the fewest instructions. Its value is the truth of `condition`."""
    return bool(condition)


def unlikely(condition: object) -> bool:
    """A condition that rarely holds: `if unlikely(cond):` is `if cond:`, with its body placed out of the
    usual path. Its value is the truth of `condition`."""
    return bool(condition)


def inline(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark a typed function as a DSL helper: `@xdp` functions may call it, and the compiler inlines it."""
    setattr(fn, "__pybpfdsl_inline__", True)  # noqa: B010 - mypy rejects the attribute on a Callable
    return fn


def is_inline(obj: object) -> bool:
    return bool(getattr(obj, "__pybpfdsl_inline__", False))


def redirect(ifindex: int) -> int:
    """Send the packet out of interface `ifindex` (`bpf_redirect`): `return redirect(ifindex)` gives
    XDP_REDIRECT with that target."""
    return redirect_to(ifindex)


def fib_lookup(dst: int, ifindex: int) -> FibResult:
    """The routing decision for IPv4 destination `dst` (host order) arriving on `ifindex`
    (`bpf_fib_lookup`; outside the kernel from the table of `pybpfdsl.lang.fib.use_routes`)."""
    return lookup(dst, ifindex)
