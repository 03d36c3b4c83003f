"""Asking the kernel what is attached and pinned, for `pybpfdsl status` and `pybpfdsl maps --pinned`.

Built on the libbpf bindings of `pybpfdsl.runtime.links` (bpf_xdp_query, link and program ids, bpffs)
and `pybpfdsl.runtime.libbpf` (object info, map iteration). Everything here only reads. When libbpf
cannot be used, `xdp_status` falls back to parsing `ip -j -d link show`.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pybpfdsl.bpf.abi import PERCPU_MAP_TYPES, MapType, map_type_name

__all__ = [
    "MAP_TYPE_NAMES",
    "KernelQueryError",
    "PinnedMap",
    "XdpAttachment",
    "find_pins",
    "read_map",
    "read_pinned_map",
    "xdp_status",
]

_PIN_SCAN_LIMIT = 5000
_ENOENT = 2

# XDP_ATTACHED_* (linux/if_link.h), as `ip -j link` reports them.
_ATTACH_MODES = {0: "none", 1: "native", 2: "skb", 3: "hw", 4: "multi"}

MAP_TYPE_NAMES = {int(t): map_type_name(t) for t in MapType if t != MapType.UNSPEC}
"""Map type -> bpftool's name for it."""
_KEYLESS_MAP_TYPES = frozenset({MapType.QUEUE, MapType.STACK, MapType.RINGBUF, MapType.BLOOM_FILTER})


class KernelQueryError(Exception):
    """libbpf is unavailable, or a query failed; the message says which."""


class _MapInfo(ctypes.Structure):
    """`struct bpf_map_info` (linux/bpf.h)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
    ]


def _fdinfo(fd: int) -> dict[str, str]:
    """/proc/self/fdinfo of a BPF fd: says whether it is a map, program or link, and its id."""
    out: dict[str, str] = {}
    try:
        text = Path(f"/proc/self/fdinfo/{fd}").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def find_pins(roots: list[str] | None = None) -> dict[tuple[str, int], list[str]]:
    """(kind, id) → pinned paths, kind being "link", "prog" or "map", for every object pinned under
    the mounted bpffs (or `roots`)."""
    from pybpfdsl.runtime import links

    out: dict[tuple[str, int], list[str]] = {}
    seen = 0
    for root in roots if roots is not None else links.bpffs_mounts():
        for dirpath, _dirs, files in os.walk(root):
            for name in sorted(files):
                seen += 1
                if seen > _PIN_SCAN_LIMIT:
                    return out
                path = os.path.join(dirpath, name)
                try:
                    fd = links.obj_get(path)
                except OSError:
                    continue
                try:
                    fdinfo = _fdinfo(fd)
                finally:
                    os.close(fd)
                for kind in ("link", "map", "prog"):  # a link's fdinfo names its program too
                    if f"{kind}_id" in fdinfo:
                        out.setdefault((kind, int(fdinfo[f"{kind}_id"])), []).append(path)
                        break
    return out


# ---------------------------------------------------------------------------------------------------
# XDP status
# ---------------------------------------------------------------------------------------------------


@dataclass
class XdpAttachment:
    """One XDP program attached to an interface."""

    ifname: str
    ifindex: int
    mode: str
    prog_id: int
    prog_name: str = ""
    link_id: int | None = None
    pinned: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"interface": self.ifname, "ifindex": self.ifindex, "mode": self.mode, "prog_id": self.prog_id,
                "name": self.prog_name, "link_id": self.link_id, "pinned": self.pinned}


def _xdp_links() -> dict[tuple[int, int], int]:
    """(ifindex, program id) → link id of every XDP link. Keyed by the program too because interface
    indexes are per network namespace and the kernel lists every namespace's links: another namespace's
    veth may share this interface's index."""
    from pybpfdsl.runtime import links

    out: dict[tuple[int, int], int] = {}
    for link_id in links.link_ids():
        try:
            fd = links.link_get_fd_by_id(link_id)
        except OSError:
            continue  # gone meanwhile
        try:
            info = links.link_info(fd)
        except OSError:
            continue
        finally:
            os.close(fd)
        if info.is_xdp:
            out[(info.ifindex, info.prog_id)] = info.id
    return out


def _status_libbpf(devices: list[tuple[int, str]]) -> list[XdpAttachment]:
    from pybpfdsl.runtime import links

    found: list[XdpAttachment] = []
    for ifindex, ifname in devices:
        q = links.xdp_query(ifindex)
        for mode, prog_id in (("native", q.drv_prog_id), ("skb", q.skb_prog_id), ("hw", q.hw_prog_id)):
            if prog_id:
                found.append(XdpAttachment(ifname, ifindex, mode, prog_id))
    if not found:
        return found
    try:
        xdp_links = _xdp_links()
    except OSError:
        xdp_links = {}
    pins = find_pins()
    for att in found:
        info = links.prog_info_by_id(att.prog_id)
        att.prog_name = info.name if info is not None else ""
        link_id = xdp_links.get((att.ifindex, att.prog_id))
        if link_id is not None:
            att.link_id = link_id
            att.pinned.extend(pins.get(("link", link_id), []))
        att.pinned.extend(pins.get(("prog", att.prog_id), []))
    return found


