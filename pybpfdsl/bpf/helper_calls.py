"""What the bytecode interpreter does for each BPF helper it models: one function per helper, in a table
by helper id (:data:`HELPER_CALLS`). A helper's arguments are r1-r5; what it returns goes to r0.

The helpers see the machine only through :class:`HelperMachine`: the instruction being run (for faults),
the packet, memory reads and writes through pointers, the redirect state and the source of random
numbers, time and the CPU number. Maps are :class:`~pybpfdsl.bpf.memory.InterpMap`\\ s, which carry their
own update and delete rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Protocol

from pybpfdsl.bpf.abi import Helper, MapType, RingbufFlag, XdpAction
from pybpfdsl.bpf.faults import BytecodeFault, UnsupportedHelper
from pybpfdsl.bpf.helper_results import FIB_ROUTES, HelperResults
from pybpfdsl.bpf.memory import (
    EAGAIN,
    EFAULT,
    EINVAL,
    MASK64,
    XDP_FRAME_END,
    XDP_PACKET_HEADROOM,
    InterpMap,
    Pointer,
    Region,
    Value,
    as_number,
)
from pybpfdsl.bpf.semantics import INT_OPS, REDIRECT_BROADCAST, REDIRECT_MAP_FLAGS, redirect_map

__all__ = ["HELPER_CALLS", "HelperCall", "HelperMachine"]

XDP_FRAME_SIZE = 40  # xdp_adjust_head keeps this much headroom for struct xdp_frame
ETH_HLEN = 14
RINGBUF_RECORD_HEADER = 8  # the kernel's per-record header in a ring buffer
RINGBUF_FLAGS = RingbufFlag.NO_WAKEUP | RingbufFlag.FORCE_WAKEUP  # bpf_ringbuf_output refuses any other bit


class HelperMachine(Protocol):
    """What of a running machine the helpers read and change."""

    pc: int
    helpers: HelperResults
    packet: Region
    redirect_ifindex: int | None
    redirect_index: int | None  # the kernel's bpf_redirect_info.tgt_index
    redirect_element: tuple[InterpMap, int, bytes] | None

    def read_bytes(self, ptr: Value, nbytes: int) -> bytes:
        """``nbytes`` bytes at ``ptr``, checked as a load is (a fault outside the region)."""
        ...

    def write_bytes(self, ptr: Value, data: bytes) -> None:
        """Store ``data`` at ``ptr``, checked as a store is (a fault outside the region or read-only)."""
        ...


HelperCall = Callable[[HelperMachine, list[Value]], Value]
"""A helper's model: (the machine, r1-r5) -> r0."""


def _map(m: HelperMachine, v: Value) -> InterpMap:
    if not isinstance(v, InterpMap):
        raise BytecodeFault(m.pc, "helper expected a map argument")
    return v


def _scalar(v: Value) -> int:
    return as_number(v)


def _errno(value: int) -> int:
    return value & MASK64


def _h_lookup(m: HelperMachine, args: list[Value]) -> Value:
    mp = _map(m, args[0])
    region = mp.lookup(m.read_bytes(args[1], mp.key_size))
    return 0 if region is None else Pointer(region, 0)


def _h_update(m: HelperMachine, args: list[Value]) -> Value:
    mp = _map(m, args[0])
    key = m.read_bytes(args[1], mp.key_size)
    value = m.read_bytes(args[2], mp.value_size)
    if mp.readonly:
        return _errno(-EINVAL)
    return _errno(mp.update(key, value, _scalar(args[3])))


def _h_delete(m: HelperMachine, args: list[Value]) -> Value:
    mp = _map(m, args[0])
    return _errno(mp.delete(m.read_bytes(args[1], mp.key_size)))


def _h_ktime(m: HelperMachine, args: list[Value]) -> Value:
    return m.helpers.ktime_get_ns() & MASK64


def _h_prandom(m: HelperMachine, args: list[Value]) -> Value:
    return m.helpers.prandom_u32() & 0xFFFFFFFF


def _h_cpu(m: HelperMachine, args: list[Value]) -> Value:
    return m.helpers.cpu_id() & 0xFFFFFFFF


def _h_redirect(m: HelperMachine, args: list[Value]) -> Value:
    if _scalar(args[1]):
        return XdpAction.ABORTED  # bpf_xdp_redirect rejects every flag
    m.redirect_ifindex = m.redirect_index = _scalar(args[0]) & 0xFFFFFFFF
    m.redirect_element = None
    return XdpAction.REDIRECT


