"""What every command shares: errors with exit codes, and finding the `@xdp` program FILE[:FUNC] names."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import linecache
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType

from pybpfdsl.bpf.elf import BpfElf, ElfError, ElfProgram, ProgramNotFound
from pybpfdsl.program import XdpProgram

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "CliError", "ObjectFile", "Target", "is_object_target", "load_object",
           "load_target", "parse_target"]

EXIT_FAILURE = 1
"""A user or program error: the program does not compile, the kernel refused it, a file is unreadable."""
EXIT_USAGE = 2
"""The command line is wrong: unknown or missing program, malformed argument, a file that is not a BPF
object where one is expected."""


class CliError(Exception):
    """An error to show as `error: <message>` (no traceback) and exit with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILURE, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint


@dataclass(frozen=True)
class Target:
    """A resolved FILE[:FUNC]: the file, its module and the chosen program."""

    path: Path
    module: ModuleType
    program: XdpProgram

    @property
    def label(self) -> str:
        return f"{self.path.name}:{self.program.function.__name__}"


def parse_target(spec: str) -> tuple[Path, str | None]:
    """Split FILE[:FUNC]. A path that exists as given wins over a split at its last colon."""
    if Path(spec).exists() or ":" not in spec:
        return Path(spec), None
    file, _, func = spec.rpartition(":")
    if not file:
        raise CliError(f"{spec!r}: missing FILE before ':'", EXIT_USAGE)
    if not func:
        raise CliError(f"{spec!r}: missing FUNC after ':'", EXIT_USAGE)
    return Path(file), func


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    stem = "".join(ch if ch.isalnum() else "_" for ch in path.stem)
    return f"_pybpfdsl_cli_{stem}_{digest}"


class UserCodeError(CliError):
    """Running the user's file raised: shown as a file:line diagnostic of the innermost frame in it."""


def _diagnostic_for(exc: BaseException, path: Path) -> str:
    """`file:line: error: Type: message` plus the source line, for an exception raised by importing `path`."""
    name = type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.filename:
        line = exc.lineno or 0
        col = exc.offset or 1
        parts = [f"{exc.filename}:{line}:{col}: error: {name}: {exc.msg}"]
        if exc.text:
            text = exc.text.rstrip("\n")
            parts.append(f"    {text}")
            parts.append("    " + " " * max(col - 1, 0) + "^")
        return "\n".join(parts)
    frames = traceback.extract_tb(exc.__traceback__)
    wanted = str(path.resolve())
    mine = [f for f in frames if f.filename and Path(f.filename).resolve() == Path(wanted)]
    frame = mine[-1] if mine else (frames[-1] if frames else None)
    message = str(exc)
    head = f"error: {name}: {message}" if message else f"error: {name}"
    if frame is None:
        return f"{path}: {head}"
    parts = [f"{frame.filename}:{frame.lineno}: {head}"]
    text = frame.line or linecache.getline(frame.filename, frame.lineno or 0).strip()
    if text:
        parts.append(f"    {text.strip()}")
    return "\n".join(parts)


def import_file(path: Path) -> ModuleType:
    """Import `path` as a fresh module with a unique name; its directory is on sys.path meanwhile."""
    if not path.exists():
        raise CliError(f"{path}: no such file", EXIT_USAGE)
    if path.is_dir():
        raise CliError(f"{path}: is a directory, expected a Python file", EXIT_USAGE)
    resolved = path.resolve()
    name = _module_name(resolved)
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise CliError(f"{path}: cannot be imported as a Python module", EXIT_USAGE)
    module = importlib.util.module_from_spec(spec)
    directory = str(resolved.parent)
    sys.path.insert(0, directory)
    sys.modules[name] = module  # dataclasses, typing and Struct annotations look the module up
    try:
        spec.loader.exec_module(module)
    except (KeyboardInterrupt, SystemExit):
        sys.modules.pop(name, None)
        raise
    except BaseException as exc:
        sys.modules.pop(name, None)
        from pybpfdsl.lang.errors import DslError

        if isinstance(exc, DslError):
            raise
        raise UserCodeError(_diagnostic_for(exc, resolved)) from exc
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)
    return module


