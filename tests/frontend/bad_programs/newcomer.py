"""Wrong programs a newcomer writes first: each is refused at its line with the rewrite that works.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py). Not meant to be imported by anything else.
"""
# ruff: noqa

from pybpfdsl import XDP_PASS, HashMap, Packet, Struct, u32, u64, xdp


class FlowKey(Struct):
    src: u32
    dst: u32


class FlowStats(Struct):
    packets: u64
    bytes: u64


flows = HashMap(FlowKey, FlowStats, 64)
stats = HashMap(u32, u64, 8)


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
