"""The kernel's BPF ABI for XDP, written once: helper ids and prototypes, map types, XDP actions, the
`struct xdp_md` layout, flag values and the fixed limits.

Every room that needs one of these numbers imports it from here (rooms that may not import `bpf`, `lang`
and `ir`, keep their user-facing names and a test checks they agree). The values are the kernel's
`include/uapi/linux/bpf.h`; tests/bpf/test_abi.py checks them against the system's copy of that header.
The enums are IntEnums so a value prints with its name and still compares equal to the raw number an
instruction or a map definition carries.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "ARRAY_MAP_TYPES",
    "BPF_COMPLEXITY_LIMIT_INSNS",
    "BPF_MAXINSNS",
    "HELPER_PROTOTYPES",
    "LRU_MAP_TYPES",
    "PERCPU_MAP_TYPES",
    "REQUIRED_MAP_FLAGS",
    "STACK_SIZE",
    "XDP_MD_FIELD_SIZE",
    "XDP_MD_SIZE",
    "Helper",
    "MapFlag",
    "MapType",
    "Prototype",
    "RedirectFlag",
    "RingbufFlag",
    "UpdateFlag",
    "XdpAction",
    "XdpMd",
    "helper_arity",
    "map_type_name",
]


class Helper(enum.IntEnum):
    """Helper function ids (``BPF_FUNC_*``, the position in ``__BPF_FUNC_MAPPER``); the member name,
    lower-cased, is the kernel's name without ``bpf_``. The common subset, not every helper."""

    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    PROBE_READ = 4
    KTIME_GET_NS = 5
    TRACE_PRINTK = 6
    GET_PRANDOM_U32 = 7
    GET_SMP_PROCESSOR_ID = 8
    SKB_STORE_BYTES = 9
    L3_CSUM_REPLACE = 10
    L4_CSUM_REPLACE = 11
    TAIL_CALL = 12
    CLONE_REDIRECT = 13
    GET_CURRENT_PID_TGID = 14
    GET_CURRENT_UID_GID = 15
    GET_CURRENT_COMM = 16
    REDIRECT = 23
    PERF_EVENT_OUTPUT = 25
    SKB_LOAD_BYTES = 26
    GET_STACKID = 27
    CSUM_DIFF = 28
    GET_HASH_RECALC = 34
    GET_CURRENT_TASK = 35
    SKB_PULL_DATA = 39
    CSUM_UPDATE = 40
    GET_NUMA_NODE_ID = 42
    XDP_ADJUST_HEAD = 44
    PROBE_READ_STR = 45
    REDIRECT_MAP = 51
    XDP_ADJUST_META = 54
    XDP_ADJUST_TAIL = 65
    GET_STACK = 67
    FIB_LOOKUP = 69
    SK_LOOKUP_TCP = 84
    SK_LOOKUP_UDP = 85
    SK_RELEASE = 86
    MAP_PUSH_ELEM = 87
    MAP_POP_ELEM = 88
    MAP_PEEK_ELEM = 89
    SPIN_LOCK = 93
    SPIN_UNLOCK = 94
    SKC_LOOKUP_TCP = 99
    TCP_CHECK_SYNCOOKIE = 100
    TCP_GEN_SYNCOOKIE = 110
    PROBE_READ_USER = 112
    PROBE_READ_KERNEL = 113
    PROBE_READ_USER_STR = 114
    PROBE_READ_KERNEL_STR = 115
    JIFFIES64 = 118
    XDP_OUTPUT = 121
    KTIME_GET_BOOT_NS = 125
    RINGBUF_OUTPUT = 130
    RINGBUF_RESERVE = 131
    RINGBUF_SUBMIT = 132
    RINGBUF_DISCARD = 133
    RINGBUF_QUERY = 134
    KTIME_GET_COARSE_NS = 160
    CHECK_MTU = 163
    FOR_EACH_MAP_ELEM = 164
    SNPRINTF = 165
    TIMER_INIT = 169
    TIMER_SET_CALLBACK = 170
    TIMER_START = 171
    TIMER_CANCEL = 172
    LOOP = 181
    STRNCMP = 182
    XDP_GET_BUFF_LEN = 188
    XDP_LOAD_BYTES = 189
    XDP_STORE_BYTES = 190
    MAP_LOOKUP_PERCPU_ELEM = 195
    KTIME_GET_TAI_NS = 208


    @property
    def kernel_name(self) -> str:
        """``bpf_map_lookup_elem``."""
        return f"bpf_{self.name.lower()}"


