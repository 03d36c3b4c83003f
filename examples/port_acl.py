"""Port ACL: drop UDP and TCP packets sent to destination ports the operator has denied.

Ports AppNet's `firewall` / ACL element (appnet-org/compiler `examples/elements/echo_elements/firewall.appnet`,
notes §1.3)::

    state:
        acl: Map<string, string>
    init():
        set(acl, 'apple', 'Yes')
        set(acl, 'test', 'No')
    req(rpc):
        match get(acl, get(rpc, 'body')):
            Some(permission) => match permission:
                'Yes' => send(rpc, Down)
                'No'  => send(err('acl'), Up)
            None => send(rpc, Down)

How it maps to XDP:

- The key AppNet reads from the RPC body becomes the destination port of the UDP datagram or TCP segment
  (IPv4 or IPv6): the classic L4 firewall, which needs no payload parsing.
- The map of strings becomes `port_acl`, a `HashMap(u16, u8)` from port to verdict: `ALLOW` ('Yes') or
  `DENY` ('No'). A port missing from the map is allowed, as AppNet's `None` arm is. Frames without a
  UDP or TCP header pass.
- AppNet fills the map in `init()`; here the control plane does, from Python, while the program runs:
  `deny_port(23)`, `allow_port(23)`, or `port_acl[23] = DENY` directly. A denied packet is dropped
  (`XDP_DROP`, instead of an error reply) and counted in `denied_packets`.
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, HashMap, Packet, u8, u16, u64, xdp

ALLOW = 0
DENY = 1
"""Verdicts stored in `port_acl`."""

port_acl = HashMap(u16, u8, max_entries=1024)
"""Destination port -> ALLOW or DENY; ports not listed are allowed."""

denied_packets = Global(u64, 0)
"""Packets dropped because their destination port is denied."""


def deny_port(port: int) -> None:
    """Control plane: drop traffic to `port` from now on."""
    port_acl[port] = DENY


def allow_port(port: int) -> None:
    """Control plane: let traffic to `port` through (an explicit ALLOW entry)."""
    port_acl[port] = ALLOW


@xdp
def port_acl_filter(pkt: Packet) -> int:
    if pkt.tcp is not None:
        dport = pkt.tcp.dport
    elif pkt.udp is not None:
        dport = pkt.udp.dport
    else:
        return XDP_PASS

    if port_acl.get(dport, ALLOW) == DENY:
        denied_packets.value += 1
        return XDP_DROP
    return XDP_PASS
