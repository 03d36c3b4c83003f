"""Others' XDP programs (``third_party/``: xdp-tutorial, xdp-tools), built with clang at test time.

Each source is compiled at several optimisation levels (``BUILDS``) into the temp directory (cached by
the content of its project's files and the flags); every function in an ``xdp*`` section of the
object is one corpus program. The kernel is the oracle: :func:`kernel_verdict` loads just that program
of the object (libbpf, as root; the object's other programs are not loaded) and returns the kernel's
verdict, the last lines of its log and its own verification time. Where each file comes from, its
licence and the edits made at build time: ``third_party/README.md``.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.runtime.activity import ACTIVITY
from pybpfdsl.runtime.libbpf import BpfObjectOpenOpts, capture_libbpf_log, get_libbpf
from tests.verify.corpus.c_corpus import _arch_include, clang

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "third_party")
BASE_FLAGS = ("-g", "-target", "bpf", "-Wno-unused-value", "-Wno-pointer-sign", "-Wno-compare-distinct-pointer-types",
              "-Wno-int-conversion", "-Wno-visibility", "-Wno-unused-command-line-argument")
BUILDS = {"O2": ("-O2",), "O1": ("-O1",), "O2-v3": ("-O2", "-mcpu=v3")}
"""Build name -> extra clang flags; each source is one program per build."""


@dataclass(frozen=True)
class Project:
    name: str
    flags: tuple[str, ...]
    """Beyond ``BASE_FLAGS``; include directories relative to the project's directory."""
    skip: tuple[str, ...] = ()
    """Sources (relative paths) with no XDP program, kept only for what the others include."""


PROJECTS = (
    Project("xdp-tutorial", ()),
    # The defines are what xdp-tools' configure finds for the system's libbpf 1.1 (the sources declare
    # the helpers themselves for older ones); <stdbool.h> is what its newer bundled libbpf headers bring.
    Project("xdp-tools", ("-I", "headers", "-include", "stdbool.h", "-DHAVE_LIBBPF_BPF_PROGRAM__TYPE",
                          "-DHAVE_LIBBPF_BPF_PROGRAM__FLAGS"), skip=("lib/util/xdp_sample.bpf.c",)),
    # As katran's own Makefile-bpf: its sources include "katran/lib/..." from the top and "bpf.h" from
    # its copy of the kernel's headers.
    Project("katran", ("-I", ".", "-I", "katran/lib/linux_includes")),
)
_OLD_SECTION = re.compile(rb'SEC\("xdp_')
"""libbpf >= 1.0 loads no program from ``SEC("xdp_foo")`` (its old sloppy prefix match is gone): such
sections are built as ``SEC("xdp/foo")``, the one edit made to any source (at build time, in a copy
of the project's files)."""


@dataclass(frozen=True)
class ThirdPartyProgram:
    corpus: str
    source: str
    """Path relative to the project's directory."""
    build: str
    function: str
    """The program's function (libbpf's program name): what ``verify_object`` and the loader select."""
    section: str
    elf: bytes

    @property
    def name(self) -> str:
        return f"{self.corpus}/{self.source}:{self.function}[{self.build}]"


def sources(project: Project) -> list[str]:
    root = os.path.join(HERE, project.name)
    found = sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "**", "*.c"), recursive=True))
    return [p for p in found if p not in project.skip]


def missing_headers() -> str | None:
    """Why the corpus cannot be built here (None if it can)."""
    if clang() is None:
        return "clang is not installed"
    for header in ("bpf/bpf_helpers.h", "linux/bpf.h"):
        if not os.path.exists(os.path.join("/usr/include", header)):
            return f"<{header}> is not installed (make system-deps)"
    return None


