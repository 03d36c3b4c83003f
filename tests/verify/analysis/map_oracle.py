"""The kernel as the oracle for programs over maps of any type (map-in-map included): each test program
names its maps by :class:`MapInfo`, the oracle creates one kernel map per distinct MapInfo (an inner
map first for the map-of-maps types) and loads the program with ``BPF_PROG_LOAD``.

``kernel_oracle.kernel_verdict`` creates one plain map; the map-type and call tests need several maps,
of types whose creation takes more than ``bpf_map_create``'s defaults (LPM tries need
``BPF_F_NO_PREALLOC``, maps of maps an inner map's fd).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping, Sequence

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.syscall import syscall_number
from pybpfdsl.verify.analysis.values import MapInfo
from tests.verify.analysis.kernel_oracle import BPF_PSEUDO_MAP_FD, KernelVerdict, load_xdp

BPF_MAP_CREATE = 0
LPM_TRIE, ARRAY_OF_MAPS, HASH_OF_MAPS = 11, 12, 13
BPF_F_NO_PREALLOC = 1
INNER = MapInfo("inner", 2, 4, 8, 4)
"""The inner map of every map of maps here: an array (u32 key, u64 value)."""


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint8 * 64),
    ]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    ret = int(libc.syscall(syscall_number(), cmd, ctypes.byref(attr), ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return ret


def create_map(m: MapInfo, inner_fd: int = -1) -> int:
    """A kernel map like ``m`` (value size 4 for maps of maps, whose values are map fds)."""
    attr = _MapCreateAttr()
    attr.map_type, attr.key_size, attr.value_size, attr.max_entries = (m.map_type, m.key_size, m.value_size,
                                                                        m.max_entries)
    if m.map_type == LPM_TRIE:
        attr.map_flags = BPF_F_NO_PREALLOC
    if inner_fd >= 0:
        attr.inner_map_fd = inner_fd
    return _bpf(BPF_MAP_CREATE, attr)


def kernel_verdict_maps(insns: Sequence[Instruction], maps: Mapping[int, MapInfo]) -> KernelVerdict:
    """Load ``insns`` as an XDP program; the lddw at each key of ``maps`` refers to a map like its value."""
    fds: dict[MapInfo, int] = {}
    try:
        for m in maps.values():
            if m in fds:
                continue
            if m.map_type in (ARRAY_OF_MAPS, HASH_OF_MAPS):
                if INNER not in fds:
                    fds[INNER] = create_map(INNER)
                fds[m] = create_map(m, fds[INNER])
            else:
                fds[m] = create_map(m)
        code_insns = list(insns)
        for i, m in maps.items():
            code_insns[i] = Instruction.lddw(code_insns[i].dst, fds[m], src=BPF_PSEUDO_MAP_FD)
        return load_xdp(code_insns)
    finally:
        for fd in fds.values():
            os.close(fd)
