"""Old home of the raw program loader, kept only for importers not yet moved (tests/verify/analysis).

The bpf() system call's layout is now :mod:`pybpfdsl.bpf.syscall`; loading a program with it (which
counts kernel activity) is :mod:`pybpfdsl.runtime.raw_load`. Delete this module once nothing imports it.
"""

from __future__ import annotations

from pybpfdsl.bpf.syscall import BPF_PROG_LOAD, BPF_PROG_TYPE_XDP
from pybpfdsl.bpf.syscall import ProgLoadAttr as _ProgLoadAttr
from pybpfdsl.bpf.syscall import syscall_number as _syscall_number

__all__ = ["BPF_PROG_LOAD", "BPF_PROG_TYPE_XDP", "_ProgLoadAttr", "_syscall_number"]
