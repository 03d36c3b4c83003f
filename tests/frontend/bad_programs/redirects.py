"""Wrong programs: redirects (`redirect(ifindex)`, `DevMap`/`CpuMap`) used in ways the DSL rejects.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

from pybpfdsl import XDP_PASS, XDP_REDIRECT, Packet, xdp
from pybpfdsl.lang.builtins import fib_lookup, redirect
from pybpfdsl.lang.redirect import CpuMap, DevMap

ports = DevMap(4)
cpus = CpuMap(2)


@xdp
def redirect_without_target(pkt: Packet) -> int:
    return redirect()  # error: write `return redirect(ifindex)`


@xdp
def redirect_to_a_float(pkt: Packet) -> int:
    return redirect(1.5)  # error: float


@xdp
def miss_action_redirect(pkt: Packet) -> int:
    return ports.redirect(0, XDP_REDIRECT)  # error: empty slot must be a constant XDP_ABORTED | hint: low two bits


@xdp
def miss_action_not_constant(pkt: Packet) -> int:
    return cpus.redirect(0, pkt.len & 3)  # error: empty slot must be a constant


@xdp
def devmap_get(pkt: Packet) -> int:
    ports.get(0)  # error: a DevMap has no method `get` | hint: fill it from Python
    return XDP_PASS


@xdp
def redirect_with_keyword(pkt: Packet) -> int:
    return cpus.redirect(key=0)  # error: takes a key and optionally the action


@xdp
def fib_lookup_one_argument(pkt: Packet) -> int:
    hop = fib_lookup(1)  # error: write `fib_lookup(dst, ifindex)`
    return XDP_PASS


@xdp
def fib_result_unknown_field(pkt: Packet) -> int:
    hop = fib_lookup(1, 1)
    return hop.mtu  # error: mtu


@xdp
def devmap_slot_written(pkt: Packet) -> int:
    ports[0] = 3  # error: can only redirect through the DevMap ports | hint: fill its slots from Python
    return XDP_PASS


@xdp
def cpumap_slot_read(pkt: Packet) -> int:
    if cpus[0] is None:  # error: can only redirect through the CpuMap cpus | hint: `return cpus.redirect(key)`
        return XDP_PASS
    return XDP_PASS


@xdp
def devmap_slot_deleted(pkt: Packet) -> int:
    del ports[1]  # error: can only redirect through the DevMap ports
    return XDP_PASS
