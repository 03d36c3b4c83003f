"""Packet ranges the lowering keeps, as the kernel keeps them (issue 15: vlan_tagging 302 -> 156 slots, clang 254):

- a program that moves the packet reads `data` and `data_end` again only where a move may have run since
  the block's dominator, so the checks made after a move still cover the accesses that follow it (the
  MAC addresses written after a re-parse need no guard of their own);
- a read through `data` at a constant offset stays proven across helper calls and packet writes (only a
  move ends it): the header checked before a map lookup is written after it without a second check;
- a join reached from two moves reads `data` afresh, and the accesses after it are checked again (a fresh
  `data` register has no range in the kernel): that program too is verified, proven and loaded.

Each program is proven equivalent to its IR, accepted by pybpfdsl's verifier, and run in every execution.
"""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Global, HashMap, Packet, u8, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

flip = Global(u64, 0)
marked = HashMap(u32, u8, max_entries=16)


@xdp
def push_then_rewrite(pkt: Packet) -> int:
    e = pkt.eth
    if e is None:
        return XDP_PASS
    dst = e.dst
    src = e.src
    if not pkt.adjust_head(-4):
        return XDP_DROP
    e = pkt.eth
    if e is None:
        return XDP_DROP
    e.dst = dst
    e.src = src
    return XDP_TX


@xdp
def write_after_lookup(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    if marked.get(ip4.src, 0) == 0:
        return XDP_PASS
    ip4.ttl = 1
    ip4.tos = 4
    return XDP_TX


@xdp
def both_ways_move(pkt: Packet) -> int:
    e = pkt.eth
    if e is None:
        return XDP_PASS
    dst = e.dst
    if flip.value == 0:
        if not pkt.adjust_head(4):
            return XDP_DROP
        e = pkt.eth
    else:
        if not pkt.adjust_head(-4):
            return XDP_DROP
        e = pkt.eth
    if e is None:
        return XDP_DROP
    e.dst = dst
    e.src = dst
    return XDP_TX


def _text(prog) -> list[str]:  # type: ignore[no-untyped-def]
    compiled = prog.compile(prove=True)
    assert compiled.proven, compiled.proof_summary()
    assert compiled.verification.ok, compiled.verification.format()
    return [str(i) for i in compiled.instructions]


def _compares_after(text: list[str], call: str) -> int:
    """Pointer compares (`if rA > rB`, `if rA <= rB`) after the first instruction naming `call`."""
    start = next(i for i, t in enumerate(text) if call in t)
    return sum(1 for t in text[start:] if t.startswith("if r") and (" > r" in t or " <= r" in t))


def test_after_a_move_the_reparse_check_covers_the_writes() -> None:
    text = _text(push_then_rewrite)
    assert _compares_after(text, "adjust_head") == 1, text  # the re-parse's: data + 14 <= data_end


def test_a_header_checked_before_a_lookup_is_written_after_it_unchecked() -> None:
    text = _text(write_after_lookup)
    assert _compares_after(text, "map_lookup_elem") == 0, text


def test_a_join_after_two_moves_checks_again() -> None:
    text = _text(both_ways_move)
    assert _compares_after(text, "adjust_head") >= 2, text


PACKETS = [bytes(14), bytes(30), bytes(range(60)),
           bytes(12) + b"\x08\x00" + b"\x45" + bytes(11) + b"\x0a\x00\x00\x01" + b"\x0a\x00\x00\x02" + bytes(20)]


@pytest.mark.parametrize("prog", [push_then_rewrite, write_after_lookup, both_ways_move], ids=lambda p: p.name)
def test_every_execution_agrees(prog) -> None:  # type: ignore[no-untyped-def]
    marked[0x0A000001] = 1
    for value in (0, 1):
        flip.value = value
        assert compare(prog, PACKETS * 2, executions=EXECUTIONS) is None
