"""XDP_REDIRECT agrees in the four executions (issue 16 §3): `redirect(ifindex)` and `DevMap`/`CpuMap`
`.redirect(key)` give the same action everywhere, and pure Python, the IR interpreter and the bytecode
interpreter the same target (the kernel's test run does not show one); an empty slot gives the miss
action."""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_REDIRECT
from pybpfdsl.differential import compare, run_bytecode, run_ir, run_python
from pybpfdsl.lang.redirect import RedirectTarget
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from tests.differential.redirect_programs import PACKETS, by_ttl, fill_slots

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")


@pytest.fixture(autouse=True)
def _slots() -> None:
    fill_slots()


def test_redirect_actions_and_targets_in_python() -> None:
    steps = run_python(by_ttl, PACKETS)
    actions = [s.action for s in steps]
    assert actions == [XDP_DROP, XDP_REDIRECT, XDP_REDIRECT, XDP_REDIRECT, XDP_REDIRECT, XDP_PASS, 0, 0,
                       XDP_REDIRECT, XDP_DROP, XDP_PASS]
    assert steps[1].redirect == RedirectTarget(None, 103)
    assert steps[4].redirect == RedirectTarget("ports", 1)
    assert steps[8].redirect == RedirectTarget("cpus", 0)


@pytest.mark.parametrize("run", [run_ir, run_bytecode], ids=["ir", "bytecode"])
def test_interpreters_show_the_same_targets(run: object) -> None:
    assert callable(run)
    want = [(s.action, s.redirect) for s in run_python(by_ttl, PACKETS)]
    got = [(s.action, s.redirect) for s in run(by_ttl, PACKETS, None)]
    assert got == want


def test_four_executions_agree() -> None:
    assert compare(by_ttl, PACKETS, EXECUTIONS) is None


def test_a_different_target_is_a_mismatch() -> None:
    """The harness compares targets: slot 1 pointing elsewhere in one run is reported."""
    from pybpfdsl.differential import Step, _redirects_differ

    a = Step(XDP_REDIRECT, b"", {}, RedirectTarget("ports", 1))
    assert _redirects_differ(a, Step(XDP_REDIRECT, b"", {}, RedirectTarget("ports", 0)))
    assert not _redirects_differ(a, Step(XDP_REDIRECT, b"", {}, None))
