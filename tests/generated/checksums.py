"""Internet checksums computed from scratch, an oracle for packet writes independent of the four executions
(which could all update a checksum the same wrong way): `with_valid_checksums` makes a frame's IPv4 header
checksum and TCP/UDP checksum correct, and `invalid_checksums` names those that were correct before a
program ran and are not after it.

Only untruncated frames are judged (the IP length fields match the bytes present), the layouts the
generator makes: Ethernet, IPv4 (with options) or IPv6 without extension headers, then TCP or UDP.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


def ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@dataclass(frozen=True)
class _Layout:
    ip_start: int
    ip_header_len: int  # 0 for IPv6 (no header checksum)
    l4_start: int
    l4_len: int
    proto: int
    pseudo: bytes  # the pseudo-header without its length and protocol


def _layout(frame: bytes) -> _Layout | None:
    """Where the checksummed parts are, for an untruncated IPv4/IPv6 frame carrying TCP or UDP."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800 and len(frame) >= 34:
        ihl = (frame[14] & 0xF) * 4
        total = struct.unpack_from("!H", frame, 16)[0]
        frag = struct.unpack_from("!H", frame, 20)[0] & 0x1FFF
        if frame[14] >> 4 != 4 or ihl < 20 or total != len(frame) - 14 or total < ihl or frag:
            return None
        return _Layout(14, ihl, 14 + ihl, total - ihl, frame[23], frame[26:34])
    if ethertype == 0x86DD and len(frame) >= 54:
        plen = struct.unpack_from("!H", frame, 18)[0]
        if frame[14] >> 4 != 6 or plen != len(frame) - 54:
            return None
        return _Layout(14, 0, 54, plen, frame[20], frame[22:54])
    return None


def _l4_checksum_offset(frame: bytes, layout: _Layout) -> int | None:
    if layout.proto == 6 and layout.l4_len >= 20 and frame[layout.l4_start + 12] >> 4 >= 5:
        return layout.l4_start + 16  # (the DSL sees no TCP header below a data offset of 5)
    if layout.proto == 17 and layout.l4_len >= 8:
        return layout.l4_start + 6
    return None


def _l4_sum(frame: bytes, layout: _Layout) -> int:
    pseudo = layout.pseudo + struct.pack("!HH", layout.proto, layout.l4_len)
    return ones_complement_sum(pseudo + frame[layout.l4_start:layout.l4_start + layout.l4_len])


def with_valid_checksums(frame: bytes) -> bytes:
    """`frame` with its IPv4 header checksum and TCP/UDP checksum made correct (unchanged where it has
    neither, or is truncated)."""
    layout = _layout(frame)
    if layout is None:
        return frame
    data = bytearray(frame)
    if layout.ip_header_len:
        data[24:26] = b"\0\0"
        struct.pack_into("!H", data, 24, ~ones_complement_sum(bytes(data[14:14 + layout.ip_header_len])) & 0xFFFF)
    at = _l4_checksum_offset(frame, layout)
    if at is not None:
        data[at:at + 2] = b"\0\0"
        value = ~_l4_sum(bytes(data), layout) & 0xFFFF
        struct.pack_into("!H", data, at, value or 0xFFFF if layout.proto == 17 else value)
    return bytes(data)


def _valid(frame: bytes) -> dict[str, bool]:
    layout = _layout(frame)
    if layout is None:
        return {}
    out: dict[str, bool] = {}
    if layout.ip_header_len:
        out["ipv4"] = ones_complement_sum(frame[14:14 + layout.ip_header_len]) == 0xFFFF
    at = _l4_checksum_offset(frame, layout)
    if at is not None:
        name = "tcp" if layout.proto == 6 else "udp"
        stored = struct.unpack_from("!H", frame, at)[0]
        out[name] = stored == 0 if name == "udp" and stored == 0 else _l4_sum(frame, layout) == 0xFFFF
        if name == "udp":
            out["udp none"] = stored == 0
    return out


def invalid_checksums(before: bytes, after: bytes) -> list[str]:
    """The checksums valid in `before` and not in `after` (the same frame after a program); a UDP
    checksum of 0 ("none") must stay 0."""
    was, now = _valid(before), _valid(after)
    bad = [name for name in ("ipv4", "tcp", "udp") if was.get(name) and now.get(name) is False]
    if was.get("udp none") and now.get("udp none") is False:
        bad.append("udp (was 0, none)")
    return bad


def changed_checksums(before: bytes, after: bytes, names: tuple[str, ...]) -> list[str]:
    """Of the checksums `names` ("ipv4", "tcp", "udp"), those whose field `after` holds another value than
    `before` (the same frame after a program whose writes must leave offloaded checksums alone)."""
    layout = _layout(before)
    if layout is None or len(after) != len(before):
        return []
    fields: dict[str, int] = {}
    if layout.ip_header_len:
        fields["ipv4"] = 14 + 10
    at = _l4_checksum_offset(before, layout)
    if at is not None:
        fields["tcp" if layout.proto == 6 else "udp"] = at
    return [name for name in names if name in fields and before[fields[name]:fields[name] + 2] !=
            after[fields[name]:fields[name] + 2]]
