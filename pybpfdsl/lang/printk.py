"""`print(...)` in a DSL function: one bpf_trace_printk call, and the same text in pure Python.

A print shows its arguments separated by spaces, as Python's does: constant strings and constant
numbers become part of the format, the other values its conversions (`%d`/`%u` for integers of up to
32 bits, `%lld`/`%llu` for 64 bits). A bool shows `True` or `False`, as Python prints it: the kernel has
no conversion for that, so its text is constant in the format and the compiled program picks, by the
bools' values, one of the formats that differ only there (`PrintFormat.format_for`). The kernel takes at
most three values and formats of its own conversions only, so a print shows at most `MAX_VALUES` values
that vary, integers and bools, and its format is at most `MAX_FORMAT` bytes. Outside the kernel `render`
makes the text the kernel writes.

`PrintFormat` is one print's format, decided once (by the type checker, from the call's arguments): the
emitter builds bpf_trace_printk's format and 64-bit arguments from it and pure Python its text, so the
two cannot read a print differently.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass

from pybpfdsl.lang.types import ScalarType, i64, u64

__all__ = ["MAX_FORMAT", "MAX_VALUES", "PrintFormat", "Shown", "bool_text", "conversion", "escape", "helper_bytes",
           "literal", "render"]

MAX_VALUES = 3
"""bpf_trace_printk's arguments after the format."""
MAX_FORMAT = 120
"""Longest format (without its NUL): it is built on the stack, 8 bytes a store."""
_CONVERSION = re.compile(r"%(%|lld|llu|d|u)")
_KERNEL_TEXT = re.compile(r"[\x20-\x7e\t\n\v\f\r]*")
"""What bpf_trace_printk accepts in its format: printable ASCII and white space (it refuses the whole call
at any other byte, returning an error and printing nothing; newer kernels take non-ASCII UTF-8 too, as
6.18 does, older ones refuse it: the DSL keeps to what both take)."""


def conversion(t: ScalarType) -> str:
    """The conversion that prints a value of type `t` (passed as a 64-bit register, sign-extended when
    signed)."""
    if t.bits > 32:
        return "%lld" if t.signed else "%llu"
    return "%d" if t.signed else "%u"


def literal(arg: ast.expr) -> str | None:
    """The text of a number written in a print's arguments (`print("port", 80)`, `print(True)`), as Python
    prints it: part of its format, not a value."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, int):
        return str(arg.value)  # `True` for True
    return None


def bool_text(value: bool) -> str:
    """A bool as Python prints it."""
    return "True" if value else "False"


def escape(text: str) -> str:
    """Constant text as format text: `%` doubled."""
    return text.replace("%", "%%")


def helper_bytes(fmt: str) -> bytes:
    """A format as bpf_trace_printk reads it: UTF-8 with its NUL (its size is the helper's second argument)."""
    return fmt.encode() + b"\0"


def render(fmt: str, values: list[int]) -> str:
    """The text bpf_trace_printk writes for `fmt` (made by this module) and `values` (64-bit patterns)."""
    it = iter(values)

    def one(m: re.Match[str]) -> str:
        kind = m.group(1)
        if kind == "%":
            return "%"
        v = next(it)
        bits = 64 if kind.startswith("ll") else 32
        v &= (1 << bits) - 1
        if kind in ("d", "lld") and v >> (bits - 1):
            v -= 1 << bits
        return str(v)

    return _CONVERSION.sub(one, fmt)


@dataclass(frozen=True)
class Shown:
    """A value a print shows (not a constant): its type decides its conversion and the 64-bit type it is
    passed to the helper as (sign-extended when signed, as the conversion reads it)."""

    type: ScalarType

    @property
    def is_bool(self) -> bool:
        """A bool: shown as constant text (`True`/`False`) in one of the print's formats, not passed."""
        return self.type.is_bool

    @property
    def conversion(self) -> str:
        return conversion(self.type)

    @property
    def passed(self) -> ScalarType:
        return i64 if self.type.signed else u64


@dataclass(frozen=True)
class PrintFormat:
    """One print's format: each argument in order, as its constant text (a string, or a number written
    in the call) or the value it shows."""

    parts: tuple[str | Shown, ...]

    def format_for(self, truths: Sequence[bool] = ()) -> str:
        """bpf_trace_printk's format (without its NUL) where the bools shown are `truths`, in order: the
        parts separated by spaces, each bool as its constant text."""
        it = iter(truths)
        return " ".join(escape(p) if isinstance(p, str) else bool_text(next(it)) if p.is_bool else p.conversion
                        for p in self.parts)

    @property
    def fmt(self) -> str:
        """The format where every bool is False: the longest of the print's formats (what `problem` measures),
        and its only one when it shows no bool."""
        return self.format_for([False] * len(self.bools))

    @property
    def data(self) -> bytes:
        """The format as the helper reads it: UTF-8 with its NUL (its size is the helper's second argument)."""
        return helper_bytes(self.fmt)

    @property
    def shown(self) -> tuple[Shown, ...]:
        """Every value shown (not a constant), in order: the bools and the helper's arguments."""
        return tuple(p for p in self.parts if isinstance(p, Shown))

    @property
    def bools(self) -> tuple[Shown, ...]:
        """The bools shown, in order: each picks its text in the format."""
        return tuple(p for p in self.shown if p.is_bool)

    @property
    def values(self) -> tuple[Shown, ...]:
        """The values passed, in order: the helper's arguments after the format (every one shown but the bools)."""
        return tuple(p for p in self.shown if not p.is_bool)

    def problem(self) -> tuple[str, str] | None:
        """Why the kernel would not take this format (message, hint), or None."""
        for part in self.parts:
            if isinstance(part, str) and not _KERNEL_TEXT.fullmatch(part):
                bad = next(c for c in part if not _KERNEL_TEXT.fullmatch(c))
                return (f"print's text has {bad!r}, which bpf_trace_printk refuses (it then prints nothing)",
                        "use printable ASCII characters and white space only")
        if len(self.shown) > MAX_VALUES:
            return (f"print shows at most {MAX_VALUES} values that are not constants ({len(self.shown)} given): "
                    f"bpf_trace_printk takes {MAX_VALUES}", "split it into several print calls")
        if len(self.data) - 1 > MAX_FORMAT:
            return (f"this print's text is longer than {MAX_FORMAT} bytes",
                    "shorten the strings or split it into several print calls")
        return None

    def text(self, values: Sequence[int]) -> str:
        """The line the kernel writes, given every value shown as passed (`Shown.passed`; a bool as 0 or 1)."""
        shown = self.shown
        if len(values) != len(shown):
            raise ValueError(f"this print shows {len(shown)} values, not {len(values)}")
        truths = [v != 0 for v, s in zip(values, shown, strict=True) if s.is_bool]
        return render(self.format_for(truths), [v for v, s in zip(values, shown, strict=True) if not s.is_bool])
