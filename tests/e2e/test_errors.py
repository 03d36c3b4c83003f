"""Every attach error, produced for real, reads as documented and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import logging_counters as LC
import port_acl as ACL
import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, HashMap, Packet, u8, u32, xdp
from pybpfdsl.deploy import attach
from pybpfdsl.runtime.attach_errors import (
    AttachError,
    AttachRefused,
    BpffsNotMounted,
    IncompatibleReplacement,
    InterfaceBusy,
    InterfaceNotFound,
    ModeNotSupported,
    PinPathInUse,
)
from pybpfdsl.runtime.attachment import detach
from pybpfdsl.testing import reset_state

from .netns import REPO, VethPair, bpffs_fixture, inside, ip, run, veth_fixture, xdp_prog_id  # noqa: F401 - fixtures
from .test_attach import Corrupted

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def fresh_examples() -> Iterator[None]:
    reset_state(LC, ACL)
    yield
    reset_state(LC, ACL)


def test_unknown_interface_lists_the_existing_ones(veth: VethPair) -> None:
    with inside(veth.rx_ns), pytest.raises(InterfaceNotFound) as info:
        attach(LC.logging_counters, "eth-nope")
    err = info.value
    assert err.ifname == "eth-nope" and sorted(err.available) == ["lo", "veth1"]
    text = str(err)
    assert "no network interface 'eth-nope'" in text
    assert "the interfaces here are: lo, veth1" in text
    assert "ip link" in text and "ip netns exec" in text


def test_no_privilege_says_which_capabilities_are_needed(veth: VethPair) -> None:
    """The attaching process runs with every capability dropped (bounding, inheritable and ambient
    sets emptied with setpriv), as root's uid: the kernel answers EPERM."""
    if subprocess.run(["which", "setpriv"], capture_output=True).returncode != 0:
        pytest.skip("setpriv (util-linux) is not installed")
    proc = run("ip", "netns", "exec", veth.rx_ns, "setpriv", "--bounding-set=-all", "--inh-caps=-all",
               "--ambient-caps=-all", sys.executable, str(HERE / "sigkill_child.py"), "-", veth.rx_if, "auto",
               "--expect-error", check=False, timeout=120)
    line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert line.startswith("ERROR NoPrivilege: "), line
    assert "EPERM" in line
    assert "run as root, or give the process CAP_BPF and CAP_NET_ADMIN" in line
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) is None


def test_native_mode_on_a_driver_without_xdp_suggests_skb(veth: VethPair) -> None:
    with inside(veth.rx_ns), pytest.raises(ModeNotSupported) as info:
        attach(ACL.port_acl_filter, "lo", mode="native")
    text = str(info.value)
    assert "the driver of 'lo' does not support native XDP (EOPNOTSUPP" in text
    assert 'mode="skb"' in text
    assert xdp_prog_id(veth.rx_ns, "lo") is None
    assert not ACL.port_acl.bound  # the program loaded for the attempt was unloaded


def test_a_second_program_on_a_busy_interface_names_the_first(veth: VethPair) -> None:
    with inside(veth.rx_ns), attach(LC.logging_counters, veth.rx_if) as first:
        with pytest.raises(InterfaceBusy) as info:
            attach(ACL.port_acl_filter, veth.rx_if)
        err = info.value
        assert err.prog_id == first.prog_id and err.link_id == first.link_id
        assert err.prog_name == "logging_counter"  # the kernel keeps 15 characters of a name
        text = str(err)
        assert f"program id {first.prog_id}, name 'logging_counter', through BPF link {first.link_id}" in text
        assert "pybpfdsl.detach('veth1')" in text and "replace" in text
        assert xdp_prog_id(veth.rx_ns, veth.rx_if) == first.prog_id  # the first one is untouched
        assert not ACL.port_acl.bound


