"""A redirect through an empty DevMap/CpuMap slot behaves as the kernel's in every execution (issue 16 §3).

`m.redirect(key)` on an empty slot returns the miss action (XDP_ABORTED unless given) and, as the kernel's
`bpf_redirect_map` does, forgets the target an earlier redirect chose: an XDP_REDIRECT the program returns
from an earlier call then goes to the device numbered by the last index (the slot of the last redirect
that found one, or the last `redirect(ifindex)`), not to the earlier target. Pure Python and the IR
interpreter kept the stale target; the bytecode interpreter and the proof model the kernel's state.
The kernel's test run checks the actions (it does not report the target)."""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_REDIRECT, Packet, xdp
from pybpfdsl.differential import compare, run_bytecode, run_ir, run_python
from pybpfdsl.lang.builtins import redirect
from pybpfdsl.lang.redirect import DevMap, RedirectTarget, last_redirect
from pybpfdsl.runtime.libbpf import kernel_bpf_available

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
LOOPBACK = 1

slots = DevMap(4)


@xdp
def earlier_target_then_a_miss(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    if ip4.ttl >= 100:
        first = redirect(7)                    # interface 7; the last index is 7
    else:
        first = slots.redirect(0)              # slot 0 (filled); the last index is 0
    second = slots.redirect(ip4.ttl & 3)       # slots 2 and 3 are empty: XDP_ABORTED, the target forgotten
    if ip4.ttl & 64:
        return second
    if ip4.ttl & 32:
        return slots.redirect(3, XDP_DROP)     # a miss with its own action
    return first                               # XDP_REDIRECT, to the last index's device after a miss


def _ipv4(ttl: int) -> bytes:
    header = bytes([0x45, 0, 0, 28, 0, 1, 0, 0, ttl, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return bytes(12) + b"\x08\x00" + header + bytes(8)


# ttl -> (action, target): & 3 picks the second slot, & 64 returns the second result, & 32 a third call's
# result, >= 100 starts with redirect(7).
CASES = {
    1: (XDP_REDIRECT, RedirectTarget("slots", 1)),     # both hit: the second slot wins
    2: (XDP_REDIRECT, RedirectTarget(None, 0)),        # slot 2 misses: slot 0's index, as a device
    3: (XDP_REDIRECT, RedirectTarget(None, 0)),
    66: (0, None),                                     # the miss's own action (XDP_ABORTED)
    35: (XDP_DROP, None),                              # `XDP_DROP` given as the miss action
    130: (XDP_REDIRECT, RedirectTarget(None, 7)),      # redirect(7), then a miss: device 7
    129: (XDP_REDIRECT, RedirectTarget("slots", 1)),
}


def _fill() -> None:
    slots.clear()
    slots[0] = LOOPBACK
    slots[1] = LOOPBACK


@pytest.mark.parametrize("run", [run_python, run_ir, run_bytecode], ids=["python", "ir", "bytecode"])
def test_a_miss_forgets_the_earlier_target_as_the_kernel_does(run: object) -> None:
    _fill()
    for ttl, (action, target) in CASES.items():
        (step,) = run(earlier_target_then_a_miss, [_ipv4(ttl)])  # type: ignore[operator]
        assert step.action == action, ttl
        if action == XDP_REDIRECT:
            assert step.redirect == target, (ttl, step.redirect)


def test_the_four_executions_agree_on_misses() -> None:
    _fill()
    assert compare(earlier_target_then_a_miss, [_ipv4(t) for t in CASES], EXECUTIONS) is None


def test_each_pure_python_run_starts_without_a_target() -> None:
    """Calling the program directly: a run that does not redirect shows no target (not the last run's),
    and a miss in it does not fall back on an index an earlier run chose, as in the interpreters' runs."""
    _fill()
    assert earlier_target_then_a_miss(_ipv4(1)) == XDP_REDIRECT and last_redirect() == RedirectTarget("slots", 1)
    assert earlier_target_then_a_miss(bytes(60)) == XDP_PASS and last_redirect() is None
