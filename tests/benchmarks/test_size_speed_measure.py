"""How the size_speed benchmark compares run times: differences taken in the same rounds (a busy moment of
the machine falls on both programs), reduced per load (where the JIT image and maps land), then over the
loads, with an interval that says whether a difference is shown at all. Synthetic samples only: no test
asserts a time."""

from __future__ import annotations

from benchmarks.size_speed import report
from benchmarks.size_speed.measure import KernelNumbers, interval_confidence, paired


def _numbers(samples: list[list[float]]) -> KernelNumbers:
    return KernelNumbers(xlated=0, jited=0, ns=0.0, raw_ns=0.0, kernel_ns=0.0,
                         samples=tuple(tuple(s) for s in samples))


def _noise(load: int) -> list[float]:
    """11 rounds of a busy machine: up to 20 ns from one round to the next."""
    return [((load * 11 + i) * 7919 % 41) / 2.0 for i in range(11)]


def test_a_constant_gap_is_shown_through_a_noisy_machine() -> None:
    # Rounds differ by up to 20 ns, far more than the 0.5 ns gap: the medians of the two programs alone
    # could not show it, the differences in the same rounds do, in every sample.
    slower = _numbers([[3.0 + n + 0.5 for n in _noise(load)] for load in range(8)])
    faster = _numbers([[3.0 + n for n in _noise(load)] for load in range(8)])
    versus = paired(slower, faster)
    assert (versus.median, versus.low, versus.high) == (0.5, 0.5, 0.5)
    assert versus.a_faster == 0 and versus.samples == 88
    assert paired(faster, slower).high == -0.5


def test_one_lucky_placement_does_not_decide() -> None:
    # a is 0.2 ns slower on seven loads and 2 ns faster on one (where its image happened to land well):
    # over the loads it is slower, and the interval says so
    a = _numbers([[4.0 + (-2.0 if load == 3 else 0.2)] * 11 for load in range(8)])
    b = _numbers([[4.0] * 11 for _ in range(8)])
    versus = paired(a, b)
    assert abs(versus.median - 0.2) < 1e-9 and versus.low > 0
    assert versus.a_faster == 11


def test_placements_either_way_hold_zero_in_the_interval() -> None:
    a = _numbers([[4.0 + (0.3 if load % 2 else -0.3)] * 11 for load in range(8)])
    b = _numbers([[4.0] * 11 for _ in range(8)])
    versus = paired(a, b)
    assert versus.low < 0 < versus.high
    assert versus.a_faster == 44


def test_the_table_shows_the_difference_and_its_interval() -> None:
    assert report._versus({"ns_diff": -0.32, "ns_diff_interval": [-0.63, -0.06]}) == "-0.32 [-0.63, -0.06]"
    assert report._versus({"name": "older record"}) == "-"


def test_the_interval_says_how_sure_it_is_for_the_loads_measured() -> None:
    # the 2nd and 7th of 8 sorted loads: the median of the loads' distribution lies between them 93% of
    # the time; `--loads` more keeps the interval at least that sure
    assert round(interval_confidence(8), 3) == 0.930
    assert all(interval_confidence(n) >= 0.92 for n in range(8, 129))
    table = report.markdown([], {"passes_switch": None, "repeat": 1, "trials": 11, "loads": 24,
                                 "empty_ns_median": 0.0, "commit": "c", "kernel": "k"})
    assert "ours − C ns [94%]" in table and "(94% for 24 loads;" in table
