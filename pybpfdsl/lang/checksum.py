"""Header field writes and the checksums they keep valid, as data and as the pure-Python reference.

A field write changes the 16-bit words that hold the field (the field's bytes rounded out to even
offsets from its header's start: checksums sum words aligned that way). Every checksum covering those
words is updated incrementally, RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), one's-complement sums over each
old word m and new word m'. The compiler emits the same steps (`frontend.emit.packet_writes`), so the
four executions give the same bytes.

Which checksums cover a field:
- the IPv4 header checksum: every IPv4 field but `chksum` itself;
- the TCP or UDP checksum (when that header is present): every field of it but `chksum`, and the
  pseudo-header's addresses, `ipv4.src`/`dst` and `ipv6.src_hi`/`src_lo`/`dst_hi`/`dst_lo`.
A payload byte is covered by the TCP or UDP checksum (where that header is present): it is the high or
low half of its word as its offset is even or odd (headers start at even offsets).
A UDP checksum of 0 means "none" and stays 0; an update giving 0 is sent as 0xFFFF (RFC 768). Writing a
`chksum` field sets it as written, with no update. A program whose NIC fills in some checksums (offload)
names their headers in a module-level constant `CHECKSUM_OFFLOAD = ("tcp", "udp")` beside its @xdp
function: those checksums are left alone (`offloaded`).

A multiple assignment that only moves a header's fields among themselves (`ip4.src, ip4.dst = ip4.dst,
ip4.src`; ports; MAC addresses), each to a field of the same width, place in its word and checksums,
leaves every one's-complement sum as it was, so it updates no checksum (`sums_unchanged`): the bytes a C
program swapping addresses for a reflector sends. (Updating word by word would give the same checksum
except where it is 0xFFFF or 0, which the fold would turn into the other.)

Fields that decide where headers are (`PARSING_FIELDS`) cannot be written: the program parsed the
packet once, at entry, and its header views would no longer match the bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from pybpfdsl.lang.headers import FieldSpec, HeaderSpec

__all__ = ["PARSING_FIELDS", "Region", "checksum_fold", "covering", "region_of", "sums_unchanged", "updated_checksum",
           "write_field_bytes", "write_payload_byte", "write_payload_bytes"]

PARSING_FIELDS: Final[frozenset[tuple[str, str]]] = frozenset({
    ("eth", "type"), ("ipv4", "ihl"), ("ipv4", "proto"), ("ipv4", "frag"), ("ipv6", "nh"), ("tcp", "dataofs"),
})
"""(header, field) pairs a program may not assign: the parse that found the headers read them."""

CHECKSUM_OFFSET: Final[dict[str, int]] = {"ipv4": 10, "tcp": 16, "udp": 6}
"""Where each checksum lies in its header."""

OFFLOAD_NAME: Final = "CHECKSUM_OFFLOAD"
"""The module-level constant naming the headers whose checksums a program leaves to the NIC."""


def offloaded(namespace: Mapping[str, object]) -> frozenset[str]:
    """The headers `namespace` (an @xdp function's module globals) leaves the checksums of to the NIC;
    ValueError when its `CHECKSUM_OFFLOAD` is not a tuple of "ipv4", "tcp", "udp"."""
    names = namespace.get(OFFLOAD_NAME, ())
    if isinstance(names, str) or not isinstance(names, tuple | list | set | frozenset) or not all(
            name in CHECKSUM_OFFSET for name in names):
        raise ValueError(f"{OFFLOAD_NAME} must be a tuple of header names from "
                         f"{', '.join(map(repr, CHECKSUM_OFFSET))}, not {names!r}")
    return frozenset(names)

_PSEUDO_HEADER: Final = frozenset({("ipv4", "src"), ("ipv4", "dst"), ("ipv6", "src_hi"), ("ipv6", "src_lo"),
                                   ("ipv6", "dst_hi"), ("ipv6", "dst_lo")})


def covering(header: str, field: str) -> tuple[str, ...]:
    """The headers whose checksums cover `header.field`, in update order ("tcp" and "udp" each apply
    only where that header is present)."""
    if field == "chksum":
        return ()
    out: list[str] = []
    if header == "ipv4":
        out.append("ipv4")
    if header in ("tcp", "udp"):
        out.append(header)
    if (header, field) in _PSEUDO_HEADER:
        out.extend(("tcp", "udp"))
    return tuple(out)


@dataclass(frozen=True)
class Region:
    """The bytes a field write rewrites: `size` bytes at `offset` in the header (whole 16-bit words when a
    checksum may cover them), and where the field's bits sit in them, as a big-endian integer."""

    offset: int
    size: int
    shift: int
    mask: int

    def replace(self, old: int, value: int) -> int:
        """The region's new contents: `old` with the field's bits set to `value` (cut to the field)."""
        return (old & ~(self.mask << self.shift)) | ((value & self.mask) << self.shift)

    def words(self, contents: int) -> list[int]:
        """The region's 16-bit words, most significant first."""
        return [(contents >> (16 * k)) & 0xFFFF for k in reversed(range(self.size // 2))]


def region_of(spec: FieldSpec, word_aligned: bool) -> Region:
    """The region a write of `spec` rewrites (whole words when `word_aligned`)."""
    start, end = spec.offset, spec.offset + spec.size
    if word_aligned:
        start, end = start & ~1, (end + 1) & ~1
    mask = spec.mask if spec.mask is not None else (1 << 8 * spec.size) - 1
    return Region(start, end - start, 8 * (end - spec.offset - spec.size) + spec.shift, mask)


def sums_unchanged(header: str, moves: Sequence[tuple[FieldSpec, FieldSpec]]) -> bool:
    """Whether assigning each (target, source) of `moves` at once, every target of `header` getting its
    source's old value, is a permutation of the fields' values that keeps every checksum's sum: the
    targets are the sources in another order, and each source has the same width, position in its
    16-bit word and covering checksums as the target it moves to."""
    targets, sources = [t.name for t, _ in moves], [s.name for _, s in moves]
    if len(set(targets)) != len(targets) or sorted(targets) != sorted(sources):
        return False
    return all(covering(header, t.name) == covering(header, s.name) and t.type == s.type
               and _shape(region_of(t, True)) == _shape(region_of(s, True)) for t, s in moves)


def _shape(region: Region) -> tuple[int, int, int]:
    return region.size, region.shift, region.mask


def checksum_fold(total: int) -> int:
    """A sum of 16-bit words folded to 16 bits with end-around carries (twice covers any 32-bit sum)."""
    total = (total & 0xFFFF) + (total >> 16)
    return (total & 0xFFFF) + (total >> 16)


def updated_checksum(old_checksum: int, old_words: list[int], new_words: list[int], udp: bool) -> int:
    """RFC 1624 eqn. 3 over every changed word; a UDP checksum of 0 (none) stays 0."""
    if udp and old_checksum == 0:
        return 0
    total = (~old_checksum & 0xFFFF) + sum(~w & 0xFFFF for w in old_words) + sum(new_words)
    new = ~checksum_fold(total) & 0xFFFF
    return 0xFFFF if udp and new == 0 else new


def write_field_bytes(buf: bytearray, header: HeaderSpec, offset: int, spec: FieldSpec, value: int,
                      checksums: dict[str, int]) -> None:
    """Write `value` into field `spec` of `header` (at `offset` in `buf`) and update the checksums that
    cover it; `checksums` gives, for each present header with a checksum, where that header starts."""
    covers = [name for name in covering(header.name, spec.name) if name in checksums]
    region = region_of(spec, word_aligned=bool(covers))
    at = offset + region.offset
    old = int.from_bytes(buf[at:at + region.size], "big")
    new = region.replace(old, value)
    buf[at:at + region.size] = new.to_bytes(region.size, "big")
    for name in covers:
        cs = checksums[name] + CHECKSUM_OFFSET[name]
        hc = int.from_bytes(buf[cs:cs + 2], "big")
        hc = updated_checksum(hc, region.words(old), region.words(new), udp=name == "udp")
        buf[cs:cs + 2] = hc.to_bytes(2, "big")


def write_payload_byte(buf: bytearray, pos: int, value: int, checksums: dict[str, int]) -> None:
    """Write byte `value` at `pos` (inside `buf`), updating the TCP or UDP checksum if present."""
    old, new = buf[pos], value & 0xFF
    buf[pos] = new
    shift = 0 if pos & 1 else 8
    for name in ("tcp", "udp"):
        if name in checksums:
            cs = checksums[name] + CHECKSUM_OFFSET[name]
            hc = int.from_bytes(buf[cs:cs + 2], "big")
            hc = updated_checksum(hc, [old << shift], [new << shift], udp=name == "udp")
            buf[cs:cs + 2] = hc.to_bytes(2, "big")


def write_payload_bytes(buf: bytearray, writes: list[tuple[int, int]], checksums: dict[str, int]) -> None:
    """Write each (position, byte) of `writes` (all inside `buf`), then update the TCP or UDP checksum
    once over all of them (`payload.write` of a record)."""
    old_words: list[int] = []
    new_words: list[int] = []
    for pos, value in writes:
        shift = 0 if pos & 1 else 8
        old_words.append(buf[pos] << shift)
        new_words.append((value & 0xFF) << shift)
        buf[pos] = value & 0xFF
    for name in ("tcp", "udp"):
        if name in checksums:
            cs = checksums[name] + CHECKSUM_OFFSET[name]
            hc = int.from_bytes(buf[cs:cs + 2], "big")
            hc = updated_checksum(hc, old_words, new_words, udp=name == "udp")
            buf[cs:cs + 2] = hc.to_bytes(2, "big")
