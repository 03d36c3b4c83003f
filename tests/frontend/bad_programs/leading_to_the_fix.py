"""Wrong programs whose messages say what to write instead (issue 16 §6): the hint leads to the fix.

Each function below is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

import math
import random
import time

from pybpfdsl import XDP_DROP, XDP_PASS, HashMap, Packet, u8, u32, u64, xdp
from pybpfdsl.lang.lpm_trie import LpmTrie

counts = HashMap(u32, u64, max_entries=16)
acl6 = LpmTrie("ipv6", u8, max_entries=16)


@xdp
def wall_clock(pkt: Packet) -> int:
    t = time.time()  # error: time.time() cannot be called in a DSL function | hint: now_ns()
    return XDP_PASS


@xdp
def address_as_text(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is not None and ip4.src == "10.0.0.1":  # error: is a string | hint: `ip("10.0.0.1")`
        return XDP_DROP
    return XDP_PASS


@xdp
def payload_slice(pkt: Packet) -> int:
    head = pkt.payload[0:4]  # error: slices (`pkt.payload[0:4]`) are not supported | hint: pkt.payload.read(Header, 0)
    return XDP_PASS


@xdp
def tuple_key(pkt: Packet) -> int:
    n = counts.get((pkt.len, 1), 0)  # error: a key of counts cannot be a tuple | hint: declare a Struct key
    return XDP_PASS


@xdp
def matrix_operator_on_a_header_field(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is not None:
        ip4.ttl @= 2  # error: `@=` is not an operator of the DSL | hint: + - * / // % & | ^ << >>
    return XDP_PASS


@xdp
def power_in_place(pkt: Packet) -> int:
    n = pkt.len
    n **= 2  # error: `**=` is not supported | hint: multiply explicitly: `x *= x`
    return XDP_PASS


@xdp
def true_division_in_place_of_an_integer(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is not None:
        ip4.ttl /= 2  # error: `/=` is not supported | hint: `x //= y` divides integers
    return XDP_PASS


@xdp
def ipv6_address_as_a_number(pkt: Packet) -> int:
    ip6 = pkt.ipv6
    if ip6 is not None and ip6.src == 1:  # error: the DSL reads `src` as its halves `src_hi` and `src_lo` | hint: acl6.get(ip6.src, 0)
        return XDP_DROP
    return XDP_PASS


@xdp
def ipv4_address_into_an_ipv6_trie(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is not None and acl6.get(ip4.src, 0) == 1:  # error: the keys of acl6 are Ip6Prefix records | hint: an IPv6 header's address (`ip6.src`
        return XDP_DROP
    return XDP_PASS


@xdp
def ipv6_address_of_an_unchecked_header(pkt: Packet) -> int:
    if acl6.get(pkt.ipv6.src, 0) == 1:  # error: `pkt.ipv6` may be None here | hint: if pkt.ipv6 is None
        return XDP_DROP
    return XDP_PASS


@xdp
def python_random(pkt: Packet) -> int:
    if random.random() < 0.5:  # error: random.random() is Python's, which a DSL function cannot call | hint: `random()` (from pybpfdsl)
        return XDP_DROP
    return XDP_PASS


@xdp
def python_rounding(pkt: Packet) -> int:
    half = round(pkt.len * 0.5)  # error: round() is Python's | hint: `i64(x)` truncates a float toward zero
    return XDP_PASS


@xdp
def python_floor(pkt: Packet) -> int:
    half = math.floor(pkt.len * 0.5)  # error: math.floor() is Python's | hint: `i64(x)` truncates
    return XDP_PASS


@xdp
def formatted_string(pkt: Packet) -> int:
    print(f"len {pkt.len}")  # error: f-strings are not supported | hint: `print("len", pkt.len)`
    return XDP_PASS

