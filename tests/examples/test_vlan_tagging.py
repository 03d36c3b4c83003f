"""examples/vlan_tagging.py: listed pods' frames leave on the trunk with their tenant's 802.1Q tag; tagged
frames of this node's VLANs lose theirs; everything else passes untouched.

The specification runs in pure Python on `Packet`s, which hold the program's writes and moves afterwards;
scapy builds every frame and parses what comes out. The kernel tests compare the four executions (pure
Python, IR interpreter, bytecode interpreter, kernel BPF_PROG_TEST_RUN) packet by packet, output bytes
included (`pybpfdsl.differential.compare`).
"""

from __future__ import annotations

import ipaddress

import pytest
import vlan_tagging as EXAMPLE
from example_harness import CLIENT_MAC, SERVER_MAC, arp, frames, tcp, udp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from pybpfdsl import XDP_PASS, XDP_REDIRECT, Packet
from pybpfdsl.differential import compare
from pybpfdsl.lang.redirect import RedirectTarget, last_redirect
from pybpfdsl.runtime.libbpf import kernel_bpf_available

PROGRAM = EXAMPLE.vlan_tagging
# The bytecode is proven equivalent to the IR with the other examples
# (tests/verify/equivalence/test_prove_programs.py: about 72M units when written).
POD = "10.0.0.1"
VLAN = 42
TRUNK = 7


