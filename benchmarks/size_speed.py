"""Size and speed against hand-written C (issue 15 §3; `make bench`): every example and SimpleBPF's three
Table 1 programs, compiled by pybpfdsl and by clang from a C twin that keeps the same maps and makes the
same decisions. Checks each twin against the DSL program (bytecode interpreter and kernel), then measures
BPF slots, JIT instructions, instructions executed on the hot-path packet, ns per packet (median, empty
program subtracted) and compile time, all in one run. Writes benchmarks/results/size_speed.{md,json,png}.

Usage: .venv/bin/python benchmarks/size_speed.py [--loads N] [program ...]   (naming programs, or loads
other than the default 8, prints without writing; more loads narrow the interval of ours - C)
Needs the bpf() syscall (root) and clang with libbpf's headers. Exit status 1 when a twin disagrees.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.size_speed.run import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
