"""ctypes bindings to the system libbpf (``libbpf.so.1``).

This module is the only place that talks to libbpf directly.  It exposes:

* :func:`get_libbpf` -- the lazily loaded, process-wide :class:`Libbpf`
  binding whose methods are typed wrappers around the C functions the rest of
  :mod:`pybpfdsl.runtime` needs;
* the C structure layouts shared with libbpf / the kernel UAPI
  (:class:`BpfObjectOpenOpts`, :class:`BpfTestRunOpts`, :class:`BpfProgInfo`);
* :func:`capture_libbpf_log` -- a context manager collecting libbpf's log
  output (including the kernel verifier log) while it is active;
* :func:`kernel_bpf_available` -- a cheap probe telling whether ``bpf()``
  works in this process.

Error convention: libbpf 1.x returns ``-errno`` from int-returning functions
and ``NULL`` (with ``errno`` set) from pointer-returning ones; both are turned
into :class:`OSError` (or its errno-specific subclass) here.

Long because every C function, structure and callback the package uses is declared here, next to the one
loader and the one error convention: splitting it would give libbpf several doors.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pybpfdsl.bpf.abi import MapType

__all__ = [
    "LIBBPF_DEBUG",
    "LIBBPF_INFO",
    "LIBBPF_WARN",
    "BpfObjectOpenOpts",
    "BpfProgInfo",
    "BpfTestRunOpts",
    "Libbpf",
    "LibbpfMissing",
    "RING_BUFFER_SAMPLE_FN",
    "RingBufferLib",
    "capture_libbpf_log",
    "get_libbpf",
    "get_ring_buffer_lib",
    "kernel_bpf_available",
]

_log = logging.getLogger("pybpfdsl.libbpf")

#: ``enum libbpf_print_level`` values (libbpf.h).
LIBBPF_WARN = 0
LIBBPF_INFO = 1
LIBBPF_DEBUG = 2

_INSTALL_HINT = (
    "the system libbpf (libbpf.so.1) was not found; install your "
    "distribution's libbpf1 package (e.g. `apt-get install libbpf1`)"
)


class LibbpfMissing(RuntimeError):
    """Raised when ``libbpf.so.1`` cannot be located or loaded.

    The message tells the user which distribution package to install.
    """


# --------------------------------------------------------------------------
# Structure layouts.  These mirror libbpf 1.1's bpf/libbpf.h, bpf/bpf.h and
# the kernel's linux/bpf.h exactly; sizes are asserted below so a layout slip
# fails at import time instead of corrupting memory inside libbpf.
# --------------------------------------------------------------------------


class BpfObjectOpenOpts(ctypes.Structure):
    """``struct bpf_object_open_opts`` (libbpf 1.1, 80 bytes on LP64)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("object_name", ctypes.c_char_p),
        ("relaxed_maps", ctypes.c_bool),
        ("pin_root_path", ctypes.c_char_p),
        # `__u32 :32;` -- stub for the removed attach_prog_fd field.
        ("_unused_attach_prog_fd", ctypes.c_uint32),
        ("kconfig", ctypes.c_char_p),
        ("btf_custom_path", ctypes.c_char_p),
        ("kernel_log_buf", ctypes.c_void_p),
        ("kernel_log_size", ctypes.c_size_t),
        ("kernel_log_level", ctypes.c_uint32),
        # The C struct ends in `size_t :0;`, which pads it to a multiple of
        # 8; ctypes' natural alignment of the pointer fields does the same.
    ]


class BpfTestRunOpts(ctypes.Structure):
    """``struct bpf_test_run_opts`` (libbpf 1.1, 80 bytes on LP64)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


_BPF_TAG_SIZE = 8
_BPF_OBJ_NAME_LEN = 16


class BpfMapCreateOpts(ctypes.Structure):
    """``struct bpf_map_create_opts`` (libbpf 1.1's fields; libbpf reads only the first ``sz`` bytes)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("btf_fd", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
        ("numa_node", ctypes.c_uint32),
        ("map_ifindex", ctypes.c_uint32),
    ]


