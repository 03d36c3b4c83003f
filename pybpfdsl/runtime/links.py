"""BPF links and XDP attachment, through the system libbpf (ctypes).

The low layer under `runtime.xdp_link` and `runtime.attachment`: typed wrappers over the libbpf calls
that create, update, detach and pin BPF links (`bpf_link_create` with `BPF_XDP`, `bpf_link_update`,
`bpf_link_detach`, `bpf_obj_pin`/`bpf_obj_get`), enumerate links and programs by id, and query an
interface's XDP programs (`bpf_xdp_query`, which speaks rtnetlink in the calling thread's network
namespace). It also knows where bpffs is mounted.

Every wrapper raises `OSError` with the kernel's errno on failure; `runtime.xdp_link` turns those into
errors that say what to do. File descriptors returned here belong to the caller.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pybpfdsl.runtime.libbpf import BpfProgInfo, get_libbpf

__all__ = [
    "BPF_LINK_TYPE_XDP",
    "BPF_XDP",
    "XDP_ATTACHED_DRV",
    "XDP_ATTACHED_HW",
    "XDP_ATTACHED_MULTI",
    "XDP_ATTACHED_NONE",
    "XDP_ATTACHED_SKB",
    "XDP_FLAGS_DRV_MODE",
    "XDP_FLAGS_HW_MODE",
    "XDP_FLAGS_SKB_MODE",
    "LinkInfo",
    "ProgInfo",
    "XdpQuery",
    "bpffs_mount_of",
    "bpffs_mounts",
    "find_pins",
    "link_create_xdp",
    "link_detach",
    "link_get_fd_by_id",
    "link_ids",
    "link_info",
    "link_update",
    "obj_get",
    "obj_pin",
    "prog_get_fd_by_id",
    "prog_info",
    "xdp_detach",
    "xdp_query",
]

#: `enum bpf_attach_type` BPF_XDP (linux/bpf.h).
BPF_XDP: Final = 37
#: `enum bpf_link_type` BPF_LINK_TYPE_XDP.
BPF_LINK_TYPE_XDP: Final = 6
#: `BPF_F_REPLACE`: bpf_link_update only if the link still runs `old_prog_fd`.
BPF_F_REPLACE: Final = 1 << 2

#: XDP mode flags (linux/if_link.h).
XDP_FLAGS_SKB_MODE: Final = 1 << 1
XDP_FLAGS_DRV_MODE: Final = 1 << 2
XDP_FLAGS_HW_MODE: Final = 1 << 3

#: `attach_mode` values reported by bpf_xdp_query (linux/if_link.h, XDP_ATTACHED_*).
XDP_ATTACHED_NONE: Final = 0
XDP_ATTACHED_DRV: Final = 1
XDP_ATTACHED_SKB: Final = 2
XDP_ATTACHED_HW: Final = 3
XDP_ATTACHED_MULTI: Final = 4

BPF_FS_MAGIC: Final = 0xCAFE4A11


class _LinkCreateOpts(ctypes.Structure):
    """`struct bpf_link_create_opts` (libbpf 1.1, 64 bytes on LP64); only `sz` and `flags` are used."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("flags", ctypes.c_uint32),
        ("_pad0", ctypes.c_uint32),
        ("iter_info", ctypes.c_void_p),
        ("iter_info_len", ctypes.c_uint32),
        ("target_btf_id", ctypes.c_uint32),
        ("_union", ctypes.c_uint64 * 4),
    ]


class _LinkUpdateOpts(ctypes.Structure):
    """`struct bpf_link_update_opts` (libbpf 1.1)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("flags", ctypes.c_uint32),
        ("old_prog_fd", ctypes.c_uint32),
    ]


class _XdpQueryOpts(ctypes.Structure):
    """`struct bpf_xdp_query_opts` (libbpf 1.1, 32 bytes on LP64)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("prog_id", ctypes.c_uint32),
        ("drv_prog_id", ctypes.c_uint32),
        ("hw_prog_id", ctypes.c_uint32),
        ("skb_prog_id", ctypes.c_uint32),
        ("attach_mode", ctypes.c_uint8),
    ]


