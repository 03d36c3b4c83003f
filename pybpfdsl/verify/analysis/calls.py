"""bpf-to-bpf calls: the program is analysed with one copy of each function per call chain.

The kernel verifies a call in the caller's context (a new frame: r1-r5 from the caller, its own
512-byte stack and r10, r6-r9 of the caller saved and restored) and follows each call chain on its own,
at most ``MAX_CALL_FRAMES`` deep, with no recursion. Copying each function once per call chain (call
strings up to that depth) gives the fixpoint the same context sensitivity without a frame-aware engine:
the copies are laid out one after another, each contiguous, so jumps inside a copy keep their relative
targets; a call goes to its own copy of the callee and that copy's ``exit`` returns to the instruction
after the call (``Env.call_entry`` / ``Env.return_to``). Findings and invariants are mapped back to
the original instructions (``origin``).

A function is, as for the kernel, the code from its first instruction (the entry, or a call's target)
to the next function's: its jumps must stay inside it and its last instruction must be an exit or a jump.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pybpfdsl.bpf import abi
from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.cfg import build_cfg
from pybpfdsl.verify.analysis.checks import Code, VerifierFinding
from pybpfdsl.verify.analysis.driver import Analysis
from pybpfdsl.verify.analysis.transfer import Env
from pybpfdsl.verify.analysis.values import StackPtr, alternatives

__all__ = ["MAX_CALL_FRAMES", "MAX_EXPANDED", "Expansion", "GlobalFunction", "chain_stacks", "expand", "fold",
           "has_calls", "stack_findings"]

MAX_CALL_FRAMES = 8
"""The kernel's MAX_CALL_FRAMES: the entry program and at most 7 nested calls."""
MAX_EXPANDED = 200_000
"""Instructions the copies may add up to; past it the program is refused as too complex to analyse."""


@dataclass(frozen=True)
class GlobalFunction:
    """A non-static function: the kernel verifies it once, on its own, with arguments typed from its BTF
    prototype (``ctx``: the context pointer; ``scalar``: a number; anything else: a pointer we do not model),
    and a call to it only checks the arguments and returns an unknown number."""

    name: str
    args: tuple[str, ...] | None
    """Per argument, 'ctx', 'scalar' or 'other'; None when the object has no prototype for it."""
    returns_scalar: bool = True


@dataclass
class Expansion:
    insns: list[Instruction]
    origin: list[int]
    """Expanded index → original index."""
    call_entry: dict[int, int] = field(default_factory=dict)
    """Expanded index of a bpf-to-bpf call → the entry of the callee's copy for this call."""
    return_to: dict[int, int] = field(default_factory=dict)
    """Expanded index of an ``exit`` in a callee's copy → where the caller resumes."""
    caller: dict[int, int] = field(default_factory=dict)
    """Expanded index → the expanded call instruction that entered its copy (absent in the entry program)."""
    findings: list[VerifierFinding] = field(default_factory=list)
    """Problems with the call structure, at original indices."""
    global_calls: dict[int, GlobalFunction] = field(default_factory=dict)
    """Expanded index of a call of a global function → that function (analysed apart, see ``roots``)."""
    called_globals: set[int] = field(default_factory=set)
    """Original entries of the global functions called."""
    global_entry: dict[int, int] = field(default_factory=dict)
    """Expanded index of a call of a global function → that function's original entry."""
    callback_exits: set[int] = field(default_factory=set)
    """Expanded indices of the exits of callbacks (bpf_loop's): they return 0 or 1 to the helper."""
    copy_of: list[int] = field(default_factory=list)
    """Expanded index → the number of the copy it belongs to (0: the entry program)."""
    parent: list[int] = field(default_factory=list)
    """Copy number → the copy that called it (-1 for the entry program)."""


def has_calls(insns: tuple[Instruction, ...] | list[Instruction]) -> bool:
    return any(i.is_pseudo_call or (i.is_helper_call and i.imm == abi.Helper.LOOP) for i in insns)


