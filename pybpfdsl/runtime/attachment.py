"""A loaded program attached to a network interface through a BPF link, and detaching by interface.

    target = AttachTarget.check("eth0", "auto", pin=None)      # interface, mode, pin path, not busy
    att = LinkAttachment.link(loaded, target, owns_loaded=False)  # bpf_link_create with BPF_XDP

This is the mechanics on a program already loaded (and so already through the kernel verifier); the
checks a program passes before it gets here, and compiling it, are `pybpfdsl.deploy`'s, whose
`Attachment` extends `LinkAttachment` with `replace`.

A link belongs to the process: when the process exits, even by SIGKILL, the kernel closes its fds and
the program leaves the interface. With a pin path (on bpffs) the link is pinned and stays until
`detach(ifname)` or `LinkAttachment.detach()` removes it. While attached, the program's state objects
stay bound to the kernel maps; `switch_to` swaps a replacement in with `bpf_link_update`, so no packet
meets the interface without a program. Interfaces are looked up, and links created, in the calling
thread's network namespace.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pybpfdsl.runtime import links
from pybpfdsl.runtime.attach_errors import AttachError, privilege_error
from pybpfdsl.runtime.interfaces import interface_index, netns_id
from pybpfdsl.runtime.loaded import LoadedProgram, PendingReplacement
from pybpfdsl.runtime.xdp_link import (
    Detached,
    busy_error,
    check_mode,
    check_pin_path,
    create_link,
    detach_foreign,
    pin_link,
)

__all__ = ["AttachTarget", "LinkAttachment", "detach", "live_attachments"]

_LIVE: set[LinkAttachment] = set()  # attachments not yet detached (kept alive: their state stays bound)
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class AttachTarget:
    """Where a program goes: an interface (found), a mode (valid) and a pin path (on bpffs, free)."""

    ifname: str
    ifindex: int
    mode: str
    pin: str | None

    @classmethod
    def check(cls, ifname: str, mode: str, pin: str | None) -> AttachTarget:
        """Check the target before anything is compiled or loaded: a bad mode, a missing interface, a
        pin path off bpffs or taken, and an interface that already runs a program all fail here."""
        check_mode(mode)
        ifindex = interface_index(ifname)
        pin_path = check_pin_path(pin) if pin is not None else None
        busy = busy_error(ifname, ifindex)
        if busy is not None:
            raise busy
        return cls(ifname, ifindex, mode, pin_path)


class LinkAttachment:
    """A loaded program attached to an interface through a BPF link; create with `link`.

    Context manager: leaving the block detaches (also a pinned link). `detach()` is idempotent and,
    when the attachment owns the loaded program, copies the kernel's state back into the state
    objects and unloads it. An attachment that is never detached stays until the process exits (or,
    pinned, until `detach`).
    """

    def __init__(self, *, loaded: LoadedProgram, owns_loaded: bool, ifname: str, ifindex: int, mode: str,
                 requested_mode: str, link_fd: int, pin: str | None, fallback_reason: str | None) -> None:
        """Internal: use `link`."""
        self.loaded = loaded
        self.ifname = ifname
        self.ifindex = ifindex
        self.mode = mode
        self.requested_mode = requested_mode
        self.pin = pin
        self.fallback_reason = fallback_reason
        self.netns = netns_id()
        self._owns_loaded = owns_loaded
        self._link_fd: int | None = link_fd
        self.link_id = links.link_info(link_fd).id
        self._lock = threading.RLock()

    @classmethod
    def link(cls, loaded: LoadedProgram, target: AttachTarget, *, owns_loaded: bool) -> Self:
        """Create the link (in `target.mode`; "auto" falls back from native to skb) and pin it; on any
        failure nothing stays on the interface. `owns_loaded`: `detach` unloads the program."""
        link_fd, used, fallback = create_link(loaded.fd, target.ifname, target.ifindex, target.mode)
        try:
            if target.pin is not None:
                pin_link(link_fd, target.pin)
            attachment = cls(loaded=loaded, owns_loaded=owns_loaded, ifname=target.ifname, ifindex=target.ifindex,
                             mode=used, requested_mode=target.mode, link_fd=link_fd, pin=target.pin,
                             fallback_reason=fallback)
        except BaseException:
            try:
                links.link_detach(link_fd)
            finally:
                os.close(link_fd)
            raise
        with _LIVE_LOCK:
            _LIVE.add(attachment)
        return attachment

    @property
    def name(self) -> str:
        """The name of the program the link runs."""
        return self.loaded.program.name

    @property
    def attached(self) -> bool:
        return self._link_fd is not None

    @property
    def prog_id(self) -> int:
        """The kernel id of the program the link runs now."""
        fd = self._ensure_attached()
        return links.link_info(fd).prog_id

    def _ensure_attached(self) -> int:
        if self._link_fd is None:
            raise AttachError(f"the attachment of {self.name!r} to {self.ifname!r} was detached")
        return self._link_fd

    def switch_to(self, replacement: PendingReplacement) -> None:
        """Swap `replacement` in for the running program, atomically (`bpf_link_update`), and make it
        the loaded program (`LoadedProgram.install`: the state objects move to its maps). If the swap
        fails the replacement is discarded and the running program, its maps and bindings are unchanged."""
        with self._lock:
            try:
                link_fd = self._ensure_attached()
                links.link_update(link_fd, replacement.prog_fd, old_prog_fd=self.loaded.fd)
            except BaseException as exc:
                replacement.discard()
                if isinstance(exc, OSError):
                    raise privilege_error(exc, "bpf_link_update") or AttachError(
                        f"cannot swap {replacement.program.name!r} in on {self.ifname!r}: {exc}") from exc
                raise
            self.loaded.install(replacement)

    def detach(self) -> None:
        """Remove the program from the interface (and the pin), then, if this attachment owns the
        loaded program, copy the kernel's state back into the state objects and unload. Idempotent."""
        with self._lock:
            fd, self._link_fd = self._link_fd, None
            if fd is None:
                return
            with _LIVE_LOCK:
                _LIVE.discard(self)
            try:
                if self.pin is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.pin)
                links.link_detach(fd)
            finally:
                os.close(fd)
                if self._owns_loaded:
                    self.loaded.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.detach()

    def __repr__(self) -> str:
        state = f"link {self.link_id}, {self.mode}" if self.attached else "detached"
        pinned = f", pinned at {self.pin}" if self.pin and self.attached else ""
        return f"<{type(self).__name__} {self.name!r} on {self.ifname!r} ({state}{pinned})>"


def detach(ifname: str, *, pin: str | None = None) -> Detached | None:
    """Remove the XDP program attached to `ifname` (in this network namespace), whoever attached it.

    A link made by this process is detached like `LinkAttachment.detach()`. A link of another (or a
    dead) process is found by its interface, detached (`bpf_link_detach`) and its pins under the
    mounted bpffs (or `pin`) are removed; a program attached without a link (netlink) is removed too.
    Returns what was removed, or None when the interface had no XDP program.
    """
    ifindex = interface_index(ifname)
    netns = netns_id()
    with _LIVE_LOCK:
        mine = [a for a in _LIVE if a.ifindex == ifindex and a.netns == netns]
    if mine:
        att = mine[0]
        prog_id = att.prog_id if att.attached else 0
        name = att.name
        att.detach()
        return Detached(ifname, prog_id, name, att.link_id, (att.pin,) if att.pin else ())
    return detach_foreign(ifname, ifindex, pin)


def live_attachments() -> list[LinkAttachment]:
    """The attachments this process made and has not detached."""
    with _LIVE_LOCK:
        return list(_LIVE)
