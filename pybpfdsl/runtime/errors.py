"""Errors of loading compiled programs, phrased in terms of the user's Python source.

`LoadError` (from `pybpfdsl.runtime.bpf_object`) is the base: any failure to open or load an object,
with libbpf's whole output in `.log`. `KernelVerifierError` is the common case that the kernel's
verifier refused the program: its message leads with the Python line the verifier stopped at and the
verifier's own complaint, then shows the full verifier log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pybpfdsl.runtime.bpf_object import LoadError

__all__ = ["KernelVerifierError", "LoadError", "StateBindingError", "VerifierLocation",
           "final_verifier_message", "verifier_locations"]

# The kernel prints BTF line info before the instructions of each new line as
# "; <source text, leading blanks stripped> @ <file basename>:<line>".
_LINE_INFO: Final = re.compile(r"^; (?P<text>.*?) ?@ (?P<file>[^\s@]+):(?P<line>\d+)\s*$")
# An instruction dump: "12: (71) r0 = *(u8 *)(r1 +0)".
_INSN: Final = re.compile(r"^\d+: \([0-9a-f]{2}\)")
# Statistics the verifier appends after its verdict; not part of the complaint.
_TRAILER_PREFIXES: Final = ("processed ", "verification time", "stack depth", "-- END", "-- BEGIN")


@dataclass(frozen=True)
class VerifierLocation:
    """A Python line the verifier log mentions; `text` is the full source line when known."""

    file: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def verifier_locations(log: str, source_lines: Mapping[int, str] | None = None) -> list[VerifierLocation]:
    """The Python lines the log mentions, in order of last mention (the last one is where the
    verifier stopped), each once. `source_lines` (line number → text) supplies untrimmed text."""
    found: dict[tuple[str, int], VerifierLocation] = {}
    for raw in log.splitlines():
        m = _LINE_INFO.match(raw.strip())
        if m is None:
            continue
        file, line = m.group("file"), int(m.group("line"))
        text = m.group("text")
        if source_lines is not None and line in source_lines:
            text = source_lines[line].strip()
        found.pop((file, line), None)  # re-insert so dict order is order of last mention
        found[(file, line)] = VerifierLocation(file, line, text)
    return list(found.values())


def final_verifier_message(log: str) -> str:
    """The verifier's complaint: the lines after the last instruction it printed, without the
    statistics trailer; falls back to the last non-empty line."""
    lines = [ln.rstrip() for ln in log.splitlines()]
    last_insn = -1
    for i, ln in enumerate(lines):
        if _INSN.match(ln) or _LINE_INFO.match(ln.strip()):
            last_insn = i
    tail = [ln for ln in lines[last_insn + 1:]
            if ln.strip() and not ln.startswith(_TRAILER_PREFIXES)]
    if tail:
        return "\n".join(tail)
    non_empty = [ln for ln in lines if ln.strip() and not ln.startswith(_TRAILER_PREFIXES)]
    return non_empty[-1] if non_empty else ""


class KernelVerifierError(LoadError):
    """The kernel verifier rejected the program.

    `locations` are the Python lines on the rejected path (the last is where verification stopped),
    `message` the verifier's final complaint, `log` libbpf's whole output and `verifier_log` (a
    property of `LoadError`) the kernel's part of it.
    """

    def __init__(self, program: str, *, log: str, errno: int,
                 source_lines: Mapping[int, str] | None = None) -> None:
        super().__init__(f"kernel verifier rejected program {program!r}", log=log, errno=errno)
        self.program = program
        vlog = self.verifier_log or log
        self.locations: list[VerifierLocation] = verifier_locations(vlog, source_lines)
        self.message: str = final_verifier_message(vlog)

    @property
    def location(self) -> VerifierLocation | None:
        """Where the verifier stopped, if the log names a Python line."""
        return self.locations[-1] if self.locations else None

    def __str__(self) -> str:
        parts: list[str] = []
        where = self.location
        if where is not None:
            parts.append(f"kernel verifier rejected the program at {where}: {where.text}")
        else:
            parts.append(f"kernel verifier rejected program {self.program!r}")
        if self.message:
            parts.extend("  " + ln for ln in self.message.splitlines())
        if len(self.locations) > 1:
            parts.append("Python lines on the rejected path (last is where it stopped):")
            parts.extend(f"  {loc}: {loc.text}" for loc in self.locations)
        parts.append("verifier log:")
        parts.extend("  " + ln for ln in (self.verifier_log or self.log).splitlines())
        return "\n".join(parts)


class StateBindingError(Exception):
    """A state object cannot be connected to the loaded object (missing, wrong kind or size, or
    already bound to another loaded program)."""