@dataclass(frozen=True)
class Prototype:
    """A helper's C prototype as the header documents it: return type and parameters (type and name)."""

    ret: str
    params: tuple[str, ...]
    variadic: bool = False
    """Further arguments after `params` (bpf_trace_printk's format arguments)."""

    def text(self, helper: Helper) -> str:
        """The prototype as written in ``linux/bpf.h``'s helper descriptions."""
        params = list(self.params) + (["..."] if self.variadic else [])
        sep = "" if self.ret.endswith("*") else " "
        return f"{self.ret}{sep}{helper.kernel_name}({', '.join(params) or 'void'})"


def _proto(ret: str, *params: str, variadic: bool = False) -> Prototype:
    return Prototype(ret, params, variadic)


_XDP = "struct xdp_buff *xdp_md"
HELPER_PROTOTYPES: Mapping[Helper, Prototype] = MappingProxyType({
    Helper.MAP_LOOKUP_ELEM: _proto("void *", "struct bpf_map *map", "const void *key"),
    Helper.MAP_UPDATE_ELEM: _proto("long", "struct bpf_map *map", "const void *key", "const void *value",
                                   "u64 flags"),
    Helper.MAP_DELETE_ELEM: _proto("long", "struct bpf_map *map", "const void *key"),
    Helper.KTIME_GET_NS: _proto("u64"),
    Helper.TRACE_PRINTK: _proto("long", "const char *fmt", "u32 fmt_size", variadic=True),
    Helper.GET_PRANDOM_U32: _proto("u32"),
    Helper.GET_SMP_PROCESSOR_ID: _proto("u32"),
    Helper.TAIL_CALL: _proto("long", "void *ctx", "struct bpf_map *prog_array_map", "u32 index"),
    Helper.REDIRECT: _proto("long", "u32 ifindex", "u64 flags"),
    Helper.PERF_EVENT_OUTPUT: _proto("long", "void *ctx", "struct bpf_map *map", "u64 flags", "void *data",
                                     "u64 size"),
    Helper.CSUM_DIFF: _proto("s64", "__be32 *from", "u32 from_size", "__be32 *to", "u32 to_size",
                             "__wsum seed"),
    Helper.GET_NUMA_NODE_ID: _proto("long"),
    Helper.XDP_ADJUST_HEAD: _proto("long", _XDP, "int delta"),
    Helper.REDIRECT_MAP: _proto("long", "struct bpf_map *map", "u32 key", "u64 flags"),
    Helper.XDP_ADJUST_META: _proto("long", _XDP, "int delta"),
    Helper.XDP_ADJUST_TAIL: _proto("long", _XDP, "int delta"),
    Helper.FIB_LOOKUP: _proto("long", "void *ctx", "struct bpf_fib_lookup *params", "int plen", "u32 flags"),
    Helper.JIFFIES64: _proto("u64"),
    Helper.KTIME_GET_BOOT_NS: _proto("u64"),
    Helper.RINGBUF_OUTPUT: _proto("long", "void *ringbuf", "void *data", "u64 size", "u64 flags"),
    Helper.KTIME_GET_COARSE_NS: _proto("u64"),
    Helper.LOOP: _proto("long", "u32 nr_loops", "void *callback_fn", "void *callback_ctx", "u64 flags"),
    Helper.XDP_GET_BUFF_LEN: _proto("u64", _XDP),
    Helper.XDP_LOAD_BYTES: _proto("long", _XDP, "u32 offset", "void *buf", "u32 len"),
    Helper.XDP_STORE_BYTES: _proto("long", _XDP, "u32 offset", "void *buf", "u32 len"),
    Helper.MAP_LOOKUP_PERCPU_ELEM: _proto("void *", "struct bpf_map *map", "const void *key", "u32 cpu"),
    Helper.KTIME_GET_TAI_NS: _proto("u64"),
})
"""Prototypes of the helpers something in pybpfdsl models (the verifier, the prover, the interpreter)."""


