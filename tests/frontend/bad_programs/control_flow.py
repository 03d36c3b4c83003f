"""Wrong programs: loops, match, and values that control flow leaves undefined.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py). (`break` outside a loop cannot be written: Python
itself rejects it when the module is compiled.)
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, Packet, bounded, u32, xdp

PORTS = (80, 443)


@xdp
def unbounded_while(pkt: Packet) -> int:
    i = 0
    while i < pkt.len:  # error: a `while` loop needs a bound the compiler can see | hint: write `while bounded(i < pkt.len, N):` with N the most iterations you allow
        i += 1
    return XDP_PASS


@xdp
def while_bound_not_constant(pkt: Packet) -> int:
    i = 0
    while bounded(i < 10, pkt.len):  # error: the bound must be a constant between 1 and 1048576
        i += 1
    return XDP_PASS


@xdp
def while_else(pkt: Packet) -> int:
    i = 0
    while bounded(i < 10, 10):  # error: `while ... else` is not supported
        i += 1
    else:
        i = 0
    return XDP_PASS


@xdp
def range_with_runtime_bound(pkt: Packet) -> int:
    total = 0
    for i in range(pkt.len):  # error: range bounds must be integer constants | hint: `break`
        total += i
    return XDP_PASS


@xdp
def range_too_long(pkt: Packet) -> int:
    for i in range(10_000_000):  # error: this loop runs 10000000 times | hint: smaller range
        pass
    return XDP_PASS


@xdp
def range_that_cannot_load(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(400_000):  # error: so it can never load | hint: spread the work over several packets
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def range_with_zero_step(pkt: Packet) -> int:
    for i in range(0, 10, 0):  # error: range() step cannot be zero
        pass
    return XDP_PASS


@xdp
def loop_over_a_number(pkt: Packet) -> int:
    for b in pkt.len:  # error: cannot loop over a u32 value | hint: constant tuple
        pass
    return XDP_PASS


@xdp
def loop_over_a_runtime_tuple(pkt: Packet) -> int:
    for n in (1, pkt.len):  # error: tuples must be constant
        pass
    return XDP_PASS


@xdp
def loop_with_two_variables(pkt: Packet) -> int:
    for port, weight in ((80, 1), (443, 2)):  # error: the loop variable must be a single name | hint: `for port in PORTS:`
        pass
    return XDP_PASS


@xdp
def for_else(pkt: Packet) -> int:
    for port in PORTS:  # error: `for ... else` is not supported
        pass
    else:
        return XDP_DROP
    return XDP_PASS


@xdp
def header_reassigned_in_loop(pkt: Packet) -> int:
    hdr = pkt.udp
    for i in range(2):  # error: hdr holds the udp header or None and is reassigned inside the loop
        hdr = pkt.udp
    return XDP_PASS


@xdp
def match_with_capture_pattern(pkt: Packet) -> int:
    match pkt.len:
        case n:  # error: only integer constants, `|` alternatives and `_` are supported as case patterns | hint: case 80 | 443:
            return XDP_DROP
    return XDP_PASS


@xdp
def match_with_float_pattern(pkt: Packet) -> int:
    match pkt.len:
        case 1.5:  # error: a case value must be an integer constant
            return XDP_DROP
    return XDP_PASS


@xdp
def match_on_a_float(pkt: Packet) -> int:
    match pkt.len * 0.5:  # error: `match` works on integers, not a float value
        case 1:
            return XDP_DROP
    return XDP_PASS


@xdp
def not_defined_on_every_path(pkt: Packet) -> int:
    if pkt.len > 100:
        limit = 10
    n = limit + 1  # error: limit is not defined on every path that reaches here | hint: before the branch
    return XDP_PASS


@xdp
def loop_variable_after_loop(pkt: Packet) -> int:
    for i in range(4):
        pass
    n = i  # error: i is not defined on every path
    return XDP_PASS


@xdp
def constant_tuple_runtime_index(pkt: Packet) -> int:
    port = PORTS[pkt.len]  # error: a constant tuple needs a constant index within its length
    return XDP_PASS


@xdp
def in_on_a_number(pkt: Packet) -> int:
    if 6 in pkt.len:  # error: `in` needs a map or a constant tuple, not a u32 value
        return XDP_DROP
    return XDP_PASS