def _status_ip(dev: str | None) -> list[XdpAttachment]:
    ip = shutil.which("ip")
    if ip is None:
        raise KernelQueryError("neither libbpf nor the `ip` command is available to query XDP programs")
    cmd = [ip, "-j", "-d", "link", "show", *(["dev", dev] if dev else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise KernelQueryError(proc.stderr.strip() or f"{' '.join(cmd)} failed")
    found: list[XdpAttachment] = []
    for link in json.loads(proc.stdout or "[]"):
        xdp = link.get("xdp")
        if not xdp:
            continue
        for entry in xdp.get("attached") or [xdp]:
            prog = entry.get("prog") or {}
            mode_num = entry.get("mode", xdp.get("mode", 0))
            mode = _ATTACH_MODES.get(mode_num, str(mode_num)) if isinstance(mode_num, int) else str(mode_num)
            if prog.get("id"):
                found.append(XdpAttachment(link["ifname"], int(link["ifindex"]), mode, int(prog["id"]),
                                           str(prog.get("name", ""))))
    return found


def _devices(dev: str | None) -> list[tuple[int, str]]:
    if dev is not None:
        try:
            return [(socket.if_nametoindex(dev), dev)]
        except OSError:
            names = ", ".join(name for _, name in sorted(socket.if_nameindex()))
            raise KernelQueryError(f"no network interface named {dev!r} here (there are: {names})") from None
    return sorted(socket.if_nameindex())


def xdp_status(dev: str | None = None) -> tuple[list[XdpAttachment], str]:
    """The XDP programs attached to `dev` (to every interface when None) in this network namespace,
    and how they were found ("libbpf" or "ip")."""
    from pybpfdsl.runtime.libbpf import LibbpfMissing

    devices = _devices(dev)
    try:
        return _status_libbpf(devices), "libbpf"
    except (OSError, LibbpfMissing):
        return _status_ip(dev), "ip"


# ---------------------------------------------------------------------------------------------------
# Pinned maps
# ---------------------------------------------------------------------------------------------------


@dataclass
class PinnedMap:
    """A map opened from bpffs: its description and raw contents."""

    path: str
    name: str
    map_id: int
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    entries: list[tuple[bytes, list[bytes]]]
    """(key, values): one value, or one per possible CPU for per-CPU maps."""

    @property
    def type_name(self) -> str:
        return map_type_name(self.map_type)

    @property
    def percpu(self) -> bool:
        return self.map_type in PERCPU_MAP_TYPES


def _iter_keys(fd: int, key_size: int, limit: int) -> Iterator[bytes]:
    from pybpfdsl.runtime.libbpf import get_libbpf

    lib = get_libbpf()
    key: bytes | None = None
    for _ in range(limit):
        key = lib.map_get_next_key(fd, key, key_size)
        if key is None:
            return
        yield key


def read_pinned_map(path: str, limit: int = 100_000) -> PinnedMap:
    """Open the map pinned at `path` and read its entries (at most `limit`)."""
    from pybpfdsl.runtime import links
    from pybpfdsl.runtime.libbpf import LibbpfMissing, get_libbpf

    try:
        get_libbpf()  # LibbpfMissing, said plainly, before anything else
        fd = links.obj_get(path)
    except LibbpfMissing as exc:
        raise KernelQueryError(str(exc)) from None
    except OSError as exc:
        why = "nothing is pinned there" if exc.errno == _ENOENT else os.strerror(exc.errno or 0)
        raise KernelQueryError(f"cannot open pinned object {path}: {why}") from None
    try:
        fdinfo = _fdinfo(fd)
        if "map_type" not in fdinfo:
            kind = "link" if "link_type" in fdinfo else "program" if "prog_type" in fdinfo else "object"
            raise KernelQueryError(f"{path} is a pinned {kind}, not a map")
        return read_map(fd, path, limit)
    finally:
        os.close(fd)


def read_map(fd: int, label: str, limit: int = 100_000) -> PinnedMap:
    """The description and entries (at most `limit`) of the map open as `fd`; `label` names it in errors
    and is kept as its `path`. The fd stays open (the caller owns it)."""
    from pybpfdsl.runtime.libbpf import get_libbpf

    lib = get_libbpf()
    info = _MapInfo()
    try:
        lib.obj_get_info_by_fd(fd, info)
    except OSError as exc:
        raise KernelQueryError(f"cannot read the description of {label}: {exc}") from None
    percpu = info.type in PERCPU_MAP_TYPES
    ncpus = lib.num_possible_cpus() if percpu else 1
    stride = (info.value_size + 7) & ~7 if percpu else info.value_size
    entries: list[tuple[bytes, list[bytes]]] = []
    if info.type not in _KEYLESS_MAP_TYPES:
        for key in _iter_keys(fd, info.key_size, limit):
            raw = lib.map_lookup_elem(fd, key, max(stride * ncpus, 1))
            if raw is None:
                continue  # deleted between the walk and the lookup
            values = [raw[c * stride:c * stride + info.value_size] for c in range(ncpus)]
            entries.append((key, values))
    return PinnedMap(label, info.name.decode(errors="replace"), int(info.id), int(info.type),
                     int(info.key_size), int(info.value_size), int(info.max_entries), entries)
