"""Load one program of an object in the kernel, alone: the kernel's verdict on each rewritten program.

libbpf loads the whole object by default; an object with a program its own loader would configure first
(a map sized at run time, an old ``xdp_foo`` section) then fails as a whole although the program we
changed is fine. So each entry program is loaded with the others' autoload off, maps sized 0 given a
small size and pinning off, an XDP type set where libbpf does not know the section name. The verdict is
the kernel's; its last log lines say why on a refusal.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass

from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.runtime.libbpf import BpfObjectOpenOpts, capture_libbpf_log, get_libbpf

__all__ = ["ProgramLoad", "load_alone"]

_RUNTIME_MAX_ENTRIES = 256
_PROG_TYPE_UNSPEC, _PROG_TYPE_XDP = 0, 6  # enum bpf_prog_type
_BPF_XDP_ATTACH = 37
_LOG_SIZE = 1 << 20
_LOG_LEVEL = 4  # statistics and errors, not the instruction trace

_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "bpf_program__set_autoload": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_bool]),
    "bpf_program__set_log_buf": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]),
    "bpf_program__set_log_level": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32]),
    "bpf_map__set_pin_path": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
    "bpf_map__set_max_entries": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_uint32]),
    "bpf_program__type": (ctypes.c_int, [ctypes.c_void_p]),
    "bpf_program__set_type": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
    "bpf_program__set_expected_attach_type": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
}


def _raw() -> ctypes.CDLL:
    # libbpf's program and map setters the runtime's wrapper does not expose, on the same library.
    lib: ctypes.CDLL = get_libbpf()._lib
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


@dataclass(frozen=True)
class ProgramLoad:
    loaded: bool
    message: str = ""
    runs: tuple[tuple[int, bytes], ...] = ()
    """(XDP action, packet after) of each packet given, run with BPF_PROG_TEST_RUN after the load
    ((-errno, b"") where the kernel refuses the test run)."""


def load_alone(elf: bytes, function: str, packets: Sequence[bytes] = ()) -> ProgramLoad:
    """Load program ``function`` of ``elf`` on its own, run it on ``packets`` (its maps fresh from the
    load), and close it again."""
    libbpf = get_libbpf()
    raw = _raw()
    buf = ctypes.create_string_buffer(elf, len(elf))
    opts = BpfObjectOpenOpts()
    opts.sz = ctypes.sizeof(BpfObjectOpenOpts)
    opts.object_name = b"superopt"
    log = ctypes.create_string_buffer(_LOG_SIZE)
    with capture_libbpf_log() as lines:
        try:
            handle = libbpf.object_open_mem(buf, opts)
        except OSError as exc:
            return ProgramLoad(False, f"libbpf cannot open the object: {exc}")
        try:
            found = False
            for prog in libbpf.object_programs(handle):
                mine = libbpf.program_name(prog) == function
                found |= mine
                raw.bpf_program__set_autoload(prog, mine)
                if mine:
                    if raw.bpf_program__type(prog) == _PROG_TYPE_UNSPEC:
                        raw.bpf_program__set_type(prog, _PROG_TYPE_XDP)
                        raw.bpf_program__set_expected_attach_type(prog, _BPF_XDP_ATTACH)
                    raw.bpf_program__set_log_buf(prog, log, _LOG_SIZE)
                    raw.bpf_program__set_log_level(prog, _LOG_LEVEL)
            if not found:
                return ProgramLoad(False, f"libbpf has no program {function}")
            for m in libbpf.object_maps(handle):
                raw.bpf_map__set_pin_path(m, None)
                if libbpf.map_max_entries(m) == 0:
                    raw.bpf_map__set_max_entries(m, _RUNTIME_MAX_ENTRIES)
            try:
                libbpf.object_load(handle)
            except OSError as exc:
                said = [ln.strip() for ln in log.value.decode(errors="replace").splitlines()
                        if ln.strip() and not ln.startswith(("verification time", "stack depth", "processed "))]
                tail = said[-2:] or [ln for ln in lines if ln.strip()][-2:] or [str(exc)]
                return ProgramLoad(False, " | ".join(tail))
            fd = next(libbpf.program_fd(p) for p in libbpf.object_programs(handle)
                      if libbpf.program_name(p) == function)
            runs = []
            for packet in packets:
                try:
                    result = run_xdp(fd, packet)
                except OSError as exc:  # a devmap/cpumap program: the kernel test-runs no such type
                    runs.append((-(exc.errno or 1), b""))
                else:
                    runs.append((result.action, result.packet))
            return ProgramLoad(True, runs=tuple(runs))
        finally:
            libbpf.object_close(handle)
