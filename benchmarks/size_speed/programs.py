"""What the benchmark measures: each DSL program, its C twin and the packets that take it down each path.

A `Benchmark` names the program (the same function name in both objects), where the DSL program lives,
the C twin's file under `c/`, one packet per path (in the order they are sent; state carries over), the
hot-path packet (the common case, timed and counted), and the state both objects start from (globals and
map entries written before the first packet, so short sequences reach the drop paths).
"""

from __future__ import annotations

import importlib
import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.size_speed import packets as P
from pybpfdsl.lang.fixed import from_float
from pybpfdsl.program import XdpProgram

HERE = Path(__file__).resolve().parent
C_DIR = HERE / "c"

SERVICE_PORT = 9000
RPC_PORT = 7000
POD = "10.1.0.7"
"""The pod vlan_tagging tags (VLAN 42)."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    """The program's name: the DSL function and the C twin's SEC("xdp") function."""
    dsl: str
    """`module:attribute` of the `@xdp` program."""
    packets: tuple[tuple[str, bytes], ...]
    hot: str
    """Label of the hot-path packet."""
    globals_init: dict[str, int] = field(default_factory=dict)
    """Global variable -> value (its raw integer, Q32.32 for floats) written into both objects first."""
    map_init: tuple[tuple[str, bytes, bytes], ...] = ()
    """(map, key, value) entries written into both objects first."""
    kernel_volatile: tuple[str, ...] = ()
    """State the kernel run leaves depending on its clock or random numbers (not compared there)."""
    random_counter: str | None = None
    """For programs that call random(): the counter compared statistically between the two kernels."""
    timing_globals: dict[str, int] = field(default_factory=dict)
    """Globals written before the timed runs, so hundreds of thousands of runs of the hot packet stay
    on its path (a bucket that never empties, a breaker that never opens)."""

    @property
    def c_file(self) -> Path:
        return C_DIR / f"{self.name}.c"

    def program(self) -> XdpProgram:
        module, attr = self.dsl.split(":")
        prog = getattr(importlib.import_module(module), attr)
        assert isinstance(prog, XdpProgram)
        return prog

    def hot_packet(self) -> bytes:
        return dict(self.packets)[self.hot]


def _fx(value: float) -> int:
    return from_float(value)


REQ = bytes([1])  # aRPC request
RESP = bytes([2])  # aRPC successful response
ERR = bytes([3])  # aRPC error response


def _rpc(magic: int = 0x5250, version: int = 1, method: int = 1) -> bytes:
    return struct.pack(">HBBI", magic, version, method, 42)


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("admission_control", "examples.admission_control:admission_control", (
        ("tcp", P.tcp4(SERVICE_PORT)),
        ("udp no payload", P.udp4(SERVICE_PORT)),
        ("response", P.udp4(50000, sport=SERVICE_PORT, payload=RESP)),
        ("error response", P.udp4(50000, sport=SERVICE_PORT, payload=ERR)),
        ("request", P.udp4(SERVICE_PORT, payload=REQ)),
        ("request 2", P.udp4(SERVICE_PORT, payload=REQ)),
        ("request 3", P.udp4(SERVICE_PORT, payload=REQ)),
        ("response kind to service", P.udp4(SERVICE_PORT, payload=RESP)),
        ("request 4", P.udp4(SERVICE_PORT, payload=REQ)),
        ("request 5", P.udp4(SERVICE_PORT, payload=REQ)),
        ("request6", P.udp6(SERVICE_PORT, payload=REQ)),
    ), hot="request", kernel_volatile=("rejected",), random_counter="rejected",
        timing_globals={"successes": _fx(1e9)}),
    Benchmark("bandwidth_limiter", "examples.bandwidth_limiter:bandwidth_limiter", (
        ("arp", P.arp()),
        ("udp", P.udp4(53, payload=bytes(100))),
        ("tcp", P.tcp4(80)),
        ("udp6 (no tokens left)", P.udp6(53, payload=bytes(100))),
        ("icmp", P.icmp4()),
    ), hot="udp", globals_init={"bytes_per_sec": _fx(1.0), "burst_bytes": _fx(250.0), "byte_tokens": _fx(250.0)},
        kernel_volatile=("byte_tokens", "last_refill_ns"),
        timing_globals={"bytes_per_sec": _fx(1e9), "burst_bytes": _fx(1e9), "byte_tokens": _fx(1e9)}),
    Benchmark("circuit_breaker", "examples.circuit_breaker:circuit_breaker", (
        ("tcp", P.tcp4(SERVICE_PORT)),
        ("request", P.udp4(SERVICE_PORT)),
        ("request 2", P.udp4(SERVICE_PORT)),
        ("request 3 (rejected)", P.udp4(SERVICE_PORT)),
        ("response", P.udp4(50000, sport=SERVICE_PORT)),
        ("response 2", P.udp4(50000, sport=SERVICE_PORT)),
        ("response 3 (none pending)", P.udp4(50000, sport=SERVICE_PORT)),
        ("other udp", P.udp4(53)),
    ), hot="request", globals_init={"max_pending": 1}, timing_globals={"max_pending": 1 << 62}),
    Benchmark("fault_injection", "examples.fault_injection:fault_injection", (
        ("arp", P.arp()),
        ("icmp", P.icmp4()),
        *((f"udp {i}", P.udp4(53)) for i in range(4)),
        *((f"tcp6 {i}", P.tcp6(80)) for i in range(4)),
    ), hot="udp 0", kernel_volatile=("injected_faults",), random_counter="injected_faults"),
    Benchmark("logging_counters", "examples.logging_counters:logging_counters", (
        ("udp", P.udp4(53, payload=bytes(16))),
        ("tcp", P.tcp4(80)),
        ("udp6", P.udp6(8080, payload=b"hello")),
        ("tcp6", P.tcp6(443)),
        ("arp", P.arp()),
        ("icmp", P.icmp4()),
        ("later fragment", P.fragment4(53)),
    ), hot="udp"),
    Benchmark("per_source_counters", "examples.per_source_counters:per_source_counters", (
        ("udp from a", P.udp4(53, src="10.0.0.1")),
        ("tcp from b", P.tcp4(80, src="10.0.0.7")),
        ("udp from a again", P.udp4(53, src="10.0.0.1", payload=bytes(10))),
        ("icmp from b", P.icmp4(src="10.0.0.7")),
        ("udp6", P.udp6(53)),
        ("arp", P.arp()),
    ), hot="udp from a"),
    Benchmark("port_acl_filter", "examples.port_acl:port_acl_filter", (
        ("tcp :23 (denied)", P.tcp4(23)),
        ("udp :53 (not listed)", P.udp4(53)),
        ("udp :80 (allowed)", P.udp4(80)),
        ("udp6 :23 (denied)", P.udp6(23)),
        ("arp", P.arp()),
    ), hot="udp :53 (not listed)",
        map_init=(("port_acl", struct.pack("<H", 23), b"\x01"), ("port_acl", struct.pack("<H", 80), b"\x00"))),
    Benchmark("rate_limiter", "examples.rate_limiter:rate_limiter", (
        ("arp", P.arp()),
        ("udp", P.udp4(53)),
        ("tcp", P.tcp4(80)),
        ("udp (no tokens left)", P.udp4(53)),
    ), hot="udp", globals_init={"rate_per_sec": _fx(1.0), "burst": _fx(2.0), "tokens": _fx(2.0)},
        kernel_volatile=("tokens", "last_refill_ns"),
        timing_globals={"rate_per_sec": _fx(1e9), "burst": _fx(1e9), "tokens": _fx(1e9)}),
    Benchmark("rpc_filter", "examples.rpc_filter:rpc_filter", (
        ("tcp", P.tcp4(RPC_PORT)),
        ("udp other port", P.udp4(53, payload=_rpc())),
        ("short", P.udp4(RPC_PORT, payload=b"RP\x01")),
        ("bad magic", P.udp4(RPC_PORT, payload=_rpc(magic=0x1234))),
        ("bad version", P.udp4(RPC_PORT, payload=_rpc(version=2))),
        ("blocked method", P.udp4(RPC_PORT, payload=_rpc(method=5))),
        ("good request", P.udp4(RPC_PORT, payload=_rpc(method=1))),
    ), hot="good request", map_init=(("blocked_methods", b"\x05", b"\x01"),)),
    Benchmark("vlan_tagging", "examples.vlan_tagging:vlan_tagging", (
        ("pod frame (tagged, to the trunk)", P.udp4(53, src=POD)),
        ("tagged, this node's vlan (untagged)", P.vlan4(42, prio=5)),
        ("tagged again (untagged, counted)", P.vlan4(42)),
        ("tagged, another vlan", P.vlan4(7)),
        ("unlisted source", P.udp4(53, src="10.9.9.9")),
        ("short tag", P.short_tag()),
        ("tcp6", P.tcp6(80)),
        ("arp", P.arp()),
    ), hot="pod frame (tagged, to the trunk)", globals_init={"trunk": 1, "priority": 5},
        map_init=(("vlan_of_pod", struct.pack("<I", int(ipaddress.IPv4Address(POD))), struct.pack("<H", 42)),
                  ("local_vlans", struct.pack("<H", 42), b"\x01"))),
    Benchmark("simplebpf_logging", "benchmarks.size_speed.dsl.simplebpf_logging:simplebpf_logging", (
        ("request", P.udp4(SERVICE_PORT, payload=bytes(32))),
        ("other udp", P.udp4(53)),
        ("tcp", P.tcp4(SERVICE_PORT)),
        ("arp", P.arp()),
    ), hot="request"),
    Benchmark("simplebpf_logging_fault",
              "benchmarks.size_speed.dsl.simplebpf_logging_fault:simplebpf_logging_fault", (
        ("other udp", P.udp4(53)),
        ("tcp", P.tcp4(SERVICE_PORT)),
        *((f"request {i}", P.udp4(SERVICE_PORT, payload=bytes(32))) for i in range(8)),
    ), hot="request 0", kernel_volatile=("fl_dropped",), random_counter="fl_dropped"),
    Benchmark("simplebpf_fault_optimizable",
              "benchmarks.size_speed.dsl.simplebpf_fault_optimizable:simplebpf_fault_optimizable", (
        ("other udp", P.udp4(53)),
        ("low port", P.udp4(80)),
        ("tcp", P.tcp4(SERVICE_PORT)),
        *((f"request {i}", P.udp6(SERVICE_PORT)) for i in range(8)),
    ), hot="request 0", kernel_volatile=("fo_faults",), random_counter="fo_faults"),
)

RANDOM_VALUES = (0x10000000, 5, 0xFFFFFFFF, 4080218931, 4080218932, 0x80000000, 0xF3333333, 0xFFFFFFF0)
"""What random() returns in the interpreter comparison, in turn: both sides of the 0.95 threshold."""
