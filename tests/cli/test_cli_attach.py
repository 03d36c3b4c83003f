"""`pybpfdsl attach`, `detach` and `status` on veth pairs in private network namespaces.

Each test gets its own namespace (`ip netns add`) with a veth pair v0/v1, so nothing is attached to the
machine's real interfaces and the namespace's removal cleans up whatever a failing test left behind.
Commands run under `ip netns exec NS`, which also gives them a private mount namespace: bpffs is
mounted at /sys/fs/bpf there for the --pin tests, invisible to the rest of the system.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import BPF_OK, BPF_REASON, TELNET_HEX, Result, write

Cli = Callable[..., Result]

_counter = itertools.count()


def _can_use_netns() -> tuple[bool, str]:
    if not BPF_OK:
        return False, f"bpf() unavailable: {BPF_REASON}"
    if os.geteuid() != 0:
        return False, "network namespaces and veth pairs need root"
    if shutil.which("ip") is None:
        return False, "the `ip` command (iproute2) is not installed"
    return True, ""


_NETNS_OK, _NETNS_REASON = _can_use_netns()
pytestmark = pytest.mark.skipif(not _NETNS_OK, reason=_NETNS_REASON)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def netns() -> Iterator[str]:
    yield from _namespace_with_veth()


@pytest.fixture
def other_netns() -> Iterator[str]:
    yield from _namespace_with_veth()


def _namespace_with_veth() -> Iterator[str]:
    name = f"pbcli{os.getpid()}_{next(_counter)}"
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.strip()}")
    try:
        _ip("-n", name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        for dev in ("lo", "v0", "v1"):
            _ip("-n", name, "link", "set", dev, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


# Runs pybpfdsl commands one after another inside the namespace (optionally with bpffs mounted at
# /sys/fs/bpf, in the mount namespace `ip netns exec` creates) and prints their results as JSON.
_DRIVER = r"""
import json, subprocess, sys
spec = json.loads(sys.argv[1])
if spec["bpffs"]:
    subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
out = []
for argv in spec["commands"]:
    p = subprocess.run([sys.executable, "-m", "pybpfdsl", *argv], capture_output=True, text=True)
    out.append({"code": p.returncode, "out": p.stdout, "err": p.stderr})
