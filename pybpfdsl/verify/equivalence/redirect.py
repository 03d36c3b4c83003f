"""Where an XDP_REDIRECT goes, as one number both the encoding and the replay compute.

The kernel keeps a per-CPU redirect state that bpf_redirect and bpf_redirect_map set and the return of
XDP_REDIRECT uses (net/core/filter.c, `bpf_redirect_info`): the target and the last index. A target is
`kind << 64 | qualifier << 32 | number`:

- a device (kind 0): bpf_redirect's ifindex, or a DEVMAP/DEVMAP_HASH element's ifindex; the qualifier
  is the program the element runs on the device (0: none);
- a CPU (kind 1): a CPUMAP's key; the qualifier is the element's program;
- an AF_XDP socket (kind 2): an XSKMAP's key; the qualifier names the map.

A bpf_redirect_map that misses (and does not abort) leaves the state as bpf_redirect of the last index
would: the device of that number. The encoding keeps the state as `STATE_BITS` bits, the target above
the index; the replay computes the same target from the element the interpreter found.
"""

from __future__ import annotations

import zlib
from typing import Final

import z3

from pybpfdsl.bpf.abi import MapType
from pybpfdsl.verify.equivalence.symbolic_state import REDIRECT_STATE_BITS, MapShape, Term

DEVICE, CPU, SOCKET = 0, 1, 2
TARGET_BITS: Final = 66
STATE_BITS: Final = REDIRECT_STATE_BITS
assert STATE_BITS == TARGET_BITS + 32
_DEVICE_MAPS = frozenset({MapType.DEVMAP, MapType.DEVMAP_HASH})


def _kind(map_type: int) -> int:
    return DEVICE if map_type in _DEVICE_MAPS else CPU if map_type == MapType.CPUMAP else SOCKET


def _socket_map(name: str) -> int:
    """The qualifier of an XSKMAP's targets: its name's CRC (the same in both objects compared)."""
    return zlib.crc32(name.encode())


def element_target(map_type: int, name: str, key: int, value: bytes) -> int:
    """The target of a bpf_redirect_map that found `value` under `key` (its low 32 bits) in map `name`."""
    kind = _kind(map_type)
    program = int.from_bytes(value[4:8], "little") if len(value) >= 8 else 0
    if kind == DEVICE:
        return program << 32 | int.from_bytes(value[:4], "little")
    qualifier = program if kind == CPU else _socket_map(name)
    return kind << 64 | qualifier << 32 | (key & 0xFFFFFFFF)


def device_state(ifindex: Term) -> Term:
    """The state after bpf_redirect(`ifindex`) (32 bits): that device, index `ifindex`."""
    return z3.Concat(z3.BitVecVal(0, TARGET_BITS - 32), ifindex, ifindex)


def after_redirect_map(shape: MapShape, key: Term, value: Term, found: Term, state: Term) -> Term:
    """The state after a bpf_redirect_map through `shape` with `key` (32 bits) that did not abort: the
    element (`value`) when `found`, else the device numbered by the last index."""
    kind = _kind(shape.map_type)
    program = z3.Extract(63, 32, value) if shape.value_size >= 8 else z3.BitVecVal(0, 32)
    if kind == DEVICE:
        number, qualifier = z3.Extract(31, 0, value), program
    else:
        number = key
        qualifier = program if kind == CPU else z3.BitVecVal(_socket_map(shape.name), 32)
    element = z3.Concat(z3.BitVecVal(kind, 2), qualifier, number, key)
    return z3.If(found, element, device_state(index(state)))


def index(state: Term) -> Term:
    return z3.Extract(31, 0, state)


def target(state: Term) -> Term:
    return z3.Extract(STATE_BITS - 1, 32, state)
