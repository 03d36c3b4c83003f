"""Loading BPF ELF objects into the kernel through libbpf.

:class:`BpfObject` wraps one ``struct bpf_object``: it is opened from an
in-memory ELF image, loaded (maps created, programs verified), and then
exposes program fds and map descriptions until it is closed.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Self

from pybpfdsl.bpf.abi import REQUIRED_MAP_FLAGS
from pybpfdsl.runtime.activity import ACTIVITY
from pybpfdsl.runtime.kernel_map import KernelMap, MapInfo
from pybpfdsl.runtime.libbpf import (
    BpfObjectOpenOpts,
    capture_libbpf_log,
    get_libbpf,
)

__all__ = ["BpfObject", "LoadError", "MapInfo"]

_log = logging.getLogger("pybpfdsl.runtime")

_BEGIN_PROG_LOG = "-- BEGIN PROG LOAD LOG --"
_END_PROG_LOG = "-- END PROG LOAD LOG --"


class LoadError(Exception):
    """Opening or loading a BPF object failed.

    ``log`` is the full libbpf output captured during the attempt, including
    the kernel verifier log; ``errno`` is the error number libbpf returned.
    """

    def __init__(self, message: str, *, log: str, errno: int) -> None:
        super().__init__(message)
        self.log = log
        self.errno = errno

    @property
    def verifier_log(self) -> str:
        """Only the kernel verifier's part of :attr:`log` (empty if none).

        libbpf frames it between ``-- BEGIN PROG LOAD LOG --`` and
        ``-- END PROG LOAD LOG --``; all such blocks are concatenated.
        """
        out: list[str] = []
        inside = False
        for line in self.log.splitlines():
            if _BEGIN_PROG_LOG in line:
                inside = True
            elif _END_PROG_LOG in line:
                inside = False
            elif inside:
                out.append(line)
        return "\n".join(out)

    def __str__(self) -> str:
        base = super().__str__()
        verifier = self.verifier_log
        return f"{base}\n{verifier}" if verifier else base


def _map_matches_section(name: str, section: str) -> bool:
    """Whether libbpf map ``name`` is the global-data map of ``section``.

    libbpf 1.1 names these maps ``<object-name prefix><section>`` truncated
    to 15 characters, keeping the whole section suffix; custom sections with
    a second dot (``.data.foo``) get no prefix at all.
    """
    return name == section or (section.startswith(".") and name.endswith(section))


def _require_map_flags(handle: int) -> None:
    """Add the flags a map type must have (`REQUIRED_MAP_FLAGS`) where an object lacks them (clang's
    objects declare them; pybpfdsl's backend does not, yet), so that the kernel creates the map."""
    lib = get_libbpf()
    for m in lib.object_maps(handle):
        need = REQUIRED_MAP_FLAGS.get(lib.map_type(m), 0)
        flags = lib.map_flags(m)
        if flags & need != need:
            lib.map_set_flags(m, flags | need)


class BpfObject:
    """A loaded libbpf ``bpf_object``; use :meth:`load` to create one.

    Usable as a context manager; :meth:`close` (idempotent) unloads the
    programs and closes every program and map fd it owns.
    """

    def __init__(
        self, handle: int, name: str, elf: ctypes.Array[ctypes.c_char]
    ) -> None:
        """Wrap an already loaded ``struct bpf_object *`` (internal)."""
        # Stays None until fully built, so a failing constructor never makes
        # __del__ close a handle that load() is about to close itself.
        self._handle: int | None = None
        self._name = name
        # libbpf keeps pointing at the ELF image while the object lives.
        self._elf = elf
        self._programs: dict[str, int] = {}
        self._sections: dict[str, str] = {}
        self._maps: dict[str, MapInfo] = {}
        lib = get_libbpf()
        for prog in lib.object_programs(handle):
            prog_name = lib.program_name(prog)
            self._programs[prog_name] = lib.program_fd(prog)
            self._sections[prog_name] = lib.program_section_name(prog)
        for m in lib.object_maps(handle):
            info = MapInfo(
                name=lib.map_name(m),
                fd=lib.map_fd(m),
                type=lib.map_type(m),
                key_size=lib.map_key_size(m),
                value_size=lib.map_value_size(m),
                max_entries=lib.map_max_entries(m),
            )
            self._maps[info.name] = info
        self._handle = handle

    @classmethod
    def load(
        cls,
        elf: bytes,
        name: str,
        *,
        reuse_maps: Mapping[str, int] | None = None,
        log_level: int = 0,
    ) -> BpfObject:
        """Open ``elf`` from memory as object ``name`` and load it.

        ``reuse_maps`` maps a map name (libbpf's name, or a global-data
        section such as ``".bss"``) to an existing map fd that the new object
        should use instead of creating that map; the caller keeps ownership
        of those fds (libbpf dups them).  ``log_level`` is the kernel
        verifier log level (0 = none unless loading fails, 1 = basic,
        2 = verbose); the log ends up in :class:`LoadError` on failure.
        The default is 0: the verifier runs several times faster without a
        log (about 5x on a program with loops), and libbpf loads a program
        that fails again at level 1, so a failure still carries its log.

        Raises :class:`LoadError` if opening or loading fails, ``KeyError``
        for a ``reuse_maps`` name the object does not define, and
        :class:`~pybpfdsl.runtime.libbpf.LibbpfMissing` without libbpf.
        """
        lib = get_libbpf()
        buf = ctypes.create_string_buffer(elf, len(elf))
        name_b = name.encode()
        opts = BpfObjectOpenOpts()
        opts.sz = ctypes.sizeof(BpfObjectOpenOpts)
        opts.object_name = name_b
        # With kernel_log_level > 0 and no kernel_log_buf, libbpf allocates
        # its own buffer and prints the verifier log through the print
        # callback (as a warning on failure, as debug on success).
        opts.kernel_log_level = log_level
        handle: int | None = None
        with capture_libbpf_log() as lines:
            try:
                handle = lib.object_open_mem(buf, opts)
            except OSError as exc:
                raise LoadError(
                    f"cannot open BPF object {name!r}: {exc.strerror}",
                    log="\n".join(lines),
                    errno=exc.errno or 0,
                ) from exc
            try:
                for map_name, fd in (reuse_maps or {}).items():
                    lib.map_reuse_fd(cls._find_unloaded_map(handle, map_name), fd)
                _require_map_flags(handle)
                ACTIVITY.loads += 1
                lib.object_load(handle)
                obj = cls(handle, name, buf)
            except OSError as exc:
                lib.object_close(handle)
                raise LoadError(
                    f"cannot load BPF object {name!r}: {exc.strerror}",
                    log="\n".join(lines),
                    errno=exc.errno or 0,
                ) from exc
            except BaseException:
                lib.object_close(handle)
                raise
        return obj

    @staticmethod
    def _find_unloaded_map(handle: int, name: str) -> int:
        lib = get_libbpf()
        found = lib.object_find_map(handle, name)
        if found is not None:
            return found
        for m in lib.object_maps(handle):
            if _map_matches_section(lib.map_name(m), name):
                return m
        raise KeyError(f"BPF object has no map named {name!r}")

    # -- accessors --------------------------------------------------------

    @property
    def name(self) -> str:
        """The object name given to :meth:`load`."""
        return self._name

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._handle is None

    @property
    def programs(self) -> dict[str, int]:
        """Program name (C function name) → program fd, in ELF order."""
        self._ensure_open()
        return dict(self._programs)

    @property
    def program_sections(self) -> dict[str, str]:
        """Program name → ELF section name (e.g. ``"xdp"``)."""
        self._ensure_open()
        return dict(self._sections)

    def program_fd(self, name: str) -> int:
        """The fd of program ``name``; ``KeyError`` if there is none."""
        self._ensure_open()
        try:
            return self._programs[name]
        except KeyError:
            raise KeyError(
                f"BPF object {self._name!r} has no program {name!r} "
                f"(has {sorted(self._programs)})"
            ) from None

    @property
    def maps(self) -> dict[str, MapInfo]:
        """libbpf map name → :class:`MapInfo` for every map of the object."""
        self._ensure_open()
        return dict(self._maps)

    def find_section_map(self, section: str) -> MapInfo | None:
        """The global-data map backing ELF ``section`` (e.g. ``".bss"``).

        Accounts for libbpf's ``<truncated object name><section>`` naming;
        returns ``None`` if the object has no such section.
        """
        self._ensure_open()
        exact = self._maps.get(section)
        if exact is not None:
            return exact
        for info in self._maps.values():
            if _map_matches_section(info.name, section):
                return info
        return None

    def kernel_map(self, name: str) -> KernelMap:
        """A :class:`KernelMap` for map ``name`` or global-data section ``name``.

        The returned wrapper borrows the object's fd: it is only valid until
        this object is closed.  ``KeyError`` if there is no such map.
        """
        info = self._maps.get(name) if not self.closed else None
        if info is None:
            info = self.find_section_map(name)
        if info is None:
            raise KeyError(f"BPF object {self._name!r} has no map {name!r}")
        return KernelMap.from_info(info)

    # -- lifetime ---------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._handle is None:
            raise ValueError(f"BPF object {self._name!r} is closed")

    def close(self) -> None:
        """Unload the object and close all of its fds (idempotent)."""
        if self._handle is not None:
            handle, self._handle = self._handle, None
            get_libbpf().object_close(handle)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Best effort: avoid leaking kernel objects if the user forgot close().
        try:
            self.close()
        except Exception as exc:
            _log.debug("closing BPF object %r in __del__ failed: %s", self._name, exc)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"programs={sorted(self._programs)}"
        return f"<BpfObject {self._name!r} {state}>"
