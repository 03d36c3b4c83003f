"""`import pybpfdsl.bpf` is light: the instruction set, ELF objects and the bytecode interpreter load neither
llvmlite (the compiler's backend) nor libbpf (the runtime's loader), so tools that only read or run
bytecode need neither. Checked in a fresh interpreter, where nothing else has imported them already."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LIGHT_MODULES = ("pybpfdsl.bpf", "pybpfdsl.bpf.instruction", "pybpfdsl.bpf.opcode", "pybpfdsl.bpf.semantics",
                 "pybpfdsl.bpf.interpreter", "pybpfdsl.bpf.memory", "pybpfdsl.bpf.faults",
                 "pybpfdsl.bpf.helper_calls", "pybpfdsl.bpf.helper_results", "pybpfdsl.bpf.linking",
                 "pybpfdsl.bpf.image", "pybpfdsl.bpf.elf", "pybpfdsl.bpf.btf_ext", "pybpfdsl.bpf.disasm",
                 "pybpfdsl.bpf.random_programs", "pybpfdsl.bpf.syscall")

_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
try:
    with open("/proc/self/maps") as f:
        mapped = sorted({line.split()[-1] for line in f if "libbpf" in line})
except OSError:
    mapped = []
heavy = sorted(m for m in sys.modules if m.split(".")[0] == "llvmlite" or m.startswith("pybpfdsl.runtime")
               or m.startswith("pybpfdsl.backend"))
print(json.dumps({"modules": heavy, "libbpf": mapped}))
"""


def _loaded_after_importing(*modules: str) -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", _PROBE, *modules], cwd=REPO, capture_output=True, text=True,
                         check=True)
    found: dict[str, list[str]] = json.loads(out.stdout.splitlines()[-1])
    return found


def test_importing_the_bpf_room_loads_neither_llvmlite_nor_libbpf() -> None:
    assert _loaded_after_importing(*LIGHT_MODULES) == {"modules": [], "libbpf": []}


def test_the_probe_sees_llvmlite_and_the_runtime() -> None:
    """The check itself: importing the compiler's backend and the runtime's loader shows up."""
    found = _loaded_after_importing("pybpfdsl.backend.object_emit", "pybpfdsl.runtime.libbpf")
    assert "llvmlite" in found["modules"] and "pybpfdsl.runtime.libbpf" in found["modules"]
