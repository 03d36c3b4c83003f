"""The C twins built with clang at every configuration the benchmark tries (-O1/-O2/-O3 x -mcpu=v2/v3),
against the system's libbpf headers (`/usr/include/bpf/bpf_helpers.h`); the best is the one with the
fewest BPF slots (then the lower -O, then v3)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pybpfdsl.bpf.elf import BpfElf

OPT_LEVELS = ("-O1", "-O2", "-O3")
CPUS = ("v2", "v3")


class ClangMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class ClangBuild:
    opt: str
    cpu: str
    elf: bytes
    slots: int
    seconds: float

    @property
    def config(self) -> str:
        return f"{self.opt} -mcpu={self.cpu}"


def clang_path() -> str:
    found = shutil.which("clang")
    if found is None:
        raise ClangMissing("clang is not installed (`make system-deps` installs it)")
    return found


def _arch_include() -> list[str]:
    """`-target bpf` does not search the multiarch directory that holds `asm/types.h`."""
    try:
        triple = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return []
    return ["-idirafter", f"/usr/include/{triple}"] if triple else []


def slots(elf: bytes, program: str) -> int:
    """BPF instruction slots of `program` (a 16-byte lddw counts as two, as the kernel counts)."""
    return sum(2 if insn.is_wide else 1 for insn in BpfElf.from_bytes(elf).program(program).instructions)


def build(source: Path, program: str, opt: str, cpu: str) -> ClangBuild:
    """Compile `source` (with -g: libbpf reads the maps' BTF) and time clang."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "twin.o"
        cmd = [clang_path(), opt, "-g", "-target", "bpf", f"-mcpu={cpu}", *_arch_include(),
               "-c", str(source), "-o", str(out)]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        seconds = time.perf_counter() - started
        elf = out.read_bytes()
    return ClangBuild(opt, cpu, elf, slots(elf, program), seconds)


def best_build(source: Path, program: str) -> tuple[ClangBuild, list[ClangBuild]]:
    """Every configuration's build, and the one with the fewest slots."""
    builds = [build(source, program, opt, cpu) for opt in OPT_LEVELS for cpu in CPUS]
    best = min(builds, key=lambda b: (b.slots, OPT_LEVELS.index(b.opt), -CPUS.index(b.cpu)))
    return best, builds