class BpfProgInfo(ctypes.Structure):
    """``struct bpf_prog_info`` from the kernel UAPI (linux/bpf.h, 6.1).

    All ``__aligned_u64`` members are user-space pointers passed as integers.
    The kernel accepts a shorter ``info_len`` than its own struct, so this
    (232-byte) layout keeps working on newer kernels.
    """

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * _BPF_TAG_SIZE),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * _BPF_OBJ_NAME_LEN),
        ("ifindex", ctypes.c_uint32),
        # `__u32 gpl_compatible:1; __u32 :31;` -- kept as one raw word.
        ("gpl_compatible_bits", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("nr_jited_ksyms", ctypes.c_uint32),
        ("nr_jited_func_lens", ctypes.c_uint32),
        ("jited_ksyms", ctypes.c_uint64),
        ("jited_func_lens", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("func_info", ctypes.c_uint64),
        ("nr_func_info", ctypes.c_uint32),
        ("nr_line_info", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64),
        ("jited_line_info", ctypes.c_uint64),
        ("nr_jited_line_info", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("jited_line_info_rec_size", ctypes.c_uint32),
        ("nr_prog_tags", ctypes.c_uint32),
        ("prog_tags", ctypes.c_uint64),
        ("run_time_ns", ctypes.c_uint64),
        ("run_cnt", ctypes.c_uint64),
        ("recursion_misses", ctypes.c_uint64),
        ("verified_insns", ctypes.c_uint32),
        ("attach_btf_obj_id", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


if ctypes.sizeof(ctypes.c_void_p) == 8:  # offsets checked against gcc on LP64
    assert ctypes.sizeof(BpfObjectOpenOpts) == 80
    assert BpfObjectOpenOpts.kernel_log_level.offset == 72
    assert ctypes.sizeof(BpfTestRunOpts) == 80
    assert BpfTestRunOpts.retval.offset == 56
    assert ctypes.sizeof(BpfProgInfo) == 232
    assert BpfProgInfo.run_time_ns.offset == 192


# --------------------------------------------------------------------------
# Log capture.
# --------------------------------------------------------------------------

# int (*libbpf_print_fn_t)(enum libbpf_print_level, const char *, va_list).
# va_list decays to a pointer when passed as a parameter on x86-64 (array
# type) and is passed by reference on aarch64 (>16-byte composite), so a
# void* carries it through to vsnprintf unchanged on both.
_PRINT_FN = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
)

# sizeof(va_list object) for architectures where va_copy() is a plain
# memberwise copy; lets us measure the formatted length with a copy and then
# format for real with the original, like va_copy would.
_VA_LIST_SIZES = {"x86_64": 24, "amd64": 24, "aarch64": 32, "arm64": 32}
_VA_LIST_SIZE = _VA_LIST_SIZES.get(platform.machine().lower(), 0)
_FIRST_BUFFER = 4096
_FALLBACK_BUFFER = 1 << 22

# Captures are per thread: libbpf calls the print callback synchronously in
# the thread that called into libbpf, so thread-local stacks keep concurrent
# loads from mixing their logs.
_captures = threading.local()


def _capture_stack() -> list[list[str]]:
    stack: list[list[str]] | None = getattr(_captures, "stack", None)
    if stack is None:
        stack = []
        _captures.stack = stack
    return stack


@contextmanager
def capture_libbpf_log() -> Iterator[list[str]]:
    """Collect libbpf's log output (all levels) while the block runs.

    Yields a list that receives one string per output line, in order, for
    every libbpf message emitted by this thread while the context is active
    -- including the kernel verifier log that libbpf prints when a program
    is loaded with ``kernel_log_level`` > 0 or fails to load.  Nested
    captures each see every line.  Outside any capture, debug messages are
    dropped and warnings/info are forwarded to the ``pybpfdsl.libbpf``
    Python logger.  Binds libbpf on entry (may raise :class:`LibbpfMissing`).
    """
    get_libbpf()  # make sure the print callback is installed
    lines: list[str] = []
    stack = _capture_stack()
    stack.append(lines)
    try:
        yield lines
    finally:
        stack.remove(lines)


def _vsnprintf_fn() -> ctypes._NamedFuncPointer:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
    fn = libc.vsnprintf
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


_vsnprintf = _vsnprintf_fn()


def _format_va(fmt: bytes, ap: int | None) -> str:
    if _VA_LIST_SIZE and ap:
        # Measure/format with a copy of the va_list first so the original is
        # still usable if the message does not fit the first buffer.
        copy = ctypes.create_string_buffer(_VA_LIST_SIZE)
        ctypes.memmove(copy, ap, _VA_LIST_SIZE)
        buf = ctypes.create_string_buffer(_FIRST_BUFFER)
        n = int(_vsnprintf(buf, _FIRST_BUFFER, fmt, ctypes.addressof(copy)))
        if n >= _FIRST_BUFFER:
            buf = ctypes.create_string_buffer(n + 1)
            n = int(_vsnprintf(buf, n + 1, fmt, ap))
    else:
        # Unknown va_list layout: one shot with a large buffer (truncates
        # only absurdly long messages).
        buf = ctypes.create_string_buffer(_FALLBACK_BUFFER)
        n = int(_vsnprintf(buf, _FALLBACK_BUFFER, fmt, ap))
    if n < 0:
        return fmt.decode("utf-8", "replace")
    n = min(n, len(buf) - 1)
    return buf.raw[:n].decode("utf-8", "replace")


def _print_callback(level: int, fmt: bytes | None, ap: int | None) -> int:
    # Exceptions must never unwind into C; ctypes would only print them.
    try:
        stack = _capture_stack()
        if not stack and level >= LIBBPF_DEBUG:
            return 0  # cheap path: nobody listens to debug output
        text = _format_va(fmt or b"", ap)
        lines = text.splitlines()
        if stack:
            for capture in stack:
                capture.extend(lines)
        elif level == LIBBPF_WARN:
            for line in lines:
                _log.warning("%s", line)
        elif level == LIBBPF_INFO:
            for line in lines:
                _log.info("%s", line)
        return len(text)
    except Exception:
        return 0


# Module-level reference: the callback must stay alive for as long as libbpf
# may call it, i.e. the whole process lifetime.
_PRINT_CALLBACK = _PRINT_FN(_print_callback)


# --------------------------------------------------------------------------
# The binding.
# --------------------------------------------------------------------------


# libbpf's own error codes (enum libbpf_errno, e.g. 4001 = "Invalid ELF
# format") start here; os.strerror() knows nothing about them.
_LIBBPF_ERRNO_BASE = 4000


def _strerror(err: int) -> str:
    if err >= _LIBBPF_ERRNO_BASE:
        try:
            lib = get_libbpf()
        except LibbpfMissing:
            return os.strerror(err)
        return lib.strerror(err)
    return os.strerror(err)


def _raise_errno(err: int, what: str) -> None:
    """Raise OSError (errno subclass) for a positive errno value."""
    raise OSError(err, f"{what}: {_strerror(err)}")


def _check(ret: int, what: str) -> int:
    """Return ``ret`` if non-negative, else raise OSError for ``-ret``."""
    if ret < 0:
        _raise_errno(-ret, what)
    return ret


_c_int = ctypes.c_int
_c_uint = ctypes.c_uint32
_c_void_p = ctypes.c_void_p
_c_char_p = ctypes.c_char_p
_c_size_t = ctypes.c_size_t

# name -> (restype, argtypes); the signatures follow libbpf 1.1's headers.
# Opaque libbpf objects (struct bpf_object/bpf_program/bpf_map) are void*.
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "libbpf_set_print": (_c_void_p, [_PRINT_FN]),
    "libbpf_get_error": (ctypes.c_long, [_c_void_p]),
    "libbpf_strerror": (_c_int, [_c_int, _c_char_p, _c_size_t]),
    "libbpf_num_possible_cpus": (_c_int, []),
    "bpf_object__open_mem": (
        _c_void_p,
        [_c_void_p, _c_size_t, ctypes.POINTER(BpfObjectOpenOpts)],
    ),
    "bpf_object__load": (_c_int, [_c_void_p]),
    "bpf_object__close": (None, [_c_void_p]),
    "bpf_object__name": (_c_char_p, [_c_void_p]),
    "bpf_object__next_program": (_c_void_p, [_c_void_p, _c_void_p]),
    "bpf_object__next_map": (_c_void_p, [_c_void_p, _c_void_p]),
    "bpf_object__find_map_by_name": (_c_void_p, [_c_void_p, _c_char_p]),
    "bpf_program__name": (_c_char_p, [_c_void_p]),
    "bpf_program__section_name": (_c_char_p, [_c_void_p]),
    "bpf_program__fd": (_c_int, [_c_void_p]),
    "bpf_map__name": (_c_char_p, [_c_void_p]),
    "bpf_map__fd": (_c_int, [_c_void_p]),
    "bpf_map__type": (_c_int, [_c_void_p]),
    "bpf_map__key_size": (_c_uint, [_c_void_p]),
    "bpf_map__value_size": (_c_uint, [_c_void_p]),
    "bpf_map__max_entries": (_c_uint, [_c_void_p]),
    "bpf_map__reuse_fd": (_c_int, [_c_void_p, _c_int]),
    "bpf_map__map_flags": (_c_uint, [_c_void_p]),
    "bpf_map__set_map_flags": (_c_int, [_c_void_p, _c_uint]),
    "bpf_map_create": (
        _c_int,
        [_c_int, _c_char_p, _c_uint, _c_uint, _c_uint, _c_void_p],
    ),
    "bpf_map_lookup_elem": (_c_int, [_c_int, _c_void_p, _c_void_p]),
    "bpf_map_update_elem": (_c_int, [_c_int, _c_void_p, _c_void_p, ctypes.c_uint64]),
    "bpf_map_delete_elem": (_c_int, [_c_int, _c_void_p]),
    "bpf_map_get_next_key": (_c_int, [_c_int, _c_void_p, _c_void_p]),
    "bpf_prog_test_run_opts": (_c_int, [_c_int, ctypes.POINTER(BpfTestRunOpts)]),
    "bpf_obj_get_info_by_fd": (
        _c_int,
        [_c_int, _c_void_p, ctypes.POINTER(ctypes.c_uint32)],
    ),
}


def _find_library() -> ctypes.CDLL:
    candidates: list[str] = []
    found = ctypes.util.find_library("bpf")
    if found:
        candidates.append(found)
    candidates.append("libbpf.so.1")
    errors: list[str] = []
    for name in candidates:
        try:
            # use_errno: pointer-returning libbpf APIs report through errno.
            return ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
    raise LibbpfMissing(f"{_INSTALL_HINT} (tried {'; '.join(errors)})")


class Libbpf:
    """Typed wrappers over the bound libbpf functions.

    Obtain the process-wide instance with :func:`get_libbpf`.  Pointers to
    libbpf's opaque objects are plain ``int`` addresses.  Every method that
    can fail raises :class:`OSError` carrying the errno libbpf reported.
    """

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError as exc:
                raise LibbpfMissing(
                    f"{_INSTALL_HINT}; the loaded libbpf lacks {name} "
                    "(libbpf >= 1.0 is required)"
                ) from exc
            fn.restype = restype
            fn.argtypes = argtypes
        lib.libbpf_set_print(_PRINT_CALLBACK)

    # -- library ----------------------------------------------------------

    def num_possible_cpus(self) -> int:
        """Number of possible CPUs (the per-CPU map value multiplier)."""
        return _check(
            int(self._lib.libbpf_num_possible_cpus()), "libbpf_num_possible_cpus"
        )

    def strerror(self, err: int) -> str:
        """``libbpf_strerror``: text for an errno or a libbpf-specific code."""
        buf = ctypes.create_string_buffer(256)
        self._lib.libbpf_strerror(err, buf, len(buf))
        return _decode(buf.value) or os.strerror(err)

    # -- bpf_object -------------------------------------------------------

    def object_open_mem(
        self, buf: ctypes.Array[ctypes.c_char], opts: BpfObjectOpenOpts
    ) -> int:
        """``bpf_object__open_mem``; returns the ``struct bpf_object *``.

        ``buf`` must stay alive until the object is loaded (libbpf parses the
        ELF in place rather than copying it).
        """
        ctypes.set_errno(0)
        ptr = self._lib.bpf_object__open_mem(buf, len(buf), ctypes.byref(opts))
        if not ptr:
            err = (
                ctypes.get_errno() or int(-self._lib.libbpf_get_error(ptr)) or 22
            )  # EINVAL if libbpf left no code at all
            _raise_errno(err, "bpf_object__open_mem")
        return int(ptr)

    def object_load(self, obj: int) -> None:
        """``bpf_object__load``: create maps and load all programs."""
        _check(int(self._lib.bpf_object__load(obj)), "bpf_object__load")

    def object_close(self, obj: int) -> None:
        """``bpf_object__close``: unload programs, close fds, free ``obj``."""
        self._lib.bpf_object__close(obj)

    def object_name(self, obj: int) -> str:
        """``bpf_object__name``."""
        return _decode(self._lib.bpf_object__name(obj))

    def object_programs(self, obj: int) -> Iterator[int]:
        """Iterate the ``struct bpf_program *`` of ``obj`` in ELF order."""
        prog = self._lib.bpf_object__next_program(obj, None)
        while prog:
            yield int(prog)
            prog = self._lib.bpf_object__next_program(obj, prog)

    def object_maps(self, obj: int) -> Iterator[int]:
        """Iterate the ``struct bpf_map *`` of ``obj``."""
        m = self._lib.bpf_object__next_map(obj, None)
        while m:
            yield int(m)
            m = self._lib.bpf_object__next_map(obj, m)

    def object_find_map(self, obj: int, name: str) -> int | None:
        """``bpf_object__find_map_by_name``; ``None`` if there is no such map."""
        ptr = self._lib.bpf_object__find_map_by_name(obj, name.encode())
        return int(ptr) if ptr else None

    # -- bpf_program ------------------------------------------------------

    def program_name(self, prog: int) -> str:
        """``bpf_program__name`` (the C function name)."""
        return _decode(self._lib.bpf_program__name(prog))

    def program_section_name(self, prog: int) -> str:
        """``bpf_program__section_name`` (e.g. ``"xdp"``)."""
        return _decode(self._lib.bpf_program__section_name(prog))

    def program_fd(self, prog: int) -> int:
        """``bpf_program__fd``; raises OSError if the program is not loaded."""
        return _check(int(self._lib.bpf_program__fd(prog)), "bpf_program__fd")

    # -- bpf_map ----------------------------------------------------------

    def map_name(self, m: int) -> str:
        """``bpf_map__name``."""
        return _decode(self._lib.bpf_map__name(m))

    def map_fd(self, m: int) -> int:
        """``bpf_map__fd``; raises OSError if the map is not created yet."""
        return _check(int(self._lib.bpf_map__fd(m)), "bpf_map__fd")

    def map_type(self, m: int) -> int:
        """``bpf_map__type`` (``enum bpf_map_type``)."""
        return int(self._lib.bpf_map__type(m))

    def map_key_size(self, m: int) -> int:
        """``bpf_map__key_size``."""
        return int(self._lib.bpf_map__key_size(m))

    def map_value_size(self, m: int) -> int:
        """``bpf_map__value_size``."""
        return int(self._lib.bpf_map__value_size(m))

    def map_max_entries(self, m: int) -> int:
        """``bpf_map__max_entries``."""
        return int(self._lib.bpf_map__max_entries(m))

    def map_flags(self, m: int) -> int:
        """``bpf_map__map_flags``."""
        return int(self._lib.bpf_map__map_flags(m))

    def map_set_flags(self, m: int, flags: int) -> None:
        """``bpf_map__set_map_flags`` (before the object is loaded)."""
        _check(int(self._lib.bpf_map__set_map_flags(m, flags)), "bpf_map__set_map_flags")

    def map_reuse_fd(self, m: int, fd: int) -> None:
        """``bpf_map__reuse_fd``: make a not-yet-loaded map use existing ``fd``.

        libbpf dups ``fd``; the caller keeps ownership of the original.
        """
        _check(int(self._lib.bpf_map__reuse_fd(m, fd)), "bpf_map__reuse_fd")

    # -- low-level syscall wrappers --------------------------------------

    def map_create(
        self, map_type: int, name: str, key_size: int, value_size: int, max_entries: int,
        map_flags: int = 0,
    ) -> int:
        """``bpf_map_create`` (options: ``map_flags`` only); returns the new map fd."""
        opts = None
        if map_flags:
            opts = BpfMapCreateOpts(sz=ctypes.sizeof(BpfMapCreateOpts), map_flags=map_flags)
        return _check(
            int(
                self._lib.bpf_map_create(
                    map_type, name.encode(), key_size, value_size, max_entries,
                    None if opts is None else ctypes.addressof(opts),
                )
            ),
            "bpf_map_create",
        )

    def map_lookup_elem(self, fd: int, key: bytes, value_len: int) -> bytes | None:
        """``bpf_map_lookup_elem``; ``None`` when the key is absent (ENOENT).

        ``value_len`` must be the full size the kernel writes (for per-CPU
        maps: rounded value size times the number of possible CPUs).
        """
        value = ctypes.create_string_buffer(value_len)
        ret = int(self._lib.bpf_map_lookup_elem(fd, key, value))
        if ret == -2:  # -ENOENT
            return None
        _check(ret, "bpf_map_lookup_elem")
        return value.raw

    def map_update_elem(self, fd: int, key: bytes, value: bytes, flags: int) -> None:
        """``bpf_map_update_elem``."""
        _check(
            int(self._lib.bpf_map_update_elem(fd, key, value, flags)),
            "bpf_map_update_elem",
        )

    def map_delete_elem(self, fd: int, key: bytes) -> bool:
        """``bpf_map_delete_elem``; ``False`` if the key was absent (ENOENT)."""
        ret = int(self._lib.bpf_map_delete_elem(fd, key))
        if ret == -2:
            return False
        _check(ret, "bpf_map_delete_elem")
        return True

    def map_get_next_key(
        self, fd: int, key: bytes | None, key_size: int
    ) -> bytes | None:
        """``bpf_map_get_next_key``; ``None`` after the last key (ENOENT).

        ``key=None`` asks for the first key.
        """
        out = ctypes.create_string_buffer(key_size)
        ret = int(self._lib.bpf_map_get_next_key(fd, key, out))
        if ret == -2:
            return None
        _check(ret, "bpf_map_get_next_key")
        return out.raw

    def prog_test_run_opts(self, prog_fd: int, opts: BpfTestRunOpts) -> None:
        """``bpf_prog_test_run_opts``; results are written back into ``opts``."""
        _check(
            int(self._lib.bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts))),
            "bpf_prog_test_run_opts",
        )

    def obj_get_info_by_fd(self, fd: int, info: ctypes.Structure) -> int:
        """``bpf_obj_get_info_by_fd``; fills ``info``, returns the kernel's info_len.

        (libbpf 1.1 predates ``bpf_prog_get_info_by_fd``; this is the generic
        equivalent.)
        """
        info_len = ctypes.c_uint32(ctypes.sizeof(info))
        _check(
            int(
                self._lib.bpf_obj_get_info_by_fd(
                    fd, ctypes.byref(info), ctypes.byref(info_len)
                )
            ),
            "bpf_obj_get_info_by_fd",
        )
        return info_len.value