def _h_redirect_map(m: HelperMachine, args: list[Value]) -> Value:
    """bpf_redirect_map: the element under the key's low 32 bits decides (`semantics.redirect_map`); a
    miss leaves the device numbered by the last index, as the kernel's redirect state does."""
    mp = _map(m, args[0])
    if mp.map_type not in REDIRECT_MAP_FLAGS or mp.key_size != 4:
        raise UnsupportedHelper(m.pc, Helper.REDIRECT_MAP)
    key, flags = _scalar(args[1]) & 0xFFFFFFFF, _scalar(args[2])
    if flags & REDIRECT_BROADCAST & REDIRECT_MAP_FLAGS[mp.map_type]:
        raise UnsupportedHelper(m.pc, Helper.REDIRECT_MAP)  # every device of the map: not modelled
    indexed = key < mp.max_entries or mp.map_type == MapType.DEVMAP_HASH
    element = mp.entries.get(key.to_bytes(4, "little")) if indexed else None
    action, kept = redirect_map(INT_OPS, mp.map_type, flags, element is not None)
    if kept:
        return action
    if element is not None:
        m.redirect_element, m.redirect_ifindex, m.redirect_index = (mp, key, bytes(element.data)), None, key
    else:  # the index stays
        m.redirect_element, m.redirect_ifindex = None, m.redirect_index
    return action


def _h_adjust_head(m: HelperMachine, args: list[Value]) -> Value:
    raw = _scalar(args[1]) & 0xFFFFFFFF
    delta = raw - (1 << 32) if raw >> 31 else raw  # the helper takes an int
    pkt = m.packet
    new_lo = pkt.lo + delta
    if new_lo < XDP_FRAME_SIZE or new_lo > pkt.hi - ETH_HLEN:
        return _errno(-EINVAL)
    pkt.lo = new_lo
    pkt.pointers.clear()
    return 0


def _h_adjust_tail(m: HelperMachine, args: list[Value]) -> Value:
    raw = _scalar(args[1]) & 0xFFFFFFFF
    delta = raw - (1 << 32) if raw >> 31 else raw  # the helper takes an int
    pkt = m.packet
    new_hi = pkt.hi + delta
    if new_hi > XDP_PACKET_HEADROOM + XDP_FRAME_END or new_hi < pkt.lo + ETH_HLEN:
        return _errno(-EINVAL)
    if new_hi > len(pkt.data):
        pkt.data.extend(bytes(new_hi - len(pkt.data)))
    if delta > 0:  # the kernel clears what the packet grows into
        pkt.data[pkt.hi:new_hi] = bytes(delta)
    pkt.hi = new_hi
    pkt.pointers.clear()
    return 0


def _csum_partial(data: bytes, seed: int) -> int:
    """The kernel's csum_partial: 32-bit words (then a 16- and an 8-bit rest) and the seed added with
    end-around carry: 0 only when all are 0."""
    whole = len(data) & ~3
    total = seed + sum(int.from_bytes(data[i:i + 4], "little") for i in range(0, whole, 4))
    rest = data[whole:]
    total += int.from_bytes(rest[:len(rest) & 2], "little") + (rest[-1] if len(rest) & 1 else 0)
    return 0 if total == 0 else (total - 1) % 0xFFFFFFFF + 1


def _h_csum_diff(m: HelperMachine, args: list[Value]) -> Value:
    from_size, to_size = _scalar(args[1]) & 0xFFFFFFFF, _scalar(args[3]) & 0xFFFFFFFF
    seed = _scalar(args[4]) & 0xFFFFFFFF
    old = m.read_bytes(args[0], from_size) if from_size else b""
    new = m.read_bytes(args[2], to_size) if to_size else b""
    if old and new:
        ret = _csum_partial(new, seed) + (~_csum_partial(old, 0) & 0xFFFFFFFF)
        ret = (ret & 0xFFFFFFFF) + (ret >> 32)  # csum_sub: add the complement with end-around carry
    elif new:
        ret = _csum_partial(new, seed)
    elif old:
        ret = ~_csum_partial(old, ~seed & 0xFFFFFFFF) & 0xFFFFFFFF
    else:
        ret = seed
    return ((ret + ((ret << 16 | ret >> 16) & 0xFFFFFFFF)) & 0xFFFFFFFF) >> 16  # csum_from32to16


FIB_PARAMS_SIZE = 64  # sizeof(struct bpf_fib_lookup)
AF_INET = 2


