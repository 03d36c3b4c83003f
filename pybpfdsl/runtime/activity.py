"""Counts of what this process asked the kernel to do: program loads and test runs.

Test suites read them to report how many tests really exercised the kernel (a skipped or mocked kernel
test would otherwise look the same as one that ran).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class KernelActivity:
    loads: int = 0
    test_runs: int = 0


ACTIVITY = KernelActivity()
