"""Signatures of the kernel helpers an XDP program may call: argument kinds and return kind.

Every call clobbers r1–r5 (they become uninitialised, as in the kernel) and sets r0 from the return
kind. The table covers what our compiler emits plus what small hand-written XDP programs use; a
helper not in it is rejected (we cannot check what we do not know), which is a precision loss, never
a safety one. Argument kinds follow the kernel's ``enum bpf_arg_type`` in spirit, not in name.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

__all__ = ["HELPER_MAP_TYPES", "HELPER_SIGNATURES", "MAP_TYPE_NAMES", "NO_VALUE_ACCESS_MAP_TYPES", "Arg",
           "HelperSig", "Ret", "map_type_name"]


class Arg(enum.Enum):
    SCALAR = "scalar"  #: any initialised scalar
    MAP = "map"  #: a map pointer (lddw of a map)
    KEY = "key"  #: readable memory of the map's key size (stack, map value or packet)
    VALUE = "value"  #: readable memory of the map's value size
    MEM = "mem"  #: readable memory whose size is the next argument
    UNINIT_MEM = "uninit_mem"  #: writable memory whose size is the next argument (need not be initialised)
    RW_MEM = "rw_mem"  #: memory the helper reads and writes (initialised, writable; its contents unknown after)
    SIZE = "size"  #: the size of the previous memory argument: a bounded scalar
    SIZE_OR_ZERO = "size_or_zero"
    CTX = "ctx"  #: the unmodified context pointer
    ANY = "any"  #: anything initialised
    CALLBACK = "callback"  #: a function of the program (``lddw`` of a function: BPF_PSEUDO_FUNC)
    STACK_OR_NULL = "stack_or_null"  #: a pointer into the stack (at a constant offset), or 0


class Ret(enum.Enum):
    SCALAR = "scalar"
    U32 = "u32"  #: a scalar in [0, 2**32)
    MAP_VALUE_OR_NULL = "map_value_or_null"
    VOID = "void"  #: r0 is left uninitialised
    TAIL_CALL = "tail_call"  #: void; execution continues after the call only when the tail call fails


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
    12: _sig("bpf_tail_call", Ret.TAIL_CALL, Arg.CTX, Arg.MAP, Arg.SCALAR),
    23: _sig("bpf_redirect", Ret.SCALAR, Arg.SCALAR, Arg.SCALAR),  # an action, but the kernel types it any number
    25: _sig("bpf_perf_event_output", Ret.SCALAR, Arg.CTX, Arg.MAP, Arg.SCALAR, Arg.MEM, Arg.SIZE_OR_ZERO),
    28: _sig("bpf_csum_diff", Ret.SCALAR, Arg.MEM, Arg.SIZE_OR_ZERO, Arg.MEM, Arg.SIZE_OR_ZERO, Arg.SCALAR),
    42: _sig("bpf_get_numa_node_id", Ret.U32),
    44: _sig("bpf_xdp_adjust_head", Ret.SCALAR, Arg.CTX, Arg.SCALAR, changes_packet=True),
    51: _sig("bpf_redirect_map", Ret.SCALAR, Arg.MAP, Arg.SCALAR, Arg.SCALAR),  # likewise
    # 54, bpf_xdp_adjust_meta: left out, this machine's kernel (6.18) refuses it in XDP programs ("program of
    # this type cannot use helper"), raw or through libbpf (tests/verify/analysis/test_helpers_xdp.py).
    69: _sig("bpf_fib_lookup", Ret.SCALAR, Arg.CTX, Arg.RW_MEM, Arg.SIZE, Arg.SCALAR),
    65: _sig("bpf_xdp_adjust_tail", Ret.SCALAR, Arg.CTX, Arg.SCALAR, changes_packet=True),
    118: _sig("bpf_jiffies64", Ret.SCALAR),
    125: _sig("bpf_ktime_get_boot_ns", Ret.SCALAR),
    130: _sig("bpf_ringbuf_output", Ret.SCALAR, Arg.MAP, Arg.MEM, Arg.SIZE, Arg.SCALAR),
    160: _sig("bpf_ktime_get_coarse_ns", Ret.SCALAR),
    188: _sig("bpf_xdp_get_buff_len", Ret.SCALAR, Arg.CTX),
    189: _sig("bpf_xdp_load_bytes", Ret.SCALAR, Arg.CTX, Arg.SCALAR, Arg.UNINIT_MEM, Arg.SIZE),
    190: _sig("bpf_xdp_store_bytes", Ret.SCALAR, Arg.CTX, Arg.SCALAR, Arg.MEM, Arg.SIZE),
    181: _sig("bpf_loop", Ret.SCALAR, Arg.SCALAR, Arg.CALLBACK, Arg.STACK_OR_NULL, Arg.SCALAR),
    195: _sig("bpf_map_lookup_percpu_elem", Ret.MAP_VALUE_OR_NULL, Arg.MAP, Arg.KEY, Arg.SCALAR),
    208: _sig("bpf_ktime_get_tai_ns", Ret.SCALAR),
}
"""Helper id → signature."""

HASH, ARRAY, PROG_ARRAY, PERF_EVENT_ARRAY, PERCPU_HASH, PERCPU_ARRAY = 1, 2, 3, 4, 5, 6
LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE, ARRAY_OF_MAPS, HASH_OF_MAPS = 9, 10, 11, 12, 13
DEVMAP, CPUMAP, XSKMAP, DEVMAP_HASH, RINGBUF = 14, 16, 17, 25, 27

MAP_TYPE_NAMES = {
    HASH: "hash", ARRAY: "array", PROG_ARRAY: "prog_array", PERF_EVENT_ARRAY: "perf_event_array",
    PERCPU_HASH: "percpu_hash", PERCPU_ARRAY: "percpu_array", LRU_HASH: "lru_hash", LRU_PERCPU_HASH: "lru_percpu_hash",
    LPM_TRIE: "lpm_trie", ARRAY_OF_MAPS: "array_of_maps", HASH_OF_MAPS: "hash_of_maps", DEVMAP: "devmap",
    CPUMAP: "cpumap", XSKMAP: "xskmap", DEVMAP_HASH: "devmap_hash", RINGBUF: "ringbuf",
}


def map_type_name(map_type: int) -> str:
    return MAP_TYPE_NAMES.get(map_type, f"type {map_type}")


_DATA_MAPS = frozenset({HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE})
_REDIRECT_MAPS = frozenset({DEVMAP, DEVMAP_HASH, CPUMAP, XSKMAP})

HELPER_MAP_TYPES: dict[int, frozenset[int]] = {
    1: _DATA_MAPS | {DEVMAP, DEVMAP_HASH, XSKMAP, ARRAY_OF_MAPS, HASH_OF_MAPS},  # not cpumap, prog/perf arrays
    2: _DATA_MAPS,  # devmaps are read-only for programs ("write into map forbidden"), xsk/cpu maps refuse
    3: _DATA_MAPS,
    12: frozenset({PROG_ARRAY}),
    25: frozenset({PERF_EVENT_ARRAY}),
    51: _REDIRECT_MAPS,
    130: frozenset({RINGBUF}),
    195: frozenset({PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH}),
}
"""Helper id → the map types the kernel lets it take (its ``check_map_func_compatibility``, both
directions), as this machine's kernel answered for an XDP program (tests/verify/analysis/test_map_types.py)."""

