"""Another process reads and changes a pinned program's state with the DSL's types (issue 16 §4):
`pybpfdsl.open_pinned`, `pybpfdsl set` and `pybpfdsl maps --pinned`. Kernel tests: the program is loaded
here and its program fd pinned on bpffs, as `attach(pin=...)` pins its link."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pybpfdsl.cli_commands.common import CliError
from pybpfdsl.cli_commands.maps import cmd_maps
from pybpfdsl.cli_commands.set_state import cmd_set, parse_scalar
from pybpfdsl.lang.lpm_trie import prefix
from pybpfdsl.lang.types import FLOAT, u8, u32
from pybpfdsl.runtime import links
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state
from tests.runtime import pinned_firewall as fw

# Both files pin a program named pinned_fw, which `open_pinned(program)` finds by name: on one worker.
pytestmark = pytest.mark.xdist_group("pinned_fw")

KERNEL, WHY = kernel_bpf_available()
PROGRAM = f"{Path(fw.__file__)}:pinned_fw"
BPFFS = "/sys/fs/bpf"
kernel = pytest.mark.skipif(not KERNEL or not os.path.ismount(BPFFS),
                            reason=f"needs bpf() and bpffs at {BPFFS}: {WHY or 'bpffs not mounted'}")


def _ipv4(src: str) -> bytes:
    return bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0]) \
        + bytes(int(x) for x in src.split(".")) + bytes([10, 9, 9, 9]) + bytes(8)


@pytest.fixture
def pinned() -> Iterator[tuple[str, object]]:
    reset_state(fw.blocked, fw.seen, fw.limit, fw.drops, fw.gateway)
    path = f"{BPFFS}/pybpfdsl_test_{os.getpid()}_fw"
    with fw.pinned_fw.load() as loaded:
        links.obj_pin(loaded.fd, path)
        try:
            yield path, loaded
        finally:
            os.unlink(path)


@kernel
def test_another_process_changes_the_running_programs_state(pinned: tuple[str, object]) -> None:
    path, loaded = pinned
    script = textwrap.dedent(f"""
        import pybpfdsl.pinned as p
        with p.open_pinned({path!r}, {PROGRAM!r}) as state:
            state["blocked"]["10.0.0.0/8"] = 1
            state.limit.value = 1
            print(state.limit.value, state["blocked"].get("10.200.1.1"), sorted(state))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2]).stdout.split()
    assert out[:2] == ["1", "1"]
    # This process's objects are bound to the same kernel maps: it sees the change, and so does the program.
    assert fw.limit.value == 1 and fw.blocked.get("10.1.2.3") == 1
    assert loaded.run(_ipv4("10.1.2.3")).action == 1  # XDP_DROP: blocked  # type: ignore[attr-defined]
    assert loaded.run(_ipv4("11.0.0.1")).action == 2  # type: ignore[attr-defined]
    assert loaded.run(_ipv4("11.0.0.1")).action == 1  # the second packet is over the limit of 1
    assert fw.drops.value == 2


@kernel
def test_open_pinned_finds_the_pin_by_the_programs_name(pinned: tuple[str, object]) -> None:
    from pybpfdsl.pinned import open_pinned

    fw.seen[7] = 70
    with open_pinned(fw.pinned_fw) as state:
        assert state.program.path == pinned[0]
        assert state["seen"][7] == 70 and state.limit.value == 3  # type: ignore[attr-defined]
        state.gateway.value = 0x0A000001  # type: ignore[attr-defined]
    assert fw.gateway.value == 0x0A000001


@kernel
def test_open_pinned_with_the_path_alone_finds_the_source_in_the_programs_btf(pinned: tuple[str, object]) -> None:
    script = textwrap.dedent(f"""
        import pybpfdsl.pinned as p
        with p.open_pinned({pinned[0]!r}) as state:
            state.limit.value = 9
            print(state["blocked"].kind_name, state.limit.value)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parents[2]).stdout.split()
    assert out == ["LpmTrie", "9"] and fw.limit.value == 9


@kernel
def test_cli_set_and_maps_pinned(pinned: tuple[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = pinned
    args = argparse.Namespace(target=PROGRAM, pinned=path, delete=[],
                              assignments=["limit=7", "gateway=10.0.0.1", "blocked[192.168.0.0/16]=1",
                                           "blocked[10.1.2.3]=1"])
    assert cmd_set(args) == 0
    out = capsys.readouterr().out
    assert "limit: 3 -> 7" in out and "blocked[192.168.0.0/16]: (absent) -> 1" in out
    assert fw.gateway.value == 0x0A000001 and fw.blocked.get("192.168.4.4") == 1
    assert cmd_set(argparse.Namespace(target=PROGRAM, pinned=path, assignments=[],
                                      delete=["blocked[10.1.2.3]"])) == 0
    assert fw.blocked.get("10.1.2.3") is None
    assert cmd_maps(argparse.Namespace(target=PROGRAM, pinned=path, all=False, json=False)) == 0
    table = capsys.readouterr().out
    assert "192.168.0.0/16" in table and "limit" in table and "gateway" in table and "pinned_fw" in table
    with pytest.raises(CliError, match="no Global or map named"):
        cmd_set(argparse.Namespace(target=PROGRAM, pinned=path, assignments=["nope=1"], delete=[]))


def test_command_line_values_are_parsed_by_type() -> None:
    assert parse_scalar("10.0.0.1", u32) == 0x0A000001  # a dotted quad: the number written
    assert parse_scalar("0x10", u8) == 16 and parse_scalar("true", u8) == 1 and parse_scalar("0.5", FLOAT) == 0.5
    with pytest.raises(CliError, match="does not fit"):
        parse_scalar("256", u8)
    assert str(prefix("10.0.0.0/8")) == "10.0.0.0/8"
