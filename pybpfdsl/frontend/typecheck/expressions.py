"""Checking expressions: names, constants, attributes (packet headers and fields, records, Globals),
subscripts (maps, payload bytes, constant tuples), comparisons, `in`, and the keys and values of maps.

Takes an expression node; gives its kind (`kinds.Kind`) and records a scalar's type and constant under
the node in the current lowering context: the typed AST. The same steps and refusals as `emit`'s.
"""

from __future__ import annotations

import ast
import math
import random
from types import BuiltinFunctionType, FunctionType

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.operators import COMPARISONS
from pybpfdsl.frontend.resolve import classify, local_names, resolve_global
from pybpfdsl.frontend.typecheck.arithmetic import ArithmeticChecker, computed
from pybpfdsl.frontend.typecheck.kinds import Header, Kind, Maybe, Payload, Record, describe
from pybpfdsl.frontend.values import (
    PARSED_ATTRIBUTES,
    Callee,
    ConstTuple,
    ModuleVal,
    NoneVal,
    PacketVal,
    Scalar,
    StateVal,
    StringVal,
    pseudo_local,
)
from pybpfdsl.lang import headers as h
from pybpfdsl.lang.arith import CmpOp
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.lpm_trie import IPV6_ADDRESS_HALVES, LpmTrie
from pybpfdsl.lang.redirect import CpuMap, DevMap
from pybpfdsl.lang.state import BpfMap, Global, HashMap, LruHashMap, StateObject
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, u8, u32, u64

_TRUNCATE = "`i64(x)` truncates a float toward zero (`i64(x + 0.5)` rounds a non-negative one)"
_PYTHON_FUNCTIONS: tuple[tuple[object, str, str], ...] = (
    (random.random, "random.random()", "use `random()` (from pybpfdsl): a float in [0, 1)"),
    (random.randint, "random.randint()", "use `randint(a, b)` (from pybpfdsl)"),
    (random.randrange, "random.randrange()", "use `randint(a, b)` or `prandom_u32()` (from pybpfdsl)"),
    (random.getrandbits, "random.getrandbits()", "use `prandom_u32()` (from pybpfdsl): 32 random bits"),
    (math.floor, "math.floor()", _TRUNCATE), (math.ceil, "math.ceil()", _TRUNCATE),
    (math.trunc, "math.trunc()", _TRUNCATE), (round, "round()", _TRUNCATE),
    (pow, "pow()", "multiply explicitly (`x * x`); `**` works on constants"),
    (hex, "hex()", "print the number itself: `print(\"len\", pkt.len)` prints it in decimal"),
    (str, "str()", "print the number itself: `print(\"len\", pkt.len)`; strings exist only as print text and "
                   "`ip(\"...\")`"),
    (repr, "repr()", "print the number itself: `print(\"len\", pkt.len)`"),
    (sum, "sum()", "add with `+`, in a loop over a constant tuple: `for x in T: total += x`"),
    (any, "any()", "join the tests with `or`"), (all, "all()", "join the tests with `and`"),
)
"""Python functions a DSL function cannot call, and what it calls instead."""