class _LinkInfo(ctypes.Structure):
    """The head of the kernel's `struct bpf_link_info`: type, id, prog_id, then the per-type union
    (8-byte aligned; for XDP links its first member is the ifindex). The kernel accepts a shorter
    `info_len` than its own struct."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("prog_id", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("union_words", ctypes.c_uint32 * 8),
    ]


if ctypes.sizeof(ctypes.c_void_p) == 8:
    assert ctypes.sizeof(_LinkCreateOpts) == 64
    assert ctypes.sizeof(_XdpQueryOpts) == 32
    assert _LinkInfo.union_words.offset == 16


_c_int = ctypes.c_int
_c_uint = ctypes.c_uint32
_SIGNATURES: Final[dict[str, tuple[object, list[object]]]] = {
    "bpf_link_create": (_c_int, [_c_int, _c_int, _c_int, ctypes.POINTER(_LinkCreateOpts)]),
    "bpf_link_update": (_c_int, [_c_int, _c_int, ctypes.POINTER(_LinkUpdateOpts)]),
    "bpf_link_detach": (_c_int, [_c_int]),
    "bpf_obj_pin": (_c_int, [_c_int, ctypes.c_char_p]),
    "bpf_obj_get": (_c_int, [ctypes.c_char_p]),
    "bpf_xdp_query": (_c_int, [_c_int, _c_int, ctypes.POINTER(_XdpQueryOpts)]),
    "bpf_xdp_detach": (_c_int, [_c_int, _c_uint, ctypes.c_void_p]),
    "bpf_link_get_next_id": (_c_int, [_c_uint, ctypes.POINTER(_c_uint)]),
    "bpf_link_get_fd_by_id": (_c_int, [_c_uint]),
    "bpf_prog_get_fd_by_id": (_c_int, [_c_uint]),
}


@functools.cache
def _lib() -> ctypes.CDLL:
    # get_libbpf() finds the library (or raises LibbpfMissing with an install hint) and installs the
    # log callback; this module binds its own handle so its argtypes stay separate from libbpf.py's.
    from pybpfdsl.runtime.libbpf import _find_library

    get_libbpf()
    lib = _find_library()
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = -ret
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


# -- links ------------------------------------------------------------------------------------------


def link_create_xdp(prog_fd: int, ifindex: int, flags: int) -> int:
    """`bpf_link_create(prog_fd, ifindex, BPF_XDP)` with XDP mode `flags`; returns the link fd.

    `ifindex` is resolved in the calling thread's network namespace."""
    opts = _LinkCreateOpts()
    opts.sz = ctypes.sizeof(_LinkCreateOpts)
    opts.flags = flags
    return _check(int(_lib().bpf_link_create(prog_fd, ifindex, BPF_XDP, ctypes.byref(opts))), "bpf_link_create")


def link_update(link_fd: int, new_prog_fd: int, old_prog_fd: int | None = None) -> None:
    """`bpf_link_update`: atomically make the link run `new_prog_fd`; with `old_prog_fd`, only if the
    link still runs that program (BPF_F_REPLACE, else EPERM)."""
    opts = _LinkUpdateOpts()
    opts.sz = ctypes.sizeof(_LinkUpdateOpts)
    if old_prog_fd is not None:
        opts.flags = BPF_F_REPLACE
        opts.old_prog_fd = old_prog_fd
    _check(int(_lib().bpf_link_update(link_fd, new_prog_fd, ctypes.byref(opts))), "bpf_link_update")


def link_detach(link_fd: int) -> None:
    """`bpf_link_detach`: detach the link's program now, even if other fds or pins hold the link."""
    _check(int(_lib().bpf_link_detach(link_fd)), "bpf_link_detach")


def obj_pin(fd: int, path: str) -> None:
    """`bpf_obj_pin`: pin a link, program or map at `path` (on bpffs)."""
    _check(int(_lib().bpf_obj_pin(fd, os.fsencode(path))), "bpf_obj_pin")


def obj_get(path: str) -> int:
    """`bpf_obj_get`: open the object pinned at `path`; returns a new fd."""
    return _check(int(_lib().bpf_obj_get(os.fsencode(path))), "bpf_obj_get")


def link_ids() -> Iterator[int]:
    """The ids of every BPF link in the system (needs CAP_SYS_ADMIN)."""
    lib = _lib()
    current = ctypes.c_uint32(0)
    while True:
        nxt = ctypes.c_uint32(0)
        ret = int(lib.bpf_link_get_next_id(current.value, ctypes.byref(nxt)))
        if ret == -errno_mod.ENOENT:
            return
        _check(ret, "bpf_link_get_next_id")
        yield nxt.value
        current = nxt


def link_get_fd_by_id(link_id: int) -> int:
    """A new fd for link `link_id`."""
    return _check(int(_lib().bpf_link_get_fd_by_id(link_id)), "bpf_link_get_fd_by_id")


def prog_get_fd_by_id(prog_id: int) -> int:
    """A new fd for program `prog_id`."""
    return _check(int(_lib().bpf_prog_get_fd_by_id(prog_id)), "bpf_prog_get_fd_by_id")


@dataclass(frozen=True)
class LinkInfo:
    """What the kernel says about a link. `ifindex` is meaningful for XDP links only (0 once the
    interface is gone)."""

    type: int
    id: int
    prog_id: int
    ifindex: int

    @property
    def is_xdp(self) -> bool:
        return self.type == BPF_LINK_TYPE_XDP