def _fingerprint(project: Project) -> bytes:
    h = hashlib.sha256()
    root = os.path.join(HERE, project.name)
    for path in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True)):
        if os.path.isfile(path):
            h.update(path[len(root):].encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.digest()


_CACHE = os.path.join(tempfile.gettempdir(), "pybpfdsl-third-party-corpus")


def _shim_include() -> str:
    """``-target bpf`` is neither 32- nor 64-bit x86 to glibc's headers, which then want ``gnu/stubs-32.h``."""
    d = os.path.join(_CACHE, "shim")
    os.makedirs(os.path.join(d, "gnu"), exist_ok=True)
    stub = os.path.join(d, "gnu", "stubs-32.h")
    if not os.path.exists(stub):
        with open(stub, "w") as f:
            f.write("/* empty: see third_party_corpus._shim_include */\n")
    return d


def _tree(project: Project, fingerprint: bytes) -> str:
    """The project's files copied to the cache with the one build-time edit (``_OLD_SECTION``) applied."""
    dest = os.path.join(_CACHE, f"src-{fingerprint.hex()[:16]}", project.name)
    if os.path.isdir(dest):
        return dest
    root = os.path.join(HERE, project.name)
    tmp = f"{dest}.{os.getpid()}.{threading.get_ident()}.tmp"
    shutil.copytree(root, tmp)
    for path in glob.glob(os.path.join(tmp, "**", "*.c"), recursive=True):
        with open(path, "rb") as f:
            text = f.read()
        if _OLD_SECTION.search(text):
            with open(path, "wb") as f:
                f.write(_OLD_SECTION.sub(b'SEC("xdp/', text))
    try:
        os.replace(tmp, dest)
    except OSError:  # another build got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def build(project: Project, source: str, build_name: str, cc: str, fingerprint: bytes) -> bytes:
    """Compile one source with one build's flags (cached in the temp directory)."""
    flags = (*BASE_FLAGS, *BUILDS[build_name], *project.flags)
    key = hashlib.sha256(fingerprint + source.encode() + " ".join(flags).encode()).hexdigest()[:24]
    out = os.path.join(_CACHE, f"{project.name}-{source.replace('/', '_')[:-2]}-{build_name}-{key}.o")
    if not os.path.exists(out):
        tree = _tree(project, fingerprint)
        tmp = out + f".{os.getpid()}.{threading.get_ident()}.tmp"
        # Line info names the file as the corpus does ("xdp-tutorial/basic01-xdp-pass/xdp_pass_kern.c").
        res = subprocess.run([cc, *flags, *_arch_include(), "-idirafter", _shim_include(),
                              f"-fdebug-prefix-map={tree}={project.name}", "-c", source, "-o", tmp],
                             capture_output=True, cwd=tree)
        if res.returncode != 0:
            raise RuntimeError(f"clang failed on {project.name}/{source}:\n{res.stderr.decode(errors='replace')}")
        os.replace(tmp, out)
    with open(out, "rb") as f:
        return f.read()


def is_xdp_like(section: str) -> bool:
    return section == "xdp" or section.startswith(("xdp/", "xdp.", "xdp_"))


def entries(elf: bytes) -> list[tuple[str, str]]:
    """(function, section) of every global function in an ``xdp*`` section, in ELF order."""
    out: list[tuple[str, str]] = []
    for section, prog in BpfElf.from_bytes(elf).programs.items():
        if is_xdp_like(section):
            out.extend((f.name, section) for f in prog.functions if f.is_global)
    return out


_PROGRAMS: dict[tuple[str, ...], list[ThirdPartyProgram]] = {}


def programs(builds: tuple[str, ...] = tuple(BUILDS)) -> list[ThirdPartyProgram]:
    """Every corpus program of the given builds (built once per process; raises if clang is missing)."""
    if builds in _PROGRAMS:
        return _PROGRAMS[builds]
    cc = clang()
    assert cc is not None, "clang is not installed"
    os.makedirs(_CACHE, exist_ok=True)
    prints = {p.name: _fingerprint(p) for p in PROJECTS}
    jobs = [(p, s, b, prints[p.name]) for p in PROJECTS for s in sources(p) for b in builds]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        elves = list(pool.map(lambda j: build(j[0], j[1], j[2], cc, j[3]), jobs))
    out: list[ThirdPartyProgram] = []
    for (project, source, build_name, _), elf in zip(jobs, elves, strict=True):
        for function, section in entries(elf):
            out.append(ThirdPartyProgram(project.name, source, build_name, function, section, elf))
    _PROGRAMS[builds] = out
    return out


@dataclass(frozen=True)
class KernelResult:
    ok: bool
    message: str
    """The kernel's (or libbpf's) last log lines on a refusal; empty when loaded."""
    verify_us: int | None
    """The kernel's own "verification time N usec" (None if its log does not say)."""
    load_seconds: float


_LOG_SIZE = 1 << 22
RUNTIME_MAX_ENTRIES = 256
"""For maps whose size the project's loader sets before loading (``max_entries`` 0 in the object)."""
BPF_PROG_TYPE_UNSPEC, BPF_PROG_TYPE_XDP, BPF_XDP = 0, 6, 37
BPF_LOG_STATS = 4
"""The kernel's statistics and its error messages, without the instruction trace (which slows it down)."""
_STATS_LINES = ("verification time", "stack depth", "processed ")


def _raw_libbpf() -> ctypes.CDLL:
    lib: ctypes.CDLL = get_libbpf()._lib
    lib.bpf_program__set_autoload.argtypes = [ctypes.c_void_p, ctypes.c_bool]
    lib.bpf_program__set_autoload.restype = ctypes.c_int
    lib.bpf_program__set_log_buf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.bpf_program__set_log_buf.restype = ctypes.c_int
    lib.bpf_program__set_log_level.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.bpf_program__set_log_level.restype = ctypes.c_int
    lib.bpf_map__set_pin_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.bpf_map__set_pin_path.restype = ctypes.c_int
    lib.bpf_map__set_max_entries.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.bpf_map__set_max_entries.restype = ctypes.c_int
    lib.bpf_program__type.argtypes = [ctypes.c_void_p]
    lib.bpf_program__type.restype = ctypes.c_int
    lib.bpf_program__set_type.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.bpf_program__set_type.restype = ctypes.c_int
    lib.bpf_program__set_expected_attach_type.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.bpf_program__set_expected_attach_type.restype = ctypes.c_int
    return lib


def kernel_verdict(elf: bytes, function: str) -> KernelResult:
    """Load only program ``function`` of ``elf`` (its maps are created; its other programs are not
    loaded) and return the kernel's verdict with its statistics."""
    libbpf = get_libbpf()
    raw = _raw_libbpf()
    buf = ctypes.create_string_buffer(elf, len(elf))
    opts = BpfObjectOpenOpts()
    opts.sz = ctypes.sizeof(BpfObjectOpenOpts)
    opts.object_name = b"corpus"
    log = ctypes.create_string_buffer(_LOG_SIZE)
    started = time.perf_counter()
    with capture_libbpf_log() as lines:
        try:
            handle = libbpf.object_open_mem(buf, opts)
        except OSError as exc:
            return KernelResult(False, f"libbpf cannot open the object: {exc}", None, 0.0)
        try:
            found = False
            for prog in libbpf.object_programs(handle):
                mine = libbpf.program_name(prog) == function
                found |= mine
                raw.bpf_program__set_autoload(prog, mine)
                if mine and raw.bpf_program__type(prog) == BPF_PROG_TYPE_UNSPEC:
                    # "xdp/foo" (was "xdp_foo"): libbpf 1.1 knows no such section; the projects' own
                    # loaders set the type, as here.
                    raw.bpf_program__set_type(prog, BPF_PROG_TYPE_XDP)
                    raw.bpf_program__set_expected_attach_type(prog, BPF_XDP)
                if mine:
                    raw.bpf_program__set_log_buf(prog, log, _LOG_SIZE)
                    raw.bpf_program__set_log_level(prog, BPF_LOG_STATS)
            if not found:
                return KernelResult(False, f"libbpf has no program {function}", None, 0.0)
            for m in libbpf.object_maps(handle):
                raw.bpf_map__set_pin_path(m, None)  # no pinning (LIBBPF_PIN_BY_NAME) outside this load
                if libbpf.map_max_entries(m) == 0:  # sized by the project's loader at run time
                    raw.bpf_map__set_max_entries(m, RUNTIME_MAX_ENTRIES)
            started = time.perf_counter()
            ACTIVITY.loads += 1
            try:
                libbpf.object_load(handle)
                ok, err = True, ""
            except OSError as exc:
                ok, err = False, str(exc)
            seconds = time.perf_counter() - started
        finally:
            libbpf.object_close(handle)
    text = log.value.decode(errors="replace")
    took = re.search(r"verification time (\d+) usec", text)
    message = ""
    if not ok:
        said = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(_STATS_LINES)]
        tail = said[-2:] or [ln for ln in lines if ln.strip()][-2:] or [err]
        message = " | ".join(s.strip() for s in tail)
    return KernelResult(ok, message, int(took.group(1)) if took else None, seconds)


