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

from pybpfdsl.bpf.abi import PERCPU_MAP_TYPES, Helper, MapType, helper_arity, map_type_name

__all__ = ["HELPER_MAP_TYPES", "HELPER_SIGNATURES", "NO_VALUE_ACCESS_MAP_TYPES", "Arg",
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
    helper: Helper
    args: tuple[Arg, ...]
    ret: Ret
    changes_packet: bool = False
    """Invalidates every packet pointer (the packet may have moved): xdp_adjust_*."""

    @property
    def name(self) -> str:
        return self.helper.kernel_name


def _sig(helper: Helper, ret: Ret, *args: Arg, changes_packet: bool = False) -> HelperSig:
    assert len(args) == helper_arity(helper), helper  # the argument kinds refine the kernel's prototype
    return HelperSig(helper, args, ret, changes_packet)


HELPER_SIGNATURES: dict[int, HelperSig] = {sig.helper: sig for sig in (
    _sig(Helper.MAP_LOOKUP_ELEM, Ret.MAP_VALUE_OR_NULL, Arg.MAP, Arg.KEY),
    _sig(Helper.MAP_UPDATE_ELEM, Ret.SCALAR, Arg.MAP, Arg.KEY, Arg.VALUE, Arg.SCALAR),
    _sig(Helper.MAP_DELETE_ELEM, Ret.SCALAR, Arg.MAP, Arg.KEY),
    _sig(Helper.KTIME_GET_NS, Ret.SCALAR),
    _sig(Helper.TRACE_PRINTK, Ret.SCALAR, Arg.MEM, Arg.SIZE),  # the kernel declares only the format args
    _sig(Helper.GET_PRANDOM_U32, Ret.U32),
    _sig(Helper.GET_SMP_PROCESSOR_ID, Ret.U32),
    _sig(Helper.TAIL_CALL, Ret.TAIL_CALL, Arg.CTX, Arg.MAP, Arg.SCALAR),
    # an action, but the kernel types it any number
    _sig(Helper.REDIRECT, Ret.SCALAR, Arg.SCALAR, Arg.SCALAR),
    _sig(Helper.PERF_EVENT_OUTPUT, Ret.SCALAR, Arg.CTX, Arg.MAP, Arg.SCALAR, Arg.MEM, Arg.SIZE_OR_ZERO),
    _sig(Helper.CSUM_DIFF, Ret.SCALAR, Arg.MEM, Arg.SIZE_OR_ZERO, Arg.MEM, Arg.SIZE_OR_ZERO, Arg.SCALAR),
    _sig(Helper.GET_NUMA_NODE_ID, Ret.U32),
    _sig(Helper.XDP_ADJUST_HEAD, Ret.SCALAR, Arg.CTX, Arg.SCALAR, changes_packet=True),
    _sig(Helper.REDIRECT_MAP, Ret.SCALAR, Arg.MAP, Arg.SCALAR, Arg.SCALAR),  # likewise
    # bpf_xdp_adjust_meta: left out, this machine's kernel (6.18) refuses it in XDP programs ("program of
    # this type cannot use helper"), raw or through libbpf (tests/verify/analysis/test_helpers_xdp.py).
    _sig(Helper.FIB_LOOKUP, Ret.SCALAR, Arg.CTX, Arg.RW_MEM, Arg.SIZE, Arg.SCALAR),
    _sig(Helper.XDP_ADJUST_TAIL, Ret.SCALAR, Arg.CTX, Arg.SCALAR, changes_packet=True),
    _sig(Helper.JIFFIES64, Ret.SCALAR),
    _sig(Helper.KTIME_GET_BOOT_NS, Ret.SCALAR),
    _sig(Helper.RINGBUF_OUTPUT, Ret.SCALAR, Arg.MAP, Arg.MEM, Arg.SIZE, Arg.SCALAR),
    _sig(Helper.KTIME_GET_COARSE_NS, Ret.SCALAR),
    _sig(Helper.XDP_GET_BUFF_LEN, Ret.SCALAR, Arg.CTX),
    _sig(Helper.XDP_LOAD_BYTES, Ret.SCALAR, Arg.CTX, Arg.SCALAR, Arg.UNINIT_MEM, Arg.SIZE),
    _sig(Helper.XDP_STORE_BYTES, Ret.SCALAR, Arg.CTX, Arg.SCALAR, Arg.MEM, Arg.SIZE),
    _sig(Helper.LOOP, Ret.SCALAR, Arg.SCALAR, Arg.CALLBACK, Arg.STACK_OR_NULL, Arg.SCALAR),
    _sig(Helper.MAP_LOOKUP_PERCPU_ELEM, Ret.MAP_VALUE_OR_NULL, Arg.MAP, Arg.KEY, Arg.SCALAR),
    _sig(Helper.KTIME_GET_TAI_NS, Ret.SCALAR),
)}
"""Helper id → signature."""

_M = MapType

_DATA_MAPS = frozenset({_M.HASH, _M.ARRAY, _M.PERCPU_HASH, _M.PERCPU_ARRAY, _M.LRU_HASH, _M.LRU_PERCPU_HASH,
                        _M.LPM_TRIE})
_REDIRECT_MAPS = frozenset({_M.DEVMAP, _M.DEVMAP_HASH, _M.CPUMAP, _M.XSKMAP})

HELPER_MAP_TYPES: dict[int, frozenset[MapType]] = {
    # not cpumap, prog/perf arrays
    Helper.MAP_LOOKUP_ELEM: _DATA_MAPS | {_M.DEVMAP, _M.DEVMAP_HASH, _M.XSKMAP, _M.ARRAY_OF_MAPS, _M.HASH_OF_MAPS},
    # devmaps are read-only for programs ("write into map forbidden"), xsk/cpu maps refuse
    Helper.MAP_UPDATE_ELEM: _DATA_MAPS,
    Helper.MAP_DELETE_ELEM: _DATA_MAPS,
    Helper.TAIL_CALL: frozenset({_M.PROG_ARRAY}),
    Helper.PERF_EVENT_OUTPUT: frozenset({_M.PERF_EVENT_ARRAY}),
    Helper.REDIRECT_MAP: _REDIRECT_MAPS,
    Helper.RINGBUF_OUTPUT: frozenset({_M.RINGBUF}),
    Helper.MAP_LOOKUP_PERCPU_ELEM: PERCPU_MAP_TYPES,
}
"""Helper id → the map types the kernel lets it take (its ``check_map_func_compatibility``, both
directions), as this machine's kernel answered for an XDP program (tests/verify/analysis/test_map_types.py)."""

INNER_MAP_TAG = 1 << 16
"""A lookup in a map of maps gives a ``MapValueOrNull`` whose map is the inner map's definition with this
added to its type; its non-NULL edge is that map's pointer (``MapPtr``), usable as a map argument only."""

NO_VALUE_ACCESS_MAP_TYPES = frozenset({_M.DEVMAP, _M.DEVMAP_HASH, _M.XSKMAP})
"""Map types whose lookup gives a pointer-or-NULL the program may test but whose target is not modelled
(a read-only device entry, an ``xdp_sock``): every access through it is refused."""

MAP_LOOKUP_ELEM = Helper.MAP_LOOKUP_ELEM
NEVER_NULL_MAP_TYPES = frozenset({_M.ARRAY, _M.PERCPU_ARRAY})
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

LOOKUP_MAP_TYPES = HELPER_MAP_TYPES[Helper.MAP_LOOKUP_ELEM]
"""Map types whose lookups give a pointer (value, device entry, socket) or NULL."""
RINGBUF_MAP_TYPE = _M.RINGBUF
CALLBACK_TYPE = -2
"""The map type of the ``MapPtr`` a function's address (``lddw`` BPF_PSEUDO_FUNC) is loaded as: a value
nothing but a callback argument accepts."""
BPF_LOOP = Helper.LOOP
