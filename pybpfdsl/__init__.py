"""pybpfdsl: typed Python functions compiled to verified XDP programs.

    from pybpfdsl import xdp, Packet, XDP_PASS, XDP_DROP, Global, u64

    dropped = Global(u64, 0)

    @xdp
    def drop_telnet(pkt: Packet) -> int:
        if pkt.tcp is not None and pkt.tcp.dport == 23:
            dropped.value += 1
            return XDP_DROP
        return XDP_PASS

`drop_telnet(packet_bytes)` runs it in Python; `drop_telnet.compile()` gives the BPF object;
`drop_telnet.load().run(packet_bytes)` runs it in the kernel; `pybpfdsl.attach(drop_telnet, "eth0")` puts
it on an interface. See docs/language.md.

The names below are imported on first use, so that `import pybpfdsl.bpf` (the instruction set, ELF
objects, the bytecode interpreter) loads neither llvmlite nor libbpf; the first of them used checks that
llvmlite can emit BPF, and says how to fix it when it cannot.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pybpfdsl.bpf.helper_results import HELPER_RESULTS as _HELPER_RESULTS
from pybpfdsl.lang.helpers import current_helpers as _current_helpers

if TYPE_CHECKING:
    from pybpfdsl.deploy import Attachment, attach
    from pybpfdsl.lang.actions import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX, XdpAction
    from pybpfdsl.lang.builtins import (
        bounded,
        cpu_id,
        fib_lookup,
        inline,
        ip,
        likely,
        now_ns,
        prandom_u32,
        randint,
        random,
        redirect,
        unlikely,
    )
    from pybpfdsl.lang.errors import DslError, DslWarning, InternalCompilerError, SourceLocation
    from pybpfdsl.lang.fib import FibResult, Route, use_routes
    from pybpfdsl.lang.headers import TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG
    from pybpfdsl.lang.lpm_trie import Ip4Prefix, Ip6Prefix, LpmTrie, prefix
    from pybpfdsl.lang.packet import Packet
    from pybpfdsl.lang.percpu_hash import LruPerCpuHashMap, PerCpuHashMap
    from pybpfdsl.lang.redirect import CpuMap, DevMap, RedirectTarget
    from pybpfdsl.lang.ringbuf import RingBuf
    from pybpfdsl.lang.state import Array, Global, HashMap, LruHashMap, PerCpuArray
    from pybpfdsl.lang.structs import Struct
    from pybpfdsl.lang.types import i8, i16, i32, i64, u8, u16, u32, u64
    from pybpfdsl.pinned import open_pinned
    from pybpfdsl.program import CompiledProgram, XdpProgram, xdp
    from pybpfdsl.runtime.attach_errors import AttachError
    from pybpfdsl.runtime.attachment import detach

__version__ = "0.1.0"

__all__ = [
    "xdp", "Packet", "Struct", "Global", "HashMap", "LruHashMap", "Array", "PerCpuArray", "RingBuf",
    "LpmTrie", "PerCpuHashMap", "LruPerCpuHashMap", "Ip4Prefix", "Ip6Prefix", "prefix", "open_pinned",
    "DevMap", "CpuMap", "RedirectTarget", "redirect", "fib_lookup", "FibResult", "Route", "use_routes",
    "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64",
    "ip", "random", "randint", "prandom_u32", "now_ns", "cpu_id", "bounded", "likely", "unlikely",
    "inline",
    "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", "XdpAction",
    "TCP_FIN", "TCP_SYN", "TCP_RST", "TCP_PSH", "TCP_ACK", "TCP_URG",
    "DslError", "DslWarning", "SourceLocation", "CompiledProgram", "XdpProgram", "InternalCompilerError",
    "attach", "detach", "Attachment", "AttachError",
]

_EXPORTS: dict[str, str] = {name: module for module, names in (
    ("pybpfdsl.lang.actions", "XDP_ABORTED XDP_DROP XDP_PASS XDP_REDIRECT XDP_TX XdpAction"),
    ("pybpfdsl.lang.builtins", "bounded cpu_id fib_lookup inline ip likely now_ns prandom_u32 randint random redirect "
                               "unlikely"),
    ("pybpfdsl.lang.fib", "FibResult Route use_routes"),
    ("pybpfdsl.lang.errors", "DslError DslWarning InternalCompilerError SourceLocation"),
    ("pybpfdsl.lang.headers", "TCP_ACK TCP_FIN TCP_PSH TCP_RST TCP_SYN TCP_URG"),
    ("pybpfdsl.lang.lpm_trie", "Ip4Prefix Ip6Prefix LpmTrie prefix"),
    ("pybpfdsl.lang.packet", "Packet"),
    ("pybpfdsl.lang.percpu_hash", "LruPerCpuHashMap PerCpuHashMap"),
    ("pybpfdsl.lang.redirect", "CpuMap DevMap RedirectTarget"),
    ("pybpfdsl.pinned", "open_pinned"),
    ("pybpfdsl.lang.state", "Array Global HashMap LruHashMap PerCpuArray"),
    ("pybpfdsl.lang.ringbuf", "RingBuf"),
    ("pybpfdsl.lang.structs", "Struct"),
    ("pybpfdsl.lang.types", "i8 i16 i32 i64 u8 u16 u32 u64"),
    ("pybpfdsl.program", "CompiledProgram XdpProgram xdp"),
    ("pybpfdsl.deploy", "Attachment attach"),
    ("pybpfdsl.runtime.attach_errors", "AttachError"),
    ("pybpfdsl.runtime.attachment", "detach"),
) for name in names.split()}
"""Each public name and the module it comes from (the imports above, for type checkers)."""

# The bytecode interpreter may import nothing of the DSL; it reads random numbers, the clock and the CPU
# number from the DSL's current helper source through this hook, as pure Python and the IR interpreter do.
_HELPER_RESULTS.source = _current_helpers

_checked = False


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global _checked
    if not _checked:
        from pybpfdsl._check_llvmlite import require_bpf_target

        require_bpf_target()
        _checked = True
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
