"""The pure-Python packet model: what `pkt` is when a DSL function runs as plain Python.

`Packet` parses its bytes once, following the presence rules and layouts of `pybpfdsl.lang.headers`
(the same tables the compiler lowers from), so a program gives the same answers in Python and in the
kernel. A header that is not present is `None`; a present header is a `HeaderView` whose attributes are
the header's fields in host order (`pkt.ipv4.src`, `pkt.tcp.flags`).

A program may write header fields (`ip4.ttl -= 1`) and payload bytes: the packet's bytes change, and
the checksums covering a written field are updated (`lang.checksum`). The headers are not parsed again:
the fields that decide where they are cannot be written. `adjust_head` / `adjust_tail` move the packet's
start or end inside its frame (`lang.xdp_frame`) and parse every header afresh.

The offsets where parsing found each layer (`l3_offset`, `l4_offset`, `payload_offset`) are public:
the compiler's lowering computes the same numbers, and tests compare the two.
"""

from __future__ import annotations

from typing import Final, SupportsBytes, TypeVar

from pybpfdsl.lang.checksum import (
    CHECKSUM_OFFSET,
    PARSING_FIELDS,
    write_field_bytes,
    write_payload_byte,
    write_payload_bytes,
)
from pybpfdsl.lang.headers import (
    ETH,
    ETH_HLEN,
    ETH_P_IP,
    ETH_P_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV4,
    IPV6,
    MAX_PACKET_OFFSET,
    TCP,
    UDP,
    HeaderSpec,
    read_field,
)
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.xdp_frame import HEADROOM, moved

__all__ = ["HeaderView", "Packet", "PacketLike", "Payload", "payload_position"]

_S = TypeVar("_S", bound=Struct)

# Where L4 would start when an IPv4 header's ihl is below 5: the header is still "present" (the rules
# only ask for 20 bytes), but its length field is nonsense, so the payload starts after the fixed part.
_IPV4_MIN_IHL: Final = 5
_TCP_MIN_DATAOFS: Final = 5


PacketLike = bytes | bytearray | memoryview | SupportsBytes
"""What `Packet.from_any` (and the runtime's `run`) accept: raw bytes or anything with `__bytes__`."""


class HeaderView:
    """One present header: each field of its `HeaderSpec` as an int attribute, in host order.

    Field values are decoded when the packet is parsed and again after each write to the packet.
    Assigning a field (`view.ttl = 63`) writes the packet's bytes through `Packet.write_field`.
    Non-field information uses underscore names (`_spec`, `_offset`) because field names such as `len`
    and `type` would otherwise collide with it.
    """

    __slots__ = ("_offset", "_packet", "_spec", "_values")

    def __init__(self, spec: HeaderSpec, data: bytes | bytearray, offset: int, packet: Packet | None = None) -> None:
        """Decode `spec`'s fields from `data` at `offset`; the caller guarantees the bytes are there.
        `packet`, when given, is the packet the view writes to."""
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_offset", offset)
        object.__setattr__(self, "_packet", packet)
        self._decode(data)

    _spec: HeaderSpec
    _offset: int
    _packet: Packet | None
    _values: dict[str, int]

    def _decode(self, data: bytes | bytearray) -> None:
        values = {f.name: read_field(bytes(data), self._offset, f) for f in self._spec.fields}
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> int:
        # Only reached for names that are not slots: the header's fields.
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"header {self._spec.name!r} has no field {name!r} "
                f"(fields: {', '.join(self._values)})") from None

    def __setattr__(self, name: str, value: object) -> None:
        if self._packet is None:
            raise AttributeError(f"this header view is read-only (cannot set {self._spec.name}.{name})")
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{self._spec.name}.{name} is an int field, not {type(value).__name__}")
        self._packet.write_field(self, name, value)

    def as_dict(self) -> dict[str, int]:
        """Every field's value, by field name, in the header's declaration order."""
        return dict(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeaderView):
            return NotImplemented
        return self._spec is other._spec and self._values == other._values

    def __hash__(self) -> int:
        return hash((self._spec.name, tuple(self._values.items())))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v:#x}" if k in ("src", "dst") else f"{k}={v}"
                          for k, v in self._values.items())
        return f"<{self._spec.name} @{self._offset}: {inner}>"


