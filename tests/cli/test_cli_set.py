"""`pybpfdsl maps FILE --pinned LINK` and `pybpfdsl set FILE ...` on a program attached with `attach --pin`
(issue 16 §4): another process lists the running program's Globals by name and its LPM prefixes as text,
and changes them. `set` runs once cli.py registers it (the maps helper's report); until then that test
skips, saying so."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from pybpfdsl.cli import build_parser
from tests.cli.test_cli_attach import in_ns, netns  # noqa: F401  # the fixture, used by name
from tests.runtime import pinned_firewall

# Both files pin a program named pinned_fw, which `open_pinned(program)` finds by name: on one worker.
pytestmark = pytest.mark.xdist_group("pinned_fw")

PROGRAM = Path(pinned_firewall.__file__)
PIN = "/sys/fs/bpf/fw"


def _registered(command: str) -> bool:
    return any(isinstance(a, argparse._SubParsersAction) and command in a.choices for a in build_parser()._actions)


def test_maps_shows_a_pinned_links_program_state(netns: str) -> None:  # noqa: F811
    attach, shown, as_json, detach = in_ns(
        netns,
        ["attach", PROGRAM, "v0", "--mode", "skb", "--pin", PIN],
        ["maps", PROGRAM, "--pinned", PIN],
        ["maps", PROGRAM, "--pinned", PIN, "--json"],
        ["detach", "v0"],
        bpffs=True,
    )
    assert attach.code == 0, attach.err
    assert shown.code == 0, shown.err
    assert "pinned_fw" in shown.out and "limit" in shown.out and "gateway" in shown.out
    state = {e["name"]: e for e in json.loads(as_json.out)["state"]}
    assert state["limit"]["value"] == 3 and state["blocked"]["entries"] == []
    assert detach.code == 0, detach.err


@pytest.mark.skipif(not _registered("set"), reason="`pybpfdsl set` is not registered in cli.py yet "
                                                   "(the maps helper's report has the lines)")
def test_set_changes_a_running_programs_globals_and_prefixes(netns: str) -> None:  # noqa: F811
    attach, changed, removed, shown, wrong, detach = in_ns(
        netns,
        ["attach", PROGRAM, "v0", "--mode", "skb", "--pin", PIN],
        ["set", PROGRAM, "limit=5", "gateway=10.0.0.1", "blocked[10.0.0.0/8]=1", "blocked[192.168.1.1]=1"],
        ["set", PROGRAM, "--pinned", PIN, "--delete", "blocked[192.168.1.1]"],
        ["maps", PROGRAM, "--pinned", PIN, "--json"],
        ["set", PROGRAM, "limit=ten"],
        ["detach", "v0"],
        bpffs=True,
    )
    assert attach.code == 0, attach.err
    assert changed.code == 0, changed.err
    assert "limit: 3 -> 5" in changed.out and "blocked[10.0.0.0/8]: (absent) -> 1" in changed.out
    assert removed.code == 0 and "deleted" in removed.out
    state = {e["name"]: e for e in json.loads(shown.out)["state"]}
    assert state["limit"]["value"] == 5 and state["gateway"]["value"] == 0x0A000001
    assert [e["key"] for e in state["blocked"]["entries"]] == ["10.0.0.0/8"]
    assert wrong.code == 2 and "not an integer" in wrong.err
    assert detach.code == 0, detach.err
