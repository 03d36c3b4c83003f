"""`while i < n:` without `bounded(...)`: where the body steps `i` by a constant once per iteration and
`n` is a constant, the compiler counts the iterations itself, and the loop runs as in Python in the four
executions (pure Python, the IR and bytecode interpreters, the kernel) and in the proof. Loops it cannot
count are refused with the `bounded` rewrite (tests/frontend/bad_programs/python_meaning.py)."""

from __future__ import annotations

import sys

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Global, Packet, u8, u16, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

seen = Global(u64, 0)
WINDOW = 4


@xdp
def sum_first_bytes(pkt: Packet) -> int:
    total: u32 = 0
    i: u32 = 0
    while i < WINDOW:                    # a module constant: 4 iterations
        b = pkt.payload[i]
        i += 1
        if b is None:
            continue                     # after the step: still counted
        total += b
    seen.value = total
    return XDP_DROP if total > 1000 else XDP_PASS


@xdp
def count_down(pkt: Packet) -> int:
    n: u8 = 10
    steps: u32 = 0
    while n > 0:                         # a u8 counting down to 0: no wrap
        n -= 2
        steps += pkt.len & 1
    seen.value = u64(steps) << 8 | n
    return XDP_TX if steps == 5 else XDP_PASS


@xdp
def step_to_exact_end(pkt: Packet) -> int:
    i: u16 = 3
    found: u32 = 0
    while i != 24:                       # 3, 6, ..., 21: seven iterations
        if pkt.payload[i] == 0:
            found += 1
            break
        i = i + 3
    seen.value = u64(i) << 32 | found
    return XDP_DROP if found == 1 else XDP_PASS


@xdp
def nested_under_a_range(pkt: Packet) -> int:
    total: u64 = 0
    for row in range(3):
        col = 0
        while col <= 4:                  # restarts at 0 each row: five iterations
            total += u64(row * 10 + col)
            col += 1
    seen.value = total
    return XDP_PASS


PROGRAMS = (sum_first_bytes, count_down, step_to_exact_end, nested_under_a_range)
PACKETS = [bytes(14), bytes(15), bytes(range(60)), bytes(range(255, 155, -1)), bytes(14) + b"\x01" * 30,
           bytes(14) + bytes(range(1, 40))]


@pytest.fixture(autouse=True)
def clean_state() -> None:
    reset_state(sys.modules[__name__])


def test_python_meaning() -> None:
    payload = bytes(range(1, 40))
    sum_first_bytes(bytes(14) + payload)
    assert seen.value == sum(payload[:WINDOW])
    assert count_down(bytes(15)) == XDP_TX and seen.value == 5 << 8 | 0
    step_to_exact_end(bytes(14) + b"\x01" * 30)
    assert seen.value == 24 << 32 | 0
    step_to_exact_end(bytes(14) + b"\x01" * 9 + b"\x00")
    assert seen.value == 9 << 32 | 1
    nested_under_a_range(bytes(14))
    assert seen.value == sum(row * 10 + col for row in range(3) for col in range(5))


def test_every_execution_agrees() -> None:
    for prog in PROGRAMS:
        reset_state(sys.modules[__name__])
        assert compare(prog, PACKETS, executions=EXECUTIONS) is None, prog.name


def test_bound_is_the_counted_iterations() -> None:
    """The hidden counter's limit is the loop's own count, so it never cuts the loop short."""
    facts = sum_first_bytes.lower().facts
    assert sorted(facts.while_bounds.values()) == [WINDOW]
    assert sorted(step_to_exact_end.lower().facts.while_bounds.values()) == [7]
    assert sorted(count_down.lower().facts.while_bounds.values()) == [5]


def test_proven() -> None:
    for prog in PROGRAMS:
        proof = prog.compile(prove=True).proof
        assert proof.status == "proven", (prog.name, proof)


@xdp
def mirrored_and_unknown_start(pkt: Packet) -> int:
    i = u8(pkt.len)                      # not a constant: counted from u8's smallest value, 0
    n: u32 = 0
    while 200 > i:                       # noqa: SIM300  (the mirrored form is what is tested)
        i += 50
        n += 1
    seen.value = n
    return XDP_PASS


def test_written_backwards_and_from_an_unknown_start() -> None:
    assert sorted(mirrored_and_unknown_start.lower().facts.while_bounds.values()) == [4]
    mirrored_and_unknown_start(bytes(60))
    assert seen.value == 3               # 60, 110, 160, then 210
    assert compare(mirrored_and_unknown_start, PACKETS, executions=EXECUTIONS) is None
