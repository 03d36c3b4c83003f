"""fib_lookup agrees in the four executions (issue 16 §3): the kernel answers from the FIB of a network
namespace the test makes (a veth with 10.77.0.1/24, a permanent neighbour 10.77.0.2, forwarding on), pure
Python and the interpreters from a scripted table saying the same (`use_routes`); the program redirects
to the egress interface when the lookup succeeds and passes otherwise."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pybpfdsl import XDP_PASS, XDP_REDIRECT, Global, Packet, u32, u64, xdp
from pybpfdsl.differential import compare, run_python
from pybpfdsl.lang.builtins import fib_lookup, redirect
from pybpfdsl.lang.fib import NOT_FORWARDED, SUCCESS, Route, use_routes
from pybpfdsl.lang.redirect import RedirectTarget
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from tests.e2e.netns import add_routed_namespace, environment_problem, inside, ip

KERNEL, _ = kernel_bpf_available()
SMAC, DMAC = 0x02_00_4D_00_00_01, 0x02_00_4D_00_00_02

ingress = Global(u32, 1)  # the loopback device: a lookup needs an interface the kernel knows
last_status = Global(u32, 99)
last_dmac = Global(u64, 0)


@xdp
def route(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    hop = fib_lookup(ip4.dst, ingress.value)
    last_status.value = hop.status
    last_dmac.value = hop.dmac ^ hop.smac
    if hop.status == 0:
        return redirect(hop.ifindex)
    return XDP_PASS


def _ipv4(dst: bytes) -> bytes:
    header = bytes([0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1]) + dst
    return bytes(12) + b"\x08\x00" + header + bytes(8)


PACKETS = [_ipv4(bytes([10, 77, 0, 2])), _ipv4(bytes([192, 0, 2, 1])), bytes(40)]


def test_pure_python_answers_from_the_scripted_table() -> None:
    with use_routes([Route("10.77.0.0/24", 5, SMAC, DMAC)]):
        steps = run_python(route, PACKETS)
    assert [s.action for s in steps] == [XDP_REDIRECT, XDP_PASS, XDP_PASS]
    assert steps[0].redirect == RedirectTarget(None, 5)
    assert steps[0].state["last_dmac"] == SMAC ^ DMAC
    assert steps[1].state["last_status"] == NOT_FORWARDED


def test_interpreters_agree_with_python() -> None:
    with use_routes([Route("10.77.0.0/24", 5, SMAC, DMAC), Route("192.0.2.0/24", 6, status=7)]):
        assert compare(route, PACKETS, ("python", "ir", "bytecode")) is None


@pytest.fixture(name="routed_namespace")
def routed_namespace_fixture() -> Iterator[tuple[str, int]]:
    problem = environment_problem()
    if problem is not None:
        pytest.skip(problem)
    ns = f"pbdfib{os.getpid() % 100000}"
    try:
        yield ns, add_routed_namespace(ns, SMAC, DMAC)
    finally:
        ip("netns", "del", ns, check=False)


@pytest.mark.skipif(not KERNEL, reason="needs bpf()")
def test_the_kernel_fib_agrees_with_the_scripted_table(routed_namespace: tuple[str, int]) -> None:
    ns, v0 = routed_namespace
    with use_routes([Route("10.77.0.0/24", v0, SMAC, DMAC)]), inside(ns):
        assert compare(route, PACKETS, ("python", "ir", "bytecode", "kernel")) is None
        steps = run_python(route, PACKETS)
    assert steps[0].state["last_status"] == SUCCESS and steps[0].redirect == RedirectTarget(None, v0)