def _target(insns: list[Instruction], starts: list[int], slot_index: dict[int, int], i: int) -> int:
    slot = insns[i].jump_target(starts[i])
    return -1 if slot is None else slot_index.get(slot, -1)


def _callback_of(code: list[Instruction], call: int, lo: int, targets: set[int],
                 func_refs: dict[int, int]) -> int | None:
    """The function whose address is in r2 at ``call`` (bpf_loop's callback): the last write of r2 in the
    call's basic block must be an ``lddw`` of a function."""
    i = call - 1
    while i >= lo:
        insn = code[i]
        if insn.kind in (Kind.JA, Kind.GOTOL, Kind.JCOND, Kind.MAY_GOTO, Kind.EXIT, Kind.CALL):
            return None
        if insn.dst == 2 and insn.kind not in (Kind.ST, Kind.STX, Kind.ATOMIC):
            return func_refs.get(i)
        if i in targets:
            return None
        i -= 1
    return None


def expand(insns: tuple[Instruction, ...] | list[Instruction], boundaries: frozenset[int] = frozenset(),
           global_functions: dict[int, GlobalFunction] | None = None, root: int = 0,
           func_refs: dict[int, int] | None = None) -> Expansion:
    """Copy each function per call chain, from the function at ``root``. ``boundaries``: further function
    starts (the ELF's function symbols); ``global_functions``: entry index → the functions the kernel
    verifies on their own (not copied: their calls are checked against their prototypes); ``func_refs``:
    ``lddw`` of a function (a callback's address) → the function's entry."""
    code = list(insns)
    n = len(code)
    starts = slot_offsets(code)
    slot_index = {s: i for i, s in enumerate(starts)}
    findings: list[VerifierFinding] = []
    call_targets: dict[int, int] = {}
    for i, insn in enumerate(code):
        if insn.is_pseudo_call:
            t = _target(code, starts, slot_index, i)
            if not 0 <= t < n:
                findings.append(VerifierFinding(Code.INVALID_INSN, i, "call to a target outside the program"))
                continue
            call_targets[i] = t
    refs = func_refs or {}
    jump_targets = {_target(code, starts, slot_index, i) for i, insn in enumerate(code)
                    if insn.kind in (Kind.JA, Kind.GOTOL, Kind.JCOND, Kind.MAY_GOTO)}
    entries = sorted({0, *call_targets.values(), *refs.values(), *(b for b in boundaries if 0 < b < n)})
    extent = {e: (e, entries[k + 1] if k + 1 < len(entries) else n) for k, e in enumerate(entries)}
    bad: set[int] = set()
    for lo, hi in extent.values():
        for i in range(lo, hi):
            kind = code[i].kind
            if kind in (Kind.JA, Kind.GOTOL, Kind.JCOND, Kind.MAY_GOTO):
                t = _target(code, starts, slot_index, i)
                if not lo <= t < hi:
                    # Numbers in the text are slots, as in the kernel's log (explain.instruction_slot).
                    to = f"instruction {starts[t]}" if 0 <= t < n else "outside the program"
                    findings.append(VerifierFinding(Code.INVALID_INSN, i, "jump out of the function it is in "
                                                    f"(to {to}; the function spans {starts[lo]}..{starts[hi - 1]})"))
                    bad.add(lo)
        if hi > lo and code[hi - 1].kind not in (Kind.EXIT, Kind.JA, Kind.GOTOL):
            findings.append(VerifierFinding(Code.INVALID_INSN, hi - 1, "the last instruction of a function is "
                                            "not an exit or a jump: execution would run into the next function"))
            bad.add(lo)
    globals_ = global_functions or {}
    out = Expansion([], [], findings=findings)

    def copy(entry: int, chain: tuple[int, ...], caller: int | None, parent: int, callback: bool = False) -> int:
        lo, hi = extent[entry]
        base = len(out.insns)
        number = len(out.parent)
        out.parent.append(parent)
        out.insns.extend(code[lo:hi])
        out.origin.extend(range(lo, hi))
        out.copy_of.extend([number] * (hi - lo))
        if caller is not None:
            for k in range(base, base + hi - lo):
                out.caller[k] = caller
        for i in range(lo, hi):
            at = base + i - lo
            if code[i].kind == Kind.EXIT and caller is not None:
                out.return_to[at] = caller + 1
                if callback:
                    out.callback_exits.add(at)
            t = call_targets.get(i)
            is_loop = code[i].is_helper_call and code[i].imm == abi.Helper.LOOP
            if is_loop:
                t = _callback_of(code, i, lo, jump_targets, refs)
                if t is None:
                    findings.append(VerifierFinding(Code.UNSUPPORTED, i, "bpf_loop's callback (r2) is not loaded "
                                                    "just before the call: not analysed by this verifier"))
                    continue
            if t is None:
                continue
            if t in chain or t == entry:
                findings.append(VerifierFinding(Code.INVALID_INSN, i, "recursive call: the kernel refuses "
                                                "recursion (a function that calls itself, directly or not)"))
            elif len(chain) + 2 > MAX_CALL_FRAMES:
                findings.append(VerifierFinding(Code.COMPLEXITY, i, f"this call makes {len(chain) + 2} nested "
                                                f"frames: the kernel allows at most {MAX_CALL_FRAMES}"))
            elif is_loop and t in globals_:
                findings.append(VerifierFinding(Code.UNSUPPORTED, i, f"bpf_loop's callback {globals_[t].name} is a "
                                                "global function: not modelled (make it static)"))
            elif t in globals_:
                out.global_calls[at] = globals_[t]
                out.global_entry[at] = t
                out.called_globals.add(t)
            elif t in bad:
                pass  # its structure is already refused
            elif len(out.insns) > MAX_EXPANDED:
                findings.append(VerifierFinding(Code.COMPLEXITY, i, "too many call chains to analyse "
                                                f"(more than {MAX_EXPANDED} instructions once each is copied)"))
            else:
                out.call_entry[at] = copy(t, (*chain, entry), at, number, is_loop)
        return base

    entries_set = set(entries)
    if 0 <= root < n and root in entries_set:
        copy(root, (), None, -1)
    # Duplicated findings (one per copy) are reported once.
    seen: set[tuple[Code, int, str]] = set()
    out.findings = [f for f in findings if (f.code, f.insn, f.message) not in seen
                    and not seen.add((f.code, f.insn, f.message))]  # type: ignore[func-returns-value]
    return out