def payload_position(start: int, length: int, index: int, width: int = 1) -> int | None:
    """The packet offset of the `width` bytes at payload index `index`, or None when any of them lies
    outside the payload. As in Python, a negative index counts from the payload's end (the packet's):
    `index` -k is the payload's k-th byte from its end, None when the payload holds fewer than k bytes.
    A payload starting at `start` in a packet of `length` bytes; a byte past offset `MAX_PACKET_OFFSET`
    (what the kernel verifier can bound) is never inside. The one rule of every execution: the compiler
    lowers it (`frontend.emit.packet_access`), pure Python calls it."""
    if index >= 0:
        if index > MAX_PACKET_OFFSET:
            return None
        pos = start + index
    else:
        pos = length + index
        if pos < start:
            return None
    if pos + width - 1 > MAX_PACKET_OFFSET or pos + width > length:
        return None
    return pos


class Payload:
    """The bytes after the innermost present header, addressed relative to that point; a negative index
    counts from the end, as for a Python sequence (`payload_position`).

    Reads never raise for out-of-range positions: they return `None`, which is what a DSL program
    tests for (`if b is not None`), and mirrors the bounds check the kernel requires.
    """

    __slots__ = ("_data", "_packet", "_start")

    def __init__(self, data: bytes | bytearray, start: int, packet: Packet | None = None) -> None:
        self._data = data
        self._start = start
        self._packet = packet  # the packet a write goes through (checksums), None: read-only

    @property
    def offset(self) -> int:
        """Where the payload starts in the packet (may lie beyond the packet's end)."""
        return self._start

    def __len__(self) -> int:
        """How many payload bytes the packet holds (0 when the headers claim more than is there)."""
        return max(0, len(self._data) - self._start)

    def position(self, index: int, width: int = 1) -> int | None:
        """The packet offset of the `width` bytes at payload index `index` (`payload_position`)."""
        return payload_position(self._start, len(self._data), index, width)

    def __getitem__(self, index: int) -> int | None:
        """The byte at payload index `index` (negative: from the end), or `None` if it is outside the
        payload."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"payload index must be an int, not {type(index).__name__}")
        pos = self.position(index)
        return None if pos is None else self._data[pos]

    def read(self, cls: type[_S], offset: int = 0) -> _S | None:
        """A `cls` record decoded big-endian from payload index `offset` (negative: from the end, so
        `read(T, -T.size())` is the last record), or `None` if any of its bytes lies outside the payload."""
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"payload offset must be an int, not {type(offset).__name__}")
        if not (isinstance(cls, type) and issubclass(cls, Struct)):
            raise TypeError(f"payload.read needs a Struct subclass, not {cls!r}")
        start = self.position(offset, cls.size())
        if start is None:
            return None
        record = cls.from_bytes(bytes(self._data[start:start + cls.size()]), "big")
        assert isinstance(record, cls)
        return record

    def __setitem__(self, index: int, value: int) -> None:
        """Write payload byte `index` (negative: from the end); a position outside the payload writes
        nothing, as the compiled program skips a write its bounds check fails."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"payload index must be an int, not {type(index).__name__}")
        if self._packet is None:
            raise TypeError("this payload is read-only")
        pos = self.position(index)
        if pos is not None:
            self._packet.write_payload_byte(pos, value)

    def write(self, offset: int, record: Struct) -> None:
        """Write `record`'s fields big-endian at payload index `offset` (negative: from the end; padding
        untouched); nothing when any of its bytes would lie outside the payload."""
        if self._packet is None:
            raise TypeError("this payload is read-only")
        start = self.position(offset, record.size())
        if start is None:
            return
        writes: list[tuple[int, int]] = []
        for f in record.fields():
            raw = int(getattr(record, f.name)) & ((1 << 8 * f.type.size) - 1)
            writes.extend((start + f.offset + j, b) for j, b in enumerate(raw.to_bytes(f.type.size, "big")))
        self._packet.write_payload_bytes(writes)

    def __bytes__(self) -> bytes:
        return bytes(self._data[self._start:])

    def __repr__(self) -> str:
        return f"<Payload @{self._start}: {len(self)} bytes>"


