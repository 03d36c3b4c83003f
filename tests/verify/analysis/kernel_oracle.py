"""The kernel as the oracle for hand-written instruction lists: load them with ``BPF_PROG_LOAD`` (a map
created for their map references) and return its verdict, its log and its "processed N insns" count.

Programs are written with the constructors of `opcodes`, as the kernel prints them, so a test reads
like the verifier log it is compared with.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pybpfdsl.bpf.abi import MapType
from pybpfdsl.bpf.instruction import Instruction, encode
from pybpfdsl.bpf.syscall import BPF_PROG_LOAD, BPF_PROG_TYPE_XDP, ProgLoadAttr, syscall_number
from pybpfdsl.runtime.activity import ACTIVITY
from pybpfdsl.runtime.libbpf import get_libbpf, kernel_bpf_available
from pybpfdsl.verify.analysis.values import MapInfo

BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY = MapType.HASH, MapType.ARRAY, MapType.PERCPU_ARRAY
HASH_MAP = MapInfo("m", BPF_MAP_TYPE_HASH, 4, 8, 16)
"""A hash map (u32 key, u64 value): its lookups may return NULL (an array's with a constant key may not)."""
BPF_PSEUDO_MAP_FD = 1
LOG_SIZE = 1 << 24
KERNEL, WHY = kernel_bpf_available()

@dataclass(frozen=True)
class KernelVerdict:
    ok: bool
    log: str
    processed: int | None
    """The kernel's "processed N insns" (None if the log does not say)."""

    @property
    def last_lines(self) -> str:
        return "\n".join(self.log.strip().splitlines()[-3:])


def kernel_verdict(insns: Sequence[Instruction], map_insns: Sequence[int] = (),
                   the_map: MapInfo = HASH_MAP, other_maps: Mapping[int, MapInfo] | None = None) -> KernelVerdict:
    """Load ``insns`` as an XDP program; the lddw's at ``map_insns`` refer to one new map like ``the_map``,
    each lddw at a key of ``other_maps`` to a new map of its own like the value."""
    lib = get_libbpf()
    map_fd = lib.map_create(the_map.map_type, the_map.name, the_map.key_size, the_map.value_size,
                            the_map.max_entries) if map_insns else -1
    own = {i: lib.map_create(m.map_type, m.name, m.key_size, m.value_size, m.max_entries)
           for i, m in (other_maps or {}).items()}
    try:
        code_insns = list(insns)
        for i in map_insns:
            code_insns[i] = Instruction.lddw(code_insns[i].dst, map_fd, src=BPF_PSEUDO_MAP_FD)
        for i, fd in own.items():
            code_insns[i] = Instruction.lddw(code_insns[i].dst, fd, src=BPF_PSEUDO_MAP_FD)
        return load_xdp(code_insns)
    finally:
        if map_fd >= 0:
            os.close(map_fd)
        for fd in own.values():
            os.close(fd)


def load_xdp(insns: Sequence[Instruction], expected_attach_type: int = 0) -> KernelVerdict:
    """Load ``insns`` (map references already resolved to fds) as an XDP program (of the attach type
    given: ``BPF_XDP_DEVMAP`` and ``BPF_XDP_CPUMAP`` programs see more of the context); the kernel's verdict."""
    code = encode(list(insns))
    code_buf = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr = ProgLoadAttr()
    attr.prog_type = BPF_PROG_TYPE_XDP
    attr.insn_cnt = len(code) // 8
    attr.insns = ctypes.addressof(code_buf)
    attr.license = ctypes.addressof(lic)
    attr.log_level = 1
    attr.log_size = LOG_SIZE
    attr.log_buf = ctypes.addressof(log)
    attr.expected_attach_type = expected_attach_type
    libc = ctypes.CDLL(None, use_errno=True)
    ACTIVITY.loads += 1
    fd = int(libc.syscall(syscall_number(), BPF_PROG_LOAD, ctypes.byref(attr), ctypes.sizeof(attr)))
    if fd >= 0:
        os.close(fd)
    text = log.value.decode(errors="replace")
    found = re.search(r"processed (\d+) insns", text)
    return KernelVerdict(fd >= 0, text, int(found.group(1)) if found else None)
