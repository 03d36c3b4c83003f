"""Wrong programs: a name the function assigns is local in all of it (Python's rule), so reading it before
an assignment is Python's UnboundLocalError, even when a module-level name of that spelling exists.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, inline, u32, u64, xdp

count = 0
LIMIT = 5
hits = Global(u64, 0)


@xdp
def module_counter_incremented(pkt: Packet) -> int:
    count = count + 1  # error: count is read before it is assigned | hint: `count.value += 1`
    return XDP_PASS


@xdp
def module_counter_augmented(pkt: Packet) -> int:
    count += 1  # error: (Python's rule: reading it first raises UnboundLocalError) | hint: Global(u64, 0)
    if count > LIMIT:
        return XDP_DROP
    return XDP_PASS


@xdp
def read_before_a_later_assignment(pkt: Packet) -> int:
    if pkt.len > LIMIT:
        x = count  # error: count is read before it is assigned | hint: give count a value before this line
        return XDP_DROP
    count = 3
    return XDP_PASS


@xdp
def global_augmented_without_value(pkt: Packet) -> int:
    hits += 1  # error: hits is read before it is assigned | hint: write `hits.value += 1`
    return XDP_PASS


@xdp
def local_without_module_name(pkt: Packet) -> int:
    total = total + pkt.len  # error: total is read before it is assigned | hint: give total a value before this line
    return XDP_PASS


@inline
def bump_in_helper(n: u32) -> u32:
    count += n  # error(helper_counter): count is read before it is assigned | hint: count.value += 1
    return n


@xdp
def helper_counter(pkt: Packet) -> int:
    bump_in_helper(pkt.len)
    return XDP_PASS


@xdp
def assigned_in_an_earlier_iteration_only(pkt: Packet) -> int:
    # Python would run this (prev is set in the first iteration before the read in the second); the DSL
    # needs a value on every path that reaches the read, the loop's first entry included.
    for i in range(3):
        if i > 0:
            x = prev  # error: prev is read before it is assigned | hint: give prev a value before this line
        prev = u32(i)
    return XDP_PASS
