"""`print(...)` in a DSL function: one bpf_trace_printk call, and the same text in pure Python.

A print shows its arguments separated by spaces, as Python's does: constant strings and constant
numbers become part of the format, the other values its conversions (`%d`/`%u` for integers of up to
32 bits, `%lld`/`%llu` for 64 bits, a bool as 0 or 1). The kernel takes at most three values and formats
of its own conversions only, so a print shows at most `MAX_VALUES` values that vary, integers only, and
its format is at most `MAX_FORMAT` bytes. Outside the kernel `render` makes the text the kernel writes.
"""

from __future__ import annotations

import ast
import re

from pybpfdsl.lang.types import ScalarType

__all__ = ["MAX_FORMAT", "MAX_VALUES", "conversion", "escape", "literal", "render"]

MAX_VALUES = 3
"""bpf_trace_printk's arguments after the format."""
MAX_FORMAT = 120
"""Longest format (without its NUL): it is built on the stack, 8 bytes a store."""
_CONVERSION = re.compile(r"%(%|lld|llu|d|u)")


def conversion(t: ScalarType) -> str:
    """The conversion that prints a value of type `t` (passed as a 64-bit register, sign-extended when
    signed)."""
    if t.bits > 32:
        return "%lld" if t.signed else "%llu"
    return "%d" if t.signed else "%u"


def literal(arg: ast.expr) -> int | None:
    """A number written in a print's arguments (`print("port", 80)`): part of its format, not a value."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, int):
        return int(arg.value)
    return None


def escape(text: str) -> str:
    """Constant text as format text: `%` doubled."""
    return text.replace("%", "%%")


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
