"""`acl.get(ip4.src, 0)`: an address where an LpmTrie's key goes is its full-length key, bytes in network
order, the same in the four executions, and the program is proven."""

from __future__ import annotations

import random

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Packet, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang.lpm_trie import LpmTrie, prefix
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

acl = LpmTrie(u32, u32, 64)


@xdp
def by_address(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    verdict = acl.get(ip4.src, 0)
    if ip4.ttl == 7:
        acl[ip4.dst] = 3  # a /32 entry
    elif ip4.ttl == 9:
        del acl[ip4.dst]
    if ip4.src in acl and verdict == 1:
        return XDP_DROP
    return XDP_TX if verdict == 3 else XDP_PASS


def _ipv4(src: bytes, dst: bytes, ttl: int) -> bytes:
    return bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 28, 0, 1, 0, 0, ttl, 17, 0, 0]) + src + dst + bytes(8)


def test_an_address_is_its_full_length_key_in_every_execution() -> None:
    reset_state(acl)
    acl[prefix("10.0.0.0/8")] = 1
    acl["10.1.0.0/16"] = 2
    rng = random.Random(1)
    addresses = [bytes([10, 1, 2, 3]), bytes([10, 9, 0, 1]), bytes([11, 0, 0, 1]), bytes([192, 168, 0, 9])]
    packets = [_ipv4(rng.choice(addresses), rng.choice(addresses), rng.choice([64, 7, 9])) for _ in range(40)]
    assert compare(by_address, packets, executions=EXECUTIONS) is None
    assert {by_address(p) for p in packets} == {XDP_DROP, XDP_PASS, XDP_TX}


def test_the_program_is_proven() -> None:
    assert by_address.compile().proof.status == "proven"  # type: ignore[union-attr]
