"""A redirect through an empty DevMap slot forgets the earlier target, on real interfaces (issue 16 §3).

The kernel keeps one redirect state per CPU (`bpf_redirect_info`): a target and the last index. A
`bpf_redirect_map` that misses clears the target, so an XDP_REDIRECT the program returns from an
earlier call goes to the *device numbered by the last index*: after `slots.redirect(50)` (slot 50 holds
`rb`) and a miss, to interface 50, which R does not have (nothing arrives); after `redirect(rb)` and a
miss, to `rb` still (everything arrives). Pure Python and the IR interpreter say the same targets
(tests/differential/test_redirect_miss.py checks them against the bytecode interpreter); before they
kept the earlier target, `slots[50]`, which would deliver in the first case.

Uses the three-namespace triangle of test_redirect_traffic.py (A -> R -> B over veth pairs).
"""

from __future__ import annotations

import socket

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_REDIRECT, Global, Packet, u32, xdp
from pybpfdsl.deploy import attach
from pybpfdsl.differential import run_ir, run_python
from pybpfdsl.lang.builtins import redirect
from pybpfdsl.lang.redirect import DevMap, RedirectTarget

from .netns import drain, inside
from .test_redirect_traffic import PORT, Triangle, _send, triangle_fixture  # noqa: F401 - the fixture

slots = DevMap(64)
FILLED, EMPTY = 50, 51
by_map = Global(u32, 1)
rb_index = Global(u32, 0)


@xdp
def earlier_target(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None or udp.dport != 7777:
        return XDP_PASS
    if by_map.value == 1:
        first = slots.redirect(50, XDP_PASS)  # slot 50 holds rb; the last index is 50
    else:
        first = redirect(rb_index.value)      # rb by its index; the last index is rb's
    miss = slots.redirect(51, XDP_PASS)       # empty: XDP_PASS, and the kernel forgets the target
    if miss == XDP_REDIRECT:
        return XDP_DROP
    return first


def _udp_frame() -> bytes:
    ip = bytes([0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return bytes(12) + b"\x08\x00" + ip + (1234).to_bytes(2, "big") + PORT.to_bytes(2, "big") + bytes(4)


@pytest.mark.parametrize("through_the_map", [True, False], ids=["slot-then-miss", "ifindex-then-miss"])
def test_a_miss_sends_an_earlier_redirect_to_the_last_index(triangle: Triangle, through_the_map: bool) -> None:
    t = triangle
    with inside(t.r):
        rb = socket.if_nametoindex("rb")
    assert rb != FILLED  # interface 50 must not exist in R for the first case to say anything
    slots.clear()
    slots[FILLED] = rb
    by_map.value, rb_index.value = int(through_the_map), rb
    want = RedirectTarget(None, FILLED if through_the_map else rb)
    for run in (run_python, run_ir):
        (step,) = run(earlier_target, [_udp_frame()])
        assert (step.action, step.redirect) == (XDP_REDIRECT, want), run.__name__
    with inside(t.b):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind((t.b_ip, PORT))
    with receiver:
        with inside(t.r):
            attachment = attach(earlier_target, "ra")
        try:
            _send(t, 10)
            got = drain(receiver, expected=None if through_the_map else 10, idle=0.5)
        finally:
            attachment.detach()
    assert len(got) == (0 if through_the_map else 10)
