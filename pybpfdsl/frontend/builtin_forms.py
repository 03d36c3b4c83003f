"""The DSL's built-in functions, written once for the type checker and the emitter.

Which built-in a call names, how many arguments each takes, the types they are converted to, `ip("...")`
(a constant), and the words of each refusal live here; each pass gives the run-time result (the
checker: a computed value of the result's type; the emitter: the helper call and arithmetic in IR), as
`ExpressionForms` does for expressions. The emitter's refusals are compiler bugs: the checker ran first.
"""

from __future__ import annotations

import ast
import ipaddress
from abc import abstractmethod
from typing import Any, TypeVar

from pybpfdsl.frontend.expression_forms import ExpressionForms
from pybpfdsl.frontend.values import NoneVal, Scalar, StringVal
from pybpfdsl.lang.types import ScalarType, u32, u64

_Value = TypeVar("_Value")
_Scalar = TypeVar("_Scalar", bound="Scalar[Any]")


class BuiltinForms(ExpressionForms[_Value, _Scalar]):
    """The built-ins' dispatch and argument checks, over a pass's values and numbers."""

    def builtin(self, node: ast.Call, name: str) -> _Value | _Scalar | Scalar | NoneVal:
        match name:
            case "random":
                self.no_args(node, name)
                return self.random_number()
            case "prandom_u32" | "now_ns" | "cpu_id":
                self.no_args(node, name)
                return self.helper_result(name)
            case "randint":
                return self.randint(node)
            case "ip":
                return self.ip_address(node)
            case "print":
                return self.print_call(node)
            case "fib_lookup":
                if len(node.args) != 2 or node.keywords:
                    raise self.refusal(node, "write `fib_lookup(dst, ifindex)`: an IPv4 destination (as "
                                       "pkt.ipv4.dst reads it) and the interface the packet came in on")
                dst, ifindex = (self.in_register(self.convert(self.scalar(a), u32, a, implicit=True))
                                for a in node.args)
                return self.fib_result(dst, ifindex)
            case "redirect":
                if len(node.args) != 1 or node.keywords:
                    raise self.refusal(node, "write `return redirect(ifindex)`: the interface to send the "
                                       "packet out of")
                ifindex = self.convert(self.scalar(node.args[0]), u32, node.args[0], implicit=True)
                return self.redirect_to(ifindex)
            case "min" | "max":
                return self.min_max(node, name)
            case "abs":
                return self.absolute(node)
            case "range":
                raise self.refusal(node, "range() can only be used as `for i in range(...)`")
            case "bounded":
                raise self.refusal(node, "bounded() can only be used as `while bounded(cond, N):`")
            case "likely" | "unlikely":
                test = ast.unparse(node)
                raise self.refusal(node, f"{name}() can only be used as a condition",
                                   f"use it where a test goes: `if {test}:`, `while bounded({test}, N):`, "
                                   f"`a if {test} else b`, or inside `and`, `or`, `not` there")
            case "len":
                if node.args and isinstance(node.args[0], ast.Attribute) and node.args[0].attr == "payload":
                    raise self.refusal(node, "len() is not supported; the payload has no length of its own",
                                       "loop to a constant bound and stop at its end: `for i in range(64):` "
                                       "with `if pkt.payload[i] is None: break`; or use pkt.len, the packet's "
                                       "length")
                raise self.refusal(node, "len() is not supported", "use pkt.len for the packet length")
        raise self.refusal(node, f"{name}() is not supported in a DSL function")

    def no_args(self, node: ast.Call, name: str) -> None:
        if node.args or node.keywords:
            raise self.refusal(node, f"{name}() takes no arguments")

    def randint(self, node: ast.Call) -> _Scalar:
        """`randint(lo, hi)`: integers, a span of 1 to 2**32 values where both are constant."""
        if len(node.args) != 2 or node.keywords:
            raise self.refusal(node, "write randint(lo, hi): a random integer with lo <= x <= hi")
        lo, hi = self.scalar(node.args[0]), self.scalar(node.args[1])
        if lo.type.is_fixed or hi.type.is_fixed:
            raise self.refusal(node, "randint() takes integers")
        if lo.const is not None and hi.const is not None:
            span = int(hi.const) - int(lo.const) + 1
            if not 1 <= span <= 1 << 32:
                raise self.refusal(node, f"randint({lo.const}, {hi.const}) needs lo <= hi and at most 2**32 values")
        t = self.randint_type(lo, hi, node)
        lo64 = self.in_register(self.convert(lo, u64, node))
        hi64 = self.in_register(self.convert(hi, u64, node))
        return self.convert(self.random_between(lo64, hi64), t, node)

    def ip_address(self, node: ast.Call) -> Scalar:
        """`ip("10.0.0.1")`: the address as a u32 constant."""
        if len(node.args) != 1 or node.keywords:
            raise self.refusal(node, 'write ip("10.0.0.1")')
        arg = self.expr(node.args[0])
        if not isinstance(arg, StringVal):
            raise self.refusal(node.args[0], "ip() takes a constant string", 'write ip("10.0.0.1")')
        try:
            value = int(ipaddress.IPv4Address(arg.text))
        except ValueError:
            hint = None
            if "/" in arg.text:
                try:
                    net = ipaddress.IPv4Network(arg.text, strict=False)
                    hint = (f'a prefix is a key of an LpmTrie (`acl[prefix("{net}")] = 1` from Python, '
                            f'`acl.get(ip4.src, 0)` in the program), or mask the address: '
                            f'`ip4.src & 0x{int(net.netmask):08X} == ip("{net.network_address}")`')
                except ValueError:
                    pass
            raise self.refusal(node.args[0], f"{arg.text!r} is not an IPv4 address", hint) from None
        return Scalar(u32, const=value)

    # The steps each pass gives.
    @abstractmethod
    def in_register(self, v: _Scalar) -> _Scalar:
        """`v` as a run-time value from here on (the emitter materializes a constant at this point, so
        the IR keeps the order of the arguments)."""

    @abstractmethod
    def random_number(self) -> _Scalar:
        """`random()`: 32 random bits read as a Q32.32 float, r / 2**32, in [0, 1)."""

    @abstractmethod
    def helper_result(self, name: str) -> _Scalar:
        """`prandom_u32()`, `now_ns()` or `cpu_id()`: the kernel helper's result."""

    @abstractmethod
    def randint_type(self, lo: _Scalar, hi: _Scalar, node: ast.Call) -> ScalarType:
        """The type of `randint(lo, hi)`."""

    @abstractmethod
    def random_between(self, lo: _Scalar, hi: _Scalar) -> _Scalar:
        """A u64 in [lo, hi] (both u64): lo + (r * (hi - lo + 1)) >> 32 for 32 random bits r."""

    @abstractmethod
    def print_call(self, node: ast.Call) -> NoneVal:
        """`print(...)`."""

    @abstractmethod
    def fib_result(self, dst: _Scalar, ifindex: _Scalar) -> _Value:
        """`fib_lookup(dst, ifindex)`, both u32: the kernel's FibResult."""

    @abstractmethod
    def redirect_to(self, ifindex: _Scalar) -> _Scalar:
        """`redirect(ifindex)` (a u32): the action, XDP_REDIRECT when the helper succeeds."""


__all__ = ["BuiltinForms"]