def _h_fib_lookup(m: HelperMachine, args: list[Value]) -> Value:
    """bpf_fib_lookup(ctx, params, plen, flags) for IPv4 without flags, answered by the scripted routes
    (`helper_results.FIB_ROUTES`): the status in r0; the egress ifindex and, when forwarded, the MACs
    written into the params struct, as the kernel writes them."""
    if _scalar(args[2]) & 0xFFFFFFFF < FIB_PARAMS_SIZE:
        return _errno(-EINVAL)
    params = bytearray(m.read_bytes(args[1], FIB_PARAMS_SIZE))
    if _scalar(args[3]) != 0 or params[0] != AF_INET:
        raise UnsupportedHelper(m.pc, Helper.FIB_LOOKUP)  # IPv6, flags: not modelled
    dst = int.from_bytes(params[32:36], "big")
    status, egress, smac, dmac = FIB_ROUTES.lookup(dst, int.from_bytes(params[8:12], "little"))
    params[8:12] = (egress & 0xFFFFFFFF).to_bytes(4, "little")
    if status == 0:
        params[52:58] = (smac & 0xFFFFFFFFFFFF).to_bytes(6, "big")
        params[58:64] = (dmac & 0xFFFFFFFFFFFF).to_bytes(6, "big")
    m.write_bytes(args[1], bytes(params))
    return status & MASK64


_PRINTK_CONVERSION = re.compile(rb"%([-+ 0#]*)([0-9]*)(ll|l|hh|h|z)?([diuxXc%])")


def _h_trace_printk(m: HelperMachine, args: list[Value]) -> Value:
    """The length of the text bpf_trace_printk writes (the text itself is not kept), for formats of
    integer conversions; -EINVAL for a format without its NUL or with more than three conversions."""
    fmt = m.read_bytes(args[0], _scalar(args[1]) & 0xFFFFFFFF)
    if b"\0" not in fmt:
        return _errno(-EINVAL)
    text = fmt.split(b"\0", 1)[0]
    values = iter(_scalar(a) for a in args[2:5])
    out: list[str] = []
    pos = 0
    try:
        for conv in _PRINTK_CONVERSION.finditer(text):
            out.append(text[pos:conv.start()].decode("latin-1"))
            pos = conv.end()
            flags, width, length, kind = (g.decode() if g else "" for g in conv.groups())
            if kind == "%":
                out.append("%")
                continue
            v = next(values)
            bits = 64 if length in ("l", "ll", "z") else 32
            v &= (1 << bits) - 1
            if kind in "di" and v >> (bits - 1):
                v -= 1 << bits
            out.append(("%" + flags + width + ("d" if kind in "diu" else kind)) % (chr(v & 0xFF) if kind == "c" else v))
    except StopIteration:
        return _errno(-EINVAL)
    rest = text[pos:]
    if b"%" in rest:
        raise UnsupportedHelper(m.pc, Helper.TRACE_PRINTK)
    return len("".join(out)) + len(rest)


def _h_xdp_load_bytes(m: HelperMachine, args: list[Value]) -> Value:
    offset, length = _scalar(args[1]) & 0xFFFFFFFF, _scalar(args[3]) & 0xFFFFFFFF
    pkt = m.packet
    if offset > 0xFFFF or length > 0xFFFF:
        return _errno(-EFAULT)
    if offset + length > pkt.hi - pkt.lo:
        return _errno(-EINVAL)
    m.write_bytes(args[2], bytes(pkt.data[pkt.lo + offset:pkt.lo + offset + length]))
    return 0


def _h_ringbuf_output(m: HelperMachine, args: list[Value]) -> Value:
    mp = _map(m, args[0])
    if _scalar(args[3]) & ~RINGBUF_FLAGS:
        return _errno(-EINVAL)
    data = m.read_bytes(args[1], _scalar(args[2]))
    # The kernel reserves the record plus its header, rounded to 8 bytes, and keeps one byte free.
    footprint = (len(data) + RINGBUF_RECORD_HEADER + 7) // 8 * 8
    if mp.ringbuf_used + footprint > mp.max_entries - 1:
        return _errno(-EAGAIN)
    mp.ringbuf_used += footprint
    mp.records.append(data)
    return 0


HELPER_CALLS: Mapping[int, HelperCall] = {
    Helper.MAP_LOOKUP_ELEM: _h_lookup,
    Helper.MAP_UPDATE_ELEM: _h_update,
    Helper.MAP_DELETE_ELEM: _h_delete,
    Helper.KTIME_GET_NS: _h_ktime,
    Helper.TRACE_PRINTK: _h_trace_printk,
    Helper.GET_PRANDOM_U32: _h_prandom,
    Helper.GET_SMP_PROCESSOR_ID: _h_cpu,
    Helper.REDIRECT: _h_redirect,
    Helper.REDIRECT_MAP: _h_redirect_map,
    Helper.FIB_LOOKUP: _h_fib_lookup,
    Helper.CSUM_DIFF: _h_csum_diff,
    Helper.XDP_ADJUST_HEAD: _h_adjust_head,
    Helper.XDP_ADJUST_TAIL: _h_adjust_tail,
    Helper.RINGBUF_OUTPUT: _h_ringbuf_output,
    Helper.XDP_LOAD_BYTES: _h_xdp_load_bytes,
}
