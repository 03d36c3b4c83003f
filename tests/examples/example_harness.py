"""Packet builders (scapy), hypothesis strategies and the kernel-vs-Python comparison used by the example
tests.

The comparison runs one packet through the loaded program (the kernel, via BPF_PROG_TEST_RUN) and through
the same program in pure Python, both starting from the same state, and returns what each produced: the
action, the packet afterwards and the state of every state object of the example module. While a program
is loaded its state objects are bound to the kernel's maps, so the pure-Python run reads and writes those
maps too; the harness snapshots the state before the kernel run and puts it back before the Python run.
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import event
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from pybpfdsl.lang.state import BpfMap, Global, StateObject

MIN_FRAME = 14  # BPF_PROG_TEST_RUN needs at least an Ethernet header

CLIENT_MAC = "02:00:00:00:00:01"
SERVER_MAC = "02:00:00:00:00:02"


# --------------------------------------------------------------------------------------------- packets

def _ip(src: str, dst: str, v6: bool) -> ScapyPacket:
    if v6:
        return IPv6(src=src if ":" in src else "fd00::1", dst=dst if ":" in dst else "fd00::2")
    return IP(src=src, dst=dst)


def udp(dport: int, sport: int = 40000, payload: bytes = b"", *, src: str = "10.0.0.1",
        dst: str = "10.0.0.2", v6: bool = False) -> bytes:
    """An Ethernet/IPv4 (or IPv6)/UDP frame."""
    frame = Ether(src=CLIENT_MAC, dst=SERVER_MAC) / _ip(src, dst, v6) / UDP(sport=sport, dport=dport)
    return bytes(frame / Raw(payload)) if payload else bytes(frame)


def tcp(dport: int, sport: int = 40000, payload: bytes = b"", *, flags: str = "S", src: str = "10.0.0.1",
        dst: str = "10.0.0.2", v6: bool = False) -> bytes:
    """An Ethernet/IPv4 (or IPv6)/TCP segment."""
    frame = Ether(src=CLIENT_MAC, dst=SERVER_MAC) / _ip(src, dst, v6) / TCP(sport=sport, dport=dport, flags=flags)
    return bytes(frame / Raw(payload)) if payload else bytes(frame)


def icmp(*, src: str = "10.0.0.1", dst: str = "10.0.0.2") -> bytes:
    """An ICMP echo request over IPv4: IP traffic without a UDP or TCP header."""
    return bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(src=src, dst=dst) / ICMP())


def arp() -> bytes:
    """An ARP request: a frame without an IP header."""
    return bytes(Ether(src=CLIENT_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="10.0.0.2"))


def later_fragment(dport: int = 9000) -> bytes:
    """The second fragment of a UDP datagram: IPv4 with proto 17 but no UDP header (frag != 0)."""
    frame = Ether(src=CLIENT_MAC, dst=SERVER_MAC) / IP(src="10.0.0.1", dst="10.0.0.2", proto=17, frag=185)
    return bytes(frame / Raw(bytes([dport >> 8, dport & 0xFF]) * 8))


# ------------------------------------------------------------------------------------------ strategies

ipv4_addresses = st.one_of(st.sampled_from(["10.0.0.1", "10.0.0.2", "192.168.1.7", "0.0.0.0", "255.255.255.255"]),
                           st.ip_addresses(v=4).map(str))
ipv6_addresses = st.one_of(st.sampled_from(["fd00::1", "::1", "fe80::1"]), st.ip_addresses(v=6).map(str))


def biased_ports(*special: int) -> st.SearchStrategy[int]:
    """Ports, hitting `special` (the example's service ports) and a few well-known ones often."""
    return st.one_of(st.sampled_from([*special, 0, 22, 23, 53, 80, 443, 65535] if special else [0, 80, 65535]),
                     st.integers(0, 65535))


@st.composite
def l4_frames(draw: st.DrawFn, ports: st.SearchStrategy[int], payloads: st.SearchStrategy[bytes]) -> bytes:
    """Well-formed Ethernet/IPv4-or-IPv6/TCP-or-UDP (or ICMP/other protocol) frames, with IPv4 options,
    IPv4 fragments and TCP options now and then."""
    v6 = draw(st.booleans())
    proto = draw(st.sampled_from(["udp", "udp", "tcp", "tcp", "icmp", "other"]))
    payload = draw(payloads)
    if v6:
        l3: ScapyPacket = IPv6(src=draw(ipv6_addresses), dst=draw(ipv6_addresses), hlim=draw(st.integers(0, 255)))
    else:
        l3 = IP(src=draw(ipv4_addresses), dst=draw(ipv4_addresses), ttl=draw(st.integers(0, 255)),
                id=draw(st.integers(0, 0xFFFF)))
        if draw(st.integers(0, 9)) == 0:
            l3.options = [IPOption_NOP()] * draw(st.sampled_from([4, 8, 40]))
        if draw(st.integers(0, 9)) == 0:
            l3.frag = draw(st.sampled_from([1, 185, 0x1FFF]))
        if draw(st.integers(0, 9)) == 0:
            l3.flags = "MF"
    if proto == "udp":
        l4: ScapyPacket = UDP(sport=draw(ports), dport=draw(ports))
    elif proto == "tcp":
        l4 = TCP(sport=draw(ports), dport=draw(ports), flags=draw(st.integers(0, 0x1FF)),
                 seq=draw(st.integers(0, 2**32 - 1)))
        if draw(st.integers(0, 4)) == 0:
            l4.options = [("NOP", None)] * draw(st.sampled_from([4, 12, 40]))
    elif proto == "icmp":
        l4 = ICMP() if not v6 else Raw(b"\x80\x00\x00\x00")
        if v6:
            l3.nh = 58
    else:
        if v6:
            l3.nh = draw(st.sampled_from([0, 47, 59]))
        else:
            l3.proto = draw(st.sampled_from([0, 47, 132]))
        l4 = Raw(b"")
    frame = Ether(src=CLIENT_MAC, dst=SERVER_MAC) / l3 / l4
    if payload:
        frame = frame / Raw(payload)
    return bytes(frame)


@st.composite
def truncated(draw: st.DrawFn, frames: st.SearchStrategy[bytes]) -> bytes:
    """A frame cut short at any byte (keeping the 14 bytes the kernel's test run needs)."""
    frame = draw(frames)
    return frame[:draw(st.integers(MIN_FRAME, len(frame)))]


garbage_frames = st.binary(min_size=MIN_FRAME, max_size=128)
other_ethertype_frames = st.builds(
    lambda ethertype, body: bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC, type=ethertype) / Raw(body)),
    st.integers(0, 0xFFFF), st.binary(max_size=64))


