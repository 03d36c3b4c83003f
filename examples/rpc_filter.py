"""RPC filter: drop malformed RPC requests and requests for methods the operator has blocked.

Ports the payload-reading variants of AppNet's firewall / ACL element (`firewallheader.appnet`, notes
§1.3), which look up a field of the RPC in an ACL map, to a fixed-layout RPC protocol an XDP program can
parse: every request is one UDP datagram to `RPC_PORT` whose payload starts with `RpcHeader`.

    offset  size  field
    0       2     magic       RPC_MAGIC (0x5250, "RP")
    2       1     version     RPC_VERSION (1)
    3       1     method      which remote procedure is called
    4       4     request_id  chosen by the client, echoed in the response

All fields are big-endian on the wire; `pkt.payload.read(RpcHeader, 0)` decodes them (and gives `None`
when the datagram is too short to hold the header).

How it maps to XDP:

- Datagrams to `RPC_PORT` that are too short, carry the wrong magic or an unknown version are dropped
  and counted in `malformed_requests`: the service would reject them anyway.
- `blocked_methods` is AppNet's ACL map, keyed by the method number instead of a string. The control
  plane blocks a method by adding it (`blocked_methods[m] = 1`, or `block_method(m)`) and unblocks it by
  deleting it; requests for a blocked method are dropped (instead of an error reply) and counted in
  `blocked_requests`. Methods not in the map are allowed, as in AppNet.
- Everything that is not a UDP datagram to `RPC_PORT` (responses, other services) passes.
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, HashMap, Packet, Struct, u8, u16, u32, u64, xdp

RPC_PORT = 7000
RPC_MAGIC = 0x5250
RPC_VERSION = 1


class RpcHeader(Struct):
    magic: u16
    version: u8
    method: u8
    request_id: u32


blocked_methods = HashMap(u8, u8, max_entries=256)
"""Methods whose requests are dropped (the value is not used; presence blocks)."""

malformed_requests = Global(u64, 0)
"""Datagrams to RPC_PORT without a valid RpcHeader."""

blocked_requests = Global(u64, 0)
"""Requests dropped because their method is blocked."""


def block_method(method: int) -> None:
    """Control plane: drop requests for `method` from now on."""
    blocked_methods[method] = 1


def unblock_method(method: int) -> None:
    """Control plane: let requests for `method` through again."""
    if method in blocked_methods:
        del blocked_methods[method]


@xdp
def rpc_filter(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None or udp.dport != RPC_PORT:
        return XDP_PASS

    header = pkt.payload.read(RpcHeader, 0)
    if header is None or header.magic != RPC_MAGIC or header.version != RPC_VERSION:
        malformed_requests.value += 1
        return XDP_DROP

    if header.method in blocked_methods:
        blocked_requests.value += 1
        return XDP_DROP
    return XDP_PASS
