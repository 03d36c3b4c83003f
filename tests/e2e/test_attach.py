"""Attaching through BPF links: modes, the Attachment object, gates, pinning, and process death.

Every test runs on its own veth pair between two fresh namespaces (the `veth` fixture); programs are
attached on `veth1` in the rx namespace and the kernel's view is checked with `ip -d link`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import logging_counters as LC
import port_acl as ACL
import pytest

from pybpfdsl import XDP_PASS, Global, HashMap, Packet, u16, u32, u64, xdp
from pybpfdsl.deploy import (
    GATES,
    Attachment,
    Candidate,
    GateResult,
    KernelVerifierGate,
    ProofGate,
    UserspaceVerifierGate,
    attach,
)
from pybpfdsl.program import CompiledProgram, XdpProgram
from pybpfdsl.runtime import links
from pybpfdsl.runtime.attach_errors import AttachRefused
from pybpfdsl.runtime.attachment import detach, live_attachments
from pybpfdsl.runtime.loaded import LoadedProgram
from pybpfdsl.runtime.xdp_link import attached_program
from pybpfdsl.testing import reset_state
from pybpfdsl.verify.equivalence import prove as prove_module

from .netns import (  # noqa: F401 - fixtures
    REPO,
    VethPair,
    bpffs_fixture,
    drain,
    inside,
    ip,
    send_udp,
    veth_fixture,
    wait_until,
    xdp_prog_id,
)

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def fresh_examples() -> Iterator[None]:
    reset_state(LC, ACL)
    yield
    reset_state(LC, ACL)


# ------------------------------------------------------------------------------------ modes and API


@pytest.mark.parametrize("mode,kernel_word", [("native", "xdp"), ("skb", "xdpgeneric")])
def test_attach_in_each_mode_is_visible_to_ip_link(veth: VethPair, mode: str, kernel_word: str) -> None:
    with inside(veth.rx_ns):
        att = attach(LC.logging_counters, veth.rx_if, mode=mode)  # type: ignore[arg-type]
    with att:
        assert att.mode == mode and att.requested_mode == mode
        assert xdp_prog_id(veth.rx_ns, veth.rx_if) == att.prog_id
        shown = ip("-d", "link", "show", "dev", veth.rx_if, ns=veth.rx_ns).stdout
        assert f" {kernel_word} " in shown or f"{kernel_word}/" in shown
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) is None
    assert not att.attached


def test_auto_uses_native_on_veth_and_falls_back_to_skb_where_the_driver_has_no_xdp(veth: VethPair) -> None:
    with inside(veth.rx_ns):
        on_veth = attach(LC.logging_counters, veth.rx_if)
        on_lo = attach(ACL.port_acl_filter, "lo")
    with on_veth, on_lo:
        assert on_veth.requested_mode == "auto" and on_veth.mode == "native" and on_veth.fallback_reason is None
        assert on_lo.mode == "skb"
        assert on_lo.fallback_reason is not None and "EOPNOTSUPP" in on_lo.fallback_reason
        assert xdp_prog_id(veth.rx_ns, "lo") == on_lo.prog_id


def test_the_shorthand_and_the_attachment_attributes(veth: VethPair) -> None:
    with inside(veth.rx_ns):
        att = ACL.port_acl_filter.attach(veth.rx_if, mode="skb")
        ifindex = socket.if_nametoindex(veth.rx_if)
        assert attached_program(veth.rx_if).prog_ids() == [att.prog_id]
    assert isinstance(att, Attachment)
    with att:
        assert att.program is ACL.port_acl_filter
        assert isinstance(att.loaded, LoadedProgram) and not att.loaded.closed
        assert att.ifname == veth.rx_if and att.ifindex == ifindex
        fd = links.link_get_fd_by_id(att.link_id)
        try:
            info = links.link_info(fd)
        finally:
            os.close(fd)
        assert info.is_xdp and info.ifindex == att.ifindex and info.prog_id == att.prog_id
        assert att in live_attachments()
        assert ACL.port_acl.bound and ACL.denied_packets.bound
    assert att not in live_attachments()
    assert att.loaded.closed and not ACL.port_acl.bound  # state copied back and unbound


def test_attaching_a_loaded_program_leaves_it_to_its_owner(veth: VethPair) -> None:
    with LC.logging_counters.load() as lp:
        with inside(veth.rx_ns), attach(lp, veth.rx_if) as att:
            assert att.program is None and att.loaded is lp
            assert xdp_prog_id(veth.rx_ns, veth.rx_if) == att.prog_id
        assert not lp.closed and LC.requests.bound  # detach does not unload what it did not load
        assert lp.run(b"\x00" * 60).action == XDP_PASS


def test_module_detach_removes_an_attachment_of_this_process(veth: VethPair) -> None:
    with inside(veth.rx_ns):
        att = attach(LC.logging_counters, veth.rx_if)
        removed = detach(veth.rx_if)
        assert detach(veth.rx_if) is None  # nothing left
    assert removed is not None and removed.link_id == att.link_id and removed.prog_name == "logging_counters"
    assert not att.attached and xdp_prog_id(veth.rx_ns, veth.rx_if) is None


# ------------------------------------------------------------------------------------------- gates


class _Gate:
    def __init__(self, name: str, passed: bool) -> None:
        self.name = name
        self.passed = passed
        self.seen: list[Candidate] = []

    def check(self, candidate: Candidate) -> GateResult:
        self.seen.append(candidate)
        return GateResult(self.passed, "" if self.passed else f"{self.name} found a problem")


def test_the_default_gates_are_every_check_the_codebase_has() -> None:
    # Our verifier first (its errors name the Python line), then the Z3 proof, then the kernel, which loads.
    assert [type(g) for g in GATES] == [UserspaceVerifierGate, ProofGate, KernelVerifierGate]


def test_an_unproven_program_is_refused_with_a_way_to_override(veth: VethPair,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import rate_limiter as RL

    # A proof that does not finish within the budget (1 resource unit here) leaves the program unproven.
    monkeypatch.setattr(prove_module, "COMPILE_BUDGET", 1)
    assert RL.rate_limiter.compile().proof.status == "unknown"
    with inside(veth.rx_ns), pytest.raises(AttachRefused) as info:
        attach(RL.rate_limiter, veth.rx_if)
    assert info.value.gate == "equivalence proof"
    assert "gates=[g for g in pybpfdsl.deploy.GATES if g.name != 'equivalence proof']" in str(info.value)
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) is None
    gates = [g for g in GATES if g.name != "equivalence proof"]
    with inside(veth.rx_ns), attach(RL.rate_limiter, veth.rx_if, mode="skb", gates=gates):
        assert xdp_prog_id(veth.rx_ns, veth.rx_if) is not None


def test_a_gate_that_fails_before_loading_refuses_and_nothing_is_loaded(veth: VethPair) -> None:
    from pybpfdsl.runtime.activity import ACTIVITY

    z3 = _Gate("equivalence proof", passed=False)
    loads = ACTIVITY.loads
    with inside(veth.rx_ns), pytest.raises(AttachRefused) as info:
        attach(LC.logging_counters, veth.rx_if, gates=[z3, KernelVerifierGate()])
    assert info.value.gate == "equivalence proof"
    assert "the equivalence proof check failed" in str(info.value)
    assert "equivalence proof found a problem" in str(info.value)
    assert ACTIVITY.loads == loads  # the gate before the kernel stopped it before any load
    assert z3.seen[0].compiled is not None and z3.seen[0].prog_fd is None
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) is None and not LC.requests.bound


def test_a_gate_that_fails_after_loading_unloads_the_program(veth: VethPair) -> None:
    late = _Gate("userspace verifier", passed=False)
    with inside(veth.rx_ns), pytest.raises(AttachRefused) as info:
        attach(LC.logging_counters, veth.rx_if, gates=[KernelVerifierGate(), late])
    assert info.value.gate == "userspace verifier"
    assert late.seen[0].prog_fd is not None  # it ran after the kernel had loaded the program
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) is None and not LC.requests.bound


def test_every_gate_runs_in_order_and_the_kernel_verifier_always_runs(veth: VethPair) -> None:
    first, second = _Gate("first", True), _Gate("second", True)
    with inside(veth.rx_ns), attach(LC.logging_counters, veth.rx_if, gates=[first, second]) as att:
        assert first.seen and second.seen
        assert xdp_prog_id(veth.rx_ns, veth.rx_if) == att.prog_id


@xdp
def passer(pkt: Packet) -> int:
    return XDP_PASS


def _xdp_section(elf: bytes) -> tuple[int, int]:
    """(file offset, size) of the `xdp` section of a little-endian ELF64 object."""
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab = sections[shstrndx]
    for sh in sections:
        name_end = elf.index(b"\0", strtab[4] + sh[0])
        if elf[strtab[4] + sh[0]:name_end] == b"xdp":
            return sh[4], sh[5]
    raise AssertionError("no xdp section")


class Corrupted(XdpProgram):
    """`passer` with its first instruction replaced by `r0 = r5`: reading an uninitialised register,
    which the kernel verifier rejects."""

    def compile(self, *, cpu: str | None = None, opt_level: int = 2, prove: bool | None = None,
                verify: bool = True) -> CompiledProgram:
        # Proved before the corruption (`attach` compiles without proving and leaves it to its gate): the
        # tests are about the kernel verifier's verdict, which the proof must not pre-empt.
        compiled = super().compile(cpu=cpu, opt_level=opt_level, prove=True, verify=verify)
        offset, size = _xdp_section(compiled.elf)
        assert size >= 16
        elf = bytearray(compiled.elf)
        elf[offset:offset + 8] = bytes([0xBF, 0x50, 0, 0, 0, 0, 0, 0])  # mov64 r0, r5
        return dataclasses.replace(compiled, elf=bytes(elf))


def test_a_program_the_kernel_verifier_rejects_is_refused_and_nothing_is_attached(veth: VethPair) -> None:
    bad = Corrupted(passer.function, name="passer")
    with inside(veth.rx_ns), pytest.raises(AttachRefused) as info:
        attach(bad, veth.rx_if)
    assert info.value.gate == "kernel verifier"
    assert "R5 !read_ok" in str(info.value)
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) is None


# -------------------------------------------------------------------------------- pins and process death


def test_a_pinned_attachment_detaches_and_unpins(veth: VethPair, bpffs: Path) -> None:
    pin = bpffs / "acl_link"
    with inside(veth.rx_ns), attach(ACL.port_acl_filter, veth.rx_if, pin=str(pin)) as att:
        assert pin.exists() and att.pin == str(pin)
        fd = links.obj_get(str(pin))
        try:
            assert links.link_info(fd).id == att.link_id
        finally:
            os.close(fd)
    assert not pin.exists() and xdp_prog_id(veth.rx_ns, veth.rx_if) is None


def _start_child(veth: VethPair, *extra: str) -> tuple[subprocess.Popen[str], int, int]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, str(HERE / "sigkill_child.py"), veth.rx_ns, veth.rx_if, *extra],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("READY"):
        child.kill()
        _, err = child.communicate(timeout=10)
        raise AssertionError(f"child did not attach: {line!r} {err}")
    _, prog_id, link_id = line.split()
    return child, int(prog_id), int(link_id)


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL


def test_sigkill_of_the_attaching_process_leaves_nothing_attached(veth: VethPair) -> None:
    child, prog_id, _ = _start_child(veth, "native")
    try:
        assert xdp_prog_id(veth.rx_ns, veth.rx_if) == prog_id
    finally:
        _kill(child)
    assert wait_until(lambda: xdp_prog_id(veth.rx_ns, veth.rx_if) is None, timeout=5)
    assert "xdp" not in ip("-d", "link", "show", "dev", veth.rx_if, ns=veth.rx_ns).stdout.split()


def test_a_pinned_link_survives_sigkill_until_detach(veth: VethPair, bpffs: Path) -> None:
    pin = bpffs / "counters_link"
    child, prog_id, link_id = _start_child(veth, "skb", str(pin))
    _kill(child)
    # still there after the process is gone, and still running: it counts traffic in the kernel
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) == prog_id and pin.exists()
    receiver, sender = veth.udp_receiver(7000), veth.udp_sender()
    send_udp(sender, (veth.rx_ip, 7000), 20)
    assert len(drain(receiver, 20)) == 20
    with inside(veth.rx_ns):
        removed = detach(veth.rx_if)
    assert removed is not None
    assert removed.link_id == link_id and removed.prog_id == prog_id and removed.unpinned == (str(pin),)
    assert not pin.exists()
    assert wait_until(lambda: xdp_prog_id(veth.rx_ns, veth.rx_if) is None, timeout=5)


def test_detach_with_a_pin_path_removes_a_pinned_link(veth: VethPair, bpffs: Path) -> None:
    pin = bpffs / "by_path"
    child, _, link_id = _start_child(veth, "native", str(pin))
    _kill(child)
    with inside(veth.rx_ns):
        removed = detach(veth.rx_if, pin=str(pin))
    assert removed is not None and removed.link_id == link_id and removed.unpinned == (str(pin),)
    assert not pin.exists() and xdp_prog_id(veth.rx_ns, veth.rx_if) is None


# ---------------------------------------------------------------------------------- replacement basics

port_hits = HashMap(u16, u64, max_entries=64)
extra_global = Global(u32, 7)


@xdp
def logging_counters_with_ports(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is not None or pkt.tcp is not None:
        LC.requests.value += 1
        LC.request_bytes.value += pkt.len
    if udp is not None:
        port_hits[udp.dport] += 1
    return XDP_PASS


@xdp
def logging_counters_new_layout(pkt: Packet) -> int:
    if pkt.udp is not None or pkt.tcp is not None:
        LC.requests.value += 1
        LC.request_bytes.value += pkt.len
        extra_global.value += 1
    return XDP_PASS


def test_replace_swaps_the_program_in_place_and_rebinds_the_state(veth: VethPair) -> None:
    reset_state(port_hits, extra_global)
    with inside(veth.rx_ns), attach(LC.logging_counters, veth.rx_if) as att:
        LC.requests.value = 41
        LC.request_bytes.value = 4100
        old_prog, loaded = att.prog_id, att.loaded
        att.replace(logging_counters_with_ports)
        assert att.program is logging_counters_with_ports and att.loaded is loaded
        assert att.prog_id != old_prog and xdp_prog_id(veth.rx_ns, veth.rx_if) == att.prog_id
        assert loaded.program.name == "logging_counters_with_ports"
        assert LC.requests.value == 41 and LC.request_bytes.value == 4100  # same .bss map
        port_hits[5] = 1
        assert LC.requests.bound and port_hits.bound
        # a new layout of the global section: the values are carried over by name
        att.replace(logging_counters_new_layout)
        assert LC.requests.value == 41 and LC.request_bytes.value == 4100 and extra_global.value == 7
        assert not port_hits.bound and dict(port_hits.items()) == {5: 1}  # copied back when dropped
    assert not LC.requests.bound and LC.requests.value == 41
    reset_state(port_hits, extra_global)