print(json.dumps(out))
"""


def in_ns(ns: str, *commands: list[str | Path], bpffs: bool = False) -> list[Result]:
    spec = {"bpffs": bpffs, "commands": [[str(a) for a in argv] for argv in commands]}
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _DRIVER, json.dumps(spec)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return [Result(r["code"], r["out"], r["err"]) for r in json.loads(proc.stdout)]


def xdp_on(ns: str, dev: str) -> dict[str, object] | None:
    proc = subprocess.run(["ip", "-n", ns, "-j", "link", "show", "dev", dev], capture_output=True, text=True,
                          check=True)
    link = json.loads(proc.stdout)[0]
    xdp = link.get("xdp")
    return xdp if isinstance(xdp, dict) else None


def send_from_peer(ns: str, packet_hex: str) -> None:
    """Send a raw frame out of v1, so that it arrives on v0."""
    code = ("import socket, sys; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('v1', 0)); "
            "s.send(bytes.fromhex(sys.argv[1]))")
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, packet_hex], check=True)


# -- status ----------------------------------------------------------------------------------------------


def test_status_with_nothing_attached(netns: str) -> None:
    text, js, one, bad = in_ns(netns, ["status"], ["status", "--json"], ["status", "v0"], ["status", "nope0"])
    assert text.code == 0 and "no XDP program attached" in text.out
    assert js.code == 0 and json.loads(js.out) == []
    assert one.code == 0 and "v0" in one.out
    assert bad.code == 1 and "nope0" in bad.err and "Traceback" not in bad.err


# -- attach in the foreground -----------------------------------------------------------------------


def _read_until(proc: subprocess.Popen[str], predicate: Callable[[str], bool], timeout: float) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            if predicate(seen):
                return seen
        elif proc.poll() is not None:
            break
    raise AssertionError(f"timed out; output so far:\n{seen}")


def _as_in_a_terminal() -> None:
    """Ctrl-C reaches a command in the foreground of a terminal. A test run started in the background of
    a shell (`make test &`) has SIGINT ignored, and children inherit that: the command would never see
    the Ctrl-C this test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_attach_shows_live_state_and_detaches_on_ctrl_c(netns: str, counter_file: Path) -> None:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "pybpfdsl", "attach", f"{counter_file}:drop_telnet",
         "v0", "--mode", "skb", "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_as_in_a_terminal)
    try:
        first = _read_until(proc, lambda s: "slots" in s, 60)
        assert "attached drop_telnet to v0: skb mode" in first
        assert "\x1b[" not in first  # a pipe, not a terminal
        rows = [line.split() for line in first.splitlines()]
        assert ["dropped", "Global(u64)", "0"] in rows
        assert ["per_port", "HashMap(u16", "->", "u64,", "64)", "80", "5"] in rows

        (status,) = in_ns(netns, ["status", "v0", "--json"])
        (att,) = json.loads(status.out)
        assert att["interface"] == "v0" and att["mode"] == "skb" and att["name"] == "drop_telnet"
        assert isinstance(att["link_id"], int) and att["prog_id"] > 0
        assert xdp_on(netns, "v0") is not None

        # A telnet packet through the interface shows up in the next tables.
        send_from_peer(netns, TELNET_HEX)
        later = _read_until(proc, lambda s: ["dropped", "Global(u64)", "1"] in [x.split() for x in s.splitlines()],
                            30)
        assert "dropped" in later
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "detached drop_telnet from v0" in out
    assert "Traceback" not in err
    assert xdp_on(netns, "v0") is None
    (status,) = in_ns(netns, ["status", "--json"])
    assert json.loads(status.out) == []


def test_attach_detaches_on_sigterm(netns: str, counter_file: Path) -> None:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "pybpfdsl", "attach", counter_file, "v0",
         "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _read_until(proc, lambda s: "slots" in s, 60)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "detached" in out
    assert xdp_on(netns, "v0") is None


# -- attach --pin, status, maps --pinned, detach ----------------------------------------------------


def test_pinned_attach_status_maps_and_detach(netns: str, counter_file: Path) -> None:
    pin = "/sys/fs/bpf/ctr"
    results = in_ns(
        netns,
        ["attach", counter_file, "v0", "--mode", "skb", "--pin", pin],
        ["status", "--json"],
        ["status"],
        ["maps", "--pinned", f"{pin}_maps/per_port"],
        ["maps", counter_file, "--pinned", f"{pin}_maps/per_port", "--json"],
        ["maps", "--pinned", pin],
        ["attach", counter_file, "v0"],
        ["detach", "v0"],
        ["status", "--json"],
        ["detach", "v0"],
        bpffs=True,
    )
    attach, status_js, status, raw, decoded, not_a_map, busy, detach, after, again = results
    assert attach.code == 0, attach.err
    assert f"pinned the link at {pin}" in attach.out
    assert f"pinned map at {pin}_maps/per_port" in attach.out

    (att,) = json.loads(status_js.out)
    assert att["pinned"] == [pin] and att["name"] == "drop_telnet" and att["mode"] == "skb"
    assert pin in status.out and "drop_telnet" in status.out

    assert raw.code == 0, raw.err
    assert "5000" in raw.out and "0500000000000000" in raw.out  # key 80, value 5 as stored (little-endian)
    data = json.loads(decoded.out)
    assert data["decoded"] and data["entries"] == [{"key": 80, "value": 5}]
    assert not_a_map.code == 1 and "pinned link, not a map" in not_a_map.err

    assert busy.code == 1 and "already has an XDP program" in busy.err and "Traceback" not in busy.err

    assert detach.code == 0, detach.err
    assert f"removed pin {pin}" in detach.out and "removed map pins" in detach.out
    assert json.loads(after.out) == []
    assert again.code == 0 and "nothing to do" in again.out
    assert xdp_on(netns, "v0") is None


