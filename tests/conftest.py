"""Suite-wide setup and reporting.

Proof verdicts are cached on disk (`pybpfdsl.verify.equivalence.proof_cache`); the suite uses a cache
of its own, made empty when the session starts, so that no verdict left by an earlier run (or by the
user's own commands) decides a test. Under xdist the controller makes it and the workers, started after,
inherit it through the environment; so do the command-line tests' subprocesses.

Under xdist (`-n N`) tests are distributed as `--dist loadgroup` (in pyproject's addopts: xdist's workers
read it from the options to tag tests with their group, so setting it later in a hook does nothing): the
tests marked with one `xdist_group`, and the tests of a module that use a module-scoped fixture of that
module, run in one worker, so the fixture is computed once. The tests that read the kernel's trace pipe
(the `tracefs` fixture) share a group too: the kernel lets one process at a time read it.

Reporting: how many tests exercised the kernel, and why kernel tests were skipped if any were.

A test counts as a kernel test when it loaded a program or ran BPF_PROG_TEST_RUN (counted by the runtime),
not because of a marker, so the number in the summary is what really happened. Works under xdist: the
mark travels to the controller in the test report's user properties.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpfdsl.runtime.activity import ACTIVITY
from pybpfdsl.runtime.libbpf import kernel_bpf_available

_SESSION_CACHE_VARIABLE = "PYBPFDSL_TEST_SESSION_CACHE"
"""The session's cache directory, for the processes the session starts (xdist workers)."""
_made_here: list[str] = []  # the directory this process made, and removes at the end


def pytest_configure(config: pytest.Config) -> None:
    inherited = os.environ.get(_SESSION_CACHE_VARIABLE)
    if hasattr(config, "workerinput") and inherited:  # an xdist worker: use the controller's
        os.environ["XDG_CACHE_HOME"] = inherited
        return
    directory = tempfile.mkdtemp(prefix="pybpfdsl-test-cache-")
    _made_here.append(directory)
    os.environ["XDG_CACHE_HOME"] = directory
    os.environ[_SESSION_CACHE_VARIABLE] = directory


def pytest_unconfigure(config: pytest.Config) -> None:
    for directory in _made_here:
        shutil.rmtree(directory, ignore_errors=True)
    _made_here.clear()


def _module_fixture_group(item: pytest.Item) -> str | None:
    """The group of a test that uses a module-scoped fixture of its own module (one worker computes it)."""
    info = getattr(item, "_fixtureinfo", None)
    module = item.nodeid.split("::")[0]
    for defs in getattr(info, "name2fixturedefs", {}).values():
        if defs and defs[-1].scope == "module" and defs[-1].baseid == module:
            return "fixtures-" + module.removesuffix(".py").replace("/", ".")
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's worker tags each test with its group's name
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        group = "trace_pipe" if "tracefs" in getattr(item, "fixturenames", ()) else _module_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    # The grouped tests (the longest units of work) start first, so no worker begins one as the others
    # finish; otherwise collection order. The order is the same in every xdist worker, as it must be.
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)


_kernel_tests: set[str] = set()
_sections: list[tuple[str, str]] = []  # (title, text) a test asked to show in the summary


@pytest.fixture(autouse=True)
def _count_kernel_use(request: pytest.FixtureRequest) -> Iterator[None]:
    before = (ACTIVITY.loads, ACTIVITY.test_runs)
    yield
    if (ACTIVITY.loads, ACTIVITY.test_runs) != before:
        request.node.user_properties.append(("kernel", True))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown" and ("kernel", True) in report.user_properties:
        _kernel_tests.add(report.nodeid)
    if report.when == "call":
        _sections.extend(value for key, value in report.user_properties if key == "summary_section")


def _lacks_kernel(report: pytest.TestReport) -> bool:
    """A skip whose *reason* (not its file path) says bpf() or the kernel was missing."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return any(word in str(reason).lower() for word in ("bpf", "kernel"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    available, reason = kernel_bpf_available()
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if _lacks_kernel(r)]
    for title, text in _sections:
        terminalreporter.section(title)
        for line in text.splitlines():
            terminalreporter.write_line(line)
    terminalreporter.section("kernel tests")
    terminalreporter.write_line(f"kernel: {len(_kernel_tests)} tests loaded or ran BPF programs in the kernel")
    terminalreporter.write_line(f"kernel: bpf() {'available' if available else 'UNAVAILABLE: ' + reason}; "
                                f"{len(skipped)} tests skipped for lack of it")


@pytest.fixture
def tracefs(tmp_path: Path) -> Iterator[Path]:
    """A tracefs of the test's own, mounted in a temporary directory (this machine mounts none), for the
    tests that read bpf_trace_printk output from its trace pipe; unmounted after."""
    if not kernel_bpf_available()[0]:
        pytest.skip("needs bpf()")
    mount = tmp_path / "tracefs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tracefs", "nodev", str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount tracefs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
