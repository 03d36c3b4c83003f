"""Wrong programs: calls of programs, plain functions, @inline helpers and built-ins.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py). Errors found inside an @inline helper are reported at
the helper's line, so their markers name the program: `# error(program): ...`.
"""
# ruff: noqa
from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, Packet, bounded, inline, ip, randint, random, u32, xdp


def plain_python(x: int) -> int:
    return x + 1


@xdp
def _other_program(pkt: Packet) -> int:
    return XDP_PASS


@inline
def countdown(n: u32) -> u32:
    if n == 0:
        return 0
    return countdown(n - 1)  # error(recursive_helper): countdown calls itself; recursion cannot be inlined | hint: loop


@inline
def double(x) -> u32:  # error(unannotated_helper_parameter): parameter `x` of helper double needs a type annotation
    return x * 2


@inline
def clamp(x: u32) -> u32:
    if x > 100:  # error(helper_missing_return): helper clamp can reach its end without returning
        return 100


@inline
def no_return_annotation(x: u32):  # error(helper_without_return_annotation): helper no_return_annotation needs a return annotation | hint: -> u32
    return x


@inline
def log_only(x: u32) -> None:
    return x  # error(helper_declared_none_returns_value): declared `-> None` but returns a value


@inline
def with_default(x: u32 = 1) -> u32:  # error(helper_with_default_argument): an @inline helper takes plain positional parameters only | hint: remove it from the `def`
    return x


@inline
def scaled(x: u32, unknown: Fooo) -> u32:  # error(helper_parameter_type_unknown): unknown name `Fooo`
    return x


@inline
def wants_packet(p: Packet) -> u32:
    return p.len


@xdp
def calls_another_program(pkt: Packet) -> int:
    return _other_program(pkt)  # error: _other_program is an @xdp program; programs cannot call each other | hint: @inline


@xdp
def recursive_helper(pkt: Packet) -> int:
    n = countdown(3)
    return XDP_PASS


@xdp
def unannotated_helper_parameter(pkt: Packet) -> int:
    n = double(pkt.len)
    return XDP_PASS


@xdp
def helper_missing_return(pkt: Packet) -> int:
    n = clamp(pkt.len)
    return XDP_PASS


@xdp
def helper_without_return_annotation(pkt: Packet) -> int:
    n = no_return_annotation(pkt.len)
    return XDP_PASS


@xdp
def helper_declared_none_returns_value(pkt: Packet) -> int:
    log_only(pkt.len)
    return XDP_PASS


@xdp
def helper_parameter_type_unknown(pkt: Packet) -> int:
    n = scaled(pkt.len, 2)
    return XDP_PASS


@xdp
def helper_with_default_argument(pkt: Packet) -> int:
    n = with_default(pkt.len)
    return XDP_PASS


@xdp
def helper_given_too_many_arguments(pkt: Packet) -> int:
    n = countdown(1, 2)  # error: countdown takes 1 arguments, 2 given
    return XDP_PASS


@xdp
def helper_given_a_number_for_the_packet(pkt: Packet) -> int:
    n = wants_packet(pkt.len)  # error: parameter `p` expects the packet, got a u32 value
    return XDP_PASS


@xdp
def calls_plain_python_function(pkt: Packet) -> int:
    n = plain_python(pkt.len)  # error: plain_python is a plain Python function; a DSL function can call only @inline helpers | hint: add `@inline`
    return XDP_PASS


@xdp
def calls_print(pkt: Packet) -> int:
    print(pkt.len, sep=",")  # error: print takes only the values to show | hint: separated by spaces
    return XDP_PASS


@xdp
def range_outside_for(pkt: Packet) -> int:
    r = range(4)  # error: range() can only be used as `for i in range(...)`
    return XDP_PASS


@xdp
def bounded_outside_while(pkt: Packet) -> int:
    if bounded(pkt.len > 10, 4):  # error: bounded() can only be used as `while bounded(cond, N):`
        return XDP_DROP
    return XDP_PASS


@xdp
def random_with_an_argument(pkt: Packet) -> int:
    if random(10) < 0.5:  # error: random() takes no arguments
        return XDP_DROP
    return XDP_PASS


@xdp
def randint_empty_range(pkt: Packet) -> int:
    n = randint(10, 1)  # error: randint(10, 1) needs lo <= hi
    return XDP_PASS


@xdp
def ip_of_a_bad_address(pkt: Packet) -> int:
    addr = ip("10.0.0.256")  # error: '10.0.0.256' is not an IPv4 address
    return XDP_PASS


@xdp
def ip_of_a_runtime_value(pkt: Packet) -> int:
    addr = ip(pkt.len)  # error: ip() takes a constant string
    return XDP_PASS


@xdp
def min_of_one_value(pkt: Packet) -> int:
    n = min(pkt.len)  # error: min() takes two or more numbers
    return XDP_PASS


@xdp
def star_arguments(pkt: Packet) -> int:
    n = max(*(1, 2))  # error: `*args` and `**kwargs` are not supported in calls
    return XDP_PASS
