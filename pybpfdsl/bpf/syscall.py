"""The bpf() system call's interface for loading a program: its number on each architecture, the command
and program-type numbers, and the prefix of ``union bpf_attr`` that BPF_PROG_LOAD reads.

Only the layout: calling it is the runtime's (:mod:`pybpfdsl.runtime.raw_load`), so importing this
module loads no library and asks nothing of the kernel.
"""

from __future__ import annotations

import ctypes
import platform
from typing import Final

__all__ = ["BPF_PROG_LOAD", "BPF_PROG_TYPE_XDP", "SYS_BPF", "ProgLoadAttr", "syscall_number"]

BPF_PROG_LOAD: Final = 5
BPF_PROG_TYPE_XDP: Final = 6
SYS_BPF: Final = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "s390x": 351, "ppc64le": 361}
"""The bpf() system call's number, by `platform.machine()`."""


class ProgLoadAttr(ctypes.Structure):
    """The BPF_PROG_LOAD prefix of ``union bpf_attr`` (later fields stay zero)."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


def syscall_number() -> int:
    """The bpf() system call's number on this machine; OSError on an architecture not in `SYS_BPF`."""
    number = SYS_BPF.get(platform.machine())
    if number is None:
        raise OSError(f"do not know the bpf() system call number on {platform.machine()}")
    return number
