"""Terminal output for the `pybpfdsl` command line: aligned tables, optional colour, JSON.

Colour is used only when the stream is a terminal and the `NO_COLOR` environment variable is unset
(https://no-color.org); piped output is plain text without escape sequences.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = ["Style", "Table", "print_json", "style_for", "visible_len"]

_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}


def colour_enabled(stream: TextIO) -> bool:
    """Whether to colour `stream`: a terminal, and NO_COLOR unset (or empty)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed or detached stream
        return False


@dataclass(frozen=True)
class Style:
    """Wraps text in ANSI colour codes when enabled, returns it unchanged otherwise."""

    enabled: bool

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def bold(self, text: str) -> str:
        return self(text, "bold")

    def dim(self, text: str) -> str:
        return self(text, "dim")

    def error(self, text: str) -> str:
        return self(text, "bold", "red")

    def warn(self, text: str) -> str:
        return self(text, "bold", "yellow")

    def ok(self, text: str) -> str:
        return self(text, "green")


def style_for(stream: TextIO | None = None) -> Style:
    """The style for `stream` (stdout by default)."""
    return Style(colour_enabled(stream if stream is not None else sys.stdout))


def visible_len(text: str) -> int:
    """Length of `text` on screen, ANSI escape sequences not counted."""
    n = 0
    i = 0
    while i < len(text):
        if text[i] == "\x1b":
            end = text.find("m", i)
            if end < 0:
                break
            i = end + 1
            continue
        n += 1
        i += 1
    return n


@dataclass
class Table:
    """Rows of cells printed in aligned columns under a header.

    `align` gives one of "<" or ">" per column (numbers read best right-aligned). Cells may contain
    colour codes; widths ignore them. A cell with newlines spans several physical lines.
    """

    headers: Sequence[str]
    align: Sequence[str] = ()
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.headers):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.headers)} columns")
        self.rows.append([str(c) for c in cells])

    def render(self, style: Style | None = None) -> str:
        style = style or Style(False)
        ncols = len(self.headers)
        align = list(self.align) + ["<"] * (ncols - len(self.align))
        # Split multi-line cells into physical lines.
        physical: list[list[str]] = []
        for row in self.rows:
            parts = [cell.split("\n") for cell in row]
            height = max(len(p) for p in parts)
            for k in range(height):
                physical.append([p[k] if k < len(p) else "" for p in parts])
        widths = [visible_len(h) for h in self.headers]
        for line in physical:
            for c, cell in enumerate(line):
                widths[c] = max(widths[c], visible_len(cell))

        def fmt(cells: Sequence[str]) -> str:
            out: list[str] = []
            for c, cell in enumerate(cells):
                pad = " " * (widths[c] - visible_len(cell))
                last = c == ncols - 1
                if align[c] == ">":
                    out.append(pad + cell)
                else:
                    out.append(cell if last else cell + pad)
            return "  ".join(out).rstrip()

        lines = [style.bold(fmt(self.headers))]
        lines.append(style.dim("  ".join("-" * w for w in widths)))
        lines.extend(fmt(line) for line in physical)
        return "\n".join(lines)


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """`data` as indented JSON followed by a newline."""
    out = stream if stream is not None else sys.stdout
    json.dump(data, out, indent=2, sort_keys=False)
    out.write("\n")