@dataclass(frozen=True)
class Case:
    program: ThirdPartyProgram
    kind: str
    """"original" or the mutant's kind (``mutants.py``)."""
    name: str
    elf: bytes


@dataclass(frozen=True)
class Outcome:
    program: ThirdPartyProgram
    kind: str
    name: str
    kernel: KernelResult
    ours_ok: bool
    our_error: str
    """Our first error: "code @insn: message" (empty when we accept)."""
    our_seconds: float
    """CPU time of our analysis (the machine may be shared: wall time would measure the neighbours)."""

    @property
    def unsafe_accept(self) -> bool:
        return self.ours_ok and not self.kernel.ok

    @property
    def false_alarm(self) -> bool:
        return self.kernel.ok and not self.ours_ok


def _sampled(name: str, rate: float) -> bool:
    """Deterministic: the same mutants are chosen on every run and machine."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return rate >= 1.0 or h < rate * (1 << 64)


def mutant_cases(p: ThirdPartyProgram, mutant_rate: float = 1.0) -> list[Case]:
    """The program's single-instruction mutants chosen at ``mutant_rate`` (1.0: all)."""
    from tests.verify.corpus.mutants import mutants

    if mutant_rate <= 0:
        return []
    return [Case(p, m.kind, m.name, m.elf) for m in mutants(p.elf, p.function, p.name) if _sampled(m.name, mutant_rate)]


