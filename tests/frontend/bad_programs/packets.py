"""Wrong programs: packet access (headers that may be absent, unknown fields, writes, payload reads).

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, Packet, Struct, u16, u32, xdp


class Rpc(Struct):
    magic: u32
    method: u16


@xdp
def field_without_none_check(pkt: Packet) -> int:
    if pkt.ipv4.src == 0x0A000001:  # error: `pkt.ipv4` may be None here | hint: if pkt.ipv4 is None: return XDP_PASS
        return XDP_DROP
    return XDP_PASS


@xdp
def ethernet_without_none_check(pkt: Packet) -> int:
    kind = pkt.eth.type  # error: `pkt.eth` may be None here (the packet may have no eth header)
    return XDP_PASS


@xdp
def local_header_without_none_check(pkt: Packet) -> int:
    tcp = pkt.tcp
    port = tcp.dport  # error: `tcp` may be None here | hint: if tcp is None
    return XDP_PASS


@xdp
def unknown_header_field(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    addr = ip4.saddr  # error: the ipv4 header has no field `saddr` | hint: src, dst
    return XDP_PASS


@xdp
def unknown_packet_attribute(pkt: Packet) -> int:
    tag = pkt.vlan  # error: the packet has no attribute `vlan` | hint: pkt.len, pkt.eth
    return XDP_PASS


@xdp
def payload_byte_in_arithmetic(pkt: Packet) -> int:
    total = pkt.payload[0] + 1  # error: `pkt.payload[0]` may be None here | hint: is None
    return XDP_PASS


@xdp
def payload_byte_as_condition(pkt: Packet) -> int:
    if pkt.payload[0]:  # error: the truth of a u8 value or None is ambiguous | hint: is not None
        return XDP_DROP
    return XDP_PASS


@xdp
def payload_index_is_float(pkt: Packet) -> int:
    b = pkt.payload[1.5]  # error: a payload index must be an integer, not float
    return XDP_PASS


@xdp
def record_from_payload_without_check(pkt: Packet) -> int:
    rpc = pkt.payload.read(Rpc, 0)
    if rpc.magic == 0xCAFE:  # error: `rpc` may be None here
        return XDP_DROP
    return XDP_PASS


@xdp
def payload_read_of_a_scalar_type(pkt: Packet) -> int:
    word = pkt.payload.read(u32, 0)  # error: the first argument of read() must be a Struct class
    return XDP_PASS


@xdp
def payload_read_without_offset(pkt: Packet) -> int:
    rpc = pkt.payload.read(Rpc)  # error: write `pkt.payload.read(StructType, offset)`
    return XDP_PASS


@xdp
def assign_to_a_parsing_field(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.proto = 17  # error: ipv4.proto decides where the packet's headers are | hint: parses the packet once
    return XDP_TX


@xdp
def assign_a_constant_too_wide(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.ttl = 300  # error: 300 does not fit in u8 | hint: wrap it on purpose
    return XDP_TX


@xdp
def assign_a_constant_too_wide_for_its_bits(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.flags = 8  # error: 8 does not fit `ip4.flags`, a 3-bit field | hint: from 0 to 7
    return XDP_TX


@xdp
def assign_a_float_to_a_field(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.ttl = 1.5  # error: a float cannot be stored in a u8 silently | hint: convert explicitly
    return XDP_TX


@xdp
def update_a_field_with_a_float(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.ttl -= 0.5  # error: `-=` with a float would truncate silently | hint: convert explicitly
    return XDP_TX


@xdp
def assign_to_a_field_of_an_absent_header(pkt: Packet) -> int:
    pkt.tcp.dport = 80  # error: `pkt.tcp` may be None here | hint: if pkt.tcp is None
    return XDP_TX


@xdp
def write_a_number_as_a_record(pkt: Packet) -> int:
    pkt.payload.write(0, 5)  # error: payload.write writes a record, not | hint: build one
    return XDP_PASS


@xdp
def update_a_header_in_place(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4 += 1  # error: `+=` needs a number, ip4 is
    return XDP_TX


@xdp
def assign_to_packet_length(pkt: Packet) -> int:
    pkt.len = 64  # error: cannot assign to `pkt.len`
    return XDP_PASS


@xdp
def len_of_the_packet(pkt: Packet) -> int:
    n = len(pkt)  # error: len() is not supported | hint: pkt.len
    return XDP_PASS


@xdp
def header_used_as_a_number(pkt: Packet) -> int:
    n = pkt.tcp + 1  # error: expected a number, but `pkt.tcp` is the tcp header or None
    return XDP_PASS


@xdp
def header_from_before_a_move(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    pkt.adjust_head(20)
    return udp.dport  # error: udp was parsed before the packet moved | hint: read the header from `pkt` again


@xdp
def move_by_a_float(pkt: Packet) -> int:
    if pkt.adjust_head(1.5):  # error: the delta of adjust_head() is a whole number of bytes
        return XDP_DROP
    return XDP_PASS