# --------------------------------------------------------------------------- #
# Back to the original instructions
# --------------------------------------------------------------------------- #

COMBINED_STACK = abi.STACK_SIZE
"""The kernel's limit on the stack of all frames of a call chain together (MAX_BPF_STACK)."""


def _frame_depth(insns: list[Instruction], indices: list[int], pre: dict[int, State]) -> int:
    """Bytes of stack a copy may touch: the deepest ``r10``-relative access or stack pointer it holds."""
    deepest = 0
    for k in indices:
        insn = insns[k]
        direct = insn.src == 10 if insn.kind in (Kind.LDX, Kind.LDX_SX) else (
            insn.dst == 10 and insn.kind in (Kind.ST, Kind.STX, Kind.ATOMIC))
        if direct:
            deepest = max(deepest, -insn.off)
        s = pre.get(k)
        if s is None:
            continue
        for v in (a for r in s.regs[:10] for a in alternatives(r)):  # a register may be a stack pointer on some paths
            if isinstance(v, StackPtr):
                deepest = max(deepest, -v.off.s64.lo)
    return min(deepest, 1 << 20)


def _round32(n: int) -> int:
    return (max(n, 1) + 31) // 32 * 32


def chain_stacks(ex: Expansion, pre: dict[int, State]) -> dict[int, tuple[int, int]]:
    """Copy number → (frames, bytes of stack) of the call chain that ends in it, each frame rounded up to
    32 bytes as the kernel adds them up."""
    members: dict[int, list[int]] = {}
    for k, c in enumerate(ex.copy_of):
        members.setdefault(c, []).append(k)
    depth = {c: _round32(_frame_depth(ex.insns, ks, pre)) for c, ks in members.items()}
    out = {}
    for c in members:
        total, frames, x = 0, 0, c
        while x >= 0:
            total += depth[x]
            frames += 1
            x = ex.parent[x]
        out[c] = (frames, total)
    return out