def _addr(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def _configure(priority: int = 0) -> None:
    EXAMPLE.tag_pod(_addr(POD), VLAN)
    EXAMPLE.serve_vlan(VLAN)
    EXAMPLE.trunk.value = TRUNK
    EXAMPLE.priority.value = priority


def tagged(frame: bytes, vlan: int = VLAN, prio: int = 0) -> bytes:
    """`frame` with an 802.1Q tag after its MAC addresses, built by scapy."""
    eth = Ether(frame)
    return bytes(Ether(src=eth.src, dst=eth.dst) / Dot1Q(vlan=vlan, prio=prio, type=eth.type) / eth.payload)


def run(frame: bytes) -> tuple[int, bytes, Packet]:
    """The action, the bytes the program left and the packet (parsed afresh after any move)."""
    pkt = Packet(frame)
    action = PROGRAM(pkt)
    return int(action), pkt.data, pkt


# ------------------------------------------------------------------------------ specification (Python)

@pytest.mark.parametrize("frame", [udp(53, src=POD), tcp(443, src=POD, payload=b"GET /"), udp(9, src=POD)[:34]],
                         ids=["udp", "tcp", "bare-ipv4"])
def test_a_pods_frame_leaves_on_the_trunk_with_its_tenants_tag(frame: bytes) -> None:
    _configure(priority=5)
    action, out, _ = run(frame)
    assert action == XDP_REDIRECT
    assert last_redirect() == RedirectTarget(None, TRUNK)
    assert out == tagged(frame, prio=5)
    parsed = Ether(out)
    assert (parsed[Dot1Q].vlan, parsed[Dot1Q].prio, parsed[IP].src) == (VLAN, 5, POD)
    assert (EXAMPLE.tagged.value, EXAMPLE.untagged.value) == (1, 0)


def test_the_priority_is_three_bits_and_the_vlan_id_twelve() -> None:
    _configure(priority=9)  # 0b1001: the priority field keeps 1
    EXAMPLE.tag_pod(_addr("10.0.0.9"), 4096 + 77)  # outside 12 bits: the id is cut to them
    _, out, _ = run(udp(53, src="10.0.0.9"))
    assert out == tagged(udp(53, src="10.0.0.9"), vlan=77, prio=1)


@pytest.mark.parametrize("frame", [udp(53, src="10.0.0.5"), udp(53, v6=True), arp(), tcp(80, src="10.0.0.2")],
                         ids=["unlisted-pod", "ipv6", "arp", "other-source"])
def test_frames_not_from_a_listed_pod_pass_untouched(frame: bytes) -> None:
    _configure()
    assert run(frame)[:2] == (XDP_PASS, frame)
    assert EXAMPLE.tagged.value == 0


def test_a_pod_mapped_to_vlan_0_is_not_tagged() -> None:
    _configure()
    EXAMPLE.tag_pod(_addr(POD), 0)
    frame = udp(53, src=POD)
    assert run(frame)[:2] == (XDP_PASS, frame)


@pytest.mark.parametrize("inner", [udp(53, dst=POD, payload=b"answer"), tcp(22, v6=True), arp()],
                         ids=["udp", "tcp6", "arp"])
def test_a_local_vlans_frame_loses_its_tag(inner: bytes) -> None:
    _configure()
    action, out, _ = run(tagged(inner, prio=3))
    assert (action, out) == (XDP_PASS, inner)
    assert (EXAMPLE.tagged.value, EXAMPLE.untagged.value) == (0, 1)
    assert dict(EXAMPLE.vlan_bytes.items()) == {VLAN: len(inner)}


def test_headers_are_parsed_afresh_after_the_pop() -> None:
    _configure()
    inner = udp(5353, dst=POD)
    before = Packet(tagged(inner))
    assert before.ipv4 is None  # behind a tag the IPv4 header is not parsed
    PROGRAM(before)
    assert before.ipv4 is not None and before.udp is not None and before.udp.dport == 5353


def test_another_vlans_frame_passes_with_its_tag() -> None:
    _configure()
    frame = tagged(udp(53), vlan=43)
    assert run(frame)[:2] == (XDP_PASS, frame)
    assert EXAMPLE.untagged.value == 0 and dict(EXAMPLE.vlan_bytes.items()) == {}


@pytest.mark.parametrize("cut", [14, 15, 16, 17])
def test_a_tag_cut_short_passes_untouched(cut: int) -> None:
    _configure()
    frame = tagged(udp(53))[:cut]
    assert run(frame)[:2] == (XDP_PASS, frame)


def test_the_shortest_tagged_frame_pops_to_a_bare_ethernet_header() -> None:
    _configure()
    frame = tagged(udp(53))[:18]
    action, out, pkt = run(frame)
    assert (action, out) == (XDP_PASS, udp(53)[:14]) and pkt.eth is not None


def test_vlan_bytes_add_up_per_vlan() -> None:
    _configure()
    EXAMPLE.serve_vlan(7)
    sizes = {VLAN: 0, 7: 0}
    for vlan, payload in ((VLAN, b"a"), (7, b"bb" * 50), (VLAN, b"")):
        inner = udp(53, payload=payload)
        run(tagged(inner, vlan=vlan))
        sizes[vlan] += len(inner)
    assert dict(EXAMPLE.vlan_bytes.items()) == sizes
    assert EXAMPLE.untagged.value == 3


@settings(max_examples=200, deadline=None, derandomize=True)
@given(frame=frames(), vlan=st.integers(1, 4094), prio=st.integers(0, 7))
def test_pushing_then_popping_gives_the_frame_back(frame: bytes, vlan: int, prio: int) -> None:
    EXAMPLE.vlan_of_pod.clear()
    EXAMPLE.local_vlans.clear()
    pkt = Packet(frame)
    if pkt.ipv4 is None:
        return
    EXAMPLE.tag_pod(pkt.ipv4.src, vlan)
    EXAMPLE.serve_vlan(vlan)
    EXAMPLE.priority.value = prio
    action, out, _ = run(frame)
    if pkt.eth is not None and pkt.eth.type == EXAMPLE.ETH_P_8021Q:
        return
    assert action == XDP_REDIRECT and out == tagged(frame, vlan, prio)
    assert run(out)[:2] == (XDP_PASS, frame)


# ------------------------------------------------------------------------------------------- kernel

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

HAND_PICKED = [
    udp(53, src=POD), tcp(443, src=POD, payload=b"GET /"), udp(53, src="10.0.0.5"), udp(53, v6=True), arp(),
    tagged(udp(53, dst=POD, payload=b"answer")), tagged(tcp(22, v6=True), prio=7), tagged(udp(53), vlan=43),
    *(tagged(udp(53))[:cut] for cut in (14, 16, 17, 18)), bytes(14), udp(9, src=POD)[:34],
]


def test_the_four_executions_leave_the_same_bytes_on_hand_picked_frames() -> None:
    _configure(priority=3)
    mismatch = compare(PROGRAM, HAND_PICKED, executions=EXECUTIONS)
    assert mismatch is None, str(mismatch)


def _tagged_frames(draw: st.DrawFn) -> bytes:
    inner = draw(frames())
    return tagged(inner, vlan=draw(st.sampled_from([VLAN, 43, 0, 4095])), prio=draw(st.integers(0, 7)))


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(packets=st.lists(st.one_of(frames(), st.composite(_tagged_frames)(),
                                  st.builds(lambda p: udp(53, src=POD, payload=p), st.binary(max_size=64))),
                        min_size=1, max_size=6),
       prio=st.integers(0, 255), pod_vlan=st.sampled_from([VLAN, 0, 4095, 4096 + VLAN]))
def test_the_four_executions_agree_byte_for_byte(packets: list[bytes], prio: int, pod_vlan: int) -> None:
    _configure(priority=prio)
    EXAMPLE.tag_pod(_addr(POD), pod_vlan)
    EXAMPLE.serve_vlan(0)
    mismatch = compare(PROGRAM, packets, executions=EXECUTIONS)
    assert mismatch is None, str(mismatch)


@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_the_kernel_pushes_and_pops_the_tag_scapy_reads(self, loaded: object) -> None:
        _configure(priority=6)
        frame = bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(src=POD, dst="10.9.0.1") / UDP(dport=8080)
                      / Raw(b"hello"))
        pushed = loaded.run(frame)  # type: ignore[attr-defined]
        assert pushed.action == XDP_REDIRECT
        out = Ether(pushed.packet)
        assert (out[Dot1Q].vlan, out[Dot1Q].prio, out[Dot1Q].type, out[Raw].load) == (VLAN, 6, 0x0800, b"hello")
        popped = loaded.run(pushed.packet)  # type: ignore[attr-defined]
        assert (popped.action, popped.packet) == (XDP_PASS, frame)
        assert (EXAMPLE.tagged.value, EXAMPLE.untagged.value) == (1, 1)
