"""One small program per language construct, for the differential suite.

Each program folds what it computes into its return action and into state, so a wrong value anywhere
shows up as a different action or a different state snapshot.
"""

from __future__ import annotations

from pybpfdsl import (
    XDP_ABORTED,
    XDP_DROP,
    XDP_PASS,
    XDP_TX,
    Array,
    Global,
    HashMap,
    LruHashMap,
    Packet,
    PerCpuArray,
    Struct,
    bounded,
    i8,
    i16,
    i32,
    i64,
    inline,
    ip,
    now_ns,
    randint,
    random,
    u8,
    u16,
    u32,
    u64,
    xdp,
)

acc = Global(u64, 0)
acc32 = Global(i32, 0)
ratio = Global(float, 0.5)
flag = Global(bool, False)
per_port = HashMap(u16, u64, 256)
recent = LruHashMap(u32, u32, 64)
slots = Array(u32, 8)
per_cpu = PerCpuArray(u64, 4)

LIMITS = (23, 80, 443, 8080)
SCALE = 3
MAGIC = 0xBEEF


class Flow(Struct):
    src: u32
    dport: u16
    proto: u8


class Stats(Struct):
    packets: u64
    last_len: u32


flows = HashMap(Flow, Stats, 128)


class Rpc(Struct):
    magic: u16
    version: u8
    method: u8
    request_id: u32


