"""XDP links on an interface: create one (native, skb, or native falling back to skb), pin it, find the
link that runs an interface's program, say who holds a busy interface, and remove another process's
program.

The BPF calls themselves are typed wrappers in `runtime.links`; this module adds the policy of which
mode to try and turns the kernel's error numbers into `AttachError`s that say what to do.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from pybpfdsl.runtime import links
from pybpfdsl.runtime.attach_errors import (
    AttachError,
    BpffsNotMounted,
    InterfaceBusy,
    InterfaceNotFound,
    ModeNotSupported,
    PinPathInUse,
    errname,
    privilege_error,
)
from pybpfdsl.runtime.interfaces import interface_index, interface_names

__all__ = [
    "MODES",
    "Detached",
    "Mode",
    "attached_program",
    "busy_error",
    "check_mode",
    "check_pin_path",
    "create_link",
    "detach_foreign",
    "find_xdp_link",
    "pin_link",
]

_log = logging.getLogger("pybpfdsl.runtime")

Mode = Literal["auto", "skb", "native"]
MODES: Final = ("auto", "skb", "native")
_MODE_FLAGS: Final = {"native": links.XDP_FLAGS_DRV_MODE, "skb": links.XDP_FLAGS_SKB_MODE}
# Errors of a native attach after which "auto" tries generic (skb) mode: the driver has no XDP
# (EOPNOTSUPP) or refuses this configuration (EINVAL, e.g. an MTU too large for native XDP).
_NATIVE_FALLBACK_ERRNOS: Final = frozenset({errno.EOPNOTSUPP, errno.EINVAL})
# How a program attached without a link (netlink) is attached → the flag that removes it.
_DETACH_FLAGS: Final = {links.XDP_ATTACHED_DRV: links.XDP_FLAGS_DRV_MODE,
                        links.XDP_ATTACHED_SKB: links.XDP_FLAGS_SKB_MODE,
                        links.XDP_ATTACHED_HW: links.XDP_FLAGS_HW_MODE}


@dataclass(frozen=True)
class Detached:
    """What `detach(ifname)` removed."""

    ifname: str
    prog_id: int
    prog_name: str
    link_id: int | None
    unpinned: tuple[str, ...] = ()


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")


def check_pin_path(pin: str) -> str:
    """The absolute pin path, once it is known to be on bpffs and free."""
    path = os.path.abspath(pin)
    if links.bpffs_mount_of(os.path.dirname(path)) is None:
        raise BpffsNotMounted(path)
    if os.path.lexists(path):
        raise PinPathInUse(path)
    return path


def attached_program(ifname: str) -> links.XdpQuery:
    """What XDP programs `ifname` (in this network namespace) runs (`.attached`, `.prog_ids()`)."""
    return links.xdp_query(interface_index(ifname))


def find_xdp_link(ifindex: int, prog_ids: Iterable[int]) -> tuple[int, int] | None:
    """(link id, fd) of the XDP link on `ifindex` that runs one of `prog_ids`, or None."""
    wanted = set(prog_ids)
    for link_id in links.link_ids():
        try:
            fd = links.link_get_fd_by_id(link_id)
        except OSError:
            continue
        try:
            info = links.link_info(fd)
        except OSError:
            os.close(fd)
            continue
        if info.is_xdp and info.ifindex == ifindex and info.prog_id in wanted:
            return link_id, fd
        os.close(fd)
    return None


def busy_error(ifname: str, ifindex: int, err: int = errno.EBUSY) -> InterfaceBusy | None:
    """`InterfaceBusy` naming the program (and its link and pins) that holds `ifname`; None when free."""
    query = links.xdp_query(ifindex)
    if not query.attached:
        return None
    prog_id = query.prog_ids()[0]
    info = links.prog_info_by_id(prog_id)
    found = None
    pins: list[str] = []
    with contextlib.suppress(OSError):
        found = find_xdp_link(ifindex, query.prog_ids())
    if found is not None:
        os.close(found[1])
        try:
            pins = links.find_pins(found[0])
        except OSError:
            pins = []
    return InterfaceBusy(ifname, prog_id, info.name if info else "?", query.mode_name,
                         found[0] if found else None, pins, err)


def create_link(prog_fd: int, ifname: str, ifindex: int, mode: str) -> tuple[int, str, str | None]:
    """Create the XDP link; returns (fd, mode used, why auto fell back to skb or None)."""
    tries = ["native", "skb"] if mode == "auto" else [mode]
    fallback: str | None = None
    for i, attempt in enumerate(tries):
        try:
            return links.link_create_xdp(prog_fd, ifindex, _MODE_FLAGS[attempt]), attempt, fallback
        except OSError as exc:
            err = exc.errno or 0
            translated = privilege_error(exc, "bpf_link_create (attaching to the interface)")
            if translated is not None:
                raise translated from exc
            if err in (errno.EBUSY, errno.EEXIST):
                busy = busy_error(ifname, ifindex, err)
                if busy is not None:
                    raise busy from exc
            if err == errno.ENODEV:
                raise InterfaceNotFound(ifname, interface_names()) from exc
            if attempt == "native" and err in _NATIVE_FALLBACK_ERRNOS:
                if i + 1 < len(tries):
                    fallback = f"native XDP failed with {errname(err)}: {os.strerror(err)}"
                    _log.info("%s: %s; using skb (generic) mode", ifname, fallback)
                    continue
                raise ModeNotSupported(ifname, "native", err) from exc
            raise AttachError(f"cannot attach to {ifname!r} in {attempt} mode: {exc}") from exc
    raise AssertionError("unreachable")


def pin_link(link_fd: int, path: str) -> None:
    """Pin the link at `path` (on bpffs) so that it outlives this process."""
    try:
        links.obj_pin(link_fd, path)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            raise PinPathInUse(path) from exc
        raise privilege_error(exc, "bpf_obj_pin") or AttachError(
            f"cannot pin the link at {path!r}: {exc}") from exc


def detach_foreign(ifname: str, ifindex: int, pin: str | None = None) -> Detached | None:
    """Remove the XDP program on `ifindex` that another (or a dead) process attached: its link is
    found by the interface and detached, and its pins (under the mounted bpffs, or `pin`) removed; a
    program attached without a link (netlink) is removed too. None when the interface had none."""
    query = links.xdp_query(ifindex)
    if not query.attached:
        if pin is not None and os.path.lexists(pin):
            os.unlink(pin)  # a stale pin of a link whose interface went away
        return None
    prog_id = query.prog_ids()[0]
    pinfo = links.prog_info_by_id(prog_id)
    name = pinfo.name if pinfo else "?"
    try:
        found = find_xdp_link(ifindex, query.prog_ids())
    except OSError as exc:
        raise privilege_error(exc, "listing BPF links") or AttachError(f"cannot list BPF links: {exc}") from exc
    if found is None:
        try:
            links.xdp_detach(ifindex, _DETACH_FLAGS.get(query.attach_mode, 0))
        except OSError as exc:
            raise privilege_error(exc, "bpf_xdp_detach") or AttachError(
                f"cannot detach from {ifname!r}: {exc}") from exc
        return Detached(ifname, prog_id, name, None)
    link_id, fd = found
    try:
        pins = [pin] if pin is not None else links.find_pins(link_id)
        for path in pins:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        try:
            links.link_detach(fd)
        except OSError as exc:
            raise privilege_error(exc, "bpf_link_detach") or AttachError(
                f"cannot detach link {link_id} from {ifname!r}: {exc}") from exc
    finally:
        os.close(fd)
    return Detached(ifname, prog_id, name, link_id, tuple(pins))