class ExpressionChecker(ArithmeticChecker):
    """Names, constants, attributes, subscripts, comparisons, `in`, map keys and values."""

    def scalar(self, node: ast.expr) -> Scalar[object]:
        return self.as_scalar(self.expr(node), node)

    def as_scalar(self, v: Kind, node: ast.expr) -> Scalar[object]:
        if isinstance(v, Scalar):
            return v
        if isinstance(v, Maybe) and v.narrowed and isinstance(v.inner, Scalar):
            return v.inner
        if isinstance(v, Maybe) and isinstance(v.inner, Scalar):
            raise self.err(node, f"`{ast.unparse(node)}` may be None here",
                           f"check first: `if {ast.unparse(node)} is None: return XDP_PASS`, or store it in a "
                           "variable and test that")
        if isinstance(v, StringVal) and _is_ipv4(v.text):
            raise self.err(node, f"expected a number, but `{ast.unparse(node)}` is a string",
                           f'write the address as a number: `ip("{v.text}")`')
        if isinstance(v, StringVal):
            name = "".join(c if c.isalnum() else "_" for c in v.text.upper()).strip("_") or "NAME"
            raise self.err(node, f"expected a number, but `{ast.unparse(node)}` is a string",
                           "strings exist only as print text and `ip(\"...\")`: name the number instead, "
                           f"`{name} = 0` at module level and `{name}` here")
        if isinstance(v, ConstTuple) and isinstance(node, ast.Tuple):
            raise self.err(node, f"expected a number, but `{ast.unparse(node)}` is a tuple",
                           "give one value (a program returns one action: `return XDP_PASS`)")
        hint = None
        header = v.inner if isinstance(v, Maybe) else v
        if isinstance(header, Header):
            names = ", ".join(f.name for f in header.spec.fields)
            hint = f"use one of its fields ({names}): `{ast.unparse(node)}.{header.spec.fields[0].name}`" + (
                ", after checking it is not None" if isinstance(v, Maybe) and not v.narrowed else "")
        elif isinstance(v, StateVal) and isinstance(v.obj, Global):
            hint = f"read its value: `{ast.unparse(node)}.value`"
        elif isinstance(v, StateVal) and isinstance(v.obj, BpfMap):
            hint = f"look a key up: `{ast.unparse(node)}.get(key, 0)`"
        raise self.err(node, f"expected a number, but `{ast.unparse(node)}` is {describe(v)}", hint)

    def expr(self, node: ast.expr) -> Kind:
        return self.record(node, self.expression_form(node))

    def undefined(self, node: ast.expr, name: str) -> DslError:
        if name in self.scope.moved:
            return self.err(node, f"{name} was parsed before the packet moved (`pkt.adjust_...` at line "
                            f"{self.scope.moved[name]}): its headers are parsed afresh there",
                            f"read the header from `pkt` again after the move (`{name} = pkt.tcp`, ...)")
        if name in self.scope.var_types:
            return self.err(node, f"{name} is not defined on every path that reaches here",
                            f"give {name} a value before the branch or loop that sets it")
        if name in local_names(self.scope.source.function):
            return self.unbound_local(node, name)
        return self.err(node, f"unknown name `{name}`")

    def unbound_local(self, node: ast.expr, name: str) -> DslError:
        """Python's rule: a name the function assigns anywhere is local in all of it, so reading it before
        an assignment is an UnboundLocalError, whatever the module defines under that name."""
        message = (f"{name} is read before it is assigned: {self.scope.source.name} assigns {name}, so it is "
                   f"a local variable in the whole function (Python's rule: reading it first raises "
                   f"UnboundLocalError)")
        try:
            outer: object = resolve_global(self.scope.source.function, name, lambda m: DslError(m))
        except DslError:
            return self.err(node, message, f"give {name} a value before this line")
        local = f"for a local variable, give {name} a value before this line"
        if isinstance(outer, Global):
            return self.err(node, message, f"to change the Global, write `{name}.value += 1` or "
                                           f"`{name}.value = ...`; {local}")
        if isinstance(outer, StateObject):
            return self.err(node, message, f"use another name for the local variable; {name} is a map")
        return self.err(node, message, f"a program cannot change a module-level variable: to keep a value "
                                       f"across packets use a Global (`{name} = Global(u64, 0)` at module "
                                       f"level, then `{name}.value += 1`); {local}")

    def lookup_name(self, node: ast.expr, name: str) -> Kind:
        if name in self.env:
            return self.env[name]
        if name in self.scope.var_types or name in local_names(self.scope.source.function):
            raise self.undefined(node, name)
        value = resolve_global(self.scope.source.function, name, lambda m: self.err(node, m))
        return self.from_python(value, name, node)

    def unusable(self, node: ast.expr, name: str, value: object) -> DslError:
        """The refusal of a Python object a DSL function cannot use, saying what to use instead."""
        if getattr(value, "__module__", None) == "time" and callable(value):
            return self.err(node, f"time.{name}() cannot be called in a DSL function",
                            "use `now_ns()` (from pybpfdsl): the kernel's monotonic clock, in nanoseconds")
        for python, spelled, instead in _PYTHON_FUNCTIONS:
            if value is python:
                return self.err(node, f"{spelled} is Python's, which a DSL function cannot call", instead)
        if isinstance(value, FunctionType):
            return self.err(node, f"{name} is a plain Python function; a DSL function can call only @inline "
                                  f"helpers", f"add `@inline` (from pybpfdsl) above `def {name}`")
        what = "a Python builtin" if isinstance(value, BuiltinFunctionType) else f"a {type(value).__name__}"
        return self.err(node, f"{name} is {what}, which a DSL function cannot use",
                        "use constants, state objects (Global, HashMap, ...), DSL types and @inline helpers")

    # --- attributes
    def attribute(self, node: ast.Attribute) -> Kind:
        base = self.expr(node.value)
        attr = node.attr
        match base:
            case PacketVal():
                return self.packet_attribute(node, attr)
            case Header():
                return self.header_field(node, base, attr)
            case Maybe(inner=Header() as hd, narrowed=True):
                return self.header_field(node, hd, attr)
            case Maybe(inner=Header(spec=spec)):
                raise self.err(node, f"`{ast.unparse(node.value)}` may be None here (the packet may have no "
                               f"{spec.name} header)",
                               f"check first: `if {ast.unparse(node.value)} is None: return XDP_PASS`")
            case StateVal(obj=Global() as g) if attr == "value":
                return computed(g.type)
            case Record(cls=cls):
                for f in cls.fields():
                    if f.name == attr:
                        return computed(f.type)
                raise self.err(node, f"{cls.__name__} has no field `{attr}`",
                               "fields: " + ", ".join(f.name for f in cls.fields()))
            case Maybe(inner=Record(cls=cls), narrowed=True):
                for f in cls.fields():
                    if f.name == attr:
                        return computed(f.type)
                raise self.err(node, f"{cls.__name__} has no field `{attr}`")
            case Maybe(inner=Record()):
                raise self.err(node, f"`{ast.unparse(node.value)}` may be None here",
                               f"check first: `if {ast.unparse(node.value)} is None: ...`")
            case ModuleVal(module=m):
                if not hasattr(m, attr):
                    raise self.err(node, f"module {m.__name__} has no attribute {attr}")
                return self.from_python(getattr(m, attr), attr, node)
            case StateVal(obj=Global() as g):
                raise self.err(node, f"the Global {g.name} has no attribute `{attr}`",
                               f"read and write its value as `{g.name}.value`")
            case Payload() if attr != "read":
                raise self.err(node, f"the payload has no attribute `{attr}`",
                               "use pkt.payload[i] or pkt.payload.read(T, offset)")
            case Callee() | StateVal() | Payload():
                return Callee("method", (base, attr))
        raise self.err(node, f"{describe(base)} has no attribute `{attr}`")

    def packet_attribute(self, node: ast.Attribute, attr: str) -> Kind:
        """A packet attribute; each header's presence is remembered per path in a pseudo-local."""
        if attr == "len":
            return computed(u32)
        if attr in ("adjust_head", "adjust_tail"):
            return Callee("method", (PacketVal(), attr))
        if attr not in PARSED_ATTRIBUTES:
            raise self.err(node, f"the packet has no attribute `{attr}`",
                           "use pkt.len, pkt.eth, pkt.ipv4, pkt.ipv6, pkt.tcp, pkt.udp or pkt.payload")
        return self.parsed(attr)

    def parsed(self, attr: str) -> Maybe | Payload:
        memo = self.env.get(pseudo_local(attr))
        if isinstance(memo, Maybe | Payload):
            return memo
        value: Maybe | Payload = Payload() if attr == "payload" else Maybe(Header(h.HEADERS[attr]))
        self.env[pseudo_local(attr)] = value
        return value

    def header_field(self, node: ast.Attribute, header: Header, attr: str) -> Scalar[object]:
        spec = header.spec.field(attr)
        if spec is None:
            names = ", ".join(f.name for f in header.spec.fields)
            if header.spec == h.IPV6 and attr in IPV6_ADDRESS_HALVES:
                hi, lo = IPV6_ADDRESS_HALVES[attr]
                raise self.err(node, f"an IPv6 address is 128 bits: the DSL reads `{attr}` as its halves `{hi}` and "
                               f"`{lo}` (u64 each)", f"compare or copy `{hi}` and `{lo}`; `{attr}` itself works as "
                               f"the key of an IPv6 LpmTrie: `acl6.get(ip6.{attr}, 0)`")
            raise self.err(node, f"the {header.spec.name} header has no field `{attr}`", f"its fields are: {names}")
        return computed(spec.type)

    # --- comparisons
    def comparison(self, node: ast.Compare) -> Kind:
        ops, rights = node.ops, node.comparators
        if len(ops) == 1 and isinstance(ops[0], ast.In | ast.NotIn):
            result = self.contains(node.left, rights[0], node)
            return self.logical_not(result) if isinstance(ops[0], ast.NotIn) else result
        if any(isinstance(o, ast.Is | ast.IsNot | ast.In | ast.NotIn) for o in ops):
            if len(ops) == 1 and isinstance(rights[0], ast.Constant) and rights[0].value is None:
                return self.branchy_value(node)
            raise self.err(node, "`is` compares only with None, and `in` cannot be chained",
                           "use `==` to compare numbers")
        if len(ops) > 1:
            return self.branchy_value(node)
        op = COMPARISONS[type(ops[0])]
        left_kind, right_kind = self.expr(node.left), self.expr(rights[0])
        if op in (CmpOp.EQ, CmpOp.NE):
            equality = self.optional_equality(op, left_kind, right_kind, node)
            if equality is not None:
                return equality
        left = self.as_scalar(left_kind, node.left)
        right = self.as_scalar(right_kind, rights[0])
        if op in fold.RANDOM_THRESHOLD_OPS and self.is_random_call(node.left) and right.const is not None:
            # `random() < p` (or <=, >, >=): the raw 32 random bits against an exact threshold.
            self.facts.random_threshold(self.ctx, node)
            return self.compare(op, left, computed(FLOAT), node)
        return self.compare(op, left, right, node)

    def optional_equality(self, op: CmpOp, a: Kind, b: Kind, node: ast.Compare) -> Scalar[object] | None:
        """`x == y` / `x != y` where a side is a number that may be None (a payload byte, `m.get(k)`), with
        Python's meaning: None equals only None, so `b == 0x45` is False and `b != 0x45` True where `b` is
        None. None when neither side may be None (an ordinary comparison). The emitter computes the same
        from the presence bits (`emit.expressions`), pure Python compares its None (`evaluate`)."""
        sides = ((a, node.left), (b, node.comparators[0]))
        for kind, side in sides:
            if isinstance(kind, NoneVal):
                other = node.comparators[0] if side is node.left else node.left
                word = "is" if op is CmpOp.EQ else "is not"
                raise self.err(node, "compare with None using `is` or `is not`, not `==` or `!=`",
                               f"write `{ast.unparse(other)} {word} None`")
        found = self.optional_numbers(op, a, b, node)
        if found is None:
            return None
        optional, numbers = found
        return numbers if self.decided_whatever_none(op, optional, numbers) else computed(BOOL)

    def is_random_call(self, node: ast.expr) -> bool:
        if not (isinstance(node, ast.Call) and not node.args and isinstance(node.func, ast.Name)):
            return False
        if node.func.id in self.env:
            return False
        try:
            value = resolve_global(self.scope.source.function, node.func.id, lambda m: self.err(node, m))
        except DslError:
            return False
        return classify(value) == ("builtin", "random")

    def logical_not(self, v: Scalar[object]) -> Scalar[object]:
        if v.const is not None:
            return Scalar(BOOL, const=int(not v.const))
        return computed(BOOL)

    def membership(self, v: Scalar[object], constants: list[int], node: ast.AST) -> Scalar[object]:
        result: Scalar[object] | None = None
        for c in constants:
            eq = self.compare(CmpOp.EQ, v, fold.constant(c, self.complaint(node)), node)
            if result is None:
                result = eq
            elif result.const is not None or eq.const is not None:
                result = eq if result.const == 0 else result if eq.const == 0 else Scalar(BOOL, const=1)
            else:
                result = computed(BOOL)
        return result if result is not None else Scalar(BOOL, const=0)

    def contains(self, item_node: ast.expr, container_node: ast.expr, node: ast.AST) -> Scalar[object]:
        container = self.expr(container_node)
        if isinstance(container, ConstTuple):
            value = self.expr(item_node)
            if isinstance(value, Maybe) and not value.narrowed and isinstance(value.inner, Scalar):
                # Python's meaning: None is in no tuple of numbers (the emitter: present and found).
                found = self.membership(value.inner, [int(x) for x in container.items], node)
                return found if found.const == 0 else computed(BOOL)
            return self.membership(self.as_scalar(value, item_node), [int(x) for x in container.items], node)
        if isinstance(container, StateVal) and isinstance(container.obj, BpfMap):
            self.map_key(container.obj, item_node)
            return computed(BOOL)
        raise self.err(container_node, f"`in` needs a map or a constant tuple, not {describe(container)}")

    # --- subscripts, maps and the payload
    def subscript(self, node: ast.Subscript, base_node: ast.expr, index: ast.expr) -> Kind:
        base = self.expr(base_node)
        if isinstance(index, ast.Slice):
            hint = ("read a record at an offset: `pkt.payload.read(Header, 0)` with `class Header(Struct)`, "
                    "or one byte at a time: `pkt.payload[i]`") if isinstance(base, Payload) else None
            raise self.err(node, f"slices (`{ast.unparse(node)}`) are not supported in a DSL function", hint)
        if isinstance(base, StateVal) and isinstance(base.obj, BpfMap):
            m = base.obj
            if isinstance(m, HashMap | LruHashMap):
                raise self.err(node, f"`{m.name}[key]` on a hash map has no value when the key is missing",
                               f"write `{m.name}.get(key, 0)` (or `.get(key)` and test for None)")
            self.map_key(m, index)
            return self.map_value_kind(m)
        if isinstance(base, Payload):
            i = self.scalar(index)
            if not i.type.is_int:
                raise self.err(index, f"a payload index must be an integer, not {i.type}")
            if not (i.const is not None and int(i.const) < 0):
                self.convert(i, u64, index)
            return Maybe(computed(u8))
        if isinstance(base, ConstTuple):
            i = self.scalar(index)
            if i.const is None or not isinstance(i.const, int) or not -len(base.items) <= i.const < len(base.items):
                raise self.err(index, "a constant tuple needs a constant index within its length")
            return fold.constant(base.items[i.const], self.complaint(node))
        raise self.err(node, f"{describe(base)} cannot be indexed")

    def map_value_kind(self, m: BpfMap) -> Scalar[object] | Record:
        vt = m.value_type
        return computed(vt) if isinstance(vt, ScalarType) else Record(vt)

    def map_of(self, node: ast.expr) -> BpfMap:
        v = self.expr(node)
        if isinstance(v, StateVal) and isinstance(v.obj, BpfMap):
            return v.obj
        raise self.err(node, f"`{ast.unparse(node)}` is {describe(v)}, not a map")

    def map_key(self, m: BpfMap, node: ast.expr) -> None:
        if isinstance(m, DevMap | CpuMap):
            # The kernel refuses a program's reads and writes of these maps: only bpf_redirect_map uses them.
            raise self.err(node, f"a program can only redirect through the {m.kind_name} {m.name}",
                           f"write `return {m.name}.redirect(key)`; fill its slots from Python")
        if isinstance(node, ast.Tuple):
            raise self.err(node, f"a key of {m.name} cannot be a tuple",
                           "declare a Struct key: `class Key(Struct): a: u32; b: u16`, make the map with it "
                           "(`HashMap(Key, ...)`) and write `Key(a, b)` where the key goes")
        if isinstance(m, LpmTrie) and m.takes_ipv6_addresses and self.ipv6_address(node):
            return  # the emitter builds its /128 key from the halves
        v = self.present_record(self.expr(node))
        kt = m.key_type
        address = isinstance(m, LpmTrie) and m.address_type is not None and not isinstance(v, Record)
        if address:
            assert isinstance(m, LpmTrie) and m.address_type is not None
            kt = m.address_type  # an address: the emitter builds its full-length key
        if isinstance(kt, ScalarType):
            s = self.as_scalar(v, node)
            if s.type.is_fixed and not kt.is_fixed:
                what = f"addresses ({kt})" if address else str(kt)
                raise self.err(node, f"the keys of {m.name} are {what}, not floats",
                               f"convert the key: `{kt}(...)` (it truncates toward zero)"
                               + ("" if address else ", or declare the map with float keys"))
            self.convert(s, kt, node, implicit=True)
            return
        if isinstance(v, Record) and v.cls is kt:
            return
        ipv6 = " or an IPv6 header's address (`ip6.src`, `ip6.dst`)" if isinstance(m, LpmTrie) \
            and m.takes_ipv6_addresses else ""
        raise self.err(node, f"the keys of {m.name} are {kt.__name__} records, not {describe(v)}",
                       f"build one: `{kt.__name__}(...)`{ipv6}")

    def ipv6_address(self, node: ast.expr) -> bool:
        """`ip6.src`/`ip6.dst` of a present IPv6 header, where an IPv6 LpmTrie's key goes: the address the
        DSL otherwise reads as two halves (it has no 128-bit numbers). Anything else is checked as a key."""
        if not (isinstance(node, ast.Attribute) and node.attr in IPV6_ADDRESS_HALVES):
            return False
        match self.expr(node.value):
            case Header(spec=h.IPV6) | Maybe(inner=Header(spec=h.IPV6), narrowed=True):
                return True
        return False

    def map_value(self, m: BpfMap, node: ast.expr) -> None:
        v = self.present_record(self.expr(node))
        vt = m.value_type
        if isinstance(vt, ScalarType):
            self.convert(self.as_scalar(v, node), vt, node, implicit=True)
            return
        if isinstance(v, Record) and v.cls is vt:
            return
        hint = (f"check first: `if {ast.unparse(node)} is not None: ...`"
                if isinstance(v, Maybe) and isinstance(v.inner, Record) and v.inner.cls is vt else None)
        raise self.err(node, f"the values of {m.name} are {vt.__name__} records, not {describe(v)}", hint)

    @staticmethod
    def present_record(v: Kind) -> Kind:
        """A record a check proved present (`if r is not None:`) is the record, as a whole value too."""
        return v.inner if isinstance(v, Maybe) and v.narrowed and isinstance(v.inner, Record) else v


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)