INNER_MAP_TAG = 1 << 16
"""A lookup in a map of maps gives a ``MapValueOrNull`` whose map is the inner map's definition with this
added to its type; its non-NULL edge is that map's pointer (``MapPtr``), usable as a map argument only."""

NO_VALUE_ACCESS_MAP_TYPES = frozenset({DEVMAP, DEVMAP_HASH, XSKMAP})
"""Map types whose lookup gives a pointer-or-NULL the program may test but whose target is not modelled
(a read-only device entry, an ``xdp_sock``): every access through it is refused."""

MAP_LOOKUP_ELEM = 1
NEVER_NULL_MAP_TYPES = frozenset({ARRAY, PERCPU_ARRAY})
"""Map types whose lookup with a constant key below ``max_entries`` the kernel types as never NULL."""


def _kernel_release(release: str) -> tuple[int, int]:
    """(major, minor) of a kernel release string such as ``6.18.2-amd64``; (0, 0) when unreadable."""
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1].split("-")[0] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return 0, 0


CONSTANT_KEY_LOOKUPS = _kernel_release(os.uname().release) >= (6, 14)
"""Whether to model the kernel's never-NULL lookups with a constant key (``get_constant_map_key``, since
6.14). We model the kernel this runs on: an older one refuses the dereference without a NULL check, and
accepting it there would be an unsafe accept; a newer kernel without it is impossible, a backport only
costs a false alarm. Tests change it to check both kernels' rules."""

LOOKUP_MAP_TYPES = HELPER_MAP_TYPES[1]
"""Map types whose lookups give a pointer (value, device entry, socket) or NULL."""
RINGBUF_MAP_TYPE = RINGBUF
CALLBACK_TYPE = -2
"""The map type of the ``MapPtr`` a function's address (``lddw`` BPF_PSEUDO_FUNC) is loaded as: a value
nothing but a callback argument accepts."""
BPF_LOOP = 181
