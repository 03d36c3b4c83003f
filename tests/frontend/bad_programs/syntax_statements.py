"""Wrong programs: signatures, returns, and statements and expressions the DSL does not support.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py). Not meant to be imported by anything else.
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, u64, xdp

hits = Global(u64, 0)


@xdp
def no_parameter() -> int:  # error: takes exactly one parameter, the packet | hint: def no_parameter(pkt: Packet) -> int:
    return XDP_PASS


@xdp
def two_parameters(pkt: Packet, port: int) -> int:  # error: takes exactly one parameter
    return XDP_PASS


@xdp
def missing_return_on_a_path(pkt: Packet) -> int:
    if pkt.len > 100:
        return XDP_DROP
    hits.value += 1  # error: can reach its end without returning an action | hint: return XDP_PASS


@xdp
def returns_a_non_action(pkt: Packet) -> int:
    return 7  # error: 7 is not an XDP action | hint: XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX or XDP_REDIRECT


@xdp
def returns_nothing(pkt: Packet) -> int:
    return  # error: an @xdp function must return an action | hint: return XDP_PASS


@xdp
def returns_a_float(pkt: Packet) -> int:
    return 2.0  # error: an action must be an integer, not a float value


@xdp
def try_statement(pkt: Packet) -> int:
    try:  # error: exceptions are not supported | hint: return an action
        hits.value += 1
    except OverflowError:
        return XDP_DROP
    return XDP_PASS


@xdp
def with_statement(pkt: Packet) -> int:
    with open("/dev/null"):  # error: `with` is not supported
        pass
    return XDP_PASS


@xdp
def assert_statement(pkt: Packet) -> int:
    assert pkt.len > 14  # error: `assert` is not supported | hint: return XDP_ABORTED
    return XDP_PASS


@xdp
def global_statement(pkt: Packet) -> int:
    global hits  # error: `global` is not supported | hint: Global(...)
    return XDP_PASS


@xdp
def nested_def(pkt: Packet) -> int:
    def helper(x: int) -> int:  # error: functions and classes cannot be defined inside | hint: @inline
        return x
    return XDP_PASS


@xdp
def class_statement(pkt: Packet) -> int:
    class Local:  # error: functions and classes cannot be defined inside
        pass
    return XDP_PASS


@xdp
def import_statement(pkt: Packet) -> int:
    import os  # error: imports belong at module level
    return XDP_PASS


@xdp
def lambda_expression(pkt: Packet) -> int:
    double = lambda x: 2 * x  # error: lambda is not supported | hint: @inline helper
    return XDP_PASS


@xdp
def walrus(pkt: Packet) -> int:
    if (n := pkt.len) > 100:  # error: the walrus operator `:=` is not supported | hint: own line
        return XDP_DROP
    return XDP_PASS


@xdp
def list_literal(pkt: Packet) -> int:
    ports = [80, 443]  # error: lists are not supported | hint: HashMap, Array
    return XDP_PASS


@xdp
def dict_literal(pkt: Packet) -> int:
    weights = {80: 1, 443: 2}  # error: dicts are not supported
    return XDP_PASS


@xdp
def list_comprehension(pkt: Packet) -> int:
    squares = [i * i for i in range(4)]  # error: list comprehensions are not supported
    return XDP_PASS


@xdp
def f_string(pkt: Packet) -> int:
    label = f"len={pkt.len}"  # error: f-strings are not supported
    return XDP_PASS


@xdp
def chained_assignment(pkt: Packet) -> int:
    a = b = pkt.len  # error: chained assignment `a = b = ...` is not supported | hint: own line
    return XDP_PASS


PAIR = (1, 2)


@xdp
def unpacking_a_tuple_name(pkt: Packet) -> int:
    a, b = PAIR  # error: unpacking assignment needs the values written out as a tuple | hint: a, b = PAIR[0], PAIR[1]
    return XDP_PASS


@xdp
def unpacking_too_few_values(pkt: Packet) -> int:
    a, b, c = 1, 2  # error: 3 names but 2 values to unpack | hint: one value per name
    return XDP_PASS


@xdp
def unpacking_a_local_and_a_global(pkt: Packet) -> int:
    a = 0
    a, hits.value = 1, 2  # error: assigns either local variables (`a, b = b, a`) or header fields | hint: one per line
    return XDP_PASS


@xdp
def unpacking_a_starred_value(pkt: Packet) -> int:
    a, b = *PAIR, 3  # error: unpacking assignment needs the values written out as a tuple
    return XDP_PASS


@xdp
def expression_statement(pkt: Packet) -> int:
    pkt.len + 1  # error: this expression statement has no effect
    return XDP_PASS


@xdp
def delete_a_local(pkt: Packet) -> int:
    n = pkt.len
    del n  # error: only map entries can be deleted
    return XDP_PASS


@xdp
def packet_copied_into_variable(pkt: Packet) -> int:
    other = pkt  # error: the packet cannot be copied into a variable | hint: use the parameter
    return XDP_PASS
