"""Pure-Python mode (`frontend.evaluate.run_python`) against the IR interpreter.

Each program below is run on generated packets, with generated helper results and generated initial state,
once in pure Python (against the module's state objects) and once in the IR interpreter (against deep
copies of them); the actions, the state afterwards and the number of helper calls must be identical.
A few direct tests pin down values the two executions could get wrong together.
"""

from __future__ import annotations

import copy
from types import FunctionType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pybpfdsl.frontend.evaluate import run_python
from pybpfdsl.frontend.lower import Lowered, lower_function
from pybpfdsl.ir.interpreter import Environment, run_program
from pybpfdsl.lang import actions as lang_actions
from pybpfdsl.lang import fixed
from pybpfdsl.lang import types as lang_types
from pybpfdsl.lang.actions import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX
from pybpfdsl.lang.builtins import bounded, cpu_id, inline, ip, now_ns, prandom_u32, randint, random
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.headers import TCP_SYN
from pybpfdsl.lang.helpers import use_helpers
from pybpfdsl.lang.packet import HeaderView, Packet, Payload
from pybpfdsl.lang.state import Array, BpfMap, Global, HashMap, LruHashMap, PerCpuArray, StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import FLOAT, i8, i16, i32, i64, u8, u16, u32, u64

# ----------------------------------------------------------------------------------------------- programs
pytestmark = pytest.mark.filterwarnings("ignore::pybpfdsl.lang.errors.DslWarning")  # `floats` stores 1e-11

PORTS = (22, 80, 443, 8080)
SHIFTS = (1, 8, 31, 40)
MIXED = (3, 0.25, True, 3000000000)
LIMIT = 3

A_OUT = Array(u64, 40)
A_SIGNED = Array(i64, 8)


