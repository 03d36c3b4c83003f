"""Running XDP programs in the kernel on synthetic packets with ``BPF_PROG_TEST_RUN``."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from pybpfdsl.runtime.activity import ACTIVITY
from pybpfdsl.runtime.libbpf import BpfTestRunOpts, get_libbpf

__all__ = [
    "ETH_HLEN",
    "TestRunResult",
    "run_xdp",
]

#: The kernel rejects XDP test runs on packets shorter than an Ethernet header.
ETH_HLEN = 14

# Extra room in the output buffer so programs that grow the packet
# (bpf_xdp_adjust_head/tail) can be observed; the kernel fails with ENOSPC
# if data_out is too small.
_GROWTH_ROOM = 4096


@dataclass(frozen=True)
class TestRunResult:
    """Outcome of one ``BPF_PROG_TEST_RUN``.

    ``action`` is the program's return value (an XDP action), ``packet`` the
    packet as the program left it (exactly ``data_size_out`` bytes), and
    ``duration_ns`` the kernel-measured average time per repetition.
    """

    __test__ = False  # not a pytest test class despite the name

    action: int
    packet: bytes
    duration_ns: int


def run_xdp(prog_fd: int, packet: bytes, repeat: int = 1) -> TestRunResult:
    """Run XDP program ``prog_fd`` ``repeat`` times on a copy of ``packet``.

    Raises ``ValueError`` for packets shorter than :data:`ETH_HLEN` or a
    ``repeat`` < 1, and :class:`OSError` if the kernel refuses the run.
    """
    if len(packet) < ETH_HLEN:
        raise ValueError(
            f"XDP test runs need at least {ETH_HLEN} bytes (an Ethernet header); "
            f"got a {len(packet)}-byte packet"
        )
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    data_in = ctypes.create_string_buffer(packet, len(packet))
    out_len = len(packet) + _GROWTH_ROOM
    data_out = ctypes.create_string_buffer(out_len)
    opts = BpfTestRunOpts()
    opts.sz = ctypes.sizeof(BpfTestRunOpts)
    opts.data_in = ctypes.addressof(data_in)
    opts.data_size_in = len(packet)
    opts.data_out = ctypes.addressof(data_out)
    opts.data_size_out = out_len
    opts.repeat = repeat
    ACTIVITY.test_runs += 1
    get_libbpf().prog_test_run_opts(prog_fd, opts)
    size = min(int(opts.data_size_out), out_len)
    return TestRunResult(
        action=int(opts.retval),
        packet=data_out.raw[:size],
        duration_ns=int(opts.duration),
    )
