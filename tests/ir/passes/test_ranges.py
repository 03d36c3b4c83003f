"""Value ranges (`ir/passes/ranges.py`): what they find in small programs, and that they hold: every
integer value the IR interpreter computes, on the examples and on generated packets, lies in its range."""

from __future__ import annotations

import random

import pytest

from pybpfdsl.ir import interpreter
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.interpreter import Environment
from pybpfdsl.ir.parser import parse_program
from pybpfdsl.ir.passes.pipeline import optimize
from pybpfdsl.ir.passes.ranges import Interval, value_ranges
from pybpfdsl.program import XdpProgram
from pybpfdsl.testing import reset_state
from tests.ir.passes.test_passes_proven import EXAMPLES


def _ranges(body: str) -> dict[str, Interval]:
    program = parse_program("program r  ; passes.py:1\n^entry0:\n" + body)
    return {str(v): r for v, r in value_ranges(program).items()}


def test_min_written_as_a_select_is_bounded_by_its_constant() -> None:
    found = _ranges("""\
  %0: u64 = call ktime_get_ns
  %1: u64 = const 1000000000
  %2: bool = cmp lt %1, %0
  %3: u64 = select %2, %1, %0
  %4: i64 = convert %3: u64
  %5: u32 = const 2
  return %5
""")
    assert found["%3"] == Interval(0, 10**9) and found["%4"] == Interval(0, 10**9)
    assert found["%0"] == Interval(0, 2**64 - 1)


def test_loads_masks_shifts_and_sums_that_do_not_wrap() -> None:
    found = _ranges("""\
  %0: u64 = const 14
  %1: bool = in_bounds %0, 2
  %2: u16 = load_packet be16 %0
  %3: u32 = convert %2: u16
  %4: u32 = const 4
  %5: u32 = shr %3, %4
  %6: u32 = const 255
  %7: u32 = and %3, %6
  %8: u32 = add %5, %7
  %9: u32 = packet_len
  %10: u32 = sub %9, %3
  return %8
""")
    assert found["%3"] == Interval(0, 0xFFFF)
    assert found["%5"] == Interval(0, 0xFFF)
    assert found["%7"] == Interval(0, 255)
    assert found["%8"] == Interval(0, 0xFFF + 255)
    assert found["%10"] == Interval(0, 2**32 - 1)  # it may wrap below zero: anything


def test_shifts_left_and_bitwise_or_of_non_negative_values() -> None:
    found = _ranges("""\
  %0: u64 = const 0
  %1: bool = in_bounds %0, 6
  %2: u32 = load_packet be32 %0
  %3: u64 = convert %2: u32
  %4: u64 = const 16
  %5: u64 = shl %3, %4
  %6: u64 = const 4
  %7: u16 = load_packet be16 %6
  %8: u64 = convert %7: u16
  %9: u64 = or %5, %8
  %10: u64 = const 40
  %11: u64 = shl %3, %10
  %12: u32 = const 0
  return %12
""")
    assert found["%5"] == Interval(0, (2**32 - 1) << 16)
    assert found["%9"] == Interval(0, 2**48 - 1)  # a MAC address read as 4 + 2 bytes
    assert found["%11"] == Interval(0, 2**64 - 1)  # 32 bits shifted by 40 wrap: anything


def test_a_loop_counter_is_bounded_by_its_exit_test_only_through_the_parameter_union() -> None:
    found = _ranges("""\
  %0: u32 = const 0
  jump ^loop1(%0)
^loop1(%1: u32):
  %2: u32 = const 1
  %3: u32 = add %1, %2
  %4: u32 = const 8
  %5: bool = cmp lt %3, %4
  branch %5, ^loop1(%3), ^done2
^done2:
  return %3
""")
    # the parameter keeps growing round after round: its type's range in the end, and the sum wraps
    assert found["%1"] == Interval(0, 2**32 - 1)
    assert found["%3"] == Interval(0, 2**32 - 1)


class _Recording(interpreter._Machine):
    """The IR interpreter, noting every integer value it computes."""

    seen: list[tuple[n.Value, int]]

    def execute(self, i: n.Instr) -> None:
        super().execute(i)
        out = i.result
        if out is not None and isinstance(self.values.get(out), int) and not isinstance(self.values[out], bool):
            self.seen.append((out, self.values[out]))


def _packets(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    out = []
    for _ in range(40):
        l4 = UDP(sport=rng.randrange(65536), dport=rng.choice([53, 80, 443, rng.randrange(65536)])) \
            if rng.random() < 0.5 else TCP(dport=rng.choice([22, 80, 443]), flags=rng.choice(["S", "SA", "A"]))
        out.append(bytes(Ether() / IP(src=f"10.0.0.{rng.randrange(256)}", ttl=rng.randrange(256)) / l4
                         / Raw(bytes(rng.randrange(256) for _ in range(rng.randrange(64))))))
    out.append(bytes(range(14)))
    return out


@pytest.mark.parametrize("name,fn", EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_every_value_the_interpreter_computes_lies_in_its_range(name: str, fn: XdpProgram) -> None:
    lowered = fn.lower()
    for program in (lowered.program, optimize(lowered.program)):
        ranges = value_ranges(program)
        reset_state(*lowered.state.values())
        env = Environment(maps={m.name: lowered.state[m.name] for m in program.maps},  # type: ignore[misc]
                          globals={g.name: lowered.state[g.name] for g in program.globals},  # type: ignore[misc]
                          ringbufs={r.name: lowered.state[r.name] for r in program.ringbufs})  # type: ignore[misc]
        checked = 0
        for packet in _packets(len(name)):
            machine = _Recording(program, packet, env)
            machine.seen = []
            machine.run(10_000)
            for v, x in machine.seen:
                r = ranges.get(v)
                if r is not None:
                    assert r.lo <= x <= r.hi, f"{name}: {v} = {x} outside [{r.lo}, {r.hi}]"
                    checked += 1
        assert checked > 0
