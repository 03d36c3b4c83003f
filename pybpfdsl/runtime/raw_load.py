"""Loading a bare instruction list into the kernel with the ``bpf(BPF_PROG_LOAD)`` system call.

libbpf wants an ELF object; generated test programs are just instruction lists without maps, so going
straight to the system call is simpler and keeps the kernel's verifier log at hand when it says no.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from types import TracebackType
from typing import Self

from pybpfdsl.bpf.instruction import Instruction, encode
from pybpfdsl.bpf.syscall import BPF_PROG_LOAD, BPF_PROG_TYPE_XDP, ProgLoadAttr, syscall_number
from pybpfdsl.runtime.activity import ACTIVITY

__all__ = ["BPF_PROG_TYPE_XDP", "RawLoadError", "RawProgram", "prog_load"]


class RawLoadError(OSError):
    """The kernel refused the program; ``log`` is the verifier's explanation."""

    def __init__(self, errno: int, log: str) -> None:
        super().__init__(errno, f"BPF_PROG_LOAD failed: {os.strerror(errno)}\n{log}")
        self.log = log


def prog_load(insns: Sequence[Instruction], *, prog_type: int = BPF_PROG_TYPE_XDP, license: str = "GPL",
              name: str = "", log_size: int = 1 << 20, retry_with_log: bool = True) -> int:
    """Load ``insns`` and return the program fd (the caller closes it).

    The first attempt runs without a log (the verifier is much faster then); on failure the load is
    repeated with a log so :class:`RawLoadError` can say why.
    """
    code = encode(insns)
    code_buf = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(license.encode())
    log_buf = ctypes.create_string_buffer(log_size)
    libc = ctypes.CDLL(None, use_errno=True)

    def attempt(with_log: bool) -> tuple[int, int]:
        attr = ProgLoadAttr()
        attr.prog_type = prog_type
        attr.insn_cnt = len(code) // 8
        attr.insns = ctypes.addressof(code_buf)
        attr.license = ctypes.addressof(lic)
        attr.prog_name = name.encode()[:15]
        if with_log:
            attr.log_level = 1
            attr.log_size = log_size
            attr.log_buf = ctypes.addressof(log_buf)
        ACTIVITY.loads += 1
        fd = int(libc.syscall(syscall_number(), BPF_PROG_LOAD, ctypes.byref(attr), ctypes.sizeof(attr)))
        return fd, ctypes.get_errno()

    fd, err = attempt(False)
    if fd >= 0:
        return fd
    if retry_with_log:
        fd, err = attempt(True)
        if fd >= 0:
            return fd
    raise RawLoadError(err, log_buf.value.decode(errors="replace"))


class RawProgram:
    """A loaded program fd that closes itself; ``with RawProgram(insns) as prog: run_xdp(prog.fd, ...)``."""

    def __init__(self, insns: Sequence[Instruction], **kwargs: object) -> None:
        self.fd = -1  # set first: __del__ runs even when the load below raises
        self.fd = prog_load(insns, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
