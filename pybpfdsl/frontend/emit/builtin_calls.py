"""The IR of the built-ins whose lowering is more than a line of `emit.calls` (which built-in a call
names, and its arguments, are `builtin_forms`'): a kernel helper's call, `print(...)`, and
`ports.redirect(key[, miss])` of a DevMap or CpuMap."""

from __future__ import annotations

import ast

from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.values import NoneVal, Scalar, StringVal
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang import printk
from pybpfdsl.lang.actions import XdpAction
from pybpfdsl.lang.redirect import MISS_ACTIONS, CpuMap, DevMap
from pybpfdsl.lang.types import i64, u32


def helper_call(lw: EmitterBase, helper: n.Helper) -> n.Value:
    return lw.b.emit(n.CallHelper(lw.new(n.HELPER_RESULT[helper]), helper, line=lw.line))


def redirect_map(lw: EmitterBase, node: ast.Call, m: DevMap | CpuMap, attr: str) -> Scalar:
    """`ports.redirect(key[, miss])`: bpf_redirect_map with the miss action as its flags."""
    if attr != "redirect" or not 1 <= len(node.args) <= 2 or node.keywords or m.name is None:
        raise lw.unchecked(node)
    key = lw.scalar_value(lw.convert(lw.scalar(node.args[0]), u32, node.args[0], implicit=True))
    miss = int(XdpAction.ABORTED)
    if len(node.args) == 2:
        given = lw.scalar(node.args[1]).const
        if given is None or int(given) not in MISS_ACTIONS:
            raise lw.unchecked(node.args[1])
        miss = int(given)
    return Scalar(u32, lw.op(n.RedirectMap, u32, m.name, key, miss, hint="action"))


def print_call(lw: EmitterBase, node: ast.Call) -> NoneVal:
    """`print(...)`: the format the checker decided (`TypeFacts.print_formats`), each value converted to the
    64-bit type its conversion reads (`printk.Shown.passed`)."""
    fmt = lw.typed.print_formats.get((lw.ctx, node))
    if fmt is None or len(fmt.parts) != len(node.args):
        raise lw.unchecked(node)
    values: list[n.Value] = []
    truths: list[n.Value] = []
    for arg, part in zip(node.args, fmt.parts, strict=True):
        v = lw.lower_expr(arg)  # once each, constants too, in order, as the checker and pure Python do
        if isinstance(part, printk.Shown):
            s = lw.as_scalar(v, arg)
            if s.type != part.type:
                raise lw.unchecked(arg)
            if part.is_bool:
                truths.append(lw.scalar_value(s))
            else:
                values.append(lw.scalar_value(lw.convert(s, part.passed, arg)))
        elif not isinstance(v, StringVal) and printk.literal(arg) is None:
            raise lw.unchecked(arg)
    _print_picking(lw, fmt, truths, tuple(values), [])
    return NoneVal()


def _print_picking(lw: EmitterBase, fmt: printk.PrintFormat, truths: list[n.Value], values: tuple[n.Value, ...],
                   picked: list[bool]) -> None:
    """The print's bpf_trace_printk call, its format picked by the bools shown (`truths`, the first
    len(picked) of them decided on this path): a bool's text, `True` or `False` as Python prints it, is
    constant in a format (the kernel has no conversion for it), so each combination calls with its own."""
    if len(picked) == len(truths):
        lw.op(n.TracePrintk, i64, n.TracePrintk.hex_of(fmt.format_for(picked)), values, hint="printed")
        return
    yes, no = lw.b.new_block("print_true"), lw.b.new_block("print_false")
    done = lw.b.new_block("printed")
    lw.b.terminate(n.Branch(truths[len(picked)], n.Edge(yes.name), n.Edge(no.name), line=lw.line))
    for block, truth in ((yes, True), (no, False)):
        lw.b.set_block(block)
        _print_picking(lw, fmt, truths, values, [*picked, truth])
        lw.b.terminate(n.Jump(n.Edge(done.name), line=lw.line))
    lw.b.set_block(done)


__all__ = ["helper_call", "print_call", "redirect_map"]
