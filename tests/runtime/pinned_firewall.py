"""A program whose state another process reads and changes through its pin (test_pinned_state.py)."""

from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, Global, HashMap, Packet, u8, u32, u64, xdp
from pybpfdsl.lang.lpm_trie import Ip4Prefix, LpmTrie

blocked = LpmTrie(u32, u32, 32)
seen = HashMap(u32, u64, 16)
limit = Global(u32, 3)
drops = Global(u64, 0)
gateway = Global(u32, 0)


@xdp
def pinned_fw(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    a = ip4.src
    seen[a] += 1
    if blocked.get(Ip4Prefix(32, u8(a >> 24), u8(a >> 16), u8(a >> 8), u8(a)), 0) == 1 \
            or seen.get(a, 0) > limit.value or a == gateway.value:
        drops.value += 1
        return XDP_DROP
    return XDP_PASS
