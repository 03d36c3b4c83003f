"""Test helpers for end-to-end runs: network namespaces, veth pairs, and real traffic between them.

Every test gets its own pair of namespaces, `<prefix>tx` and `<prefix>rx`, joined by a veth pair:
`veth0` (10.200.N.1/24) in tx and `veth1` (10.200.N.2/24) in rx, with static neighbour entries (no
ARP) and IPv6 off (no stray ICMPv6), so the only frames on the wire are the test's own. Programs are
attached on `veth1`, the receiving side, from inside the rx namespace (`inside(ns)` switches the calling
thread's network namespace with setns(2); sockets stay in the namespace they were created in, so one
process can send from tx and receive in rx). All addresses live only inside these namespaces.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available

REPO = Path(__file__).resolve().parents[2]

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")
# Ethernet (14) + IPv4 (20) + UDP (8): what XDP sees in front of a UDP payload.
UDP_FRAME_OVERHEAD = 42

_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count(1)


def run(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; raise with its stderr when `check` and it fails."""
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`ip [-n ns] args...`."""
    prefix = ["ip", "-n", ns] if ns else ["ip"]
    return run(*prefix, *args, check=check)


def environment_problem() -> str | None:
    """Why end-to-end tests cannot run here (no bpf(), no `ip netns`), or None."""
    ok, reason = kernel_bpf_available()
    if not ok:
        return f"bpf() is not usable: {reason}"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    name = f"pbdprobe{os.getpid()}"
    try:
        proc = ip("netns", "add", name, check=False)
        if proc.returncode != 0:
            return f"`ip netns add` does not work here: {proc.stderr.strip()}"
    finally:
        ip("netns", "del", name, check=False)
    return None


# -- namespaces -------------------------------------------------------------------------------------


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def inside(ns: str) -> Iterator[None]:
    """Run the block with the calling thread in network namespace `ns` (as `ip netns exec` would)."""
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(NETNS_RUN_DIR / ns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(target)
        os.close(original)


def add_routed_namespace(ns: str, smac: int, dmac: int) -> int:
    """Make namespace `ns` a small router for `fib_lookup` tests: a veth `v0` (MAC `smac`) with 10.77.0.1/24,
    a permanent neighbour 10.77.0.2 at `dmac`, forwarding on. The index of `v0` in it; the caller deletes
    the namespace (`ip netns del`)."""
    mac, peer = (":".join(f"{b:02x}" for b in m.to_bytes(6, "big")) for m in (smac, dmac))
    ip("netns", "add", ns)
    ip("link", "add", "v0", "address", mac, "type", "veth", "peer", "name", "v1", ns=ns)
    for dev in ("lo", "v0", "v1"):
        ip("link", "set", "dev", dev, "up", ns=ns)
    ip("addr", "add", "10.77.0.1/24", "dev", "v0", ns=ns)
    ip("neigh", "replace", "10.77.0.2", "lladdr", peer, "dev", "v0", "nud", "permanent", ns=ns)
    run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    with inside(ns):
        return socket.if_nametoindex("v0")


@dataclass
class VethPair:
    """Two namespaces joined by a veth pair; frames sent from tx arrive on `rx_if` in rx."""

    tag: str
    subnet: int
    tx_ns: str
    rx_ns: str
    tx_if: str = "veth0"
    rx_if: str = "veth1"
    extra: list[str] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list, repr=False)  # closed by `destroy`

    def _socket(self, ns: str, kind: socket.SocketKind) -> socket.socket:
        with inside(ns):
            sock = socket.socket(socket.AF_INET, kind)
        self.sockets.append(sock)
        return sock

    @property
    def tx_ip(self) -> str:
        return f"10.200.{self.subnet}.1"

    @property
    def rx_ip(self) -> str:
        return f"10.200.{self.subnet}.2"

    @property
    def tx_mac(self) -> str:
        return f"02:00:c8:{self.subnet:02x}:00:01"

    @property
    def rx_mac(self) -> str:
        return f"02:00:c8:{self.subnet:02x}:00:02"

    # -- traffic ----------------------------------------------------------------------------------

    def udp_receiver(self, port: int) -> socket.socket:
        """A UDP socket in rx bound to (rx_ip, port) with a receive buffer large enough for a test's
        whole burst (so the socket never drops what XDP passed)."""
        sock = self._socket(self.rx_ns, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE (root)
        sock.bind((self.rx_ip, port))
        return sock

    def udp_sender(self) -> socket.socket:
        sock = self._socket(self.tx_ns, socket.SOCK_DGRAM)
        sock.bind((self.tx_ip, 0))
        return sock

    def tcp_listener(self, port: int) -> socket.socket:
        sock = self._socket(self.rx_ns, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.rx_ip, port))
        sock.listen(16)
        return sock

    def tcp_exchange(self, port: int, payload: bytes = b"ping", timeout: float = 1.0) -> bytes | None:
        """Connect from tx to rx:port, send `payload`, return what the server side received (the
        listener must be accepting through `serve_tcp`), or None if the connection failed."""
        with inside(self.tx_ns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((self.rx_ip, port))
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            return recv_all(sock)
        except OSError:
            return None
        finally:
            sock.close()


def recv_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


@contextmanager
def serve_tcp(listener: socket.socket) -> Iterator[None]:
    """Echo server on `listener` in a thread for the duration of the block."""
    stop = threading.Event()
    listener.settimeout(0.1)

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                with suppress(OSError):
                    conn.sendall(recv_all(conn))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def create_veth_pair(tag: str = "t") -> VethPair:
    """Create the namespaces and the veth pair (see module doc); `destroy` removes them."""
    n = next(_counter)
    prefix = f"pbd{os.getpid() % 100000}{tag}{n}"
    pair = VethPair(tag, subnet=n % 250 + 1, tx_ns=prefix + "tx", rx_ns=prefix + "rx")
    try:
        for ns in (pair.tx_ns, pair.rx_ns):
            ip("netns", "add", ns)
        ip("link", "add", pair.tx_if, "address", pair.tx_mac, "type", "veth", "peer", "name", pair.rx_if,
           "address", pair.rx_mac, "netns", pair.rx_ns, ns=pair.tx_ns)
        for ns, ifname, addr, peer_ip, peer_mac in (
            (pair.tx_ns, pair.tx_if, pair.tx_ip, pair.rx_ip, pair.rx_mac),
            (pair.rx_ns, pair.rx_if, pair.rx_ip, pair.tx_ip, pair.tx_mac),
        ):
            run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1")
            ip("addr", "add", f"{addr}/24", "dev", ifname, ns=ns)
            ip("link", "set", "dev", ifname, "up", ns=ns)
            ip("link", "set", "dev", "lo", "up", ns=ns)
            ip("neigh", "replace", peer_ip, "lladdr", peer_mac, "dev", ifname, "nud", "permanent", ns=ns)
    except BaseException:
        destroy(pair)
        raise
    return pair


def destroy(pair: VethPair) -> None:
    """Close the test's sockets and delete the namespaces (which deletes the veth pair and detaches
    anything on it)."""
    for sock in pair.sockets:
        sock.close()
    pair.sockets.clear()
    for ns in (pair.tx_ns, pair.rx_ns, *pair.extra):
        ip("netns", "del", ns, check=False)


def xdp_prog_id(ns: str, ifname: str) -> int | None:
    """The id of the XDP program on `ifname` in `ns` as `ip -d link` reports it, None if none."""
    out = ip("-d", "link", "show", "dev", ifname, ns=ns).stdout
    words = out.split()
    for i, word in enumerate(words):
        if word == "prog/xdp" and i + 2 < len(words) and words[i + 1] == "id":
            return int(words[i + 2])
    return None


def wait_until(predicate: object, timeout: float = 3.0, interval: float = 0.02) -> bool:
    """Poll `predicate()` until it is true or `timeout` passes; returns its last value (truthy)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# -- UDP bursts -------------------------------------------------------------------------------------