def test_a_program_attached_with_ip_link_is_named_and_can_be_detached(veth: VethPair, tmp_path: Path) -> None:
    obj = ACL.port_acl_filter.compile(prove=False).save(tmp_path / "acl.o")
    ip("link", "set", "dev", veth.rx_if, "xdpgeneric", "obj", str(obj), "sec", "xdp", ns=veth.rx_ns)
    legacy = xdp_prog_id(veth.rx_ns, veth.rx_if)
    assert legacy is not None
    with inside(veth.rx_ns):
        with pytest.raises(InterfaceBusy) as info:
            attach(LC.logging_counters, veth.rx_if)
        assert info.value.prog_id == legacy and info.value.link_id is None and info.value.mode == "skb"
        assert f"ip link set dev {veth.rx_if} xdp off" in str(info.value)
        removed = detach(veth.rx_if)
    assert removed is not None and removed.prog_id == legacy and removed.link_id is None
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) is None


def test_pinning_outside_bpffs_says_how_to_mount_it(veth: VethPair, tmp_path: Path) -> None:
    with inside(veth.rx_ns), pytest.raises(BpffsNotMounted) as info:
        attach(LC.logging_counters, veth.rx_if, pin=str(tmp_path / "link"))
    assert "is not on a BPF filesystem (bpffs)" in str(info.value)
    assert "mount -t bpf bpf /sys/fs/bpf" in str(info.value)
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) is None and not (tmp_path / "link").exists()


def test_pinning_over_an_existing_pin_is_refused(veth: VethPair, bpffs: Path) -> None:
    pin = bpffs / "taken"
    with inside(veth.rx_ns), attach(LC.logging_counters, veth.rx_if, mode="skb", pin=str(pin)):
        with pytest.raises(PinPathInUse, match="already exists"):
            attach(ACL.port_acl_filter, "lo", mode="skb", pin=str(pin))
        assert xdp_prog_id(veth.rx_ns, "lo") is None


def test_an_unknown_mode_is_a_value_error(veth: VethPair) -> None:
    with inside(veth.rx_ns), pytest.raises(ValueError, match="mode must be one of"):
        attach(LC.logging_counters, veth.rx_if, mode="fast")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ refused replacements

port_acl = HashMap(u32, u8, max_entries=1024)  # same name as the example's map, a wider key


@xdp
def port_acl_wide(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is not None and port_acl.get(u32(udp.dport), 0) == 1:
        return XDP_DROP
    return XDP_PASS


def test_a_replacement_with_an_incompatible_map_is_refused_before_anything_changes(veth: VethPair) -> None:
    with inside(veth.rx_ns), attach(ACL.port_acl_filter, veth.rx_if) as att:
        ACL.deny_port(23)
        ACL.denied_packets.value = 5
        before = att.prog_id
        with pytest.raises(IncompatibleReplacement) as info:
            att.replace(port_acl_wide)
        err = info.value
        assert isinstance(err, AttachRefused) and err.gate == "state compatibility" and err.name == "port_acl"
        text = str(err)
        assert "'port_acl' is a HASH map u16 → u8 with 1024 entries in the running program" in text
        assert "but a HASH map u32 → u8 with 1024 entries in the replacement" in text
        assert att.prog_id == before and att.program is ACL.port_acl_filter
        assert ACL.port_acl.bound and ACL.port_acl[23] == ACL.DENY and ACL.denied_packets.value == 5
        assert not port_acl.bound


def test_a_replacement_the_verifier_rejects_leaves_the_running_program(veth: VethPair) -> None:
    bad = Corrupted(LC.logging_counters.function, name="logging_counters")
    with inside(veth.rx_ns), attach(LC.logging_counters, veth.rx_if) as att:
        LC.requests.value = 12
        before = att.prog_id
        with pytest.raises(AttachRefused) as info:
            att.replace(bad)
        assert info.value.gate == "kernel verifier" and info.value.action == "replace"
        assert "refusing to swap in program 'logging_counters'" in str(info.value)
        assert att.prog_id == before == xdp_prog_id(veth.rx_ns, veth.rx_if)
        assert LC.requests.bound and LC.requests.value == 12


def test_a_detached_attachment_cannot_be_replaced(veth: VethPair) -> None:
    with inside(veth.rx_ns):
        att = attach(LC.logging_counters, veth.rx_if)
    att.detach()
    att.detach()  # idempotent
    with pytest.raises(AttachError, match="was detached"):
        att.replace(LC.logging_counters)
