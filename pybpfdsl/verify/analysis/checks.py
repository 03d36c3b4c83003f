"""The safety checks: what each memory access, helper argument, exit and the program as a whole must satisfy.

Every check returns a message (a violation) or None; :mod:`transfer` calls the per-instruction ones
with the state before the instruction and hands violations to a :class:`Sink`. During the fixpoint
iteration the sink discards them (states are still growing); the final pass over the stable states
collects them as :class:`VerifierFinding` records, so each finding holds for the invariant, not for
an intermediate guess.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from pybpfdsl.bpf.abi import Helper, XdpAction, XdpMd
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import Kind, Source, source
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.values import (
    CtxPtr,
    MapInfo,
    MapValue,
    MapValueOrNull,
    PacketPtr,
    ScalarValue,
    StackPtr,
    Uninit,
    Unknown,
    Value,
)
from pybpfdsl.verify.domains.scalar import Scalar

__all__ = [
    "QUIET",
    "Code",
    "Sink",
    "VerifierFinding",
    "check_access",
    "is_read_only",
    "is_read_only_section",
]

BPF_MAX_VAR_OFF = 1 << 29
"""Largest variable offset the kernel lets a pointer carry."""
MAX_PACKET_OFF = 0xFFFF
XDP_READABLE_CTX = XdpMd.EGRESS_IFINDEX
"""struct xdp_md bytes an XDP program may read: data, data_end, data_meta, ingress_ifindex, rx_queue_index
(egress_ifindex, next, is for devmap programs)."""
XDP_RETURN_RANGE = (XdpAction.ABORTED, XdpAction.REDIRECT)


class Code(enum.Enum):
    """What went wrong; the value is the short tag shown in messages."""

    UNINIT_REG = "uninit-register"
    UNINIT_STACK = "uninit-stack"
    PACKET_BOUNDS = "packet-bounds"
    MAP_BOUNDS = "map-value-bounds"
    STACK_BOUNDS = "stack-bounds"
    CTX_ACCESS = "ctx-access"
    NULL_DEREF = "null-deref"
    BAD_POINTER = "bad-pointer"
    POINTER_ARITH = "pointer-arithmetic"
    POINTER_COMPARE = "pointer-comparison"
    POINTER_LEAK = "pointer-leak"
    WRITE_R10 = "write-r10"
    HELPER_ARG = "helper-argument"
    UNKNOWN_HELPER = "unknown-helper"
    LOCK = "spin-lock"
    DIV_ZERO = "division-by-zero"
    EXIT_VALUE = "exit-value"
    EXIT_ACTION = "exit-action"
    UNBOUNDED_LOOP = "unbounded-loop"
    COMPLEXITY = "complexity"
    UNREACHABLE = "unreachable"
    INVALID_INSN = "invalid-instruction"
    UNSUPPORTED = "unsupported"
    PROGRAM_SIZE = "program-size"


WARNING_CODES = frozenset({Code.PROGRAM_SIZE, Code.EXIT_ACTION})
"""Findings that do not make the program unsafe (shown, but the program is accepted)."""


@dataclass(frozen=True)
class VerifierFinding:
    code: Code
    insn: int
    """Instruction index (lddw counts once); -1 for whole-program findings. What the user reads is the
    8-byte slot (:func:`pybpfdsl.verify.analysis.report.instruction_slot`), as the kernel's log counts."""
    message: str
    registers: tuple[int, ...] = ()
    """Registers the violation is about; the explanation shows their values and where they came from."""

    @property
    def is_error(self) -> bool:
        return self.code not in WARNING_CODES


@dataclass
class Sink:
    """Collects findings (``active``) or drops them (during the fixpoint iteration)."""

    active: bool = False
    findings: list[VerifierFinding] = field(default_factory=list)
    states: dict[int, State] = field(default_factory=dict)

    def report(self, code: Code, insn: int, message: str, *regs: int) -> None:
        if self.active:
            self.findings.append(VerifierFinding(code, insn, message, tuple(regs)))


QUIET = Sink()
"""The sink of the fixpoint and the simulations, which drop every finding (never activated): one for all,
rather than a new one per call of the engine's inner loops."""


# --------------------------------------------------------------------------- #
# Memory accesses
# --------------------------------------------------------------------------- #


def _srange(off: Scalar) -> tuple[int, int]:
    return off.s64.lo, off.s64.hi


