"""VLAN tagging: a node's pods reach their tenant's VLAN on the trunk; frames from the trunk lose their tag.

A mesh node serving several tenants keeps their traffic apart on the wire by 802.1Q VLANs, while the pods
themselves send and receive plain untagged Ethernet. This program does the tagging in XDP, both ways:

- **Push.** An untagged IPv4 frame whose source address is a pod listed in `vlan_of_pod` gets that
  tenant's tag (VLAN id, and the priority in `priority`) pushed after its MAC addresses, and leaves on
  the trunk interface (`redirect(trunk.value)`). The frame grows by 4 bytes at the front
  (`pkt.adjust_head(-4)`) and the two MAC addresses are written in front of the tag again.
- **Pop.** A tagged frame whose VLAN id is one of this node's (`local_vlans`) loses its tag
  (`pkt.adjust_head(4)`) and goes to the host's stack untagged (`XDP_PASS`). Its headers are parsed
  afresh after the move: the IPv4 header behind the tag is visible again, and the per-VLAN counters
  count the untagged frame's length.
- Everything else passes untouched: other VLANs, frames from unlisted sources, IPv6, ARP.

The tag's own bytes: in a tagged frame the tag sits where an untagged frame has its ethertype, followed
by the inner ethertype. The language does not let a program write `eth.type` (it decides where the
headers are), so the push writes the tag into the bytes that *become* it once the frame grows: the
last four bytes of the source MAC address, before the move. (The pop needs no such write: with the
front 4 bytes gone, the inner ethertype is where an Ethernet header's type belongs.)

Control plane (from Python, while the program runs): `tag_pod(ip("10.1.0.7"), 42)`, `serve_vlan(42)`,
`trunk.value = socket.if_nametoindex("eth1")`.
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, HashMap, Packet, redirect, u8, u16, u32, u64, xdp

ETH_P_8021Q = 0x8100
"""The ethertype of a tagged frame (the tag protocol identifier)."""
VLAN_TAG_LEN = 4
"""TPID (2 bytes) and TCI (2 bytes): priority (3 bits), drop-eligible (1 bit), VLAN id (12 bits)."""
VID_MASK = 0x0FFF

vlan_of_pod = HashMap(u32, u16, max_entries=4096)
"""Pod IPv4 address -> its tenant's VLAN id (1-4094); pods not listed send untagged."""

local_vlans = HashMap(u16, u8, max_entries=4096)
"""VLAN ids this node serves: their frames arrive tagged on the trunk and are untagged here (value 1)."""

trunk = Global(u32, 0)
"""The ifindex of the trunk interface, where tagged frames leave."""

priority = Global(u8, 0)
"""The 802.1p priority (0-7) of the tags pushed."""

tagged = Global(u64, 0)
"""Frames given a tag and sent to the trunk."""

untagged = Global(u64, 0)
"""Frames whose tag was removed."""

vlan_bytes = HashMap(u16, u64, max_entries=4096)
"""VLAN id -> bytes of the frames untagged from it (as the host stack sees them: without the tag)."""


def tag_pod(address: int, vlan: int) -> None:
    """Control plane: frames from the pod at IPv4 `address` go to the trunk tagged with `vlan`."""
    vlan_of_pod[address] = vlan


def serve_vlan(vlan: int) -> None:
    """Control plane: tagged frames of `vlan` arriving here are this node's; untag them."""
    local_vlans[vlan] = 1


@xdp
def vlan_tagging(pkt: Packet) -> int:
    e = pkt.eth
    if e is None:
        return XDP_PASS
    dst = e.dst
    src = e.src
    if e.type == ETH_P_8021Q:
        tci_high = pkt.payload[0]
        tci_low = pkt.payload[1]
        if tci_high is None or tci_low is None or pkt.payload[3] is None:  # a tag and an inner type
            return XDP_PASS
        vid = ((u16(tci_high) << 8) | tci_low) & VID_MASK
        if local_vlans.get(vid, 0) == 0:
            return XDP_PASS
        if not pkt.adjust_head(VLAN_TAG_LEN):
            return XDP_DROP
        e = pkt.eth  # parsed afresh: the bytes in front of the inner ethertype
        if e is None:
            return XDP_DROP
        e.dst = dst
        e.src = src
        untagged.value += 1
        vlan_bytes[vid] = vlan_bytes.get(vid, 0) + pkt.len
        return XDP_PASS

    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    vid = vlan_of_pod.get(ip4.src, 0) & VID_MASK
    if vid == 0:
        return XDP_PASS
    tci = (u16(priority.value & 7) << 13) | vid
    # Bytes 8-11 of the frame become bytes 12-15 once it grows by 4 at the front: the tag.
    e.src = (src & 0xFFFF00000000) | (ETH_P_8021Q << 16) | tci
    if not pkt.adjust_head(-VLAN_TAG_LEN):
        return XDP_DROP
    e = pkt.eth  # parsed afresh: four bytes earlier
    if e is None:
        return XDP_DROP
    e.dst = dst
    e.src = src
    tagged.value += 1
    return redirect(trunk.value)