def stack_findings(ex: Expansion, pre: dict[int, State],
                   global_depth: dict[int, int] | None = None) -> list[VerifierFinding]:
    """Call chains whose frames use more than 512 bytes of stack together, at the (expanded) call that makes
    the chain too deep. ``global_depth``: the deepest chain of each global function called (its entry)."""
    chains = chain_stacks(ex, pre)
    out = []
    first: dict[int, int] = {}
    for k, c in enumerate(ex.copy_of):
        first.setdefault(c, k)
    for c, k in first.items():
        frames, total = chains[c]
        if k in ex.caller and total > COMBINED_STACK:
            out.append(_too_deep(ex.caller[k], frames, total))
    for k in ex.global_calls:
        frames, total = chains[ex.copy_of[k]]
        extra = (global_depth or {}).get(ex.global_entry[k], 0)
        if total + extra > COMBINED_STACK:
            out.append(_too_deep(k, frames + 1, total + extra))
    return out


def _too_deep(call: int, frames: int, total: int) -> VerifierFinding:
    return VerifierFinding(Code.STACK_BOUNDS, call, f"the {frames} frames of this call chain use {total} bytes of "
                           f"stack together (each rounded up to 32): the kernel allows {COMBINED_STACK}")


def _fold_state(s: State, origin: list[int]) -> State:
    defs = tuple(frozenset(origin[d] for d in ds) for ds in s.defs)
    return replace(s, defs=defs, frames=())


def fold(analysis: Analysis, ex: Expansion, env: Env, global_depth: dict[int, int] | None = None) -> Analysis:
    """The analysis of the copies as one of the original program (``env``): each instruction's invariant is
    the join over its copies; each finding is reported once, at the original instruction, naming the call
    it was found through."""
    slots = slot_offsets(env.insns)
    pre: dict[int, State] = {}
    parts: dict[int, tuple[State, ...]] = {}
    for k, s in analysis.pre.items():
        o = ex.origin[k]
        joined = st.join(pre.get(o), _fold_state(s, ex.origin))
        assert joined is not None
        pre[o] = joined
    for k, ps in analysis.parts.items():
        o = ex.origin[k]
        parts[o] = parts.get(o, ()) + tuple(_fold_state(s, ex.origin) for s in ps)
    findings: list[VerifierFinding] = []
    seen: set[tuple[Code, int]] = set()
    mapped = [(f, f.insn, "") for f in ex.findings]
    for f in [*analysis.findings, *stack_findings(ex, analysis.pre, global_depth)]:
        if f.insn < 0:
            mapped.append((f, f.insn, ""))
            continue
        through = ""
        if f.insn in ex.caller:
            calls = []
            k = f.insn
            while k in ex.caller:
                k = ex.caller[k]
                calls.append(str(slots[ex.origin[k]]))
            through = " (reached through the call at instruction " + " <- ".join(calls) + ")"
        mapped.append((f, ex.origin[f.insn], through))
    for f, o, through in mapped:
        if o < 0:
            findings.append(f)
            continue
        if (f.code, o) in seen:
            continue
        seen.add((f.code, o))
        findings.append(VerifierFinding(f.code, o, f.message + through, f.registers))
    cfg = build_cfg(env)
    loops = {ex.origin[h]: n for h, n in analysis.loop_iterations.items()}
    return Analysis(env, cfg, pre, findings, analysis.processed, loops, parts, analysis.kernel_estimate)