def link_info(link_fd: int) -> LinkInfo:
    """`bpf_obj_get_info_by_fd` on a link fd."""
    info = _LinkInfo()
    get_libbpf().obj_get_info_by_fd(link_fd, info)
    ifindex = info.union_words[0] if info.type == BPF_LINK_TYPE_XDP else 0
    return LinkInfo(int(info.type), int(info.id), int(info.prog_id), int(ifindex))


@dataclass(frozen=True)
class ProgInfo:
    """A program's id and (kernel-truncated, 15 characters) name."""

    id: int
    name: str
    type: int


def prog_info(prog_fd: int) -> ProgInfo:
    """`bpf_obj_get_info_by_fd` on a program fd."""
    info = BpfProgInfo()
    get_libbpf().obj_get_info_by_fd(prog_fd, info)
    return ProgInfo(int(info.id), bytes(info.name).split(b"\0", 1)[0].decode("utf-8", "replace"), int(info.type))


def prog_info_by_id(prog_id: int) -> ProgInfo | None:
    """The info of program `prog_id`, or None if it is gone or not readable."""
    try:
        fd = prog_get_fd_by_id(prog_id)
    except OSError:
        return None
    try:
        return prog_info(fd)
    finally:
        os.close(fd)


# -- XDP on an interface ----------------------------------------------------------------------------


@dataclass(frozen=True)
class XdpQuery:
    """The XDP programs on one interface (ids, 0 for none) and how they are attached."""

    prog_id: int
    drv_prog_id: int
    skb_prog_id: int
    hw_prog_id: int
    attach_mode: int

    @property
    def attached(self) -> bool:
        return self.attach_mode != XDP_ATTACHED_NONE

    def prog_ids(self) -> list[int]:
        """Every attached program id (one per mode that has a program)."""
        ids = [self.drv_prog_id, self.skb_prog_id, self.hw_prog_id, self.prog_id]
        return sorted({i for i in ids if i})

    @property
    def mode_name(self) -> str:
        return {XDP_ATTACHED_NONE: "none", XDP_ATTACHED_DRV: "native", XDP_ATTACHED_SKB: "skb",
                XDP_ATTACHED_HW: "offload", XDP_ATTACHED_MULTI: "multi"}.get(self.attach_mode, "?")


def xdp_query(ifindex: int) -> XdpQuery:
    """`bpf_xdp_query` (rtnetlink, in the calling thread's network namespace)."""
    opts = _XdpQueryOpts()
    opts.sz = ctypes.sizeof(_XdpQueryOpts)
    _check(int(_lib().bpf_xdp_query(ifindex, 0, ctypes.byref(opts))), "bpf_xdp_query")
    return XdpQuery(int(opts.prog_id), int(opts.drv_prog_id), int(opts.skb_prog_id), int(opts.hw_prog_id),
                    int(opts.attach_mode))


def xdp_detach(ifindex: int, flags: int) -> None:
    """`bpf_xdp_detach`: remove a program attached through netlink (not through a link) in mode `flags`."""
    _check(int(_lib().bpf_xdp_detach(ifindex, flags, None)), "bpf_xdp_detach")


# -- bpffs ------------------------------------------------------------------------------------------


def _unescape_mount_field(field: str) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as octal.
    return (field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def _mounts() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount this process sees, in mount order."""
    out: list[tuple[str, str]] = []
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            out.append((_unescape_mount_field(parts[1]), parts[2]))
    return out


def bpffs_mounts() -> list[str]:
    """The mount points of bpffs this process sees (those still visible, not covered by later mounts)."""
    return [mp for mp in dict.fromkeys(m for m, t in _mounts() if t == "bpf") if bpffs_mount_of(mp) == mp]


def bpffs_mount_of(path: str) -> str | None:
    """The bpffs mount point under which `path` (or, if it does not exist yet, its directory) lies, or
    None if that place is not on bpffs. The last mount covering a place wins, as in the kernel."""
    target = os.path.realpath(path)
    best_len, best_type, best_mp = -1, "", ""
    for mount_point, fstype in _mounts():
        mp = mount_point.rstrip("/") or "/"
        covers = mp == "/" or target == mp or target.startswith(mp + "/")
        if covers and len(mp) >= best_len:  # a later mount on the same place hides the earlier one
            best_len, best_type, best_mp = len(mp), fstype, mp
    return best_mp if best_type == "bpf" else None


def _fdinfo(fd: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = Path(f"/proc/self/fdinfo/{fd}").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def find_pins(link_id: int, roots: list[str] | None = None) -> list[str]:
    """Paths under the bpffs mounts (or `roots`) where link `link_id` is pinned."""
    found: list[str] = []
    for root in roots if roots is not None else bpffs_mounts():
        for directory, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(directory, name)
                try:
                    fd = obj_get(path)
                except OSError:
                    continue
                try:
                    if _fdinfo(fd).get("link_id") == str(link_id):
                        found.append(path)
                finally:
                    os.close(fd)
    return found