def _decode(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw is not None else ""


_bind_lock = threading.Lock()


@functools.cache
def _get_libbpf_cached() -> Libbpf:
    return Libbpf(_find_library())


def get_libbpf() -> Libbpf:
    """Return the process-wide libbpf binding, loading it on first use.

    Raises :class:`LibbpfMissing` if ``libbpf.so.1`` is not installed (or is
    too old).  Binding also installs the module's log callback through
    ``libbpf_set_print``.
    """
    with _bind_lock:
        return _get_libbpf_cached()


def kernel_bpf_available() -> tuple[bool, str]:
    """Probe whether this process can use ``bpf()``.

    Creates and immediately closes a one-entry array map.  Returns
    ``(True, "")`` on success, otherwise ``(False, reason)`` where the reason
    names the missing library or the kernel's error (e.g. EPERM without
    CAP_BPF, ENOSYS without CONFIG_BPF_SYSCALL).
    """
    try:
        lib = get_libbpf()
    except LibbpfMissing as exc:
        return False, str(exc)
    try:
        fd = lib.map_create(MapType.ARRAY, "pybpfdsl_probe", 4, 4, 1)
    except OSError as exc:
        return False, f"bpf() is not usable here: {exc}"
    os.close(fd)
    return True, ""


# --------------------------------------------------------------------------
# Ring buffers (BPF_MAP_TYPE_RINGBUF consumers): ring_buffer__new / __poll /
# __consume / __free.  Kept apart from the Libbpf class: bound on first use.
# --------------------------------------------------------------------------

#: ``int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size)``.
RING_BUFFER_SAMPLE_FN = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t
)

