"""Lowering calls of DSL built-ins: random numbers, time, CPU, `ip()`, `min`, `max`, `abs`, and the
redirects (`redirect(ifindex)`, `ports.redirect(key)` of a DevMap or CpuMap)."""

from __future__ import annotations

import ast
import ipaddress

from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.values import DslValue, NoneVal, Scalar, StringVal, StructVal
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import StructType
from pybpfdsl.lang import printk
from pybpfdsl.lang.actions import XdpAction
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.fib import FibResult
from pybpfdsl.lang.redirect import MISS_ACTIONS, CpuMap, DevMap
from pybpfdsl.lang.types import BOOL, FLOAT, i64, u32, u64


def _no_args(lw: EmitterBase, node: ast.Call, name: str) -> None:
    if node.args or node.keywords:
        raise lw.unchecked(node)


def _helper(lw: EmitterBase, helper: n.Helper) -> n.Value:
    return lw.b.emit(n.CallHelper(lw.new(n.HELPER_RESULT[helper]), helper, line=lw.line))


def random(lw: EmitterBase, node: ast.Call) -> Scalar:
    _no_args(lw, node, "random")
    bits = lw.b.emit(n.Convert(lw.new(u64), _helper(lw, n.Helper.PRANDOM_U32), line=lw.line))
    # 32 random bits read as a Q32.32 number are exactly r / 2**32, a value in [0, 1).
    return Scalar(FLOAT, lw.b.emit(n.Reinterpret(lw.new(FLOAT, "random"), bits, line=lw.line)))


def randint(lw: EmitterBase, node: ast.Call) -> Scalar:
    if len(node.args) != 2 or node.keywords:
        raise lw.unchecked(node)
    lo, hi = lw.scalar(node.args[0]), lw.scalar(node.args[1])
    if lo.type.is_fixed or hi.type.is_fixed:
        raise lw.unchecked(node)
    if lo.const is not None and hi.const is not None:
        span = int(hi.const) - int(lo.const) + 1
        if not 1 <= span <= 1 << 32:
            raise lw.unchecked(node)
    t = lw.result_type(node)
    lo64 = lw.scalar_value(lw.convert(lo, u64, node))
    hi64 = lw.scalar_value(lw.convert(hi, u64, node))
    one = lw.const(u64, 1)
    span64 = lw.b.emit(n.Binary(lw.new(u64), BinOp.ADD,
                                lw.b.emit(n.Binary(lw.new(u64), BinOp.SUB, hi64, lo64, line=lw.line)), one,
                                line=lw.line))
    r = lw.b.emit(n.Convert(lw.new(u64), _helper(lw, n.Helper.PRANDOM_U32), line=lw.line))
    scaled = lw.b.emit(n.Binary(lw.new(u64), BinOp.MUL, r, span64, line=lw.line))
    offset = lw.b.emit(n.Binary(lw.new(u64), BinOp.SHR, scaled, lw.const(u64, 32), line=lw.line))
    total = lw.b.emit(n.Binary(lw.new(u64), BinOp.ADD, lo64, offset, line=lw.line))
    return lw.convert(Scalar(u64, total), t, node)


def ip_address(lw: EmitterBase, node: ast.Call) -> Scalar:
    if len(node.args) != 1 or node.keywords:
        raise lw.unchecked(node)
    arg = lw.lower_expr(node.args[0])
    if not isinstance(arg, StringVal):
        raise lw.unchecked(node.args[0])
    try:
        value = int(ipaddress.IPv4Address(arg.text))
    except ValueError:
        raise lw.unchecked(node.args[0]) from None
    return Scalar(u32, const=value)


def redirect(lw: EmitterBase, node: ast.Call) -> Scalar:
    if len(node.args) != 1 or node.keywords:
        raise lw.unchecked(node)
    ifindex = lw.scalar_value(lw.convert(lw.scalar(node.args[0]), u32, node.args[0], implicit=True))
    return Scalar(u32, lw.op(n.Redirect, u32, ifindex, hint="action"))


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


def fib_lookup(lw: EmitterBase, node: ast.Call) -> StructVal:
    if len(node.args) != 2 or node.keywords:
        raise lw.unchecked(node)
    dst, ifindex = (lw.scalar_value(lw.convert(lw.scalar(a), u32, a, implicit=True)) for a in node.args)
    return StructVal(FibResult, lw.op(n.FibLookup, StructType(FibResult), dst, ifindex, hint="fib"))


def print_call(lw: EmitterBase, node: ast.Call) -> NoneVal:
    """`print(...)`: the format the checker decided (`TypeFacts.print_formats`), each value converted to the
    64-bit type its conversion reads (`printk.Shown.passed`)."""
    fmt = lw.typed.print_formats.get((lw.ctx, node))
    if fmt is None or len(fmt.parts) != len(node.args):
        raise lw.unchecked(node)
    values = []
    for arg, part in zip(node.args, fmt.parts, strict=True):
        v = lw.lower_expr(arg)  # once each, constants too, in order, as the checker and pure Python do
        if isinstance(part, printk.Shown):
            s = lw.as_scalar(v, arg)
            if s.type != part.type:
                raise lw.unchecked(arg)
            values.append(lw.scalar_value(lw.convert(s, part.passed, arg)))
        elif not isinstance(v, StringVal) and printk.literal(arg) is None:
            raise lw.unchecked(arg)
    lw.op(n.TracePrintk, i64, n.TracePrintk.hex_of(fmt.fmt), tuple(values), hint="printed")
    return NoneVal()


def call_builtin(lw: EmitterBase, node: ast.Call, name: str) -> DslValue:
    match name:
        case "random":
            return random(lw, node)
        case "randint":
            return randint(lw, node)
        case "prandom_u32":
            _no_args(lw, node, name)
            return Scalar(u32, _helper(lw, n.Helper.PRANDOM_U32))
        case "now_ns":
            _no_args(lw, node, name)
            return Scalar(u64, _helper(lw, n.Helper.KTIME_GET_NS))
        case "cpu_id":
            _no_args(lw, node, name)
            return Scalar(u32, _helper(lw, n.Helper.SMP_PROCESSOR_ID))
        case "ip":
            return ip_address(lw, node)
        case "redirect":
            return redirect(lw, node)
        case "fib_lookup":
            return fib_lookup(lw, node)
        case "print":
            return print_call(lw, node)
        case "min" | "max":
            return lw.min_max(node, name)
        case "abs":
            return lw.absolute(node)
        case "range":
            raise lw.unchecked(node)
        case "bounded":
            raise lw.unchecked(node)
        case "len":
            raise lw.unchecked(node)
    raise lw.unchecked(node)


__all__ = ["call_builtin", "BOOL"]