def arith(pkt: Packet) -> int:
    """Integer arithmetic in every type: promotion, wrapping, C division, shifts, unary operators."""
    n = pkt.len
    b: u8 = u8(n * 7)
    s: i8 = i8(n * 13)
    w: u16 = u16(n * 1021)
    h: i16 = i16(n * 4099)
    big: u64 = u64(n) * 0x9E3779B97F4A7C15
    neg: i64 = -i64(n) * 1000003
    A_OUT[0] = b + s
    A_OUT[1] = b * s
    A_OUT[2] = s // 3
    A_OUT[3] = s % 5
    A_OUT[4] = -s // u8(2)
    A_OUT[5] = h * h * h
    A_OUT[6] = w << 20
    A_OUT[7] = s >> 2
    A_OUT[8] = big >> 7
    A_OUT[9] = big ^ (big << 13)
    A_OUT[10] = neg // -7
    A_OUT[11] = neg % 1000
    A_OUT[12] = u32(neg) + 5
    A_OUT[13] = ~b
    A_OUT[14] = ~w + 0
    A_OUT[15] = -b
    A_OUT[16] = (b | w) & (h ^ 0x5A5A)
    A_OUT[17] = big // u64(n)
    A_OUT[18] = big % (n - 60)
    A_OUT[19] = n << (b & 63)
    A_OUT[20] = i32(n) << 31
    A_OUT[21] = u32(1) << (n + 0)
    A_OUT[22] = 1 << 40
    A_OUT[23] = (1 << 63) - 1 + (1 << 63)
    A_OUT[24] = 0xFFFFFFFF + 1
    A_OUT[25] = u64(-7 // 2 + -7 % 2 * 100)
    A_OUT[26] = u8(300) + u8(300)
    A_OUT[27] = 2 ** 10 + 3 ** 3
    A_OUT[28] = big * big
    A_OUT[29] = i8(-128) // i8(-1)
    A_SIGNED[0] = s
    A_SIGNED[1] = h - 40000
    A_SIGNED[2] = neg
    A_SIGNED[3] = i64(b) - i64(w)
    A_SIGNED[4] = -(-9223372036854775807 - 1) + i64(n)
    A_SIGNED[5] = i32(2147483647) + i32(n)
    A_SIGNED[6] = +s - +h
    A_SIGNED[7] = u16(h) + u8(s)
    if b > s:
        return XDP_PASS
    return XDP_DROP


F_OUT = Array(float, 24)
F_INT = Array(i64, 10)
F_ACC = Global(float, 0.5)


def floats(pkt: Packet) -> int:
    """Q32.32 arithmetic: constants, conversions, true division, comparisons, random thresholds."""
    n = pkt.len
    x: float = float(n) * 0.1
    y = x / 3
    z = x / 0.3
    r = random()
    F_OUT[0] = x
    F_OUT[1] = y
    F_OUT[2] = z
    F_OUT[3] = x * y - z
    F_OUT[4] = -x + 1.5
    F_OUT[5] = r
    F_OUT[6] = n / 7
    F_OUT[7] = float(i8(n)) / i8(-3)
    F_OUT[8] = 0.1 + 0.2
    F_OUT[9] = 1 / 3
    F_OUT[10] = x * 2 + n
    F_OUT[11] = min(x, y, 2.5)
    F_OUT[12] = max(r, 0.5)
    F_OUT[13] = abs(0.75 - r)
    F_OUT[14] = float(u64(n) << 20) * 1.0e-3
    F_OUT[15] = r * r * r
    F_OUT[16] = x / 1.0e-9 if n < 3 else y / 65536
    F_OUT[17] = 1.0e-11  # rounds to 0 (a DslWarning, silenced below)
    F_INT[0] = i64(x)
    F_INT[1] = i64(-x)
    F_INT[2] = u8(z)
    F_INT[3] = i32(r * 1000.0)
    F_INT[4] = bool(r - r)
    F_INT[5] = bool(1.0e-12)
    F_INT[6] = i64(x * -3.7)
    F_INT[8] = random() < 0.7  # exact: compares the raw bits with ceil(0.7 * 2**32), not the rounded 0.7
    F_ACC.value += x
    F_ACC.value -= 0.25
    if x > 5.5 and r >= 0.25:
        F_INT[7] = 1
    if random() < 0.3:
        return XDP_DROP
    if random() < 1:
        return XDP_PASS
    return XDP_TX


C_OUT = Array(u64, 24)
C_STEPS = Global(u32, 0)


def control(pkt: Packet) -> int:
    """if/elif/else, bounded while, range loops, unrolled loops, break/continue, match, and/or/not."""
    n = pkt.len
    total: u32 = 0
    for i in range(10):
        if i == 7:
            break
        if i % 2 == 1:
            continue
        total += i * n
    C_OUT[0] = total
    acc: i32 = 0
    for j in range(20, -5, -3):
        acc = acc * 3 + j
    C_OUT[1] = u64(acc)
    k: u32 = n
    while bounded(k > 10, 40):
        k = k // 2 + 1
        C_STEPS.value += 1
    C_OUT[2] = k
    m: u32 = 0
    while bounded(True, 5):
        m += 1
        if m > n:
            break
    C_OUT[3] = m
    hits: u32 = 0
    for p in PORTS:
        if p == 443:
            continue
        if u32(p) == n:
            break
        hits = hits * 10 + 1
    C_OUT[4] = hits
    if n < 20:
        C_OUT[5] = 1
    elif n < 60:
        C_OUT[5] = 2
    elif not n > 100 or n == 200:
        C_OUT[5] = 3
    else:
        C_OUT[5] = 4
    C_OUT[6] = 10 < n <= 80 != 33
    C_OUT[7] = (n > 40 and n % 3 == 0) or n == 7
    C_OUT[8] = 5 if n & 1 else 9
    C_OUT[9] = n in PORTS
    C_OUT[10] = n % 7 not in (1, 2, 3)
    C_OUT[11] = (n > 5) + (n > 50) * 2
    match n % 16:
        case 0 | 1:
            C_OUT[12] = 10
        case 2 if n > 40:
            C_OUT[12] = 20
        case 2:
            C_OUT[12] = 21
        case 5 | 6 | 7 if n % 2 == 0:
            C_OUT[12] = 30
        case _:
            C_OUT[12] = 40
    match n > 64:
        case True:
            C_OUT[13] = 1
        case False:
            C_OUT[13] = 2
    if n > 1000:
        return XDP_ABORTED
    if n == 0:
        return XDP_PASS
    return XDP_TX if n % 3 == 0 else XDP_REDIRECT if n % 3 == 1 else XDP_PASS


class Flow(Struct):
    addr: u32
    port: u16
    proto: u8


class Stats(Struct):
    packets: u64
    bytes: u32
    last: i16


S_COUNT = HashMap(u32, u64, max_entries=8)
S_LRU = LruHashMap(u16, u32, max_entries=3)
S_ARR = Array(u32, 4)
S_CPU = PerCpuArray(u64, 4)
S_FLOWS = HashMap(Flow, Stats, max_entries=4)
S_SMALL = HashMap(u8, i8, max_entries=4)
S_FLOAT = HashMap(u32, float, max_entries=4)
S_G8 = Global(u8, 250)
S_G64 = Global(i64, -5)
S_GB = Global(bool, False)


def state(pkt: Packet) -> int:
    """Maps, arrays, per-CPU arrays, records, globals: lookups, updates, deletes, in-place updates."""
    n = pkt.len
    key = n & 7
    S_COUNT[key] += 1
    S_COUNT[key + 1] |= n
    S_COUNT[key ^ 3] *= 3
    S_LRU[u16(n % 5)] = n
    got = S_LRU.get(u16(n % 3))
    if got is not None:
        S_ARR[0] = got
    S_ARR[n % 6] += 7
    S_ARR[1] = S_ARR[n % 5] + 1
    S_ARR[2] -= 1
    S_ARR[3] <<= 1
    S_CPU[n % 4] += n
    S_CPU[0] = S_CPU[1] + S_CPU[2]
    f = Flow(port=u16(n * 3), addr=n, proto=6)
    old = S_FLOWS.get(f, Stats())
    S_FLOWS[f] = Stats(old.packets + 1, old.bytes + n, i16(old.last - 1))
    if Flow(n - 1, u16(n * 3 - 3), 6) in S_FLOWS:
        del S_FLOWS[Flow(n - 1, u16(n * 3 - 3), 6)]
    st = S_FLOWS.get(Flow(0, 0, 0))
    if st is not None:
        S_COUNT[7] = st.packets
    S_SMALL[u8(n)] -= 100
    S_SMALL[3] = S_SMALL.get(u8(3), i8(-1)) * 2
    S_FLOAT[n % 3] += 0.125
    S_FLOAT[0] = S_FLOAT.get(0, 1.5) * 1.5
    S_G8.value += 3
    S_G8.value *= 3
    S_G64.value -= i64(n)
    S_G64.value += -3
    S_G64.value >>= 1
    S_GB.value = not S_GB.value
    if key in S_COUNT and (key + 9) not in S_COUNT:
        del S_COUNT[key + 1]
    if n in S_COUNT:
        return XDP_DROP
    return XDP_PASS


class Rec(Struct):
    kind: u8
    flags: u8
    length: u16
    value: i32


P_OUT = Array(u64, 40)


def packet(pkt: Packet) -> int:
    """Header presence, header fields, the payload by index and as records."""
    P_OUT[0] = pkt.len
    eth = pkt.eth
    if eth is None:
        return XDP_ABORTED
    P_OUT[1] = eth.dst ^ eth.src
    P_OUT[2] = eth.type
    v4 = pkt.ipv4
    if v4 is not None:
        P_OUT[3] = v4.src
        P_OUT[4] = v4.dst
        P_OUT[5] = v4.ttl + v4.tos + v4.id + v4.ihl + v4.version + v4.flags + v4.frag + v4.proto
        P_OUT[6] = v4.len + v4.chksum
        if v4.src == ip("10.0.0.1"):
            P_OUT[7] = 1
    if pkt.ipv6 is not None:
        P_OUT[8] = pkt.ipv6.src_hi ^ pkt.ipv6.src_lo
        P_OUT[9] = pkt.ipv6.dst_hi + pkt.ipv6.dst_lo
        P_OUT[10] = pkt.ipv6.fl + pkt.ipv6.tc + pkt.ipv6.hlim + pkt.ipv6.nh + pkt.ipv6.plen + pkt.ipv6.version
    tcp = pkt.tcp
    if tcp:
        P_OUT[11] = tcp.sport * 65536 + tcp.dport
        P_OUT[12] = tcp.seq ^ tcp.ack
        P_OUT[13] = tcp.flags + tcp.dataofs + tcp.window + tcp.urgptr + tcp.chksum
        if tcp.flags & TCP_SYN:
            P_OUT[14] = 1
    udp = pkt.udp
    if udp is not None:
        P_OUT[15] = udp.sport + udp.dport + udp.len + udp.chksum
    pl = pkt.payload
    for i in (0, 1, 5, -1, 70000):
        b = pl[i]
        if b is not None:
            P_OUT[16] = P_OUT[16] * 31 + b + 1
    j: i32 = i32(pkt.len) - 60
    c = pl[j]
    if c is not None:
        P_OUT[17] = c + 1
    for off in range(0, 12, 4):
        rec = pkt.payload.read(Rec, off)
        if rec is not None:
            P_OUT[18 + off // 4] = u64(rec.value) + rec.kind + rec.flags + rec.length
    r2 = pl.read(Rec, j)
    if r2 is None:
        P_OUT[22] = 7
    last = pkt.payload[pkt.len - 1]
    if last is not None and last > 128:
        return XDP_DROP
    if (pkt.udp is not None and pkt.udp.dport == 53) or (pkt.tcp is not None and pkt.tcp.dport in PORTS):
        return XDP_TX
    return XDP_PASS


H_OUT = Array(u64, 24)
H_CALLS = Global(u32, 0)


@inline
def mix(a: u32, b: u16) -> u32:
    h = a * 31 + b
    for s in SHIFTS:
        h ^= h >> s
    return h


@inline
def widen(x: i32) -> i64:
    y = x << 40
    return y


@inline
def note(v: u64) -> None:
    H_CALLS.value += 1
    H_OUT[20] = H_OUT[20] + v


@inline
def port_of(p: Packet) -> u32:
    t = p.tcp
    if t is not None:
        return t.dport
    u = p.udp
    if u is None:
        return 0
    return u.dport


@inline
def clamp(x: i64, lo: i64, hi: i64) -> i64:
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@inline
def scaled(f: float, k: u8) -> float:
    return f * k


def helpers(pkt: Packet) -> int:
    """@inline helpers: argument conversion, returns, loops inside, several call sites, the packet."""
    n = pkt.len
    H_OUT[0] = mix(n, u16(n * 7))
    H_OUT[1] = mix(u32(n) * 2654435761, b=3)
    H_OUT[2] = u64(widen(3))
    H_OUT[3] = u64(widen(i32(n)))
    note(n)
    note(u64(n) * 2)
    H_OUT[4] = port_of(pkt)
    H_OUT[5] = u64(clamp(i64(n) - 50, -10, 10) + 100)
    H_OUT[6] = u64(clamp(hi=i64(n), lo=i64(random() < 0.5), x=40))
    H_OUT[7] = u32(scaled(0.3, u8(n)) * 10)
    for q in (1, 2):
        H_OUT[8 + q] = mix(n + q, q)
    if mix(n, 0) & 1:
        return XDP_DROP
    return XDP_PASS


B_OUT = Array(u64, 32)
B_SIGNED = Array(i64, 8)


def builtins(pkt: Packet) -> int:
    """random numbers, the clock, the CPU, ip(), min/max/abs, conversions."""
    n = pkt.len
    B_OUT[0] = randint(1, 6)
    B_OUT[1] = randint(0, 0xFFFFFFFF)
    B_SIGNED[0] = randint(-100, 100)
    B_SIGNED[1] = randint(i8(-5), i64(n))
    B_OUT[2] = prandom_u32()
    B_OUT[3] = now_ns()
    B_OUT[4] = now_ns() - B_OUT[3]
    B_OUT[5] = cpu_id()
    B_OUT[6] = ip("192.168.1.1") + ip("0.0.0.1")
    B_OUT[7] = min(n, 50, u8(n * 3))
    B_OUT[8] = max(i8(n), i16(-3))
    B_SIGNED[2] = min(i8(n), -3)
    B_SIGNED[3] = abs(i8(n))
    B_SIGNED[4] = abs(i64(n) - 70)
    B_OUT[9] = abs(u16(n) - u16(70))
    B_OUT[10] = max(3, 9, 4)
    B_OUT[11] = u8(n * 11) + u16(n * 4099) + u32(-1)
    B_OUT[12] = bool(n - 60) + bool(0) * 2
    B_OUT[13] = u64(i8(n))
    B_OUT[14] = u64(i32(u32(n) * 3000000000))
    B_OUT[15] = randint(n, n + 10)
    B_SIGNED[5] = abs(-5) + abs(i8(-128))
    if random() < 0.5 or random() < 0.25:
        return XDP_TX
    return XDP_PASS


K_OUT = Array(u64, 40)


def consts(pkt: Packet) -> int:
    """Compile-time constants: folded exactly when untyped, in their type when typed, per loop item."""
    n = pkt.len
    x = 5
    K_OUT[0] = x << 40
    y = 1
    y <<= 40
    K_OUT[1] = y
    z = 256
    z >>= 40
    K_OUT[2] = z
    t: u32 = 1
    t <<= 40
    K_OUT[3] = t
    w: i64 = 0x7FFFFFFF
    w += 1
    K_OUT[4] = u64(w)
    for s in SHIFTS:
        K_OUT[5 + s % 7] = u64(x << s)
        K_OUT[33 + s % 5] = 5 << s
        v = 3
        v <<= s
        K_OUT[12 + s % 7] = u64(v)
    idx = 0
    for item in MIXED:
        K_OUT[20 + idx] = u64(item * 2)
        idx += 1  # noqa: SIM113 - the DSL has no enumerate()
    K_OUT[25] = PORTS[2] + PORTS[-1]
    K_OUT[26] = u8(255) + 1
    K_OUT[27] = (0xFFFFFFFF + 1) >> 1
    K_OUT[28] = -0x80000000 // -1
    c = 2000000000
    K_OUT[29] = u64(c + c)
    d: i32 = 2000000000
    K_OUT[30] = u64(d + d)
    e = i32(2000000000)
    K_OUT[31] = u64(e + e)
    K_OUT[32] = n << 33
    K_OUT[38] = (n + 0) * 3000000000
    K_OUT[39] = u64(LIMIT << 33) + (LIMIT << 33)
    f = 0.1
    K_OUT[36] = u64(f * 30)
    K_OUT[37] = u64(float(n) * f * 1000)
    if n < 0:
        return XDP_DROP
    return XDP_PASS


X_OUT = Array(u64, 32)
X_REC = Array(Flow, 4)
X_FLAG = Global(bool, True)
X_LRU = LruHashMap(u8, u32, max_entries=2)


@inline
def bump(k: u32, flag: bool) -> None:
    if not flag:
        return
    X_OUT[k % 4] += 1


@inline
def dport(t: HeaderView) -> lang_types.u16:
    return t.dport


@inline
def first_byte(pl: Payload, at: i32) -> i64:
    b = pl[at]
    if b is None:
        return -1
    return b


@inline
def find(n: u32) -> u32:
    i: u32 = 0
    while bounded(i < 100, 100):
        if i * i >= n:
            return i
        i += 1
    return 999


def extras(pkt: Packet) -> int:
    """Less common paths: early returns from loops and helpers, module attributes, records in arrays."""
    n = pkt.len
    bump(n, n > 40)
    bump(n + 1, X_FLAG.value)
    X_FLAG.value = not X_FLAG.value
    X_OUT[4] = find(n)
    tcp = pkt.tcp
    if tcp is not None:
        X_OUT[5] = dport(tcp)
    X_OUT[6] = first_byte(pkt.payload, i32(n) - 50) + 1
    X_OUT[7] = pkt.udp is None
    absent = pkt.ipv6 is not None or pkt.udp is None
    X_OUT[8] = absent + 0
    X_OUT[9] = abs(u16(n) - u16(1000))
    X_OUT[10] = now_ns() - now_ns()
    for _unused in range(5, 5):
        X_OUT[11] = 99
    rec = X_REC[n % 6]
    X_REC[n % 4] = Flow(rec.addr + 1, u16(rec.port + n), rec.proto ^ 1)
    X_OUT[12] = rec.addr
    pick = X_REC[0] if n & 1 else Flow(n, 1, 2)
    X_OUT[13] = pick.port
    X_OUT[14] = n << (i8(n) - 100)
    X_OUT[15] = random() <= 0.5
    X_OUT[16] = random() < 0.5 + 0 * u32(n)
    X_OUT[17] = lang_actions.XDP_TX
    if n == 77:
        return XDP_ABORTED
    match n % 9:
        case 1 | 2:
            X_OUT[18] = 1
        case 3 if n > 1000:
            X_OUT[18] = 2
    j: u32 = 0
    while bounded(j < n, 200):
        j += 3
        if j % 5 == 0:
            continue
        for w in (1, 2, 3):
            if j == w * 11:
                return XDP_TX
        for v in range(3):
            if j + v == 50:
                return XDP_DROP
    X_OUT[19] = j
    order = Flow(proto=u8(prandom_u32()), addr=prandom_u32())  # fields run in declaration order
    X_OUT[20] = order.addr * 256 + order.proto
    X_OUT[21] = u64(clamp(hi=i64(prandom_u32()), lo=i64(prandom_u32() >> 1), x=i64(prandom_u32())))
    X_LRU[u8(n & 3)] = n
    X_OUT[22] = X_LRU.get(u8(prandom_u32() & 3), X_LRU.get(u8(n & 1), 7))  # the default after the lookup
    X_OUT[23] = 0 < prandom_u32() < 2147483648 <= prandom_u32()
    return lang_actions.XDP_PASS


PROGRAMS: dict[str, FunctionType] = {f.__name__: f for f in (arith, floats, control, state, packet, helpers,
                                                               builtins, consts, extras)}

# ----------------------------------------------------------------------------------------------- harness
_LOWERED: dict[str, Lowered] = {}


def lowered(name: str) -> Lowered:
    if name not in _LOWERED:
        _LOWERED[name] = lower_function(PROGRAMS[name], name)
    return _LOWERED[name]


class Script:
    """A deterministic HelperSource: random values cycle through a list, the clock moves by `step`."""

    def __init__(self, randoms: list[int], clock: int, step: int, cpu: int) -> None:
        self.randoms, self.clock, self.step, self.cpu = randoms, clock, step, cpu
        self.random_calls = self.clock_calls = self.cpu_calls = 0

    def prandom_u32(self) -> int:
        value = self.randoms[self.random_calls % len(self.randoms)]
        self.random_calls += 1
        return value

    def ktime_get_ns(self) -> int:
        self.clock_calls += 1
        self.clock = (self.clock + self.step) % (1 << 64)
        return self.clock

    def cpu_id(self) -> int:
        self.cpu_calls += 1
        return self.cpu

    def calls(self) -> tuple[int, int, int]:
        return self.random_calls, self.clock_calls, self.cpu_calls


def snapshot(obj: StateObject) -> object:
    """Everything observable about a state object, including the LRU order."""
    if isinstance(obj, Global):
        return obj.raw_get()
    assert isinstance(obj, BpfMap)
    if isinstance(obj, PerCpuArray):
        return {cpu: dict(data) for cpu, data in obj._cpu_data.items() if data}
    return list(obj._data.items())


def reset(obj: StateObject) -> None:
    if isinstance(obj, Global):
        obj.reset()
    elif isinstance(obj, PerCpuArray):
        obj._cpu_data.clear()
        obj._data.clear()
    else:
        assert isinstance(obj, BpfMap)
        obj._data.clear()


SCRIPT_EDGES = [0, 1, 0xFFFFFFFF, 1 << 31, fixed.ceil_from_float(0.3), fixed.ceil_from_float(0.3) - 1,
                1 << 30, (1 << 30) - 1, fixed.ceil_from_float(0.7), fixed.ceil_from_float(0.7) - 1]
randoms = st.lists(st.one_of(st.integers(0, 0xFFFFFFFF), st.sampled_from(SCRIPT_EDGES)), min_size=1, max_size=6)


def raw_for(t: object, draw: st.DrawFn) -> object:
    """A random raw value of a map key or value type (small numbers often, so keys collide)."""
    if isinstance(t, type) and issubclass(t, Struct):
        return t(*(draw(st.integers(0, 3)) for _ in t.fields()))
    assert t is not None
    scalar = t  # a ScalarType
    if scalar is FLOAT:
        return draw(st.integers(-(1 << 40), 1 << 40))
    return scalar.wrap(draw(st.one_of(st.integers(0, 9), st.integers(-(1 << 64), 1 << 64))))  # type: ignore[attr-defined]


@st.composite
def initial_state(draw: st.DrawFn, objs: dict[str, StateObject]) -> None:
    """Fill the state objects with random contents (in place)."""
    for obj in objs.values():
        reset(obj)
        if isinstance(obj, Global):
            if draw(st.booleans()):
                obj.raw_set(int(raw_for(obj.type, draw)))  # type: ignore[call-overload]
        elif isinstance(obj, PerCpuArray):
            continue
        elif isinstance(obj, BpfMap):
            for _ in range(draw(st.integers(0, obj.max_entries))):
                key = raw_for(obj.key_type, draw) if not isinstance(obj, Array) else draw(
                    st.integers(0, obj.max_entries - 1))
                obj.raw_update(key, raw_for(obj.value_type, draw))  # type: ignore[arg-type]


MACS = st.sampled_from(["02:00:00:00:00:01", "ff:ff:ff:ff:ff:ff", "0a:1b:2c:3d:4e:5f", "00:00:00:00:00:00"])
IP4S = st.one_of(st.sampled_from(["10.0.0.1", "192.168.1.1", "0.0.0.0", "255.255.255.255"]),
                 st.integers(0, 0xFFFFFFFF).map(lambda x: ".".join(str((x >> s) & 255) for s in (24, 16, 8, 0))))
PORT = st.one_of(st.sampled_from([22, 53, 80, 443, 8080, 0, 65535]), st.integers(0, 65535))
PAYLOAD = st.binary(max_size=80)


@st.composite
def transport(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(["tcp", "udp", "raw"]))
    if kind == "tcp":
        return TCP(sport=draw(PORT), dport=draw(PORT), seq=draw(st.integers(0, 0xFFFFFFFF)),
                   ack=draw(st.integers(0, 0xFFFFFFFF)), flags=draw(st.integers(0, 0x1FF)),
                   window=draw(st.integers(0, 65535)), urgptr=draw(st.integers(0, 65535)),
                   dataofs=draw(st.one_of(st.none(), st.integers(0, 15))))
    if kind == "udp":
        return UDP(sport=draw(PORT), dport=draw(PORT))
    return Raw(draw(st.binary(min_size=0, max_size=24)))


@st.composite
def scapy_packet(draw: st.DrawFn) -> bytes:
    eth = Ether(dst=draw(MACS), src=draw(MACS))
    layer = draw(st.sampled_from(["ipv4", "ipv6", "other"]))
    if layer == "ipv4":
        l3 = IP(src=draw(IP4S), dst=draw(IP4S), ttl=draw(st.integers(0, 255)), tos=draw(st.integers(0, 255)),
                id=draw(st.integers(0, 65535)), flags=draw(st.integers(0, 7)),
                frag=draw(st.sampled_from([0, 0, 0, 1, 0x1FFF])),
                ihl=draw(st.one_of(st.none(), st.none(), st.integers(0, 15))))
        frame = eth / l3 / draw(transport())
    elif layer == "ipv6":
        l3 = IPv6(src=draw(st.sampled_from(["::1", "fe80::1", "2001:db8::dead:beef"])),
                  dst=draw(st.sampled_from(["::", "ff02::1", "2001:db8::1"])), hlim=draw(st.integers(0, 255)),
                  tc=draw(st.integers(0, 255)), fl=draw(st.integers(0, 0xFFFFF)))
        frame = eth / l3 / draw(transport())
    else:
        eth.type = draw(st.sampled_from([0x0800, 0x86DD, 0x8100, 0x0806, 0x1234]))
        frame = eth
    data = bytes(frame / Raw(draw(PAYLOAD)))
    cut = draw(st.one_of(st.none(), st.none(), st.integers(0, len(data))))
    return data if cut is None else data[:cut]


packets = st.one_of(scapy_packet(), scapy_packet(), st.binary(max_size=90))


def differential(name: str, data: st.DataObject) -> None:
    low = lowered(name)
    data.draw(initial_state(low.state))
    script = (data.draw(randoms), data.draw(st.integers(0, (1 << 64) - 1)), data.draw(st.integers(0, 1 << 40)),
              data.draw(st.integers(0, 3)))
    py_helpers, ir_helpers = Script(*script), Script(*script)
    for obj in low.state.values():
        if isinstance(obj, PerCpuArray):
            obj.current_cpu = script[3]  # what pybpfdsl.testing.on_cpu does with the CPU helper
    ir_state = {k: copy.deepcopy(v) for k, v in low.state.items()}
    env = Environment(maps={k: v for k, v in ir_state.items() if isinstance(v, BpfMap)},
                      globals={k: v for k, v in ir_state.items() if isinstance(v, Global)}, helpers=ir_helpers)
    for pkt in data.draw(st.lists(packets, min_size=1, max_size=3)):
        with use_helpers(py_helpers):
            py_action = run_python(low, pkt)
        ir_action = run_program(low.program, pkt, env).action
        assert py_action == ir_action, (name, pkt.hex())
        assert py_helpers.calls() == ir_helpers.calls(), (name, pkt.hex())
        for key, obj in low.state.items():
            assert snapshot(obj) == snapshot(ir_state[key]), (name, key, pkt.hex())


@pytest.mark.parametrize("name", sorted(PROGRAMS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_python_matches_ir(name: str, data: st.DataObject) -> None:
    differential(name, data)


# ----------------------------------------------------------------------------------------------- direct checks
def run_both(name: str, pkt: bytes, randoms_: list[int] | None = None) -> int:
    low = lowered(name)
    for obj in low.state.values():
        reset(obj)
    ir_state = {k: copy.deepcopy(v) for k, v in low.state.items()}
    with use_helpers(Script(randoms_ or [0], 0, 0, 0)):
        action = run_python(low, pkt)
    env = Environment(maps={k: v for k, v in ir_state.items() if isinstance(v, BpfMap)},
                      globals={k: v for k, v in ir_state.items() if isinstance(v, Global)},
                      helpers=Script(randoms_ or [0], 0, 0, 0))
    assert run_program(low.program, pkt, env).action == action
    for key, obj in low.state.items():
        assert snapshot(obj) == snapshot(ir_state[key]), key
    return action


def udp_packet(size: int, dport: int = 53) -> bytes:
    base = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=dport))
    return base + bytes(range(256))[: max(0, size - len(base))]


def test_constant_folding_is_exact_and_typed_constants_wrap() -> None:
    run_both("consts", udp_packet(60))
    out = [int(K_OUT[i]) for i in range(40)]  # type: ignore[call-overload]
    assert out[0] == 5 << 8  # a local is typed (i32): its constant folds in i32, the count modulo 32
    assert out[1] == 256 and out[2] == 1 and out[3] == 256
    assert out[4] == 0x80000000
    assert out[6] == 5 << 8 and out[8] == u64(i32(5 << 31)) and out[10] == 5 << 8  # per unrolled item
    assert out[13] == 3 << 8 and out[15] == u64(i32(3 << 31)) and out[17] == 3 << 8
    assert out[33] == 5 << 40 and out[34] == 5 << 31  # literals fold exactly
    assert out[20:24] == [6, 0, 2, 6000000000]
    assert out[25] == 443 + 8080
    assert out[26] == 256 and out[27] == 1 << 31 and out[28] == 1 << 31
    assert out[29] == out[30] == out[31] == u64(i32(4000000000))
    assert out[32] == 60 << 1  # u32 shift counts modulo 32
    assert out[36] == 3 and out[37] == 6000
    assert out[38] == 60 * 3000000000 and out[39] == 2 * (3 << 33)


def test_arith_values() -> None:
    run_both("arith", bytes(60))
    b, s = u8(60 * 7), i8(60 * 13)
    assert A_OUT[0] == u64(b + s)
    assert A_SIGNED[0] == s
    assert A_OUT[2] == u64(-(abs(s) // 3) if s < 0 else s // 3)
    assert A_OUT[22] == 1 << 40
    assert A_OUT[23] == (1 << 64) - 1
    assert A_OUT[26] == 88  # u8(300) + u8(300): 44 + 44 in i32
    assert A_OUT[27] == 1051
    assert A_OUT[29] == u64(128)  # -128 // -1 in i32 (promoted), not i8


def test_random_threshold_is_exact() -> None:
    threshold = fixed.ceil_from_float(0.3)
    # floats: first random() is r, then `random() < 0.3`, then `random() < 1`
    assert run_both("floats", bytes(60), [5, threshold - 1]) == XDP_DROP
    assert run_both("floats", bytes(60), [5, threshold, 0xFFFFFFFF]) == XDP_PASS
    assert F_OUT[5] == fixed.to_float(5)


def test_random_threshold_rounds_up() -> None:
    edge = fixed.ceil_from_float(0.7)
    assert edge == fixed.from_float(0.7) + 1  # 0.7 * 2**32 rounds down to the nearest raw value
    run_both("floats", bytes(60), [0, edge - 1])
    assert F_INT[8] == 1  # (edge - 1) / 2**32 < 0.7
    run_both("floats", bytes(60), [0, edge])
    assert F_INT[8] == 0


def test_float_values() -> None:
    run_both("floats", bytes(10), [0])
    x = fixed.mul(fixed.from_int(10), fixed.from_float(0.1))
    assert fixed.from_float(F_OUT[0]) == x
    assert fixed.from_float(F_OUT[1]) == fixed.div_int(x, 3)
    assert fixed.from_float(F_OUT[2]) == fixed.mul(x, fixed.from_float(1 / 0.3))
    assert fixed.from_float(F_OUT[8]) == fixed.from_float(0.1 + 0.2)
    assert F_INT[0] == 1 and F_INT[1] == -1
    assert F_INT[4] == 0 and F_INT[5] == 1  # bool(1e-12) is a constant test, true although it rounds to 0


def test_control_values() -> None:
    assert run_both("control", bytes(33)) == XDP_TX
    assert C_OUT[0] == (0 + 2 + 4 + 6) * 33
    assert C_OUT[4] == 111
    assert C_OUT[6] == 1  # 10 < 33 <= 80 != 33
    assert C_OUT[7] == 0 and C_OUT[8] == 5 and C_OUT[9] == 0 and C_OUT[10] == 1 and C_OUT[11] == 1
    assert C_OUT[12] == 10 and C_OUT[13] == 2
    assert C_STEPS.value == 2


def test_helper_calls_happen_in_order() -> None:
    script = Script([7, 9], 100, 5, 2)
    low = lowered("builtins")
    for obj in low.state.values():
        reset(obj)
    with use_helpers(script):
        run_python(low, bytes(60))
    assert B_OUT[0] == 1 + ((7 * 6) >> 32)
    assert B_OUT[2] == 7  # randint, randint, randint, randint, then prandom_u32: the fifth value (cycled)
    assert B_OUT[3] == 105 and B_OUT[4] == 5
    assert B_OUT[5] == 2
    assert script.calls()[0] >= 6


def test_lru_order_matches() -> None:
    for size in (60, 61, 62, 63, 64, 65):
        run_both("state", udp_packet(size))


def test_packet_fields() -> None:
    assert run_both("packet", udp_packet(80, dport=53)) == XDP_TX
    assert P_OUT[3] == ip("10.0.0.1") and P_OUT[7] == 1
    assert run_both("packet", b"\x00" * 5) == XDP_ABORTED


def test_helpers_program() -> None:
    run_both("helpers", udp_packet(70, dport=8080), [1 << 31])
    assert H_OUT[2] == 3 << 8  # the parameter is a typed i32, so the constant folds in i32
    assert H_OUT[4] == 8080
    assert H_CALLS.value == 2
    assert H_OUT[20] == 70 * 3


def narrow_counter(pkt: Packet) -> int:
    i: u8 = 0
    for i in range(250, 256):
        A_OUT[0] += i
    return XDP_PASS


def test_range_counter_that_would_wrap_is_rejected() -> None:
    # Stepping a u8 counter past 255 wraps to 0, so the compiled loop would never end.
    with pytest.raises(DslError, match="too narrow"):
        lower_function(narrow_counter, "narrow_counter")