def original(p: ThirdPartyProgram) -> Case:
    return Case(p, "original", p.name, p.elf)


def ours(case: Case) -> tuple[bool, str, float]:
    from pybpfdsl.verify.analysis import verify_object

    started = time.process_time()
    r = verify_object(case.elf, case.program.function, allow_uninit_stack_reads=True)
    seconds = time.process_time() - started
    first = r.errors[0] if r.errors else None
    return r.ok, "" if first is None else f"{first.code.value} @{first.insn}: {first.message}", seconds


_WORK: list[Case] = []


def _ours_by_index(i: int) -> tuple[bool, str, float]:
    return ours(_WORK[i])


def run(all_cases: list[Case], workers: int | None = None) -> list[Outcome]:
    """Our analysis in ``workers`` forked processes (default: one per CPU) while this process loads each
    case into the kernel in a thread (ctypes releases the GIL during the system calls)."""
    import multiprocessing

    n = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=1) as pool:
        kernel = pool.map(lambda c: kernel_verdict(c.elf, c.program.function), all_cases)
        if n > 1 and "fork" in multiprocessing.get_all_start_methods():
            _WORK[:] = all_cases
            with multiprocessing.get_context("fork").Pool(n) as procs:
                results = procs.map(_ours_by_index, range(len(all_cases)), chunksize=4)
            _WORK.clear()
        else:
            results = [ours(c) for c in all_cases]
        verdicts = list(kernel)
    return [Outcome(c.program, c.kind, c.name, k, ok, err, secs)
            for c, k, (ok, err, secs) in zip(all_cases, verdicts, results, strict=True)]
