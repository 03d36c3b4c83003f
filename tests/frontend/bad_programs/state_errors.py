"""Wrong programs: state objects (Global, HashMap, Array) used in ways the DSL rejects.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, Array, Global, HashMap, Packet, RingBuf, Struct, inline, u16, u32, u64, xdp


class Flow(Struct):
    addr: u32
    port: u16


counts = HashMap(u32, u64, max_entries=1024)
flows = HashMap(Flow, u64, max_entries=1024)
last_flow = HashMap(u32, Flow, max_entries=16)
slots = Array(u64, 8)
total = Global(u64, 0)


def _make_bump():  # a helper whose closure holds a *different* Global that is also called `total`
    total = Global(u64, 0)

    @inline
    def bump() -> None:
        total.value += 1  # error(two_state_objects_with_one_name): two different state objects are both called total

    return bump


bump = _make_bump()


@xdp
def hash_map_indexed(pkt: Packet) -> int:
    n = counts[pkt.len]  # error: `counts[key]` on a hash map has no value when the key is missing | hint: counts.get(key, 0)
    return XDP_PASS


@xdp
def float_key(pkt: Packet) -> int:
    n = counts.get(pkt.len * 0.5, 0)  # error: the keys of counts are u32, not floats | hint: `u32(...)`
    return XDP_PASS


@xdp
def struct_key_for_int_map(pkt: Packet) -> int:
    n = counts.get(Flow(1, 2), 0)  # error: expected a number, but `Flow(1, 2)` is a Flow record
    return XDP_PASS


@xdp
def int_key_for_struct_map(pkt: Packet) -> int:
    n = flows.get(pkt.len, 0)  # error: the keys of flows are Flow records, not a u32 value | hint: Flow(...)
    return XDP_PASS


@xdp
def delete_from_array(pkt: Packet) -> int:
    del slots[0]  # error: elements of the Array slots cannot be deleted | hint: store a zero value
    return XDP_PASS


@xdp
def two_state_objects_with_one_name(pkt: Packet) -> int:
    total.value += 1
    bump()
    return XDP_PASS


@xdp
def unknown_map_method(pkt: Packet) -> int:
    n = counts.pop(1)  # error: HashMap has no method `pop` in a DSL function | hint: m.get(k, default)
    return XDP_PASS


@xdp
def iterate_a_map(pkt: Packet) -> int:
    for k in counts.keys():  # error: iterating a map inside the program is not supported | hint: from Python
        pass
    return XDP_PASS


@xdp
def augmented_assignment_on_records(pkt: Packet) -> int:
    last_flow[0] += 1  # error: the values of last_flow are records; `+=` needs numbers
    return XDP_PASS


@xdp
def record_into_integer_map(pkt: Packet) -> int:
    counts[1] = Flow(1, 2)  # error: expected a number, but `Flow(1, 2)` is a Flow record
    return XDP_PASS


@xdp
def float_into_integer_global(pkt: Packet) -> int:
    total.value = pkt.len * 1.5  # error: a float cannot be stored in a u64 silently
    return XDP_PASS


@xdp
def global_indexed(pkt: Packet) -> int:
    n = total[0]  # error: the Global total cannot be indexed
    return XDP_PASS


@xdp
def map_stored_in_variable(pkt: Packet) -> int:
    m = counts  # error: the HashMap counts cannot be stored in a variable
    return XDP_PASS


@xdp
def optional_value_as_condition(pkt: Packet) -> int:
    if counts.get(1):  # error: the truth of a u64 value or None is ambiguous | hint: counts.get(1) is not None
        return XDP_DROP
    return XDP_PASS


@xdp
def unknown_record_field(pkt: Packet) -> int:
    f = Flow(addr=1, proto=6)  # error: Flow has no field `proto` | hint: fields: addr, port
    return XDP_PASS


@xdp
def assign_to_record_field(pkt: Packet) -> int:
    f = Flow(1, 2)
    f.port = 80  # error: `f.port` cannot be changed in place: a record is a value | hint: build a new one and store it where it came from
    return XDP_PASS


class Event(Struct):
    addr: u32
    port: u16


events = RingBuf(Event, 64 * 1024)


@xdp
def ring_buffer_of_the_wrong_record(pkt: Packet) -> int:
    events.output(Flow(1, 2))  # error: events holds Event records, not a Flow record | hint: events.output(Event(...))
    return XDP_PASS


@xdp
def ring_buffer_of_a_record_not_checked(pkt: Packet) -> int:
    r = pkt.payload.read(Event, 0)
    events.output(r)  # error: not a Event record or None | hint: `if r is not None: ...`
    return XDP_PASS


@xdp
def ring_buffer_polled_in_program(pkt: Packet) -> int:
    got = events.poll()  # error: RingBuf has no method `poll` in a DSL function | hint: from Python with `events.poll()`
    return XDP_PASS
