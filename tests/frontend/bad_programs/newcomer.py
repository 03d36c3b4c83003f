"""Wrong programs a newcomer writes first: each is refused at its line with the rewrite that works.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py). Not meant to be imported by anything else.
"""
# ruff: noqa

from pybpfdsl import XDP_PASS, Global, HashMap, Packet, Struct, ip, u32, u64, xdp


class FlowKey(Struct):
    src: u32
    dst: u32


class FlowStats(Struct):
    packets: u64
    bytes: u64


flows = HashMap(FlowKey, FlowStats, 64)
stats = HashMap(u32, u64, 8)
hits = Global(u64, 0)


@xdp
def record_changed_in_place(pkt: Packet) -> int:
    st = flows.get(FlowKey(src=1, dst=2))
    if st is not None:
        st.packets += 1  # error: `st.packets` cannot be changed in place: a record is a value | hint: `m[key] = FlowStats(packets=..., bytes=st.bytes)`
    return XDP_PASS


@xdp
def payload_length(pkt: Packet) -> int:
    if len(pkt.payload) > 10:  # error: the payload has no length of its own | hint: `if pkt.payload[i] is None: break`
        return XDP_PASS
    return XDP_PASS


@xdp
def none_first(pkt: Packet) -> int:
    port = None  # error: None cannot be stored in a variable | hint: give port a number (`port = 0`)
    return XDP_PASS


@xdp
def string_map_key(pkt: Packet) -> int:
    stats["drops"] += 1  # error: expected a number, but `'drops'` is a string | hint: `DROPS = 0` at module level
    return XDP_PASS


@xdp
def hex_in_print(pkt: Packet) -> int:
    print("len", hex(pkt.len))  # error: hex() is Python's | hint: print("len", pkt.len)
    return XDP_PASS


@xdp
def two_things_returned(pkt: Packet) -> int:
    return XDP_PASS, 1  # error: is a tuple | hint: a program returns one action: `return XDP_PASS`


@xdp
def or_as_a_value(pkt: Packet) -> int:
    x = pkt.len or 5  # error: `pkt.len` is a u32: as a value, `or` gives a bool in the DSL | hint: write `pkt.len if pkt.len else 5`
    return XDP_PASS if x > 3 else XDP_PASS


@xdp
def and_as_a_value(pkt: Packet) -> int:
    x = pkt.len > 3 and pkt.len & 7  # error: `pkt.len & 7` is a u32: as a value, `and` | hint: `pkt.len & 7 != 0`
    return XDP_PASS if x else XDP_PASS


@xdp
def global_without_dot_value(pkt: Packet) -> int:
    if hits > 10:  # error: expected a number, but `hits` is the Global hits | hint: read its value: `hits.value`
        return XDP_PASS
    return XDP_PASS


@xdp
def a_prefix_as_an_address(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is not None and ip4.src == ip("10.0.0.0/8"):  # error: '10.0.0.0/8' is not an IPv4 address | hint: `ip4.src & 0xFF000000 == ip("10.0.0.0")`
        return XDP_PASS
    return XDP_PASS


@xdp
def loop_over_the_payload(pkt: Packet) -> int:
    for b in pkt.payload:  # error: cannot loop over the payload | hint: `for i in range(64):` with `b = pkt.payload[i]`
        pass
    return XDP_PASS


@xdp
def python_sum(pkt: Packet) -> int:
    total = sum((1, 2))  # error: sum() is Python's | hint: `for x in T: total += x`
    return XDP_PASS


@xdp
def add_to_a_lookup(pkt: Packet) -> int:
    c = stats.get(1)
    c += 1  # error: `+=` needs a number, c is a u64 value or None | hint: `if c is None: c = 0`
    return XDP_PASS


@xdp
def bytes_constant(pkt: Packet) -> int:
    magic = b"GET"  # error: the constant b'GET' is not supported (bytes) | hint: `pkt.payload[0] == 0x01`
    return XDP_PASS


@xdp
def print_a_header(pkt: Packet) -> int:
    print("ip", pkt.ipv4)  # error: expected a number, but `pkt.ipv4` is the ipv4 header or None | hint: `pkt.ipv4.version`, after checking it is not None
    return XDP_PASS
