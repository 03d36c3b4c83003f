"""How the size_speed benchmark compares run times: differences taken round by round and load by load
(a busy moment of the machine falls on both programs), reported as a median with a 95% interval that
says whether a difference is shown at all. Synthetic samples only: no test asserts a time."""

from __future__ import annotations

from benchmarks.size_speed import report
from benchmarks.size_speed.measure import KernelNumbers, paired


def _numbers(samples: list[float]) -> KernelNumbers:
    return KernelNumbers(xlated=0, jited=0, ns=0.0, raw_ns=0.0, kernel_ns=0.0, samples=tuple(samples))


def test_a_constant_gap_is_shown_through_a_noisy_machine() -> None:
    # Rounds differ by up to 20 ns (other work on the machine), far more than the 0.5 ns gap: the medians
    # of the two programs alone could not show it, the paired differences do, in every sample.
    noise = [((i * 7919) % 41) / 2.0 for i in range(63)]
    slower, faster = _numbers([3.0 + n + 0.5 for n in noise]), _numbers([3.0 + n for n in noise])
    versus = paired(slower, faster)
    assert (versus.median, versus.low, versus.high) == (0.5, 0.5, 0.5)
    assert versus.a_faster == 0 and versus.samples == 63
    assert paired(faster, slower).high == -0.5


def test_differences_either_way_hold_zero_in_the_interval() -> None:
    a = _numbers([4.0 + (0.3 if i % 2 else -0.3) for i in range(63)])
    b = _numbers([4.0] * 63)
    versus = paired(a, b)
    assert versus.low < 0 < versus.high
    assert versus.a_faster == 32  # the 32 even samples


def test_the_table_shows_the_difference_and_its_interval() -> None:
    assert report._versus({"ns_diff": -0.32, "ns_diff_ci95": [-0.63, -0.06]}) == "-0.32 [-0.63, -0.06]"
    assert report._versus({"name": "older record"}) == "-"
