"""Shows the kernel-differential table in the terminal summary (whether or not output is captured)."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tables = getattr(terminalreporter.config, "pybpfdsl_differential_tables", [])
    if tables:
        terminalreporter.section("verifier vs kernel (differential)")
        for t in tables:
            for line in t.splitlines():
                terminalreporter.write_line(line)
