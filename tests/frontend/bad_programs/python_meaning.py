"""Wrong programs where Python's meaning is kept, or refused with what to write: `== None`, `while`
loops whose iterations the compiler cannot count.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py). Not meant to be imported by anything else.
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, HashMap, LpmTrie, Packet, Struct, inline, u8, u32, xdp

counts = HashMap(u32, u32, 16)


@xdp
def equal_to_none(pkt: Packet) -> int:
    if pkt.payload[0] == None:  # error: compare with None using `is` or `is not`, not `==` | hint: write `pkt.payload[0] is None`
        return XDP_DROP
    return XDP_PASS


@xdp
def lookup_not_equal_to_none(pkt: Packet) -> int:
    if None != counts.get(1):  # error: compare with None using `is` | hint: write `counts.get(1) is not None`
        return XDP_DROP
    return XDP_PASS


@xdp
def optional_ordered(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b < 0x45:  # error: `b` may be None here | hint: if b is None: return XDP_PASS
        return XDP_DROP
    return XDP_PASS


@xdp
def while_stepped_twice(pkt: Packet) -> int:
    i: u32 = 0
    while i < 10:  # error: counts the iterations only of a loop like `while i < 10:` | hint: write `while bounded(i < 10, N):`
        i += 1
        if pkt.len > 100:
            i += 1
    return XDP_PASS


@xdp
def while_continue_before_step(pkt: Packet) -> int:
    i: u32 = 0
    while i < 10:  # error: whose body steps `i` by a constant once per iteration | hint: while bounded(i < 10, N)
        if pkt.payload[i] == 0:
            continue
        i += 1
    return XDP_PASS


@xdp
def while_wraps_first(pkt: Packet) -> int:
    i: u8 = 0
    while i < 300:  # error: a `while` loop needs a bound the compiler can see | hint: after N the loop ends as if `i < 300` were false
        i += 1
    return XDP_PASS


@xdp
def while_moving_away(pkt: Packet) -> int:
    i: u32 = 5
    while i > 0:  # error: a `while` loop needs a bound the compiler can see | hint: while bounded(i > 0, N)
        i += 1
    return XDP_PASS


class Pair(Struct):
    a: u32
    b: u32


pairs = HashMap(u32, Pair, 16)


@inline
def _use_pair(p: Pair) -> u32:
    return p.a


@xdp
def helper_gets_unchecked_record(pkt: Packet) -> int:
    r = pairs.get(1)
    if _use_pair(r) > 0:  # error: parameter `p` expects a Pair, got a Pair record or None | hint: check it first: `if r is None: return XDP_PASS`
        return XDP_DROP
    return XDP_PASS


acl = LpmTrie(u32, u32, 16)


@xdp
def lpm_trie_in_place(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    acl[ip4.src] += 1  # error: `+=` on the LpmTrie acl is ambiguous | hint: `acl[Ip4Prefix(8, 10, 0, 0, 0)] = acl.get(ip4.src, 0) + n`
    return XDP_PASS