def test_status_names_this_namespaces_link_when_another_has_the_same_ifindex(
        netns: str, other_netns: str, counter_file: Path) -> None:
    """Interface indexes are per namespace while the kernel lists every namespace's links: a link to
    another namespace's v0 (the same index), made later, must not hide this namespace's link."""
    holders: list[subprocess.Popen[str]] = []
    try:
        for ns in (netns, other_netns):  # this namespace's link first, so the other's has the higher id
            holders.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "pybpfdsl", "attach", counter_file, "v0",
                 "--mode", "skb", "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            _read_until(holders[-1], lambda s: "slots" in s, 60)
        mine, theirs = (in_ns(ns, ["status", "v0", "--json"])[0] for ns in (netns, other_netns))
        (att,), (other,) = json.loads(mine.out), json.loads(theirs.out)
        assert isinstance(att["link_id"], int) and isinstance(other["link_id"], int)
        assert att["link_id"] != other["link_id"] and att["ifindex"] == other["ifindex"]
    finally:
        for holder in holders:
            holder.terminate()
            holder.communicate(timeout=60)


# -- failures ----------------------------------------------------------------------------------------------


def test_attach_failures_are_user_errors(netns: str, counter_file: Path, tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.py", "from pybpfdsl import xdp, Packet\n\n@xdp\ndef f(pkt: Packet) -> int:\n"
                                          "    return [1]\n")
    no_dev, no_bpffs, dsl, detach_no_dev = in_ns(
        netns,
        ["attach", counter_file, "nope0"],
        ["attach", counter_file, "v0", "--pin", str(tmp_path / "pin")],
        ["attach", broken, "v0"],
        ["detach", "nope0"],
    )
    assert no_dev.code == 1 and "no network interface 'nope0'" in no_dev.err
    assert no_bpffs.code == 1 and "bpffs" in no_bpffs.err
    assert dsl.code == 1 and dsl.err.startswith(f"{broken}:5:")
    assert detach_no_dev.code == 1 and "nope0" in detach_no_dev.err
    for r in (no_dev, no_bpffs, dsl, detach_no_dev):
        assert "Traceback" not in r.err
    assert xdp_on(netns, "v0") is None


@pytest.fixture
def root_veth() -> Iterator[str]:
    """A veth pair in the root namespace with a unique name (for in-process tests), deleted afterwards."""
    name = f"pbc{os.getpid() % 10000}x{next(_counter)}"
    try:
        _ip("link", "add", name, "type", "veth", "peer", "name", name + "p")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a veth pair: {exc.stderr.strip()}")
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


@pytest.mark.usefixtures("rejected_by_verifier")
def test_attach_refused_by_the_verifier(call: Cli, counter_file: Path, root_veth: str) -> None:
    r = call("attach", counter_file, root_veth, "--mode", "skb")
    assert r.code == 1
    assert "refusing to attach" in r.err and "kernel verifier" in r.err and "R9 !read_ok" in r.err
    assert "Traceback" not in r.err
    proc = subprocess.run(["ip", "-j", "link", "show", "dev", root_veth], capture_output=True, text=True, check=True)
    assert "xdp" not in json.loads(proc.stdout)[0]


def test_attach_proves_and_refuses_an_unproven_program(call: Cli, counter_file: Path, root_veth: str,
                                                       proof_verdict: Callable[[str, str], None]) -> None:
    proof_verdict("unknown", "a stand-in verdict")
    r = call("attach", counter_file, root_veth, "--mode", "skb")
    assert r.code == 1
    assert "refusing to attach" in r.err and "the equivalence proof check failed" in r.err
    assert "a stand-in verdict" in r.err and "Traceback" not in r.err
    proc = subprocess.run(["ip", "-j", "link", "show", "dev", root_veth], capture_output=True, text=True, check=True)
    assert "xdp" not in json.loads(proc.stdout)[0]