def send_udp(sender: socket.socket, dst: tuple[str, int], count: int, size: int | list[int] = 32,
             pace_every: int = 50, pause: float = 0.001) -> int:
    """Send `count` datagrams (payload `size` bytes, or sizes cycling through a list), pausing
    `pause` s every `pace_every` datagrams so neither the veth ring nor the backlog overflows.
    Returns the total payload bytes sent."""
    sizes = size if isinstance(size, list) else [size]
    total = 0
    for i in range(count):
        n = sizes[i % len(sizes)]
        payload = i.to_bytes(4, "big") + bytes(max(0, n - 4))
        sender.sendto(payload[:n], dst)
        total += n
        if pace_every and (i + 1) % pace_every == 0:
            time.sleep(pause)
    return total


def drain(receiver: socket.socket, expected: int | None = None, idle: float = 0.3,
          timeout: float = 10.0) -> list[bytes]:
    """Receive datagrams until `expected` have arrived or none came for `idle` seconds."""
    got: list[bytes] = []
    receiver.settimeout(idle)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (expected is None or len(got) < expected):
        try:
            got.append(receiver.recv(65536))
        except TimeoutError:
            break
    return got


# -- fixtures (imported by the test modules) --------------------------------------------------------


@functools.cache
def _problem() -> str | None:
    return environment_problem()


def require_environment() -> None:
    """Skip, saying why, where bpf() or `ip netns` cannot be used."""
    problem = _problem()
    if problem is not None:
        pytest.skip(f"end-to-end test skipped: {problem}")


def _detach_everything_in(namespaces: list[str]) -> None:
    from pybpfdsl.runtime.attachment import live_attachments

    for att in live_attachments():
        for ns in namespaces:
            try:
                with inside(ns):
                    mine = att.netns == os.stat("/proc/thread-self/ns/net").st_ino
            except OSError:
                continue
            if mine:
                with suppress(Exception):  # cleanup must go on
                    att.detach()


@pytest.fixture(name="veth")
def veth_fixture() -> Iterator[VethPair]:
    """A fresh veth pair between two new namespaces; everything is removed afterwards, also on failure."""
    require_environment()
    pair = create_veth_pair()
    try:
        yield pair
    finally:
        _detach_everything_in([pair.tx_ns, pair.rx_ns, *pair.extra])
        destroy(pair)


@pytest.fixture(name="bpffs")
def bpffs_fixture(tmp_path: Path) -> Iterator[Path]:
    """A private bpffs mounted for the test (pins live there), unmounted afterwards."""
    require_environment()
    mount = tmp_path / "bpffs"
    mount.mkdir()
    proc = run("mount", "-t", "bpf", "bpf", str(mount), check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount bpffs for pinning: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        run("umount", "-l", str(mount), check=False)