class Packet:
    """An immutable packet parsed like the compiled program parses it.

    Attributes: `len`; `eth`, `ipv4`, `ipv6`, `tcp`, `udp` (a `HeaderView` or `None`); `payload`;
    and the offsets `l3_offset`, `l4_offset` (`None` when that layer is absent) and `payload_offset`.
    """

    __slots__ = (
        "_before",
        "_buf",
        "_end",
        "_start",
        "eth",
        "ipv4",
        "ipv6",
        "l3_offset",
        "l4_offset",
        "offloaded_checksums",
        "payload",
        "payload_offset",
        "tcp",
        "udp",
    )

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        """Parse `data` (copied) according to the rules in `pybpfdsl.lang.headers`."""
        self._buf: bytearray = bytearray(data)
        self._before = bytearray(HEADROOM)  # the frame's bytes before the packet (`lang.xdp_frame`)
        self._start, self._end = 0, len(self._buf)  # where the packet is, from its original start
        self.offloaded_checksums: frozenset[str] = frozenset()
        """Headers whose checksums writes leave alone (`lang.checksum.offloaded`)."""
        self._parsed()

    def _parsed(self) -> None:
        """Parse the headers of the packet as it is now."""
        self.eth: HeaderView | None = None
        self.ipv4: HeaderView | None = None
        self.ipv6: HeaderView | None = None
        self.tcp: HeaderView | None = None
        self.udp: HeaderView | None = None
        self.l3_offset: int | None = None
        self.l4_offset: int | None = None
        self.payload_offset: int = self._parse(self._buf)
        self.payload: Payload = Payload(self._buf, self.payload_offset, self)

    def adjust_head(self, delta: int) -> bool:
        """Move the packet's start by `delta` bytes (negative: grow at the front, into the frame's
        headroom; positive: remove bytes from the front), as bpf_xdp_adjust_head does; False, and
        nothing moves, when the kernel would refuse (`lang.xdp_frame.moved`). Every header is parsed
        afresh."""
        where = moved(self._start, self._end, delta, head=True)
        if where is None:
            self._parsed()
            return False
        shift = where[0] - self._start
        if shift < 0:
            grown = self._before[len(self._before) + shift:]
            del self._before[len(self._before) + shift:]
            self._buf[:0] = grown
        else:
            self._before += self._buf[:shift]
            del self._buf[:shift]
        self._start, self._end = where
        self._parsed()
        return True

    def adjust_tail(self, delta: int) -> bool:
        """Move the packet's end by `delta` bytes (negative: trim; positive: grow, with zero bytes), as
        bpf_xdp_adjust_tail does; False, and nothing moves, when the kernel would refuse. Every header
        is parsed afresh."""
        where = moved(self._start, self._end, delta, head=False)
        if where is None:
            self._parsed()
            return False
        change = where[1] - self._end
        if change < 0:
            del self._buf[len(self._buf) + change:]
        else:
            self._buf += bytes(change)
        self._start, self._end = where
        self._parsed()
        return True

    def _parse(self, raw: bytearray) -> int:
        """Fill in the headers and layer offsets; return where the payload starts."""
        size = len(raw)
        if size < ETH.length:
            return 0
        self.eth = HeaderView(ETH, raw, 0, self)
        ethertype = self.eth.type
        l3 = ETH_HLEN
        l4: int
        proto: int
        if ethertype == ETH_P_IP and size >= l3 + IPV4.length:
            self.ipv4 = ip = HeaderView(IPV4, raw, l3, self)
            self.l3_offset = l3
            ihl = ip.ihl
            l4 = l3 + (ihl * 4 if ihl >= _IPV4_MIN_IHL else IPV4.length)
            # Later fragments carry no L4 header; a bad ihl makes the L4 position meaningless.
            if ihl < _IPV4_MIN_IHL or ip.frag != 0:
                return l4
            proto = ip.proto
        elif ethertype == ETH_P_IPV6 and size >= l3 + IPV6.length:
            self.ipv6 = ip6 = HeaderView(IPV6, raw, l3, self)
            self.l3_offset = l3
            l4 = l3 + IPV6.length
            proto = ip6.nh  # extension headers are deliberately not followed
        else:
            return ETH_HLEN
        if proto == IPPROTO_TCP and size >= l4 + TCP.length:
            tcp = HeaderView(TCP, raw, l4, self)
            if tcp.dataofs >= _TCP_MIN_DATAOFS:
                self.tcp = tcp
                self.l4_offset = l4
                return l4 + tcp.dataofs * 4
        elif proto == IPPROTO_UDP and size >= l4 + UDP.length:
            self.udp = HeaderView(UDP, raw, l4, self)
            self.l4_offset = l4
            return l4 + UDP.length
        return l4

    @classmethod
    def from_any(cls, packet: PacketLike | Packet) -> Packet:
        """A `Packet` from bytes, bytearray, memoryview, a `Packet` (returned as is) or anything with
        `__bytes__` (a scapy packet); `TypeError` otherwise."""
        if isinstance(packet, Packet):
            return packet
        if isinstance(packet, bytes | bytearray | memoryview):
            return cls(packet)
        if not isinstance(packet, SupportsBytes):
            raise TypeError(f"cannot make a packet from {type(packet).__name__}: "
                            "pass bytes or an object with __bytes__ (e.g. a scapy packet)")
        return cls(bytes(packet))

    @property
    def data(self) -> bytes:
        """The packet's bytes as they are now (after the program's writes)."""
        return bytes(self._buf)

    def headers(self) -> list[HeaderView]:
        """The present headers, outermost first."""
        return [v for v in (self.eth, self.ipv4, self.ipv6, self.tcp, self.udp) if v is not None]

    def write_field(self, view: HeaderView, name: str, value: int, update_checksums: bool = True) -> None:
        """Set field `name` of `view` (a header of this packet) to `value` (cut to the field's width)
        and update the checksums covering it (`lang.checksum`; unless not `update_checksums`: a move
        that keeps their sums); every view is decoded again."""
        spec = view._spec.field(name)
        if spec is None:
            raise AttributeError(f"header {view._spec.name!r} has no field {name!r}")
        if (view._spec.name, name) in PARSING_FIELDS:
            raise AttributeError(f"{view._spec.name}.{name} decides where the headers are; it cannot be written")
        checksums = {v._spec.name: v._offset for v in self.headers()
                     if v._spec.name in CHECKSUM_OFFSET and v._spec.name not in self.offloaded_checksums
                     and update_checksums}
        write_field_bytes(self._buf, view._spec, view._offset, spec, value, checksums)
        self._decoded()

    def write_payload_byte(self, pos: int, value: int) -> None:
        """Set the byte at `pos` (in the packet) and update the TCP or UDP checksum covering it."""
        checksums = {v._spec.name: v._offset for v in (self.tcp, self.udp)
                     if v is not None and v._spec.name not in self.offloaded_checksums}
        write_payload_byte(self._buf, pos, value, checksums)
        self._decoded()

    def write_payload_bytes(self, writes: list[tuple[int, int]]) -> None:
        """Set bytes (position, value) and update the TCP or UDP checksum covering them, once."""
        checksums = {v._spec.name: v._offset for v in (self.tcp, self.udp)
                     if v is not None and v._spec.name not in self.offloaded_checksums}
        write_payload_bytes(self._buf, writes, checksums)
        self._decoded()

    def _decoded(self) -> None:
        for v in self.headers():
            v._decode(self._buf)

    @property
    def len(self) -> int:
        """The packet's length in bytes."""
        return len(self.data)

    def __len__(self) -> int:
        return len(self._buf)

    def __bytes__(self) -> bytes:
        return bytes(self._buf)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return self.data == other.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        layers = [name for name in ("eth", "ipv4", "ipv6", "tcp", "udp") if getattr(self, name) is not None]
        return f"<Packet {len(self._buf)} bytes: {'/'.join(layers) or 'no headers'}, " \
               f"payload @{self.payload_offset}>"
