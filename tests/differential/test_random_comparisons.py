"""`random() op p` for the four orderings is exact for the real number p, the same in every execution.

random() is r/2**32 for the 32 random bits r. `random() < p` and `random() >= p` are complements, as are
`<=` and `>`; each agrees with the comparison of the fraction r/2**32 with the float p written in the
program. (Before, only `<` used an exact threshold: at r = 4080218931 both `random() < 0.95` and
`random() >= 0.95` were true, since 0.95·2**32 rounded to the nearest raw value for `>=`.)
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from pybpfdsl import XDP_PASS, Array, Packet, random, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang import fixed
from pybpfdsl.lang.helpers import use_helpers
from pybpfdsl.testing import FixedHelpers, reset_state

seen = Array(u32, 4)
P = 0.95


@xdp
def orderings(pkt: Packet) -> int:
    # Each comparison draws its own random value; the test scripts the same r for all four.
    if random() < 0.95:
        seen[0] += 1
    if random() >= 0.95:
        seen[1] += 1
    if random() <= 0.95:
        seen[2] += 1
    if random() > 0.95:
        seen[3] += 1
    return XDP_PASS


CEIL = fixed.ceil_from_float(P)
BOUNDARIES = sorted({0, CEIL - 2, CEIL - 1, CEIL, CEIL + 1, fixed.floor_from_float(P), 0xFFFFFFFF})


def expected(r: int) -> list[int]:
    x, p = Fraction(r, 1 << 32), Fraction(P)
    return [int(x < p), int(x >= p), int(x <= p), int(x > p)]


@pytest.mark.parametrize("r", BOUNDARIES)
def test_each_ordering_is_the_exact_comparison_in_pure_python(r: int) -> None:
    reset_state(seen)
    with use_helpers(FixedHelpers(random=r)):
        orderings(Packet(bytes(64)))
    assert [seen[i] for i in range(4)] == expected(r)
    assert seen[0] + seen[1] == 1 and seen[2] + seen[3] == 1  # complements, never both


def test_the_four_executions_agree_at_the_boundaries() -> None:
    reset_state(seen)
    mismatch = compare(orderings, [bytes(64)] * len(BOUNDARIES), executions=("python", "ir", "bytecode"),
                       helpers=lambda: FixedHelpers(random=[r for r in BOUNDARIES for _ in range(4)]))
    assert mismatch is None, mismatch
