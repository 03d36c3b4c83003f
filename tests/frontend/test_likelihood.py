"""`likely(c)` / `unlikely(c)` and profiles of pure-Python runs (issue 15, likelihood ordering).

- The spelling: in plain Python each returns the truth of its argument; in a program it may stand
  wherever a test goes (if, elif, `while bounded`, `a if c else b`, match guards, inside and/or/not, in an
  @inline helper, spelled `pybpfdsl.likely`), changes nothing any execution does (the four agree and the
  bytecode is proven against the IR), and marks the branches the test emits (`branch.likely`).
- The layout: the usual path runs fewer instructions than when the rare one is laid out first.
- The profile: `fn.profile(packets)` counts each condition's outcomes in pure Python (and puts the state
  back); `fn.compile(profile=...)` hints the biased conditions as `likely`/`unlikely` would, giving the
  same bytecode as the program spelled with those hints; the program's own hints win over a profile's.
Wrong uses are in bad_programs/likelihood.py.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

import pybpfdsl
from pybpfdsl import (
    XDP_DROP,
    XDP_PASS,
    XDP_TX,
    Global,
    Packet,
    bounded,
    inline,
    likely,
    u32,
    u64,
    unlikely,
    xdp,
)
from pybpfdsl.bpf.image import BytecodeImage
from pybpfdsl.differential import compare
from pybpfdsl.frontend.likelihood import BranchProfile
from pybpfdsl.ir import nodes as n
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.libbpf import kernel_bpf_available

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

seen = Global(u64, 0)
dns = Global(u64, 0)
drops = Global(u64, 0)
loops = Global(u32, 0)


def _udp(dport: int, size: int = 20) -> bytes:
    return bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4000, dport=dport) / bytes(size))


USUAL = _udp(9000)
SMALL_DNS = _udp(53)
BIG_DNS = _udp(53, 600)
TCP_SYN = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=4000, dport=80, flags="S"))
PACKETS = [USUAL, SMALL_DNS, BIG_DNS, TCP_SYN, bytes(14), _udp(7), _udp(53, 513)]


def test_in_plain_python_they_return_the_truth_of_their_argument() -> None:
    assert likely(3) is True and likely(0) is False and likely(None) is False
    assert unlikely([1]) is True and unlikely("") is False
    assert pybpfdsl.likely is likely and pybpfdsl.unlikely is unlikely
    assert {"likely", "unlikely"} <= set(pybpfdsl.__all__)


@inline
def is_dns(port: u32) -> bool:
    return unlikely(port == 53) or port == 5353


@xdp
def everywhere(pkt: Packet) -> int:
    udp = pkt.udp
    if unlikely(udp is None):
        tcp = pkt.tcp
        if tcp is not None and likely(not tcp.flags & 2) and tcp.dport == 80:
            return XDP_TX
        return XDP_PASS
    elif pybpfdsl.likely(udp.dport != 7):
        i: u32 = 0
        while bounded(likely(i < udp.dport), 4):
            i += 1
        loops.value += i
    size = 1 if unlikely(pkt.len > 512) else 0
    match udp.dport:
        case 53 if likely(size == 0):
            dns.value += 1
        case _ if is_dns(udp.dport) and not unlikely(size == 1):
            dns.value += 2
    if size == 1 and unlikely(is_dns(udp.dport)):
        drops.value += 1
        return XDP_DROP
    seen.value += pkt.len
    return XDP_PASS


@xdp
def plain(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    if udp.dport == 53:
        dns.value += 1
        if pkt.len > 512:
            drops.value += 1
            return XDP_DROP
    seen.value += pkt.len
    return XDP_PASS


@xdp
def hinted(pkt: Packet) -> int:
    udp = pkt.udp
    if unlikely(udp is None):
        return XDP_PASS
    if unlikely(udp.dport == 53):
        dns.value += 1
        if pkt.len > 512:
            drops.value += 1
            return XDP_DROP
    seen.value += pkt.len
    return XDP_PASS


@xdp
def rare_first(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    if likely(udp.dport == 53):  # wrong on purpose: a profile of usual traffic overrules nothing here
        dns.value += 1
    seen.value += pkt.len
    return XDP_PASS


def _hints(program: n.Program) -> list[tuple[int, n.Expect]]:
    """The hints from the source or a profile (not the header parse's own: its IPv6 path is rare)."""
    return sorted((b.terminator.line, b.terminator.expect) for b in program.blocks
                  if isinstance(b.terminator, n.Branch) and b.terminator.expect is not None
                  and not b.terminator.if_true.target.startswith("ipv6_fits"))


def _steps(prog: XdpProgram, packet: bytes, **compile_options: object) -> int:
    compiled = prog.compile(prove=False, verify=False, **compile_options)  # type: ignore[arg-type]
    image = BytecodeImage.from_elf(compiled.elf, prog.name)
    return image.run(packet, image.fresh_maps()).steps


@pytest.mark.parametrize("prog", [everywhere, hinted, rare_first], ids=lambda p: p.name)
def test_the_hints_change_no_execution(prog: XdpProgram) -> None:
    assert compare(prog, PACKETS * 2, executions=EXECUTIONS) is None
    compiled = prog.compile(prove=True)
    assert compiled.proven, compiled.proof_summary()
    assert compiled.verified, compiled.verification_summary()


def test_every_hinted_test_marks_its_branches() -> None:
    text = everywhere.ir
    assert text.count("branch.likely") >= 4 and text.count("branch.unlikely") >= 5, text


def _line(prog: XdpProgram, text: str) -> int:
    import inspect

    lines, first = inspect.getsourcelines(prog.function)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_a_hint_on_and_or_marks_the_branches_that_lead_straight_to_the_rare_outcome() -> None:
    @xdp
    def both(pkt: Packet) -> int:
        if likely(pkt.len > 60 and pkt.len < 1000):
            return XDP_PASS
        if likely(pkt.len == 7 or pkt.len == 9):
            return XDP_DROP
        if unlikely(pkt.len == 3 or pkt.len == 5):
            return XDP_DROP
        return XDP_TX

    first, second, third = (_line(both, text) for text in ("(pkt.len > 60", "(pkt.len == 7", "(pkt.len == 3"))
    # `likely(a and b)`: both tests usually hold. `likely(a or b)`: the second usually holds, but whether the
    # first does says nothing (`a` failing is on the usual path and on the rare one), so it is not hinted.
    # `unlikely(a or b)`: each test leads straight to the rare outcome when it holds.
    assert _hints(both.lower().program) == [(first, n.Expect.LIKELY), (first, n.Expect.LIKELY),
                                            (second, n.Expect.LIKELY),
                                            (third, n.Expect.UNLIKELY), (third, n.Expect.UNLIKELY)]


def test_the_usual_path_runs_fewer_instructions() -> None:
    assert _steps(hinted, USUAL) < _steps(plain, USUAL)


def test_a_profile_counts_each_condition_and_puts_the_state_back() -> None:
    before = (seen.value, dns.value, drops.value)
    profile = plain.profile([USUAL] * 8 + [SMALL_DNS, BIG_DNS])
    assert (seen.value, dns.value, drops.value) == before
    assert isinstance(profile, BranchProfile) and profile.packets == 10
    counts = sorted(tuple(c) for c in profile.outcomes.values())
    assert counts == [(1, 1), (8, 2), (10, 0)], counts  # len > 512; dport == 53; udp is None
    assert len(profile.expectations()) == 2 and len(profile.expectations(bias=0.85)) == 1
    assert profile.summary() == "10 packets, 3 conditions tested, 2 with a usual outcome"


def test_a_profile_lays_out_the_program_as_the_hints_it_finds() -> None:
    traffic = [USUAL] * 8 + [SMALL_DNS, BIG_DNS]
    from_profile = plain.compile(profile=traffic, prove=True)
    spelled = hinted.compile(prove=False)
    assert [str(i) for i in from_profile.instructions] == [str(i) for i in spelled.instructions]
    assert from_profile.proven, from_profile.proof_summary()
    assert [e for _, e in _hints(from_profile.lowered.program)] == [n.Expect.LIKELY, n.Expect.UNLIKELY]
    assert plain.lower().program is not from_profile.lowered.program  # the cached lowering has no hints
    assert _hints(plain.lower().program) == []
    assert _steps(plain, USUAL, profile=plain.profile(traffic)) == _steps(hinted, USUAL)


def test_the_programs_own_hints_win_over_a_profile() -> None:
    line = _line(rare_first, "likely(udp.dport == 53)")
    profiled = rare_first.compile(profile=[USUAL] * 10, prove=False, verify=False)
    assert (line, n.Expect.LIKELY) in _hints(profiled.lowered.program)


def test_a_profile_serves_only_the_program_it_was_taken_of() -> None:
    with pytest.raises(ValueError, match=r"take it with hinted\.profile"):
        hinted.compile(profile=plain.profile([USUAL]))
    with pytest.raises(ValueError, match="bias"):
        plain.profile([USUAL]).expectations(bias=0.5)
