"""Lowering the header parse: every header a function names, parsed once, in one decision tree.

The tree follows the presence rules of `lang.headers` the way a C programmer writes them: one bounds
check on the packet's start covering the first header the program needs, one ethertype load, the IPv4
branch and the IPv6 branch each taken only for its own ethertype (each with its own 34- or 54-byte
check from the packet's start, so every L3 field is read at a constant offset), then one block that
both L3 branches feed with (protocol, L4 offset), where TCP and UDP each get one bounds check of their
fixed header at that offset. Each leaf of the tree jumps to one join whose parameters are the results:
a presence flag per header, the L4 offset (shared by TCP and UDP) and where the payload starts.

Only what the function uses is computed: a program that names `pkt.ipv4` alone never looks at IPv6 or
at L4; one that names `pkt.tcp` never checks the UDP header. The results are remembered in pseudo-locals
(`<pkt>.tcp`), so later uses, and the narrowing of `if pkt.tcp is None: return ...`, find them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.flow import Env
from pybpfdsl.frontend.values import PARSED_ATTRIBUTES, HeaderVal, OptionalVal, PayloadVal, pseudo_local
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang import headers as h
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import BOOL, ScalarType, int_type, u32, u64

__all__ = ["PARSED_ATTRIBUTES", "parse", "pseudo_local"]

_IPV4_END = h.ETH_HLEN + h.IPV4.length
_IPV6_END = h.ETH_HLEN + h.IPV6.length
_IPV4_MIN_IHL = 5  # below it the header is present but its length is nonsense (`lang.packet`)
_TCP_MIN_DATAOFS = 5


@dataclass(frozen=True)
class _Needs:
    """Which parts of the tree a set of wanted attributes needs."""

    wanted: frozenset[str]

    @property
    def l4(self) -> bool:
        return bool(self.wanted & {"tcp", "udp", "payload"})

    @property
    def v4(self) -> bool:
        return "ipv4" in self.wanted or self.l4

    @property
    def v6(self) -> bool:
        return "ipv6" in self.wanted or self.l4

    @property
    def tcp(self) -> bool:
        return bool(self.wanted & {"tcp", "payload"})

    @property
    def udp(self) -> bool:
        return bool(self.wanted & {"udp", "payload"})

    @property
    def payload(self) -> bool:
        return "payload" in self.wanted

    @property
    def first_check(self) -> int:
        """Bytes checked before the ethertype is read: just Ethernet when that header itself counts
        (as a result, or as the payload's start); else the shortest L3 header wanted, since a packet
        shorter than that has none of the wanted headers."""
        if "eth" in self.wanted or self.payload or not (self.v4 or self.v6):
            return h.ETH_HLEN
        return min(end for end, used in ((_IPV4_END, self.v4), (_IPV6_END, self.v6)) if used)

    @property
    def results(self) -> tuple[str, ...]:
        """The join's parameters: a flag per wanted header, the shared L4 offset, the payload offset."""
        names: list[str] = [a for a in ("eth", "ipv4", "ipv6", "tcp", "udp") if a in self.wanted]
        if self.wanted & {"tcp", "udp"}:
            names.append("l4")
        if self.payload:
            names.append("payload")
        return tuple(names)


class _Tree:
    """Emits the tree's blocks; every leaf jumps to the one join with its results (absent by default)."""

    def __init__(self, lw: EmitterBase, needs: _Needs) -> None:
        self.lw = lw
        self.needs = needs
        self.join = lw.b.new_block("parsed")
        self.types = {name: (u64 if name in ("l4", "payload") else BOOL) for name in needs.results}
        self.params = {name: lw.new(t, f"<pkt>.{name}") for name, t in self.types.items()}
        self.join.params.extend(self.params.values())

    def leaf(self, **values: n.Value | int) -> None:
        """Jump to the join with `values` (a name's value; an int is a constant) and zero for the rest."""
        args = []
        for name in self.needs.results:
            v = values.get(name, 0)
            args.append(v if isinstance(v, n.Value) else self.lw.const(self.types[name], v))
        self.lw.b.terminate(n.Jump(n.Edge(self.join.name, tuple(args)), line=self.lw.line))

    def branch(self, cond: n.Value, hint: str, expect: n.Expect | None = None) -> n.Block:
        """Branch on `cond`; continue in the false block and return the true one."""
        yes, no = self.lw.b.new_block(hint), self.lw.b.new_block(f"not_{hint}")
        self.lw.b.terminate(n.Branch(cond, n.Edge(yes.name), n.Edge(no.name), line=self.lw.line, expect=expect))
        self.lw.b.set_block(no)
        return yes

    def branch_usual(self, value: n.Value, usual: int, hint: str) -> n.Block:
        """Branch on `value != usual`; continue in the block where it differs and return the block where
        it equals `usual`. The test is written negated so that the layout's walk, which places a branch's
        false successor right after it, makes the usual case the fall-through."""
        yes, no = self.lw.b.new_block(hint), self.lw.b.new_block(f"not_{hint}")
        differs = self.cmp(CmpOp.NE, value, usual)
        self.lw.b.terminate(n.Branch(differs, n.Edge(no.name), n.Edge(yes.name), line=self.lw.line))
        self.lw.b.set_block(no)
        return yes

    def require(self, cond: n.Value, hint: str, expect: n.Expect | None = None, /, **fail: n.Value | int) -> None:
        """Go on where `cond` holds; where it does not, leave with the results `fail` (`expect`: which way
        the test usually goes, a layout hint)."""
        yes = self.branch(cond, hint, expect)
        self.leaf(**fail)
        self.lw.b.set_block(yes)

    # -- the operations the tree is built from ------------------------------------------------

    def const(self, value: int) -> n.Value:
        return self.lw.const(u64, value)

    def in_bounds(self, offset: n.Value, width: int) -> n.Value:
        return self.lw.b.emit(n.InBounds(self.lw.new(BOOL), offset, width, line=self.lw.line))

    def add(self, a: n.Value, b: n.Value | int) -> n.Value:
        rhs = self.const(b) if isinstance(b, int) else b
        return self.lw.b.emit(n.Binary(self.lw.new(u64), BinOp.ADD, a, rhs, line=self.lw.line))

    def times4(self, a: n.Value) -> n.Value:
        return self.lw.b.emit(n.Binary(self.lw.new(u64), BinOp.MUL, a, self.const(4), line=self.lw.line))

    def field(self, base: n.Value | int, spec: h.FieldSpec, t: ScalarType) -> n.Value:
        """A header field at `base` (an int: a constant offset), read as `t` (u32 or u64)."""
        off = self.const(base + spec.offset) if isinstance(base, int) else self.add(base, spec.offset)
        raw = self.lw.b.emit(n.LoadPacket(self.lw.new(int_type(8 * spec.size, False)), off, spec.size,
                                          line=self.lw.line))
        value = self.lw.b.emit(n.Convert(self.lw.new(t), raw, line=self.lw.line))
        if spec.shift:
            value = self._binop(BinOp.SHR, value, spec.shift)
        if spec.mask is not None:
            value = self._binop(BinOp.AND, value, spec.mask)
        return value

    def raw_le16(self, offset: int) -> n.Value:
        """The two bytes at constant `offset`, little-endian, as u32."""
        raw = self.lw.b.emit(n.LoadPacket(self.lw.new(int_type(16, False)), self.const(offset), 2, big_endian=False,
                                          line=self.lw.line))
        return self.lw.b.emit(n.Convert(self.lw.new(u32), raw, line=self.lw.line))

    def cmp(self, op: CmpOp, a: n.Value, b: int) -> n.Value:
        assert isinstance(a.type, ScalarType)
        return self.lw.b.emit(n.Compare(self.lw.new(BOOL), op, a, self.lw.const(a.type, b), line=self.lw.line))

    def _binop(self, op: BinOp, a: n.Value, b: int) -> n.Value:
        assert isinstance(a.type, ScalarType)
        return self.lw.b.emit(n.Binary(self.lw.new(a.type), op, a, self.lw.const(a.type, b), line=self.lw.line))


def parse(lw: EmitterBase, attrs: set[str]) -> None:
    """Emit the parse of the packet attributes `attrs` (from `PARSED_ATTRIBUTES`) at the current block
    and remember each result in its pseudo-local; emitting continues after the parse's join."""
    needs = _Needs(frozenset(attrs))
    saved = dict(lw.env)  # the tree's blocks carry no locals: the join continues with these
    tree = _Tree(lw, needs)
    present = {"eth": 1}
    tree.require(tree.in_bounds(tree.const(0), needs.first_check), "eth")
    if not (needs.v4 or needs.v6):
        tree.leaf(**present)
        _finish(lw, tree, saved)
        return
    # Read as it lies in memory and compared with byte-swapped constants: LLVM folds the swap into a
    # compare but not into the switch it makes of the IPv4/IPv6 tests, which would keep a `be16`.
    ethertype = tree.raw_le16(h.ETH.fields[2].offset)
    l4_block: n.Block | None = None
    proto, l4 = lw.new(u32, "proto"), lw.new(u64, "l4off")
    v4_flag: n.Value | None = None
    v6_flag: n.Value | None = None
    if needs.l4:
        # Both L3 branches continue here with (protocol, L4 offset, which L3 header it was).
        l4_block = lw.b.new_block("l4")
        l4_block.params.extend([proto, l4])
        if "ipv4" in needs.wanted:
            v4_flag = lw.new(BOOL, "is_ipv4")
            l4_block.params.append(v4_flag)
        if "ipv6" in needs.wanted:
            v6_flag = lw.new(BOOL, "is_ipv6")
            l4_block.params.append(v6_flag)

    def to_l4(proto_value: n.Value, l4_value: n.Value, is_v4: int) -> None:
        assert l4_block is not None
        args = [proto_value, l4_value]
        args += [lw.const(BOOL, is_v4)] if "ipv4" in needs.wanted else []
        args += [lw.const(BOOL, 1 - is_v4)] if "ipv6" in needs.wanted else []
        lw.b.terminate(n.Jump(n.Edge(l4_block.name, tuple(args)), line=lw.line))

    other: n.Block | None = None
    if needs.v4:
        # IPv4 is the usual frame: its parse is the fall-through of the ethertype test, and the IPv6
        # parse (below) is marked rare, so the IPv4 path also falls through into the L4 part. Measured
        # (benchmarks/size_speed.py, rpc_filter): with IPv4 out of line and a jump back to the join, the
        # hot packet took two more taken jumps than clang's build and ran ~0.2 ns slower. No weight goes on
        # the ethertype test itself: LLVM makes one switch of the IPv4 and IPv6 tests, and a weighted
        # switch checks its likely case first with a taken jump (and costs a `goto`).
        v4_block = tree.branch_usual(ethertype, _swap16(h.ETH_P_IP), "ipv4")
        other = lw.b.current
        lw.b.set_block(v4_block)
        if needs.first_check < _IPV4_END:
            tree.require(tree.in_bounds(tree.const(0), _IPV4_END), "ipv4_fits", **present, payload=h.ETH_HLEN)
        on_v4 = present | {"ipv4": 1}
        if not needs.l4:
            tree.leaf(**on_v4)
        else:
            ihl = tree.field(h.ETH_HLEN, _field(h.IPV4, "ihl"), u64)
            tree.require(tree.cmp(CmpOp.GE, ihl, _IPV4_MIN_IHL), "ihl_ok", **on_v4, payload=_IPV4_END)
            l4_v4 = tree.add(tree.const(h.ETH_HLEN), tree.times4(ihl))
            frag = tree.field(h.ETH_HLEN, _field(h.IPV4, "frag"), u32)
            tree.require(tree.cmp(CmpOp.EQ, frag, 0), "first_fragment", **on_v4, payload=l4_v4)
            to_l4(tree.field(h.ETH_HLEN, _field(h.IPV4, "proto"), u32), l4_v4, 1)
        assert other is not None
        lw.b.set_block(other)
    if needs.v6:
        v6_block = tree.branch(tree.cmp(CmpOp.EQ, ethertype, _swap16(h.ETH_P_IPV6)), "ipv6")
        other = lw.b.current
        lw.b.set_block(v6_block)
        if needs.first_check < _IPV6_END:
            # With IPv4 parsed too, the IPv6 path is the rare one: the hint goes on its one branch (see
            # above). Like every hint it changes no meaning, only the layout and the branch weights.
            rare = n.Expect.UNLIKELY if needs.v4 else None
            tree.require(tree.in_bounds(tree.const(0), _IPV6_END), "ipv6_fits", rare, **present, payload=h.ETH_HLEN)
        if not needs.l4:
            tree.leaf(**present, ipv6=1)
        else:
            to_l4(tree.field(h.ETH_HLEN, _field(h.IPV6, "nh"), u32), tree.const(_IPV6_END), 0)
        assert other is not None
        lw.b.set_block(other)
    tree.leaf(**present, payload=h.ETH_HLEN)  # another ethertype: Ethernet only
    if l4_block is not None:
        lw.b.set_block(l4_block)
        on_l3: dict[str, n.Value | int] = dict(present)
        if v4_flag is not None:
            on_l3["ipv4"] = v4_flag
        if v6_flag is not None:
            on_l3["ipv6"] = v6_flag
        _transport(tree, proto, l4, on_l3)
    _finish(lw, tree, saved)


def _finish(lw: EmitterBase, tree: _Tree, saved: Env) -> None:
    lw.b.set_block(tree.join)
    lw.env = saved
    _remember(lw, tree.needs, tree.params)


def _transport(tree: _Tree, proto: n.Value, l4: n.Value, on_l3: dict[str, n.Value | int]) -> None:
    """The L4 part of the tree, from the shared (protocol, offset): TCP, then UDP, then neither."""
    needs = tree.needs
    if needs.tcp:
        tcp_block = tree.branch(tree.cmp(CmpOp.EQ, proto, h.IPPROTO_TCP), "tcp")
        other = tree.lw.b.current
        tree.lw.b.set_block(tcp_block)
        tree.require(tree.in_bounds(l4, h.TCP.length), "tcp_fits", **on_l3, payload=l4)
        dataofs = tree.field(l4, h.TCP.fields[4], u64)
        tree.require(tree.cmp(CmpOp.GE, dataofs, _TCP_MIN_DATAOFS), "dataofs_ok", **on_l3, payload=l4)
        end = tree.add(l4, tree.times4(dataofs)) if needs.payload else 0
        tree.leaf(**on_l3, tcp=1, l4=l4, payload=end)
        assert other is not None
        tree.lw.b.set_block(other)
    if needs.udp:
        udp_block = tree.branch(tree.cmp(CmpOp.EQ, proto, h.IPPROTO_UDP), "udp")
        other = tree.lw.b.current
        tree.lw.b.set_block(udp_block)
        tree.require(tree.in_bounds(l4, h.UDP.length), "udp_fits", **on_l3, payload=l4)
        end = tree.add(l4, h.UDP.length) if needs.payload else 0
        tree.leaf(**on_l3, udp=1, l4=l4, payload=end)
        assert other is not None
        tree.lw.b.set_block(other)
    tree.leaf(**on_l3, payload=l4)


def _swap16(value: int) -> int:
    return int.from_bytes(value.to_bytes(2, "big"), "little")


def _field(spec: h.HeaderSpec, name: str) -> h.FieldSpec:
    f = spec.field(name)
    assert f is not None
    return f


def _remember(lw: EmitterBase, needs: _Needs, params: dict[str, n.Value]) -> None:
    l3 = lw.const(u64, h.ETH_HLEN)
    offsets = {"eth": lw.const(u64, 0), "ipv4": l3, "ipv6": l3}
    for attr in ("eth", "ipv4", "ipv6", "tcp", "udp"):
        if attr in needs.wanted:
            offset = params["l4"] if attr in ("tcp", "udp") else offsets[attr]
            value = OptionalVal(HeaderVal(h.HEADERS[attr], offset), params[attr])
            lw.env[pseudo_local(attr)] = value
    if needs.payload:
        lw.env[pseudo_local("payload")] = PayloadVal(params["payload"])
