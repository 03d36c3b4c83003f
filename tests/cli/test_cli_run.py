"""`pybpfdsl run` and `pybpfdsl maps`: packets through the kernel or pure Python, state dumps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import HTTP_HEX, TELNET_HEX, Result, needs_bpf, tcp_packet, write

Cli = Callable[..., Result]


# -- run in the kernel ------------------------------------------------------------------------------


@needs_bpf
def test_run_reports_actions_from_the_kernel(call: Cli, counter_file: Path) -> None:
    r = call("run", f"{counter_file}:drop_telnet", "--packet", TELNET_HEX, "--packet", HTTP_HEX)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "kernel" in lines[0]
    header = lines[1].split()
    assert header == ["#", "LEN", "ACTION", "NS", "MODIFIED"]
    row0, row1 = lines[3].split(), lines[4].split()
    assert row0[:3] == ["0", "54", "XDP_DROP"] and row0[4] == "no"
    assert row1[:3] == ["1", "54", "XDP_PASS"]
    assert int(row0[3]) >= 0


@needs_bpf
def test_run_json_and_repeat(call: Cli, counter_file: Path) -> None:
    r = call("run", counter_file, "--packet", TELNET_HEX, "--repeat", "5", "--json")
    assert r.code == 0, r.err
    (result,) = json.loads(r.out)
    assert result == {**result, "index": 0, "length": 54, "action": "XDP_DROP", "action_value": 1,
                      "modified": False}
    assert isinstance(result["duration_ns"], int)
    r = call("run", counter_file, "--packet", TELNET_HEX, "--repeat", "5", "--json", "--state")
    data = json.loads(r.out)
    state = {s["name"]: s for s in data["state"]}
    assert state["dropped"]["value"] == 5  # every repetition ran the program
    assert {"key": 1, "value": 5} in state["slots"]["entries"]


@needs_bpf
def test_run_hex_may_have_separators(call: Cli, counter_file: Path) -> None:
    spaced = " ".join(TELNET_HEX[i:i + 2] for i in range(0, len(TELNET_HEX), 2))
    r = call("run", counter_file, "--packet", spaced, "--json")
    assert json.loads(r.out)[0]["action"] == "XDP_DROP"
    colons = "0x" + ":".join(HTTP_HEX[i:i + 2] for i in range(0, len(HTTP_HEX), 2))
    r = call("run", counter_file, "--packet", colons, "--json")
    assert json.loads(r.out)[0]["action"] == "XDP_PASS"


@needs_bpf
def test_run_pcap(call: Cli, counter_file: Path, tmp_path: Path) -> None:
    scapy_utils = pytest.importorskip("scapy.utils")
    scapy_l2 = pytest.importorskip("scapy.layers.l2")
    pcap = tmp_path / "in.pcap"
    scapy_utils.wrpcap(str(pcap), [scapy_l2.Ether(tcp_packet(p)) for p in (23, 80, 23, 443)])
    r = call("run", counter_file, "--pcap", pcap, "--json")
    assert r.code == 0, r.err
    assert [x["action"] for x in json.loads(r.out)] == ["XDP_DROP", "XDP_PASS", "XDP_DROP", "XDP_PASS"]
    r = call("run", counter_file, "--pcap", pcap)
    assert "totals: XDP_DROP 2, XDP_PASS 2" in r.out


def test_run_pcap_errors(call: Cli, counter_file: Path, tmp_path: Path) -> None:
    r = call("run", counter_file, "--pcap", tmp_path / "missing.pcap")
    assert r.code == 2 and "no such file" in r.err
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file at all")
    r = call("run", counter_file, "--pcap", junk)
    assert r.code == 1 and "cannot read" in r.err and "Traceback" not in r.err


# -- run in pure Python -------------------------------------------------------------------------------


def test_run_python(call: Cli, counter_file: Path) -> None:
    r = call("run", counter_file, "--python", "--packet", TELNET_HEX, "--packet", HTTP_HEX, "--json",
             "--state")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert [x["action"] for x in data["results"]] == ["XDP_DROP", "XDP_PASS"]
    state = {s["name"]: s for s in data["state"]}
    assert state["dropped"]["value"] == 1
    assert {"key": 80, "value": 6} in state["per_port"]["entries"]
    r = call("run", counter_file, "--python", "--packet", TELNET_HEX)
    assert "pure Python" in r.out.splitlines()[0] and "XDP_DROP" in r.out


# -- run: bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("packet", "why"), [("zz11", "invalid character 'z'"), ("abc", "odd number"),
                                             ("", "empty packet")])
def test_run_bad_hex_is_usage_error(call: Cli, counter_file: Path, packet: str, why: str) -> None:
    r = call("run", counter_file, "--packet", packet)
    assert r.code == 2
    assert why in r.err and "Traceback" not in r.err


def test_run_short_packet_in_kernel_is_refused(call: Cli, counter_file: Path) -> None:
    r = call("run", counter_file, "--packet", "0011223344")
    assert r.code == 2 and "at least 14" in r.err


def test_run_needs_packets(call: Cli, counter_file: Path) -> None:
    r = call("run", counter_file)
    assert r.code == 2 and "--packet" in r.err
    r = call("run", counter_file, "--packet", HTTP_HEX, "--repeat", "0")
    assert r.code == 2


# -- verifier rejection -------------------------------------------------------------------------------


@needs_bpf
@pytest.mark.usefixtures("rejected_by_verifier")
@pytest.mark.parametrize("command", [["run", "--packet", HTTP_HEX], ["maps"]])
def test_verifier_rejection_names_the_python_line(call: Cli, counter_file: Path, command: list[str]) -> None:
    r = call(command[0], counter_file, *command[1:])
    assert r.code == 1
    first = r.err.splitlines()[0]
    assert "kernel verifier rejected the program at counter.py:12" in first
    assert "R9 !read_ok" in r.err
    assert "Traceback" not in r.err


# -- maps -----------------------------------------------------------------------------------------------


@needs_bpf
def test_maps_shows_initial_state(call: Cli, counter_file: Path) -> None:
    r = call("maps", f"{counter_file}:drop_telnet")
    assert r.code == 0, r.err
    rows = [line.split() for line in r.out.splitlines()]
    assert ["dropped", "Global(u64)", "0"] in rows
    assert ["per_port", "HashMap(u16", "->", "u64,", "64)", "80", "5"] in rows
    assert ["slots", "Array(u64,", "8)", "2", "9"] in rows
    assert "7 zero elements not shown" in r.out


@needs_bpf
def test_maps_json_and_all(call: Cli, counter_file: Path) -> None:
    data = json.loads(call("maps", counter_file, "--json").out)
    state = {s["name"]: s for s in data["state"]}
    assert state["dropped"] == {"name": "dropped", "kind": "Global(u64)", "value": 0}
    assert state["per_port"]["entries"] == [{"key": 80, "value": 5}]
    full = json.loads(call("maps", counter_file, "--json", "--all").out)
    slots = {s["name"]: s for s in full["state"]}["slots"]
    assert [e["value"] for e in slots["entries"]] == [0, 0, 9, 0, 0, 0, 0, 0]


@needs_bpf
def test_maps_struct_values(call: Cli, tmp_path: Path) -> None:
    src = '''
    from pybpfdsl import XDP_PASS, LruHashMap, Packet, Struct, u32, u64, xdp

    class Stats(Struct):
        packets: u64
        bytes: u64

    stats = LruHashMap(u32, Stats, max_entries=16)
    stats[7] = Stats(packets=1, bytes=60)

    @xdp
    def count(pkt: Packet) -> int:
        if pkt.ipv4 is not None:
            old = stats.get(pkt.ipv4.src, Stats(packets=0, bytes=0))
            stats[pkt.ipv4.src] = Stats(packets=old.packets + 1, bytes=old.bytes + pkt.len)
        return XDP_PASS
    '''
    path = write(tmp_path, "structs.py", src)
    r = call("maps", path)
    assert r.code == 0, r.err
    assert "Stats(packets=1, bytes=60)" in r.out
    data = json.loads(call("maps", path, "--json").out)
    assert data["state"][0]["entries"] == [{"key": 7, "value": {"packets": 1, "bytes": 60}}]


def test_maps_needs_a_target(call: Cli) -> None:
    r = call("maps")
    assert r.code == 2 and "--pinned" in r.err


# -- maps --pinned (with a map pinned by `attach --pin`: see test_cli_attach.py) ----------------------


def test_maps_pinned_missing(call: Cli, tmp_path: Path) -> None:
    r = call("maps", "--pinned", tmp_path / "nothing")
    assert r.code == 1 and "Traceback" not in r.err