def check_packet(state: State, p: PacketPtr, insn_off: int, size: int) -> str | None:
    if p.end:  # the kernel's range of such a register is negative: no access through it
        return (f"packet access through {p}: this register was compared past packet_end, so the kernel "
                "allows no access through it (check the packet length through a pointer that stays in bounds)")
    lo, hi = _srange(p.off)
    if lo + insn_off < 0:
        return f"packet access at offset {lo + insn_off} is before the packet start"
    if type(p.pid) is int and lo - p.delta < 0:
        # The kernel refuses any access through a pointer whose variable part may be negative, whatever its
        # fixed offset (``R2 min value is negative``); ``off - delta`` is that part for a pointer of one id.
        return (f"packet access through {p}, whose variable offset may be negative ({lo - p.delta}): the "
                "kernel refuses it; add an unsigned or checked (>= 0) offset")
    if hi > MAX_PACKET_OFF:
        return f"packet offset may be up to {hi}, beyond the largest packet offset {MAX_PACKET_OFF}"
    # The checked length serves only pointers at constant offsets from the packet's start (the kernel's id
    # 0, which every such check marks); one with its own id (a variable offset added) has the range proven
    # through it alone: ``if data + 30 > end ...; p = data + (x & 7); *p`` is refused by the kernel.
    if p.pid is None and hi + insn_off + size <= state.pkt_min:
        return None
    proven = state.range_of(p.pid)
    if proven is not None and p.delta + insn_off >= 0 and p.delta + insn_off + size <= proven:
        return None
    return (f"packet access of {size} bytes at offset [{lo + insn_off}, {hi + insn_off}] is not proven "
            f"within the packet (checked length: {state.pkt_min} bytes"
            + (f"; {proven} bytes from this pointer's base" if proven is not None else "") + ")")


READ_ONLY_DATA = ".rodata"
"""Global data in this section, or one named ``.rodata.*``, is a map libbpf creates read-only for programs
(``BPF_F_RDONLY_PROG``) and freezes once filled."""


def is_read_only_section(name: str) -> bool:
    """Whether global data in section ``name`` is read-only (see :data:`READ_ONLY_DATA`)."""
    return name == READ_ONLY_DATA or name.startswith(READ_ONLY_DATA + ".")


def is_read_only(m: MapInfo) -> bool:
    """Whether ``m`` is read-only global data (a map defined in ``.maps`` has a C identifier for a name, never
    one starting with a dot, so the section name decides)."""
    return is_read_only_section(m.name)


def check_map_value(p: MapValue, insn_off: int, size: int) -> str | None:
    lo, hi = _srange(p.off)
    vs = p.map.value_size
    if lo + insn_off < 0 or hi + insn_off + size > vs:
        return (f"access of {size} bytes at offset [{lo + insn_off}, {hi + insn_off}] of a {vs}-byte value "
                f"of map {p.map.name} may be out of bounds")
    for f_off, f_size, name in p.map.fields:
        if lo + insn_off < f_off + f_size and f_off < hi + insn_off + size:
            return (f"access of {size} bytes at offset [{lo + insn_off}, {hi + insn_off}] of map {p.map.name}'s "
                    f"value may touch its struct {name} at offset {f_off}: the kernel lets only its helpers use it")
    return None


def stack_bounds(off: Scalar, insn_off: int, size: int) -> str | None:
    lo, hi = _srange(off)
    if lo + insn_off < -stk.STACK_SIZE or hi + insn_off + size > 0:
        return (f"stack access of {size} bytes at r10{lo + insn_off:+d}..r10{hi + insn_off:+d} is outside the "
                f"{stk.STACK_SIZE}-byte frame")
    t = off.tnum
    if (t.mask | t.value + insn_off) & (size - 1) and size > 1:
        return f"misaligned stack access of {size} bytes at r10{lo + insn_off:+d} (the kernel requires alignment)"
    return None


def check_ctx(p: CtxPtr, insn_off: int, size: int, is_write: bool) -> str | None:
    c = p.off.const_value
    if c != 0:
        return f"access through a modified context pointer ({p}) is not allowed"
    if is_write:
        return "XDP programs may not write to the context (struct xdp_md is read-only)"
    if size != 4 or insn_off % 4 or not 0 <= insn_off < XDP_READABLE_CTX:
        return f"invalid context access: {size} bytes at offset {insn_off} of struct xdp_md"
    return None


