"""DevMap and CpuMap from Python, and the redirect built-ins called from plain Python: slots start empty,
Python fills and empties them, and a redirect through a slot reports where the packet goes."""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_ABORTED, XDP_PASS, XDP_REDIRECT
from pybpfdsl.lang.builtins import redirect
from pybpfdsl.lang.redirect import CpuMap, DevMap, RedirectTarget, last_redirect, record_redirect


def test_slots_start_empty_and_python_fills_them() -> None:
    ports = DevMap(4)
    ports.name = "ports"
    assert len(ports) == 0 and 0 not in ports
    ports[3] = 7
    assert ports[3] == 7 and list(ports.items()) == [(3, 7)]
    with pytest.raises(KeyError):
        ports[4] = 7  # beyond max_entries
    del ports[3]
    assert 3 not in ports


def test_redirect_through_a_slot_or_the_miss_action() -> None:
    cpus = CpuMap(2)
    cpus.name = "cpus"
    cpus[1] = 128
    record_redirect(None)
    assert cpus.redirect(0) == XDP_ABORTED and last_redirect() is None
    assert cpus.redirect(0, XDP_PASS) == XDP_PASS
    assert cpus.redirect(1) == XDP_REDIRECT and last_redirect() == RedirectTarget("cpus", 1)


def test_redirect_builtin_names_the_interface() -> None:
    assert redirect(5) == XDP_REDIRECT
    assert last_redirect() == RedirectTarget(None, 5)
    assert str(last_redirect()) == "ifindex 5"
