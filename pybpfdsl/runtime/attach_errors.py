"""What can go wrong putting a loaded program on an interface, each a message that says what to do.

Every failure the user can fix is an `AttachError` subclass: `InterfaceNotFound`, `NoPrivilege`,
`ModeNotSupported`, `InterfaceBusy`, `BpffsNotMounted`, `PinPathInUse`, `AttachRefused` (a check every
program must pass failed) and `IncompatibleReplacement`. `privilege_error` turns the kernel's EPERM/EACCES
on any BPF call into `NoPrivilege`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final

from pybpfdsl.runtime.bpf_object import LoadError
from pybpfdsl.runtime.errors import KernelVerifierError

__all__ = [
    "AttachError",
    "AttachRefused",
    "BpffsNotMounted",
    "IncompatibleReplacement",
    "InterfaceBusy",
    "InterfaceNotFound",
    "ModeNotSupported",
    "NoPrivilege",
    "PinPathInUse",
    "errname",
    "privileged_load",
    "privilege_error",
]

_PRIVILEGE_HINT: Final = ("run as root, or give the process CAP_BPF and CAP_NET_ADMIN (CAP_SYS_ADMIN on "
                          "kernels before 5.8), e.g. `sudo setcap cap_bpf,cap_net_admin+ep <python binary>`")


def errname(err: int) -> str:
    """The symbolic name of an errno as the kernel headers spell it (EOPNOTSUPP, not ENOTSUP)."""
    if err == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"
    return errno.errorcode.get(err, str(err))


class AttachError(Exception):
    """Attaching, detaching or replacing failed; the message says what to do. `errno` is the kernel's
    error number when there is one."""

    errno: int | None = None


class InterfaceNotFound(AttachError, LookupError):
    """No interface of that name in this network namespace; `available` lists the ones there are."""

    def __init__(self, ifname: str, available: Sequence[str]) -> None:
        self.ifname = ifname
        self.available = list(available)
        self.errno = errno.ENODEV
        names = ", ".join(self.available) or "none"
        super().__init__(f"no network interface {ifname!r} in this network namespace; the interfaces here are: "
                         f"{names}. Check the name with `ip link`, or attach from the namespace that has it "
                         "(e.g. under `ip netns exec NS ...`).")


class NoPrivilege(AttachError, PermissionError):
    """The kernel said EPERM/EACCES: the process lacks CAP_BPF/CAP_NET_ADMIN."""

    def __init__(self, operation: str, err: int) -> None:
        self.operation = operation
        self.errno = err
        super().__init__(f"{operation} was refused with {errname(err)} ({os.strerror(err)}): "
                         f"loading and attaching XDP programs needs privileges; {_PRIVILEGE_HINT}.")

    def __str__(self) -> str:  # PermissionError would format (errno, strerror) otherwise
        return str(self.args[0])


class ModeNotSupported(AttachError):
    """The interface's driver cannot run XDP in the requested mode."""

    def __init__(self, ifname: str, mode: str, err: int) -> None:
        self.ifname = ifname
        self.mode = mode
        self.errno = err
        super().__init__(f"the driver of {ifname!r} does not support {mode} XDP "
                         f"({errname(err)}: {os.strerror(err)}); attach with mode=\"skb\" "
                         "(generic XDP: works on every interface, slower) or mode=\"auto\" (native when the "
                         "driver supports it, else skb).")


class InterfaceBusy(AttachError):
    """Another XDP program is already attached to the interface."""

    def __init__(self, ifname: str, prog_id: int, prog_name: str, mode: str, link_id: int | None,
                 pins: Sequence[str] = (), err: int = errno.EBUSY) -> None:
        self.ifname, self.prog_id, self.prog_name, self.mode = ifname, prog_id, prog_name, mode
        self.link_id, self.pins, self.errno = link_id, list(pins), err
        if link_id is not None:
            how = f"through BPF link {link_id}" + (f", pinned at {', '.join(pins)}" if pins else "")
            remove = (f"remove it with `pybpfdsl.detach({ifname!r})` (or let the process "
                      "that attached it exit" + (", after removing the pin" if pins else "") + ")")
        else:
            how = "through netlink (without a BPF link)"
            remove = (f"remove it with `ip link set dev {ifname} xdp off` or "
                      f"`pybpfdsl.detach({ifname!r})`")
        super().__init__(f"{ifname!r} already has an XDP program attached ({mode} mode): program id {prog_id}, "
                         f"name {prog_name!r}, {how}. An interface runs one XDP program per mode; {remove}, "
                         "or swap programs atomically with `Attachment.replace(...)` on the attachment that "
                         "owns it.")


class BpffsNotMounted(AttachError):
    """`pin=` names a place that is not on a BPF filesystem."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errno = errno.EPERM
        super().__init__(f"cannot pin the link at {path!r}: {os.path.dirname(path) or '.'!r} is not on a BPF "
                         "filesystem (bpffs), which pins must live on. Mount one with "
                         "`mount -t bpf bpf /sys/fs/bpf` and pin under it, e.g. pin=\"/sys/fs/bpf/my_prog\".")


class PinPathInUse(AttachError):
    """Something is already pinned at the `pin=` path."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errno = errno.EEXIST
        super().__init__(f"{path!r} already exists; choose another pin path, or remove the old pin (and "
                         "detach what it holds) with `pybpfdsl.detach(ifname, pin=path)` or "
                         "`rm` if it is stale.")


class AttachRefused(AttachError):
    """A gate (a check every program must pass before it reaches an interface) failed.

    `gate` names the check, `reason` is what it said; nothing was attached or changed."""

    def __init__(self, program: str, ifname: str, action: str, gate: str, reason: str) -> None:
        self.program, self.ifname, self.action, self.gate, self.reason = program, ifname, action, gate, reason
        verb = "attach" if action == "attach" else "swap in"
        super().__init__(f"refusing to {verb} program {program!r} on {ifname!r}: the {gate} check failed; "
                         f"nothing was changed on the interface.\n{reason}")


class IncompatibleReplacement(AttachRefused):
    """The replacement declares a map (or Global) of the same name as the running program's with a
    different type, so its state could not be carried over."""

    def __init__(self, program: str, ifname: str, name: str, running: str, replacement: str) -> None:
        self.name, self.running, self.replacement = name, running, replacement
        reason = (f"{name!r} is {running} in the running program but {replacement} in the replacement; its "
                  "contents cannot be carried over. Keep the declaration as it is, or give the changed one "
                  "a new name (it then starts from its Python-side value).")
        super().__init__(program, ifname, "replace", "state compatibility", reason)


def privilege_error(exc: OSError, operation: str) -> NoPrivilege | None:
    """`NoPrivilege` when a BPF call failed with EPERM/EACCES; None for other errors."""
    if exc.errno in (errno.EPERM, errno.EACCES):
        return NoPrivilege(operation, exc.errno)
    return None


@contextmanager
def privileged_load(name: str) -> Iterator[None]:
    """Loading program `name`: a failure for lack of privilege becomes `NoPrivilege` (which says what to
    do); every other failure (the kernel verifier's included) passes unchanged."""
    try:
        yield
    except LoadError as exc:
        if isinstance(exc, KernelVerifierError) or exc.errno not in (errno.EPERM, errno.EACCES):
            raise
        raise NoPrivilege(f"loading program {name!r} into the kernel", exc.errno) from exc
