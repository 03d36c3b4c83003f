"""The error a user sees for a program the compiler cannot accept."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    """A place in the user's source: file, 1-based line, 0-based column, and the line's text."""

    file: str
    line: int
    column: int
    text: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column + 1}"


class InternalCompilerError(Exception):
    """The compiler failed on a program it should have handled: a pybpfdsl bug, reported with the user's
    file and line it was working on, so the report can be acted on."""


class DslWarning(UserWarning):
    """A DSL program compiles but probably does not compute what its text says (a float constant that
    rounding to Q32.32 changes by more than 1%); issued with `warnings.warn_explicit` at the user's
    file and line, so Python's warning filters (and `pytest.warns`) see it there."""


class DslError(Exception):
    """A DSL program is wrong or uses something unsupported.

    The message names the file, line and column, shows the source line with a caret, says what is wrong
    and, where there is one, what to write instead.
    """

    def __init__(self, message: str, location: SourceLocation | None = None, hint: str | None = None):
        self.message = message
        self.location = location
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        parts = []
        if self.location is not None:
            parts.append(f"{self.location}: error: {self.message}")
            if self.location.text:
                parts.append(f"    {self.location.text.rstrip()}")
                indent = len(self.location.text) - len(self.location.text.lstrip())
                caret_col = max(self.location.column, indent)
                parts.append("    " + " " * caret_col + "^")
        else:
            parts.append(f"error: {self.message}")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)
