"""The C corpus: small XDP programs in ``c/*.c``, built with clang at test time.

Each file's first line states what it is meant to be: ``// expect: accept`` or ``// expect: reject``
(followed by a description). The kernel is the oracle of the differential; the expectation documents
the program and is checked against the kernel, so a corpus file cannot silently mean something else.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")
CLANG_FLAGS = ("-O2", "-g", "-target", "bpf", "-Wno-unused-value", "-Wno-array-bounds")


@dataclass(frozen=True)
class CProgram:
    name: str
    expect_ok: bool
    description: str
    elf: bytes


def clang() -> str | None:
    return shutil.which("clang")


def _arch_include() -> tuple[str, ...]:
    """``-target bpf`` does not search the multiarch directory that holds ``asm/types.h``."""
    try:
        triple = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        triple = f"{os.uname().machine}-linux-gnu"
    d = f"/usr/include/{triple}"
    return ("-idirafter", d) if os.path.isdir(d) else ()


def sources() -> list[str]:
    return sorted(os.path.join(HERE, f) for f in os.listdir(HERE) if f.endswith(".c"))


def _expectation(path: str) -> tuple[bool, str]:
    with open(path) as f:
        first = f.readline().strip()
    assert first.startswith("// expect:"), f"{path}: first line must be '// expect: accept|reject -- ...'"
    rest = first[len("// expect:"):].strip()
    verdict, _, desc = rest.partition(" ")
    assert verdict in ("accept", "reject"), path
    return verdict == "accept", desc.strip(" -")


_CACHE = os.path.join(tempfile.gettempdir(), "pybpfdsl-c-corpus")


def build(path: str, cc: str) -> bytes:
    """Compile one file (cached by content and flags in the temp directory)."""
    with open(path, "rb") as f:
        src = f.read()
    header = b""
    for name in sorted(f for f in os.listdir(HERE) if f.endswith(".h")):  # any of them may be included
        with open(os.path.join(HERE, name), "rb") as f:
            header += f.read()
    key = hashlib.sha256(src + header + " ".join(CLANG_FLAGS).encode()).hexdigest()[:24]
    os.makedirs(_CACHE, exist_ok=True)
    out = os.path.join(_CACHE, f"{os.path.basename(path)[:-2]}-{key}.o")
    if not os.path.exists(out):
        tmp = out + f".{os.getpid()}.tmp"
        res = subprocess.run([cc, *CLANG_FLAGS, *_arch_include(), "-I", HERE, "-c", path, "-o", tmp],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"clang failed on {path}:\n{res.stderr}")
        os.replace(tmp, out)
    with open(out, "rb") as f:
        return f.read()


def programs() -> list[CProgram]:
    """Every corpus program, built (raises if clang is missing: callers skip first)."""
    cc = clang()
    assert cc is not None, "clang is not installed"
    paths = sources()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        elves = list(pool.map(lambda p: build(p, cc), paths))
    out = []
    for path, elf in zip(paths, elves, strict=True):
        ok, desc = _expectation(path)
        out.append(CProgram(os.path.basename(path)[:-2], ok, desc, elf))
    return out