def _programs_in(module: ModuleType) -> list[tuple[str, XdpProgram]]:
    """(variable name, program) for each distinct XdpProgram in the module; programs defined in the
    module itself come first, imported ones only when the module defines none."""
    seen: set[int] = set()
    own: list[tuple[str, XdpProgram]] = []
    imported: list[tuple[str, XdpProgram]] = []
    for var, value in vars(module).items():
        if isinstance(value, XdpProgram) and id(value) not in seen:
            seen.add(id(value))
            defined_here = getattr(value.function, "__module__", None) == module.__name__
            (own if defined_here else imported).append((var, value))
    return own or imported


def _describe(var: str, prog: XdpProgram) -> str:
    fn = prog.function
    extra = f" (program name {prog.name!r})" if prog.name != fn.__name__ else ""
    return f"  {fn.__name__}{extra}, line {fn.__code__.co_firstlineno}"


def load_target(spec: str) -> Target:
    """Import FILE and pick the program FUNC names (by function, program or variable name), or the only one."""
    path, func = parse_target(spec)
    module = import_file(path)
    programs = _programs_in(module)
    if func is not None:
        everything = programs + [(v, p) for v, p in _all_programs(module) if all(p is not q for _, q in programs)]
        for var, prog in everything:
            if func in (prog.function.__name__, prog.name, var):
                return Target(path, module, prog)
        listing = "\n".join(_describe(v, p) for v, p in everything) or "  (none)"
        raise CliError(f"{path}: no @xdp program named {func!r}; the file has:\n{listing}", EXIT_USAGE)
    if not programs:
        raise CliError(f"{path}: no @xdp programs found", EXIT_USAGE,
                       hint="decorate a function `def f(pkt: Packet) -> int` with @xdp")
    if len(programs) > 1:
        listing = "\n".join(_describe(v, p) for v, p in programs)
        raise CliError(f"{path} has {len(programs)} @xdp programs; choose one with {path}:FUNC:\n{listing}",
                       EXIT_USAGE)
    return Target(path, module, programs[0][1])


def _all_programs(module: ModuleType) -> list[tuple[str, XdpProgram]]:
    return [(v, p) for v, p in vars(module).items() if isinstance(p, XdpProgram)]


@dataclass(frozen=True)
class ObjectFile:
    """A BPF object FILE.o, read and checked, and the program --section chose (the first by default)."""

    path: Path
    data: bytes
    elf: BpfElf
    program: ElfProgram

    @property
    def label(self) -> str:
        return f"{self.path.name}:{self.program.name}"


def is_object_target(spec: str) -> bool:
    """Whether FILE[:FUNC] names a BPF object rather than a Python file: an existing file that is not
    `.py` (an ELF, or something that should have been one), or any `.o` path."""
    path = Path(spec)
    return path.suffix == ".o" or (path.suffix != ".py" and path.is_file())


def load_object(spec: str, section: str | None = None) -> ObjectFile:
    """Read and check the BPF object at `spec` and choose its program `section` (a section or function
    name; the first entry program when None). Every problem is a one-line CliError naming the file:
    missing, unreadable, truncated, malformed, for another machine, or without that program."""
    path = Path(spec)
    if path.is_dir():
        raise CliError(f"{path}: is a directory, expected a BPF object file", EXIT_USAGE)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{path}: no such file", EXIT_USAGE) from None
    except OSError as exc:
        raise CliError(f"{path}: cannot read: {exc.strerror or exc}", EXIT_USAGE) from None
    try:
        elf = BpfElf.from_bytes(data).check()
        program = elf.entry_program(section)
    except ProgramNotFound as exc:
        raise CliError(f"{path}: {exc}", EXIT_USAGE) from None
    except ElfError as exc:
        raise CliError(f"{path}: {exc}", EXIT_USAGE) from None
    return ObjectFile(path, data, elf, program)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def format_exception_chain(exc: BaseException, tb: TracebackType | None = None) -> str:
    """The full traceback of `exc` (for --debug)."""
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
