"""examples/rpc_filter.py: UDP requests to RPC_PORT need a valid RpcHeader; blocked methods are dropped."""

from __future__ import annotations

import struct

import pytest
import rpc_filter as EXAMPLE
from example_harness import (
    arp,
    assert_same,
    frames,
    icmp,
    kernel_and_python,
    record,
    service_datagrams,
    tcp,
    udp,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl import XDP_DROP, XDP_PASS

PROGRAM = EXAMPLE.rpc_filter
PORT = EXAMPLE.RPC_PORT


def rpc_header(method: int, *, magic: int = EXAMPLE.RPC_MAGIC, version: int = EXAMPLE.RPC_VERSION,
               request_id: int = 1) -> bytes:
    """The wire format of RpcHeader: big-endian magic u16, version u8, method u8, request_id u32."""
    return struct.pack("!HBBI", magic, version, method, request_id)


def rpc_request(method: int, body: bytes = b"args", *, v6: bool = False, **fields: int) -> bytes:
    return udp(PORT, payload=rpc_header(method, **fields) + body, v6=v6)


def counters() -> tuple[int, int]:
    return EXAMPLE.malformed_requests.value, EXAMPLE.blocked_requests.value  # type: ignore[return-value]


# ------------------------------------------------------------------------------ specification (Python)

def test_the_header_layout_is_the_documented_one() -> None:
    assert EXAMPLE.RpcHeader.size() == 8
    assert [(f.name, f.offset) for f in EXAMPLE.RpcHeader.fields()] == [
        ("magic", 0), ("version", 2), ("method", 3), ("request_id", 4)]


def test_a_valid_request_passes() -> None:
    assert PROGRAM(rpc_request(method=1)) == XDP_PASS
    assert counters() == (0, 0)


def test_a_request_for_a_blocked_method_is_dropped() -> None:
    EXAMPLE.block_method(3)
    assert PROGRAM(rpc_request(method=3)) == XDP_DROP
    assert PROGRAM(rpc_request(method=3, v6=True)) == XDP_DROP
    assert PROGRAM(rpc_request(method=4)) == XDP_PASS
    assert counters() == (0, 2)


def test_an_unblocked_method_passes_again() -> None:
    EXAMPLE.block_method(3)
    EXAMPLE.unblock_method(3)
    EXAMPLE.unblock_method(9)  # never blocked: nothing happens
    assert PROGRAM(rpc_request(method=3)) == XDP_PASS


def test_a_header_only_request_is_valid() -> None:
    assert PROGRAM(udp(PORT, payload=rpc_header(method=1))) == XDP_PASS


@pytest.mark.parametrize("payload", [
    rpc_header(1, magic=0x5251) + b"args",          # wrong magic
    rpc_header(1, magic=0x5052) + b"args",          # magic in the wrong byte order
    rpc_header(1, version=2) + b"args",             # unknown version
    rpc_header(1)[:7],                              # one byte short of a header
    b"",                                            # empty datagram
], ids=["bad-magic", "little-endian-magic", "bad-version", "short", "empty"])
def test_a_malformed_request_is_dropped(payload: bytes) -> None:
    assert PROGRAM(udp(PORT, payload=payload)) == XDP_DROP
    assert counters() == (1, 0)


def test_a_malformed_request_is_dropped_even_for_a_blocked_method() -> None:
    EXAMPLE.block_method(1)
    assert PROGRAM(rpc_request(method=1, version=9)) == XDP_DROP
    assert counters() == (1, 0)


@pytest.mark.parametrize("packet", [
    udp(40000, sport=PORT, payload=rpc_header(3)),  # a response
    udp(PORT + 1, payload=b"garbage"),              # another service
    tcp(PORT, payload=rpc_header(3)),               # not UDP
    arp(), icmp(), bytes(14),
], ids=["response", "other-port", "tcp", "arp", "icmp", "zeros"])
def test_traffic_that_is_not_an_rpc_request_passes(packet: bytes) -> None:
    EXAMPLE.block_method(3)
    assert PROGRAM(packet) == XDP_PASS
    assert counters() == (0, 0)


# ------------------------------------------------------------------------------------------- kernel

# Mostly valid headers (any method), sometimes a wrong magic or version, sometimes random bytes.
RPC_PAYLOADS = st.one_of(
    st.binary(max_size=16),
    st.builds(lambda magic, version, method, request_id, body:
              rpc_header(method, magic=magic, version=version, request_id=request_id) + body,
              st.sampled_from([EXAMPLE.RPC_MAGIC] * 6 + [0, 0x5052, 0xFFFF]),
              st.sampled_from([EXAMPLE.RPC_VERSION] * 6 + [0, 2, 255]),
              st.integers(0, 255), st.integers(0, 2**32 - 1), st.binary(max_size=32)))


@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        # `loaded` exists only if the kernel's verifier accepted the program.
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_hand_picked_packets_match_python(self, loaded: object) -> None:
        EXAMPLE.block_method(3)
        EXAMPLE.block_method(255)
        sequence = [rpc_request(1), rpc_request(3), rpc_request(255, v6=True), rpc_request(1, magic=0),
                    udp(PORT, payload=rpc_header(1)[:7]), udp(40000, sport=PORT, payload=rpc_header(3)), arp()]
        actions = []
        for packet in sequence:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
            assert_same(in_kernel, in_python)
            actions.append(in_kernel.action)
        assert actions == [XDP_PASS, XDP_DROP, XDP_DROP, XDP_DROP, XDP_DROP, XDP_PASS, XDP_PASS]
        assert counters() == (2, 2)

    def test_blocking_takes_effect_in_the_running_program(self, loaded: object) -> None:
        assert loaded.run(rpc_request(7)).action == XDP_PASS  # type: ignore[attr-defined]
        EXAMPLE.block_method(7)
        assert loaded.run(rpc_request(7)).action == XDP_DROP  # type: ignore[attr-defined]
        EXAMPLE.unblock_method(7)
        assert loaded.run(rpc_request(7)).action == XDP_PASS  # type: ignore[attr-defined]

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(packet=st.one_of(frames(), service_datagrams(PORT, RPC_PAYLOADS),
                            service_datagrams(PORT, RPC_PAYLOADS, direction="to")),
           blocked=st.sets(st.integers(0, 255), max_size=128))
    def test_differential(self, loaded: object, packet: bytes, blocked: set[int]) -> None:
        EXAMPLE.blocked_methods.clear()
        for method in blocked:
            EXAMPLE.block_method(method)
        in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
        record(in_kernel)
        assert_same(in_kernel, in_python)
