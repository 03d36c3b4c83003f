"""Packet header layouts and the parsing rules, as data.

One table serves the pure-Python packet model and the compiler's lowering, so both agree on where every
field is and when a header counts as present. Field names follow scapy; values are in host byte order
(the wire's big-endian bytes decoded).

Presence rules (documented in docs/language.md, "Packets"):
- `eth`: the packet holds 14 bytes.
- `ipv4`: `eth.type == 0x0800` and 20 bytes of IPv4 header. `ipv6`: `eth.type == 0x86DD` and 40 bytes.
- `tcp`/`udp`: over IPv4 with `ihl >= 5`, first fragment (`frag == 0`) and `proto` 6/17; over IPv6 when
  `nh` is 6/17 (extension headers are not followed); the fixed header (20/8 bytes) is in the packet; for
  TCP also `dataofs >= 5`.
- The payload starts after the innermost present header (TCP options skipped via `dataofs`, IPv4 options
  via `ihl`). VLAN tags are not parsed: a tagged frame has `eth` only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from pybpfdsl.lang.types import ScalarType, u8, u16, u32, u64


@dataclass(frozen=True)
class FieldSpec:
    """A header field: `size` big-endian bytes at `offset`, then `(value >> shift) & mask` if masked."""

    name: str
    offset: int
    size: int
    type: ScalarType
    shift: int = 0
    mask: int | None = None


class Layer(enum.Enum):
    L2 = 2
    L3 = 3
    L4 = 4


@dataclass(frozen=True)
class HeaderSpec:
    """A header the DSL knows: its fixed length and fields."""

    name: str
    layer: Layer
    length: int
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


ETH_P_IP: Final = 0x0800
ETH_P_IPV6: Final = 0x86DD
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
ETH_HLEN: Final = 14
# No packet access starts beyond this offset: the kernel verifier bounds variable packet offsets so that
# offset + access width stays within 0xFFFF, and XDP packets are at most a page, so nothing is lost.
MAX_PACKET_OFFSET: Final = 0x7FFF

ETH: Final = HeaderSpec("eth", Layer.L2, 14, (
    FieldSpec("dst", 0, 6, u64),
    FieldSpec("src", 6, 6, u64),
    FieldSpec("type", 12, 2, u16),
))
IPV4: Final = HeaderSpec("ipv4", Layer.L3, 20, (
    FieldSpec("version", 0, 1, u8, shift=4, mask=0xF),
    FieldSpec("ihl", 0, 1, u8, mask=0xF),
    FieldSpec("tos", 1, 1, u8),
    FieldSpec("len", 2, 2, u16),
    FieldSpec("id", 4, 2, u16),
    FieldSpec("flags", 6, 2, u16, shift=13, mask=0x7),
    FieldSpec("frag", 6, 2, u16, mask=0x1FFF),
    FieldSpec("ttl", 8, 1, u8),
    FieldSpec("proto", 9, 1, u8),
    FieldSpec("chksum", 10, 2, u16),
    FieldSpec("src", 12, 4, u32),
    FieldSpec("dst", 16, 4, u32),
))
IPV6: Final = HeaderSpec("ipv6", Layer.L3, 40, (
    FieldSpec("version", 0, 1, u8, shift=4, mask=0xF),
    FieldSpec("tc", 0, 2, u16, shift=4, mask=0xFF),
    FieldSpec("fl", 0, 4, u32, mask=0xFFFFF),
    FieldSpec("plen", 4, 2, u16),
    FieldSpec("nh", 6, 1, u8),
    FieldSpec("hlim", 7, 1, u8),
    FieldSpec("src_hi", 8, 8, u64),
    FieldSpec("src_lo", 16, 8, u64),
    FieldSpec("dst_hi", 24, 8, u64),
    FieldSpec("dst_lo", 32, 8, u64),
))
UDP: Final = HeaderSpec("udp", Layer.L4, 8, (
    FieldSpec("sport", 0, 2, u16),
    FieldSpec("dport", 2, 2, u16),
    FieldSpec("len", 4, 2, u16),
    FieldSpec("chksum", 6, 2, u16),
))
TCP: Final = HeaderSpec("tcp", Layer.L4, 20, (
    FieldSpec("sport", 0, 2, u16),
    FieldSpec("dport", 2, 2, u16),
    FieldSpec("seq", 4, 4, u32),
    FieldSpec("ack", 8, 4, u32),
    FieldSpec("dataofs", 12, 1, u8, shift=4, mask=0xF),
    FieldSpec("flags", 12, 2, u16, mask=0x1FF),
    FieldSpec("window", 14, 2, u16),
    FieldSpec("chksum", 16, 2, u16),
    FieldSpec("urgptr", 18, 2, u16),
))

HEADERS: Final = {h.name: h for h in (ETH, IPV4, IPV6, UDP, TCP)}
L4_PROTOCOLS: Final = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP}
L3_ETHERTYPES: Final = {"ipv4": ETH_P_IP, "ipv6": ETH_P_IPV6}

# TCP flag bits as scapy names them, for `tcp.flags & TCP_SYN`.
TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_PSH: Final = 0x08
TCP_ACK: Final = 0x10
TCP_URG: Final = 0x20


def read_field(data: bytes, header_offset: int, spec: FieldSpec) -> int:
    """Decode one field from bytes known to hold the header (the pure-Python reference)."""
    start = header_offset + spec.offset
    raw = int.from_bytes(data[start:start + spec.size], "big")
    raw >>= spec.shift
    if spec.mask is not None:
        raw &= spec.mask
    return raw