@st.composite
def service_datagrams(draw: st.DrawFn, port: int, payloads: st.SearchStrategy[bytes],
                      direction: str = "both") -> bytes:
    """UDP datagrams to or from `port` (IPv4 or IPv6) carrying `payloads`: an example's own traffic,
    which random frames hit too rarely. `direction` is "to", "from" or "both"."""
    other = draw(biased_ports())
    inbound = direction == "to" or (direction == "both" and draw(st.booleans()))
    sport, dport = (other, port) if inbound else (port, other)
    v6 = draw(st.booleans())
    l3 = (IPv6(src=draw(ipv6_addresses), dst=draw(ipv6_addresses)) if v6
          else IP(src=draw(ipv4_addresses), dst=draw(ipv4_addresses)))
    return bytes(Ether(src=CLIENT_MAC, dst=SERVER_MAC) / l3 / UDP(sport=sport, dport=dport) / Raw(draw(payloads)))


def frames(ports: st.SearchStrategy[int] | None = None,
           payloads: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[bytes]:
    """Everything a program may be given: mostly well-formed TCP/UDP frames, plus truncated frames,
    garbage and frames of other ethertypes (ARP, VLAN, ...), all at least 14 bytes long."""
    ports = ports if ports is not None else biased_ports()
    payloads = payloads if payloads is not None else st.binary(max_size=200)
    good = l4_frames(ports, payloads)
    return st.one_of(good, good, good, truncated(good), garbage_frames, other_ethertype_frames,
                     st.just(arp()))


# -------------------------------------------------------------------------------------------- state

def state_objects(module: types.ModuleType) -> dict[str, StateObject]:
    """The example's state objects by variable name."""
    return {name: obj for name, obj in vars(module).items() if isinstance(obj, StateObject)}


def snapshot(module: types.ModuleType) -> dict[str, Any]:
    """Every state object's exact (raw) contents: a Global's raw value, a map's {key: value}."""
    out: dict[str, Any] = {}
    for name, obj in state_objects(module).items():
        if isinstance(obj, Global):
            out[name] = obj.raw_get()
        elif isinstance(obj, BpfMap):
            out[name] = {k: obj.raw_lookup(k) for k in obj.raw_keys()}
    return out


def restore(module: types.ModuleType, saved: dict[str, Any]) -> None:
    """Put back a `snapshot`."""
    for name, obj in state_objects(module).items():
        if isinstance(obj, Global):
            obj.raw_set(saved[name])
        elif isinstance(obj, BpfMap):
            for key in obj.raw_keys():
                if key not in saved[name]:
                    obj.raw_delete(key)
            for key, value in saved[name].items():
                obj.raw_update(key, value)


# ------------------------------------------------------------------------------------------ running

@dataclass(frozen=True)
class Outcome:
    """What one execution produced."""

    action: int
    packet: bytes
    state: dict[str, Any]


def run_kernel(loaded: Any, module: types.ModuleType, packet: bytes) -> Outcome:
    result = loaded.run(packet)
    return Outcome(result.action, result.packet, snapshot(module))


def run_python(program: Callable[[bytes], int], module: types.ModuleType, packet: bytes) -> Outcome:
    action = program(packet)
    return Outcome(int(action), packet, snapshot(module))  # programs never change the packet in Python


def kernel_and_python(loaded: Any, program: Callable[[bytes], int], module: types.ModuleType, packet: bytes,
                      python_context: Callable[[Outcome], contextlib.AbstractContextManager[Any]] | None = None,
                      ) -> tuple[Outcome, Outcome]:
    """Run `packet` in the kernel, then in Python from the same starting state.

    `python_context(kernel_outcome)` may give a context manager to run the Python side in, e.g. fixed
    random numbers chosen to make the same random decision the kernel made, or the clock reading the
    kernel recorded. Afterwards the state is the Python run's.
    """
    before = snapshot(module)
    in_kernel = run_kernel(loaded, module, packet)
    restore(module, before)
    ctx = python_context(in_kernel) if python_context is not None else contextlib.nullcontext()
    with ctx:
        in_python = run_python(program, module, packet)
    return in_kernel, in_python


def record(outcome: Outcome) -> None:
    """Label a hypothesis example with its action (shown by --hypothesis-show-statistics)."""
    event(f"action {outcome.action}")


def assert_same(in_kernel: Outcome, in_python: Outcome) -> None:
    assert in_kernel.action == in_python.action, f"action: kernel {in_kernel.action}, python {in_python.action}"
    assert in_kernel.packet == in_python.packet, "the kernel changed the packet"
    assert in_kernel.state == in_python.state


# ------------------------------------------------------------------------------------------- statistics

def binomial_interval(n: int, p: float, z: float = 3.2905) -> tuple[float, float]:
    """Bounds on the number of successes in `n` trials of probability `p` (normal approximation;
    z = 3.2905 is the two-sided 99.9% quantile)."""
    mean = n * p
    half = z * math.sqrt(n * p * (1 - p))
    return mean - half, mean + half
