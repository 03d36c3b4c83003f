"""A devmap program (section ``xdp/devmap``) may read ``egress_ifindex``, the context's 4 bytes at offset 20.

libbpf loads such a section with the expected attach type BPF_XDP_DEVMAP, for which the kernel lets the
program read the interface it is sent out of; other XDP programs may not. Checked against the kernel with
that attach type and without, and past the field (which no XDP program may read).
"""

from __future__ import annotations

import pytest

from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.kernel_oracle import KERNEL, load_xdp
from tests.verify.analysis.opcodes import EXIT, U16, U32, load, mov

BPF_XDP_DEVMAP, BPF_XDP_CPUMAP = 33, 35


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
        kernel = load_xdp(prog, attach)
        assert kernel.ok == safe, kernel.log[-300:]
