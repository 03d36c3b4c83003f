"""`pybpfdsl trace`: follow the kernel's trace pipe, where bpf_trace_printk writes, until Ctrl-C.

Prints the text each program printed (or with --raw the kernel's whole trace line: task, pid, CPU,
timestamp). --count stops after that many lines (for scripts); --tracefs reads a tracefs mounted
elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pybpfdsl.runtime.trace_pipe import TracePipeBusy, TracePipeMissing, follow, trace_pipe_path

__all__ = ["add_arguments", "cmd_trace"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw", action="store_true", help="print the kernel's whole trace lines")
    p.add_argument("--count", type=int, metavar="N", help="stop after N lines")
    p.add_argument("--tracefs", type=Path, metavar="DIR", help="where tracefs is mounted (default: the usual places)")


def cmd_trace(args: argparse.Namespace) -> int:
    try:
        pipe = trace_pipe_path(args.tracefs)
    except TracePipeMissing as exc:
        print(f"error: {exc.strerror}", file=sys.stderr)
        return 1
    seen = 0
    limit: int | None = args.count
    try:
        for line in follow(pipe):
            if line.text is None and not args.raw:
                continue  # another tracer's event
            print(line.raw if args.raw else line.text, flush=True)
            seen += 1
            if limit is not None and seen >= limit:
                break
    except KeyboardInterrupt:  # Ctrl-C is how one stops following
        pass
    except TracePipeBusy as exc:
        print(f"error: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
