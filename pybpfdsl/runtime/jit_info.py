"""Size metrics of loaded programs: xlated and JIT-compiled instruction counts."""

from __future__ import annotations

import ctypes
import importlib
import platform
from types import ModuleType

from pybpfdsl.runtime.libbpf import BpfProgInfo, get_libbpf

__all__ = ["jited_image", "jited_instruction_count", "xlated_instruction_count"]

# Size of one eBPF instruction slot (struct bpf_insn).
_BPF_INSN_SIZE = 8


def _prog_info(prog_fd: int) -> BpfProgInfo:
    info = BpfProgInfo()
    get_libbpf().obj_get_info_by_fd(prog_fd, info)
    return info


def xlated_instruction_count(prog_fd: int) -> int:
    """Number of 8-byte instruction slots in the kernel's translated program.

    This is after verifier rewrites; a 16-byte ``ld_imm64`` counts as two.
    """
    return int(_prog_info(prog_fd).xlated_prog_len) // _BPF_INSN_SIZE


def jited_image(prog_fd: int) -> bytes | None:
    """The JIT-compiled machine code of ``prog_fd`` (all subprograms).

    ``None`` if the program is not JIT-compiled or the kernel refuses to
    dump raw images to this process (``bpf_dump_raw_ok`` fails).
    """
    length = int(_prog_info(prog_fd).jited_prog_len)
    if length == 0:
        return None
    buf = ctypes.create_string_buffer(length)
    # A fresh struct for the second query: reusing the first one would send
    # back the kernel-filled counts (nr_map_ids, ...) with NULL buffers and
    # make the kernel write through NULL pointers (EFAULT).
    info = BpfProgInfo()
    info.jited_prog_len = length
    info.jited_prog_insns = ctypes.addressof(buf)
    get_libbpf().obj_get_info_by_fd(prog_fd, info)
    if info.jited_prog_insns == 0:
        return None  # kernel zeroes the pointer when raw dumps are not allowed
    return buf.raw[: min(length, int(info.jited_prog_len))]


def _capstone() -> ModuleType:
    # Imported lazily and untyped (capstone ships no type information), so
    # the rest of the runtime works without it.
    return importlib.import_module("capstone")


def _disassembler() -> object:
    cs = _capstone()
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        arch, mode = cs.CS_ARCH_X86, cs.CS_MODE_64
    elif machine in ("aarch64", "arm64"):
        # Renamed to CS_ARCH_AARCH64 in capstone 6.
        arch = getattr(cs, "CS_ARCH_ARM64", None)
        if arch is None:
            arch = cs.CS_ARCH_AARCH64
        mode = cs.CS_MODE_ARM
    else:
        raise NotImplementedError(f"no JIT disassembler configured for {machine!r}")
    md = cs.Cs(arch, mode)
    # Keep counting past bytes capstone cannot decode (each skipped chunk
    # counts as one "instruction") instead of stopping early.
    md.skipdata = True
    return md


def jited_instruction_count(prog_fd: int) -> int | None:
    """Number of host machine instructions in the JIT image of ``prog_fd``.

    Disassembles the image with capstone for the host architecture.  Returns
    ``None`` when the JIT is disabled (``jited_prog_len == 0``) or the image
    cannot be read.  Raises ``ModuleNotFoundError`` without capstone and
    ``NotImplementedError`` on hosts other than x86-64 and aarch64.
    """
    image = jited_image(prog_fd)
    if image is None:
        return None
    md = _disassembler()
    count = 0
    for _insn in md.disasm_lite(image, 0):  # type: ignore[attr-defined]
        count += 1
    return count