@xdp
def int_arith(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    a = ip4.src
    b: u16 = ip4.id
    c: u8 = ip4.ttl
    x = a * 2654435761 + b - c          # u32 arithmetic wraps
    y: u64 = u64(a) << 20 | b
    q = x // b                          # divides by zero when id == 0: 0
    r = x % c                           # modulo zero gives x
    s = (c << 28) >> 27                 # i32 after promotion
    t = a >> (b & 63)                   # shift counts are masked to the width
    acc.value = u64(x) ^ y ^ u64(q) ^ u64(r)
    acc32.value = i32(s) + i32(t)
    return XDP_DROP if (x ^ q) & 1 else XDP_PASS


@xdp
def signed_arith(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    v = i8(ip4.ttl)                      # -128..127
    w = i16(ip4.id)
    z: i64 = i64(ip4.src) - 2147483648
    d = w // v                           # truncates toward zero; by zero gives 0
    m = w % v
    n = -v * 3
    acc32.value = i32(d) * 65536 + i32(m) + n
    acc.value = u64(z // -7) + u64(abs(w)) + u64(max(v, w, -5)) + u64(min(v, i8(3)))
    return XDP_DROP if z < 0 and d > -3 else XDP_PASS


@xdp
def float_ops(pkt: Packet) -> int:
    half = ratio.value
    size = float(pkt.len)
    scaled = size * half * 0.75 - 1.5
    per = scaled / 3                     # by an integer
    tenth = per / 10.0                   # by a constant: times its reciprocal
    ratio.value = half * 0.999 + 0.0001
    acc.value = u64(tenth * 1000.0)
    acc32.value = i32(-per) + i32(scaled > 40.0)
    if scaled >= 30.25 and tenth < 2.0:
        return XDP_DROP
    return XDP_PASS


@xdp
def branches(pkt: Packet) -> int:
    n = pkt.len
    if n < 60:
        kind = 1
    elif 60 <= n < 100:
        kind = 2
    elif n == 100 or n == 101:
        kind = 3
    else:
        kind = 4
    big = n > 200 and not (n % 2 == 0 or n % 3 == 0)
    small = n < 64 or n > 1000
    label = 7 if big else (5 if small else 9)
    acc.value += u64(kind * 100 + label)
    flag.value = big
    if 10 < kind * label < 30 < n:
        return XDP_TX
    return XDP_PASS


@xdp
def matching(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is not None:
        port = tcp.dport
    else:
        udp = pkt.udp
        if udp is None:
            return XDP_PASS
        port = udp.dport
    match port:
        case 22:
            return XDP_DROP
        case 80 | 443 | 8080:
            acc.value += 1
        case 53 if pkt.len > 100:
            return XDP_ABORTED
        case 53:
            acc.value += 2
        case _:
            acc.value += 3
    return XDP_PASS


@xdp
def loops(pkt: Packet) -> int:
    total: u32 = 0
    count = 0
    for i in range(16):
        b = pkt.payload[i]
        if b is None:
            break
        if b == 0:
            continue
        total += b * (i + 1)
        count += 1
    j = 0
    while bounded(j < count, 8):
        total ^= u32(j) << 3
        j += 1
    for k in range(10, 0, -3):
        total += k
    acc.value = total
    acc32.value = count
    return XDP_DROP if total % 5 == 0 else XDP_PASS


@xdp
def tuples_and_constants(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    hits = 0
    for limit in LIMITS:
        if udp.dport < limit:
            hits += 1
    acc.value = hits * SCALE + LIMITS[1]
    ip4 = pkt.ipv4
    if ip4 is not None and ip4.src == ip("10.0.0.1"):
        return XDP_TX
    if udp.sport in LIMITS or udp.dport not in (1, 2, 3):
        return XDP_DROP if hits > 2 else XDP_PASS
    return XDP_PASS


@inline
def mix(a: u32, b: u32) -> u32:
    h = a ^ (b << 5)
    if h & 1:
        return h * 3
    return h + 7


@inline
def classify(pkt: Packet) -> u32:
    if pkt.tcp is not None:
        return 6
    if pkt.udp is not None:
        return 17
    return 0


@inline
def note(x: u64) -> None:
    acc.value += x


@xdp
def helpers_inlined(pkt: Packet) -> int:
    kind = classify(pkt)
    h = mix(pkt.len, kind)
    h2 = mix(h, 99)
    note(u64(h2))
    return XDP_DROP if kind == 17 and h2 > 1000 else XDP_PASS


@xdp
def header_fields(pkt: Packet) -> int:
    h: u64 = 0
    eth = pkt.eth
    if eth is not None:
        h = h * 31 + eth.dst + eth.src + eth.type
    ip4 = pkt.ipv4
    if ip4 is not None:
        h = h * 31 + ip4.version + ip4.ihl + ip4.tos + ip4.len + ip4.id + ip4.flags + ip4.frag
        h = h * 31 + ip4.ttl + ip4.proto + ip4.chksum + ip4.src + ip4.dst
    ip6 = pkt.ipv6
    if ip6 is not None:
        h = h * 31 + ip6.version + ip6.tc + ip6.fl + ip6.plen + ip6.nh + ip6.hlim
        h = h * 31 + ip6.src_hi + ip6.src_lo + ip6.dst_hi + ip6.dst_lo
    tcp = pkt.tcp
    if tcp is not None:
        h = h * 31 + tcp.sport + tcp.dport + tcp.seq + tcp.ack + tcp.dataofs + tcp.flags + tcp.window
        h = h * 31 + tcp.chksum + tcp.urgptr
    udp = pkt.udp
    if udp is not None:
        h = h * 31 + udp.sport + udp.dport + udp.len + udp.chksum
    acc.value = h
    return XDP_DROP if h & 3 == 1 else XDP_PASS


@xdp
def payload_reads(pkt: Packet) -> int:
    rpc = pkt.payload.read(Rpc, 0)
    first = pkt.payload[0]
    last = pkt.payload[pkt.len - 60]
    score: u64 = 0
    if first is not None:
        score += first
    if last is not None:
        score += u64(last) << 8
    if rpc is None:
        acc.value = score
        return XDP_PASS
    acc.value = score + rpc.request_id + (u64(rpc.method) << 32)
    if rpc.magic == MAGIC and rpc.version == 1:
        return XDP_DROP
    return XDP_TX if rpc.method > 200 else XDP_PASS


@xdp
def hash_maps(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    port = udp.dport
    per_port[port] += pkt.len
    seen = per_port.get(port, 0)
    if port % 7 == 0:
        del per_port[port]
    if port % 5 == 0 and port in per_port:
        per_port[port] = 1
    got = per_port.get(port + 1)
    if got is not None and got > 100:
        return XDP_DROP
    return XDP_DROP if seen > 500 else XDP_PASS


@xdp
def lru_and_arrays(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    recent[ip4.src & 15] = ip4.dst
    slot = ip4.ttl & 7
    slots[slot] += 1
    slots[ip4.ttl] = slots[slot] + 1            # out of range when ttl > 7: nothing happens
    per_cpu[ip4.tos & 3] += 1
    old = recent.get(ip4.dst & 15, 0)
    return XDP_DROP if old == ip4.dst or slots[9] != 0 else XDP_PASS


@xdp
def struct_maps(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    dport: u16 = 0
    tcp = pkt.tcp
    if tcp is not None:
        dport = tcp.dport
    key = Flow(ip4.src & 0xFF, dport, ip4.proto)
    stats = flows.get(key, Stats(0, 0))
    flows[key] = Stats(packets=stats.packets + 1, last_len=pkt.len)
    if stats.packets >= 2:
        return XDP_DROP
    return XDP_PASS


@xdp
def globals_ops(pkt: Packet) -> int:
    acc.value += pkt.len
    acc.value -= 1
    acc32.value -= 3
    acc32.value *= 2
    flag.value = not flag.value
    ratio.value += 0.25
    if ratio.value > 10.0:
        ratio.value = 0.0
    return XDP_DROP if flag.value and acc32.value < -100 else XDP_PASS


@xdp
def int_division(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    big = i64(ip4.src) * 1000003 - 7          # up to ~4e15: far beyond the float range before dividing
    small = i64(ip4.id) - 300                   # may be zero or negative
    ratio.value = big / 1000000000 - big / 4294967296
    per = pkt.len / small
    acc.value = u64(ratio.value) ^ u64(per * 1000.0)
    return XDP_DROP if per < 0.0 else XDP_PASS


@xdp
def randomness(pkt: Packet) -> int:
    r = randint(1, 6)
    acc.value += u64(r)
    t = now_ns()
    acc32.value = i32(t & 0xFFFF)
    if random() < 0.25:
        return XDP_DROP
    return XDP_PASS


DETERMINISTIC = [int_arith, signed_arith, float_ops, branches, matching, loops, tuples_and_constants,
                 helpers_inlined, header_fields, payload_reads, hash_maps, lru_and_arrays, struct_maps, globals_ops,
                 int_division]
WITH_HELPERS = [randomness]
