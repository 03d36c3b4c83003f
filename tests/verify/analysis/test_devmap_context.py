"""A devmap program (section ``xdp/devmap``) may read ``egress_ifindex``, the context's 4 bytes at offset 20.

libbpf loads such a section with the expected attach type BPF_XDP_DEVMAP, for which the kernel lets the
program read the interface it is sent out of; other XDP programs may not. Checked against the kernel with
that attach type and without, and past the field (which no XDP program may read).
"""

from __future__ import annotations

import ctypes
import os

import pytest

from pybpfdsl.bpf.instruction import Instruction, encode
from pybpfdsl.bpf.syscall import BPF_PROG_LOAD, BPF_PROG_TYPE_XDP, ProgLoadAttr, syscall_number
from pybpfdsl.runtime.activity import ACTIVITY
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.kernel_oracle import EXIT, load, mov

KERNEL, WHY = kernel_bpf_available()
BPF_XDP_DEVMAP, BPF_XDP_CPUMAP = 33, 35
U32, U16 = 0x61, 0x69


def _kernel_loads(insns: list[Instruction], attach_type: int) -> tuple[bool, str]:
    code = encode(insns)
    code_buf = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    attr = ProgLoadAttr()
    attr.prog_type = BPF_PROG_TYPE_XDP
    attr.insn_cnt = len(code) // 8
    attr.insns = ctypes.addressof(code_buf)
    attr.license = ctypes.addressof(lic)
    attr.log_level = 1
    attr.log_size = len(log)
    attr.log_buf = ctypes.addressof(log)
    attr.expected_attach_type = attach_type
    libc = ctypes.CDLL(None, use_errno=True)
    ACTIVITY.loads += 1
    fd = int(libc.syscall(syscall_number(), BPF_PROG_LOAD, ctypes.byref(attr), ctypes.sizeof(attr)))
    if fd >= 0:
        os.close(fd)
    return fd >= 0, log.value.decode(errors="replace")


@pytest.mark.parametrize(("section", "size_op", "off", "safe"), [
    ("xdp/devmap", U32, 20, True),
    ("xdp.frags/devmap", U32, 20, True),
    ("xdp", U32, 20, False),          # not a devmap program
    ("xdp/cpumap", U32, 20, False),
    ("xdp/devmap", U32, 24, False),   # past the context
    ("xdp/devmap", U16, 20, False),   # a part of the field
], ids=["devmap", "devmap frags", "xdp", "cpumap", "devmap +24", "devmap u16"])
def test_egress_ifindex_is_readable_in_devmap_programs_only(section: str, size_op: int, off: int,
                                                            safe: bool) -> None:
    prog = [load(size_op, 0, 1, off), mov(0, 2), EXIT]
    ours = verify_instructions(prog, section=section)
    assert ours.ok == safe, ours.format()
    if not safe:
        assert any(f.code == Code.CTX_ACCESS and f.insn == 0 for f in ours.errors), ours.format()
    if KERNEL:
        attach = {"devmap": BPF_XDP_DEVMAP, "cpumap": BPF_XDP_CPUMAP}.get(section.rsplit("/", 1)[-1], 0)
        ok, log = _kernel_loads(prog, attach)
        assert ok == safe, log[-300:]
