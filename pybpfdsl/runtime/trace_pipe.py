"""Reading what BPF programs print with bpf_trace_printk: the kernel's trace pipe.

The kernel writes each bpf_trace_printk call as one line of the trace buffer, which `trace_pipe` in the
tracefs hands out once, oldest first, blocking while it is empty:

    <task>-<pid>  [<cpu>] <flags> <timestamp>: bpf_trace_printk: <the text>

tracefs lives at /sys/kernel/tracing (or, on older systems, /sys/kernel/debug/tracing); where neither is
mounted, `mount -t tracefs nodev /sys/kernel/tracing` makes it. `follow` yields lines as they come and
stops when asked (a callback, or the caller's Ctrl-C); `drain` takes what is there now.

Since Linux 6.5 the kernel lets one process at a time read a trace_pipe (a second `open` fails with EBUSY,
per CPU); that is `TracePipeBusy`, which names the fix, rather than a bare OSError.
"""

from __future__ import annotations

import errno
import os
import re
import select
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TRACEFS_DIRS", "TraceLine", "TracePipeBusy", "TracePipeMissing", "drain", "follow", "parse_line",
           "trace_pipe_path"]

TRACEFS_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
_PRINTK = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(.*?\)\s+)?\[(?P<cpu>\d+)\]\s+(?:\S+\s+)?"
                     r"(?P<time>\d+\.\d+):\s+bpf_trace_printk:\s?(?P<text>.*)$")


class TracePipeMissing(OSError):
    """No tracefs with a trace_pipe is mounted where the kernel puts it."""


class TracePipeBusy(OSError):
    """Another process is reading the trace pipe, and the kernel allows one reader at a time."""


def _open(pipe: Path) -> int:
    try:
        return os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            raise
        raise TracePipeBusy(errno.EBUSY, f"{pipe} is being read by another process, and the kernel allows one "
                                         "reader at a time: stop that reader (another `pybpfdsl trace`, a "
                                         "`cat` of trace_pipe, `bpftool prog tracelog`) and try again") from exc


@dataclass(frozen=True)
class TraceLine:
    """One line of the trace pipe; `text` is what the program printed (None for other trace events)."""

    raw: str
    text: str | None = None
    task: str | None = None
    pid: int | None = None
    cpu: int | None = None


def parse_line(raw: str) -> TraceLine:
    m = _PRINTK.match(raw)
    if m is None:
        return TraceLine(raw)
    return TraceLine(raw, m["text"], m["task"].strip(), int(m["pid"]), int(m["cpu"]))


def trace_pipe_path(tracefs: Path | None = None) -> Path:
    """`tracefs`/trace_pipe, or the first of the usual places that has one."""
    for d in (tracefs,) if tracefs is not None else TRACEFS_DIRS:
        if (d / "trace_pipe").exists():
            return d / "trace_pipe"
    where = tracefs if tracefs is not None else " or ".join(str(d) for d in TRACEFS_DIRS)
    raise TracePipeMissing(errno.ENOENT, f"no trace_pipe in {where}: tracefs is not mounted there "
                                         "(mount -t tracefs nodev /sys/kernel/tracing)")


def follow(path: Path | None = None, *, stop: Callable[[], bool] = lambda: False,
           poll_seconds: float = 0.2) -> Iterator[TraceLine]:
    """The trace pipe's lines as they arrive, until `stop()` says so (asked at least every
    `poll_seconds` while nothing comes) or the caller stops iterating."""
    pipe = path if path is not None else trace_pipe_path()
    fd = _open(pipe)
    pending = b""
    try:
        while not stop():
            ready, _, _ = select.select([fd], [], [], poll_seconds)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield parse_line(line.decode("utf-8", "replace"))
    finally:
        os.close(fd)


def drain(path: Path | None = None, *, quiet_seconds: float = 0.3) -> list[TraceLine]:
    """The lines waiting in the trace pipe, read until none came for `quiet_seconds`."""
    pipe = path if path is not None else trace_pipe_path()
    fd = _open(pipe)
    data = b""
    try:
        while select.select([fd], [], [], quiet_seconds)[0]:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return [parse_line(line.decode("utf-8", "replace")) for line in data.split(b"\n") if line]
