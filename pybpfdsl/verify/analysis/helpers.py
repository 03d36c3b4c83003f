"""Signatures of the kernel helpers an XDP program may call: argument kinds and return kind.

Every call clobbers r1–r5 (they become uninitialised, as in the kernel) and sets r0 from the return
kind. The table covers what our compiler emits plus what small hand-written XDP programs use; a
helper not in it is rejected (we cannot check what we do not know), which is a precision loss, never
a safety one. Argument kinds follow the kernel's ``enum bpf_arg_type`` in spirit, not in name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["HELPER_SIGNATURES", "Arg", "HelperSig", "Ret"]


class Arg(enum.Enum):
    SCALAR = "scalar"  #: any initialised scalar
    MAP = "map"  #: a map pointer (lddw of a map)
    KEY = "key"  #: readable memory of the map's key size (stack, map value or packet)
    VALUE = "value"  #: readable memory of the map's value size
    MEM = "mem"  #: readable memory whose size is the next argument
    UNINIT_MEM = "uninit_mem"  #: writable memory whose size is the next argument (need not be initialised)
    SIZE = "size"  #: the size of the previous memory argument: a bounded scalar
    SIZE_OR_ZERO = "size_or_zero"
    CTX = "ctx"  #: the unmodified context pointer
    ANY = "any"  #: anything initialised


class Ret(enum.Enum):
    SCALAR = "scalar"
    U32 = "u32"  #: a scalar in [0, 2**32)
    MAP_VALUE_OR_NULL = "map_value_or_null"
    XDP_ACTION = "xdp_action"  #: an XDP action in [XDP_ABORTED, XDP_REDIRECT] (the redirect helpers in XDP)
    VOID = "void"  #: r0 is left uninitialised


@dataclass(frozen=True)
class HelperSig:
    name: str
    args: tuple[Arg, ...]
    ret: Ret
    changes_packet: bool = False
    """Invalidates every packet pointer (the packet may have moved): xdp_adjust_*."""


def _sig(name: str, ret: Ret, *args: Arg, changes_packet: bool = False) -> HelperSig:
    return HelperSig(name, args, ret, changes_packet)


HELPER_SIGNATURES: dict[int, HelperSig] = {
    1: _sig("bpf_map_lookup_elem", Ret.MAP_VALUE_OR_NULL, Arg.MAP, Arg.KEY),
    2: _sig("bpf_map_update_elem", Ret.SCALAR, Arg.MAP, Arg.KEY, Arg.VALUE, Arg.SCALAR),
    3: _sig("bpf_map_delete_elem", Ret.SCALAR, Arg.MAP, Arg.KEY),
    5: _sig("bpf_ktime_get_ns", Ret.SCALAR),
    6: _sig("bpf_trace_printk", Ret.SCALAR, Arg.MEM, Arg.SIZE),  # the kernel declares only the format args
    7: _sig("bpf_get_prandom_u32", Ret.U32),
    8: _sig("bpf_get_smp_processor_id", Ret.U32),
    23: _sig("bpf_redirect", Ret.XDP_ACTION, Arg.SCALAR, Arg.SCALAR),  # XDP_REDIRECT, or XDP_ABORTED
    28: _sig("bpf_csum_diff", Ret.SCALAR, Arg.MEM, Arg.SIZE_OR_ZERO, Arg.MEM, Arg.SIZE_OR_ZERO, Arg.SCALAR),
    42: _sig("bpf_get_numa_node_id", Ret.U32),
    44: _sig("bpf_xdp_adjust_head", Ret.SCALAR, Arg.CTX, Arg.SCALAR, changes_packet=True),
    51: _sig("bpf_redirect_map", Ret.XDP_ACTION, Arg.MAP, Arg.SCALAR, Arg.SCALAR),  # or flags' low bits
    54: _sig("bpf_xdp_adjust_meta", Ret.SCALAR, Arg.CTX, Arg.SCALAR, changes_packet=True),
    65: _sig("bpf_xdp_adjust_tail", Ret.SCALAR, Arg.CTX, Arg.SCALAR, changes_packet=True),
    118: _sig("bpf_jiffies64", Ret.SCALAR),
    125: _sig("bpf_ktime_get_boot_ns", Ret.SCALAR),
    130: _sig("bpf_ringbuf_output", Ret.SCALAR, Arg.MAP, Arg.MEM, Arg.SIZE, Arg.SCALAR),
    160: _sig("bpf_ktime_get_coarse_ns", Ret.SCALAR),
    188: _sig("bpf_xdp_get_buff_len", Ret.SCALAR, Arg.CTX),
    189: _sig("bpf_xdp_load_bytes", Ret.SCALAR, Arg.CTX, Arg.SCALAR, Arg.UNINIT_MEM, Arg.SIZE),
    190: _sig("bpf_xdp_store_bytes", Ret.SCALAR, Arg.CTX, Arg.SCALAR, Arg.MEM, Arg.SIZE),
    195: _sig("bpf_map_lookup_percpu_elem", Ret.MAP_VALUE_OR_NULL, Arg.MAP, Arg.KEY, Arg.SCALAR),
    208: _sig("bpf_ktime_get_tai_ns", Ret.SCALAR),
}
"""Helper id → signature."""

LOOKUP_MAP_TYPES = frozenset({1, 2, 5, 6, 9, 10})
"""hash, array, percpu hash/array, LRU hash, LRU percpu hash: map types whose lookups give values."""
RINGBUF_MAP_TYPE = 27