_RING_BUFFER_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    # struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn,
    #                                      void *ctx, const struct ring_buffer_opts *)
    "ring_buffer__new": (_c_void_p, [_c_int, RING_BUFFER_SAMPLE_FN, _c_void_p, _c_void_p]),
    "ring_buffer__poll": (_c_int, [_c_void_p, _c_int]),
    "ring_buffer__consume": (_c_int, [_c_void_p]),
    "ring_buffer__free": (None, [_c_void_p]),
}


class RingBufferLib:
    """Typed wrappers over libbpf's ring-buffer consumer API.

    Obtain the process-wide instance with :func:`get_ring_buffer_lib`.  The
    sample callback passed to :meth:`new` must stay alive until :meth:`free`.
    """

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._lib = lib
        for name, (restype, argtypes) in _RING_BUFFER_SIGNATURES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError as exc:
                raise LibbpfMissing(f"{_INSTALL_HINT}; the loaded libbpf lacks {name}") from exc
            fn.restype = restype
            fn.argtypes = argtypes

    def new(self, map_fd: int, sample: ctypes._CFunctionType) -> int:
        """``ring_buffer__new`` for one ring-buffer map; returns the ``struct ring_buffer *``."""
        ctypes.set_errno(0)
        ptr = self._lib.ring_buffer__new(map_fd, sample, None, None)
        if not ptr:
            _raise_errno(ctypes.get_errno() or 22, "ring_buffer__new")
        return int(ptr)

    def poll(self, rb: int, timeout_ms: int) -> int:
        """``ring_buffer__poll``: wait up to ``timeout_ms`` (-1: forever) for data, then consume it;
        the number of records consumed (``InterruptedError`` on EINTR)."""
        return _check(int(self._lib.ring_buffer__poll(rb, timeout_ms)), "ring_buffer__poll")

    def consume(self, rb: int) -> int:
        """``ring_buffer__consume``: consume every available record without waiting; their number."""
        return _check(int(self._lib.ring_buffer__consume(rb)), "ring_buffer__consume")

    def free(self, rb: int) -> None:
        """``ring_buffer__free``: unmap the ring and close the epoll fd (the map fd stays open)."""
        self._lib.ring_buffer__free(rb)


@functools.cache
def _get_ring_buffer_lib_cached() -> RingBufferLib:
    return RingBufferLib(_get_libbpf_cached()._lib)


def get_ring_buffer_lib() -> RingBufferLib:
    """The process-wide ring-buffer binding (raises :class:`LibbpfMissing` without libbpf)."""
    with _bind_lock:
        return _get_ring_buffer_lib_cached()