def helper_arity(helper: Helper) -> int:
    """How many argument registers (r1, r2, ...) the helper reads, variadic ones not counted."""
    return len(HELPER_PROTOTYPES[helper].params)


class MapType(enum.IntEnum):
    """``enum bpf_map_type``."""

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    CGROUP_ARRAY = 8
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    DEVMAP = 14
    SOCKMAP = 15
    CPUMAP = 16
    XSKMAP = 17
    SOCKHASH = 18
    CGROUP_STORAGE = 19
    REUSEPORT_SOCKARRAY = 20
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    SK_STORAGE = 24
    DEVMAP_HASH = 25
    STRUCT_OPS = 26
    RINGBUF = 27
    INODE_STORAGE = 28
    TASK_STORAGE = 29
    BLOOM_FILTER = 30
    USER_RINGBUF = 31
    CGRP_STORAGE = 32
    ARENA = 33


PERCPU_MAP_TYPES: Final = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH})
"""Map types holding one value per possible CPU under each key (syscalls read and write all of them)."""
ARRAY_MAP_TYPES: Final = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY})
"""Map types whose every key below max_entries is always present (deletion fails, lookups never miss)."""
LRU_MAP_TYPES: Final = frozenset({MapType.LRU_HASH, MapType.LRU_PERCPU_HASH})
"""Hash maps that evict their least recently used element to make room instead of failing when full."""


class MapFlag(enum.IntEnum):
    """``BPF_F_*`` flags of a map's creation (``map_flags``), those pybpfdsl sets."""

    NO_PREALLOC = 1 << 0  #: allocate elements on insertion; an LPM trie must have it


REQUIRED_MAP_FLAGS: Final[Mapping[int, int]] = MappingProxyType({MapType.LPM_TRIE: MapFlag.NO_PREALLOC})
"""Flags without which the kernel refuses to create a map of the type (EINVAL)."""


class XdpAction(enum.IntEnum):
    """``enum xdp_action``: what the kernel does with the packet after the program returns."""

    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


class XdpMd(enum.IntEnum):
    """Offsets of ``struct xdp_md``'s fields (each a ``__u32``). The verifier rewrites loads of the first
    three into packet pointers; egress_ifindex is readable by devmap programs only."""

    DATA = 0
    DATA_END = 4
    DATA_META = 8
    INGRESS_IFINDEX = 12
    RX_QUEUE_INDEX = 16
    EGRESS_IFINDEX = 20


XDP_MD_FIELD_SIZE: Final = 4
"""Every field of ``struct xdp_md`` is a ``__u32``; the kernel refuses narrower or wider loads."""
XDP_MD_SIZE: Final = 24
"""``sizeof(struct xdp_md)``."""


class UpdateFlag(enum.IntEnum):
    """Flags of ``bpf_map_update_elem`` and the map-update syscall."""

    ANY = 0  #: create or replace
    NOEXIST = 1  #: create only
    EXIST = 2  #: replace only


class RingbufFlag(enum.IntEnum):
    """Flags of ``bpf_ringbuf_output``; any other bit makes it fail. (IntEnum, not IntFlag: ``~`` of an
    IntFlag keeps only the defined bits, so ``x & ~flags`` would always be 0; ``A | B`` here is a plain int.)"""

    NO_WAKEUP = 1 << 0
    FORCE_WAKEUP = 1 << 1


class RedirectFlag(enum.IntEnum):
    """``BPF_F_*`` flags of ``bpf_redirect`` and ``bpf_redirect_map``."""

    INGRESS = 1 << 0
    BROADCAST = 1 << 3
    EXCLUDE_INGRESS = 1 << 4


STACK_SIZE: Final = 512
"""``MAX_BPF_STACK``: bytes of one frame below r10, and of all frames of a call chain together."""
BPF_MAXINSNS: Final = 4096
"""``BPF_MAXINSNS``: program size limit for unprivileged loaders."""
BPF_COMPLEXITY_LIMIT_INSNS: Final = 1_000_000
"""The kernel verifier gives up after processing this many instructions (counting every path)."""


def map_type_name(map_type: int) -> str:
    """``lru_hash`` for 9, as bpftool names map types; ``type N`` for a number the enum does not know."""
    try:
        return MapType(map_type).name.lower()
    except ValueError:
        return f"type {map_type}"