def check_access(state: State, ptr: Value, insn_off: int, size: int, is_write: bool,
                 allow_uninit: bool = False) -> tuple[str | None, Code]:
    """Whether a ``size``-byte access through ``ptr + insn_off`` is safe; (message, code) when not.

    ``allow_uninit``: reads of never-written stack are allowed (they give an unknown number), as the
    kernel allows them for privileged (CAP_PERFMON) loaders."""
    if isinstance(ptr, PacketPtr):
        return check_packet(state, ptr, insn_off, size), Code.PACKET_BOUNDS
    if isinstance(ptr, MapValue):
        if is_write and is_read_only(ptr.map):
            return (f"write into {ptr.map.name}, read-only global data: libbpf freezes it and the kernel refuses "
                    "stores to it (write into map forbidden); keep what the program changes in .data or .bss"
                    ), Code.MAP_BOUNDS
        return check_map_value(ptr, insn_off, size), Code.MAP_BOUNDS
    if isinstance(ptr, StackPtr):
        msg = stack_bounds(ptr.off, insn_off, size)
        if msg is not None:
            return msg, Code.STACK_BOUNDS
        if not is_write:
            lo, hi = _srange(ptr.off)
            partial = _partial_pointer_fill(state, ptr, insn_off, size)
            if partial is not None:
                return partial, Code.POINTER_LEAK
            if not allow_uninit and not stk.initialised(state.stack, lo + insn_off, hi + insn_off + size):
                message = f"read of {size} bytes at r10{lo + insn_off:+d} reads stack not written before"
                return message, Code.UNINIT_STACK
        return None, Code.STACK_BOUNDS
    if isinstance(ptr, CtxPtr):
        return check_ctx(ptr, insn_off, size, is_write), Code.CTX_ACCESS
    if isinstance(ptr, MapValueOrNull):
        return f"dereference of {ptr}, which may be NULL: compare it with 0 first", Code.NULL_DEREF
    if isinstance(ptr, Uninit):
        return "memory access through an uninitialised register", Code.UNINIT_REG
    if isinstance(ptr, ScalarValue):
        return f"memory access through a scalar ({ptr}), not a pointer", Code.BAD_POINTER
    if isinstance(ptr, Unknown):
        return "memory access through a register whose type differs between paths", Code.BAD_POINTER
    return f"memory access through {ptr} is not allowed", Code.BAD_POINTER


def _partial_pointer_fill(state: State, ptr: StackPtr, insn_off: int, size: int) -> str | None:
    """A read of part of a spilled pointer (the kernel: "invalid size of register fill", even for root)."""
    c = ptr.off.const_value
    if c is None:
        return None
    off = (c - (1 << 64) if c >= 1 << 63 else c) + insn_off
    idx, pos = stk.slot_of(off)
    slot = state.stack[idx]
    if slot.spill is None or isinstance(slot.spill, ScalarValue) or (slot.pos, slot.size) == (pos, size):
        return None
    return f"read of {size} bytes at r10{off:+d} reads part of a spilled pointer ({slot.spill})"


ACTION_HELPERS = frozenset({Helper.REDIRECT, Helper.REDIRECT_MAP})
"""Helpers whose result is always an XDP action: bpf_redirect gives XDP_REDIRECT, or XDP_ABORTED for flags
it does not take; bpf_redirect_map gives XDP_REDIRECT, XDP_ABORTED for flags its map does not take, or the
flags' low two bits when the key has no element (`bpf.semantics.redirect_map`, the kernel's
``__bpf_xdp_redirect_map``). The analysis keeps their result an unknown scalar, as the kernel verifier does
(a narrower range would accept that result where the kernel refuses an unknown one, as an offset); only the
exit check knows it is an action."""


def _action_producer(insn: Instruction) -> bool:
    """Whether `insn`, having written r0 last, left an XDP action there: an action helper's call, or a
    constant move of an action (the other paths to a shared exit: `r0 = 2`)."""
    if insn.is_helper_call:
        return insn.imm in ACTION_HELPERS
    lo, hi = XDP_RETURN_RANGE
    return (insn.kind == Kind.MOV and source(insn.opcode) == Source.K and insn.dst == 0
            and lo <= insn.imm_sext <= hi)


def exit_value_finding(r0: Value, producers: Sequence[Instruction] = ()) -> tuple[Code, str] | None:
    """What an XDP program's exit returns. The kernel refuses only an uninitialised r0 (``R0 !read_ok``);
    it does not range-check an XDP program's result (as root even a pointer's low 32 bits may be returned)
    and drops a packet with an unknown action at run time (``bpf_warn_invalid_xdp_action``). So a value
    that may not be an action is a warning: the program loads, but some packet may be dropped with a
    kernel warning instead of the action the author meant.

    `producers` are the instructions that may have written r0 last: when each is an action helper's call
    (`return devmap.redirect(key, XDP_PASS)`) or a constant action, r0 is an action whatever its range."""
    if isinstance(r0, Uninit):
        return Code.EXIT_VALUE, "exit with r0 uninitialised"
    lo, hi = XDP_RETURN_RANGE
    if not isinstance(r0, ScalarValue):
        return Code.EXIT_ACTION, (f"exit returns a pointer ({r0}), not an XDP action: the kernel runs its low 32 "
                                  "bits as the action, an unknown action drops the packet with a kernel warning")
    if producers and all(_action_producer(p) for p in producers):
        return None
    s = r0.value
    if s.u64.lo < lo or s.u64.hi > hi:
        return Code.EXIT_ACTION, (f"exit value {r0} may be outside the XDP actions [{lo}, {hi}]: the kernel "
                                  "loads the program and drops a packet with an unknown action (with a warning)")
    return None
