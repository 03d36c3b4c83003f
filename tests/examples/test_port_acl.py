"""examples/port_acl.py: UDP/TCP packets to a DENY port are dropped; unlisted ports are allowed."""

from __future__ import annotations

import port_acl as EXAMPLE
import pytest
from example_harness import arp, assert_same, biased_ports, frames, icmp, kernel_and_python, record, tcp, udp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl import XDP_DROP, XDP_PASS

PROGRAM = EXAMPLE.port_acl_filter
ALLOW, DENY = EXAMPLE.ALLOW, EXAMPLE.DENY


# ------------------------------------------------------------------------------ specification (Python)

def test_with_an_empty_acl_everything_passes() -> None:
    assert PROGRAM(tcp(23)) == XDP_PASS
    assert EXAMPLE.denied_packets.value == 0


@pytest.mark.parametrize("packet", [tcp(23), udp(23), tcp(23, v6=True), udp(23, v6=True)],
                         ids=["tcp", "udp", "tcp6", "udp6"])
def test_a_denied_destination_port_is_dropped(packet: bytes) -> None:
    EXAMPLE.deny_port(23)
    assert PROGRAM(packet) == XDP_DROP
    assert EXAMPLE.denied_packets.value == 1


def test_only_the_destination_port_matters() -> None:
    EXAMPLE.deny_port(23)
    assert PROGRAM(tcp(40000, sport=23)) == XDP_PASS  # a reply *from* port 23
    assert PROGRAM(tcp(24)) == XDP_PASS
    assert EXAMPLE.denied_packets.value == 0


def test_an_explicit_allow_entry_passes() -> None:
    EXAMPLE.allow_port(80)
    assert EXAMPLE.port_acl[80] == ALLOW
    assert PROGRAM(tcp(80)) == XDP_PASS


def test_a_port_can_be_denied_and_allowed_again() -> None:
    EXAMPLE.deny_port(2323)
    assert PROGRAM(udp(2323)) == XDP_DROP
    EXAMPLE.allow_port(2323)
    assert PROGRAM(udp(2323)) == XDP_PASS
    del EXAMPLE.port_acl[2323]
    assert PROGRAM(udp(2323)) == XDP_PASS
    assert EXAMPLE.denied_packets.value == 1


@pytest.mark.parametrize("packet", [arp(), icmp(), bytes(14), tcp(23)[:40]], ids=["arp", "icmp", "zeros", "runt"])
def test_frames_without_a_port_pass(packet: bytes) -> None:
    EXAMPLE.deny_port(23)
    EXAMPLE.deny_port(0)
    assert PROGRAM(packet) == XDP_PASS


def test_the_program_never_changes_the_acl() -> None:
    EXAMPLE.deny_port(23)
    EXAMPLE.allow_port(80)
    for packet in (tcp(23), tcp(80), udp(53)):
        PROGRAM(packet)
    assert dict(EXAMPLE.port_acl.items()) == {23: DENY, 80: ALLOW}


# ------------------------------------------------------------------------------------------- kernel

@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        # `loaded` exists only if the kernel's verifier accepted the program.
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_hand_picked_packets_match_python(self, loaded: object) -> None:
        EXAMPLE.deny_port(23)
        EXAMPLE.deny_port(53)
        EXAMPLE.allow_port(80)
        sequence = [tcp(23), udp(53, v6=True), tcp(80), tcp(40000, sport=23), udp(9000), arp(), icmp(), tcp(23)[:40]]
        actions = []
        for packet in sequence:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
            assert_same(in_kernel, in_python)
            actions.append(in_kernel.action)
        assert actions == [XDP_DROP, XDP_DROP] + [XDP_PASS] * 6
        assert EXAMPLE.denied_packets.value == 2

    def test_the_control_plane_changes_the_acl_while_the_program_runs(self, loaded: object) -> None:
        assert loaded.run(tcp(22)).action == XDP_PASS  # type: ignore[attr-defined]
        EXAMPLE.deny_port(22)  # writes the kernel's map
        assert loaded.run(tcp(22)).action == XDP_DROP  # type: ignore[attr-defined]
        EXAMPLE.allow_port(22)
        assert loaded.run(tcp(22)).action == XDP_PASS  # type: ignore[attr-defined]
        assert EXAMPLE.denied_packets.value == 1

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(packet=frames(ports=biased_ports(22, 23, 80, 443)),
           acl=st.dictionaries(st.one_of(st.sampled_from([0, 22, 23, 53, 80, 443, 65535]), st.integers(0, 65535)),
                               st.sampled_from([ALLOW, DENY, 7]), max_size=8))
    def test_differential(self, loaded: object, packet: bytes, acl: dict[int, int]) -> None:
        EXAMPLE.port_acl.clear()
        for port, verdict in acl.items():
            EXAMPLE.port_acl[port] = verdict
        in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
        record(in_kernel)
        assert_same(in_kernel, in_python)
