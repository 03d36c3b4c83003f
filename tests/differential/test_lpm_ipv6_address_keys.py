"""`acl6.get(ip6.src, 0)` (issue 16 §4): an IPv6 header's address where an IPv6 LpmTrie's key goes is its
/128 key, the bytes of `src_hi` then `src_lo` (network order), in `get`, `m[k] = v`, `del m[k]` and `in`;
the longest stored prefix wins, the same in the four executions; our verifier accepts the program and it
is proven. An IPv4 trie's key from an integer narrower than the address (`ip4.ttl`) is that number's
/32 key (the bytes were shifted in the key node's type)."""

from __future__ import annotations

import ipaddress
import random

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Packet, u8, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang.lpm_trie import LpmTrie, prefix
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state
from pybpfdsl.verify.analysis.api import verify_program

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

acl6 = LpmTrie("ipv6", u8, 64)
acl4 = LpmTrie(u32, u8, 16)


@xdp
def by_ipv6_address(pkt: Packet) -> int:
    ip6 = pkt.ipv6
    if ip6 is None:
        return XDP_PASS
    verdict = acl6.get(ip6.src, 0)
    if ip6.hlim == 7:
        acl6[ip6.dst] = 3  # a /128 entry
    elif ip6.hlim == 9:
        del acl6[ip6.dst]
    if ip6.src in acl6 and verdict == 1:
        return XDP_DROP
    return XDP_TX if verdict == 3 else XDP_PASS


@xdp
def by_a_narrow_number(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    return XDP_DROP if acl4.get(ip4.ttl, 0) == 1 else XDP_PASS  # the key 0.0.0.ttl


def _ipv6(src: str, dst: str, hlim: int) -> bytes:
    header = bytes([0x60, 0, 0, 0, 0, 8, 17, hlim]) + ipaddress.IPv6Address(src).packed \
        + ipaddress.IPv6Address(dst).packed
    return bytes(12) + b"\x86\xdd" + header + bytes(8)


ADDRESSES = ["2001:db8::1", "2001:db8:1::5", "2001:db8:1:2::9", "fe80::1", "2001:db9::1"]


def _fill() -> None:
    reset_state(acl6)
    acl6[prefix("2001:db8::/32")] = 1
    acl6["2001:db8:1::/48"] = 2
    acl6["2001:db8:1:2::/64"] = 3


def test_pure_python_finds_the_longest_prefix_of_an_ipv6_header_address() -> None:
    _fill()
    assert by_ipv6_address(_ipv6("2001:db8::1", "fe80::1", 64)) == XDP_DROP       # /32: 1
    assert by_ipv6_address(_ipv6("2001:db8:1::5", "fe80::1", 64)) == XDP_PASS     # /48: 2
    assert by_ipv6_address(_ipv6("2001:db8:1:2::9", "fe80::1", 64)) == XDP_TX     # /64: 3
    assert by_ipv6_address(_ipv6("2001:db9::1", "fe80::1", 64)) == XDP_PASS       # none
    by_ipv6_address(_ipv6("2001:db9::1", "2001:db9::1", 7))                       # stores dst/128
    assert acl6.longest_match("2001:db9::1") == prefix("2001:db9::1/128")
    assert by_ipv6_address(_ipv6("2001:db9::1", "fe80::1", 64)) == XDP_TX
    by_ipv6_address(_ipv6("fe80::1", "2001:db9::1", 9))                           # deletes it
    assert acl6.longest_match("2001:db9::1") is None


def test_an_ipv6_address_is_its_full_length_key_in_every_execution() -> None:
    _fill()
    rng = random.Random(6)
    packets = [_ipv6(rng.choice(ADDRESSES), rng.choice(ADDRESSES), rng.choice([64, 7, 9])) for _ in range(40)]
    assert compare(by_ipv6_address, packets, executions=EXECUTIONS) is None
    _fill()
    assert {by_ipv6_address(p) for p in packets} == {XDP_DROP, XDP_PASS, XDP_TX}


def test_our_verifier_accepts_it_and_it_is_proven() -> None:
    assert verify_program(by_ipv6_address.compile().subject).ok
    assert by_ipv6_address.compile().proof.status == "proven"  # type: ignore[union-attr]


def test_a_narrow_number_is_its_own_full_length_key() -> None:
    reset_state(acl4)
    acl4["0.0.0.5"] = 1
    acl4["5.0.0.0/8"] = 2
    frames = [bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 28, 0, 1, 0, 0, ttl, 17]) + bytes(10) + bytes(8)
              for ttl in (5, 6, 64)]
    assert [by_a_narrow_number(f) for f in frames] == [XDP_DROP, XDP_PASS, XDP_PASS]
    assert compare(by_a_narrow_number, frames, executions=EXECUTIONS) is None
