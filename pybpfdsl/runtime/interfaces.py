"""Network interfaces by name, in the calling thread's network namespace."""

from __future__ import annotations

import os
import socket

from pybpfdsl.runtime.attach_errors import InterfaceNotFound

__all__ = ["interface_index", "interface_names", "netns_id"]


def interface_names() -> list[str]:
    """The interfaces of this network namespace, by index."""
    return [name for _, name in sorted(socket.if_nameindex())]


def interface_index(ifname: str) -> int:
    """The index of `ifname`; `InterfaceNotFound` (listing the interfaces there are) when there is none."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise InterfaceNotFound(ifname, interface_names()) from None


def netns_id() -> int:
    """The calling thread's network namespace (its inode), 0 when /proc does not say: an interface
    index means something only together with it."""
    try:
        return os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:
        return 0
