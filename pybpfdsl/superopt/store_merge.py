"""Clang's byte-wise stores of one value merged into the widest stores that hold them, run by run.

Clang copies a MAC address, or a 32- or 64-bit value kept on the stack, into a packet a byte at a time:
``r3 = r2; r3 >>= 16; *(u8 *)(r1 +10) = r3`` for each byte, three instructions a byte, 24 for a 64-bit
value. The window search merges two such stores where both lie in one window of six instructions (its
greedy step's `neighbours._wider_stores`), which leaves most of them: two bytes fill a window. This pass
looks at a whole run instead (`windows.runs_of`: straight-line code): the stores that put bytes of one value
(`neighbours._shifted_values`: a register copied and shifted right is the same value at another shift) at
consecutive bytes of one base, in little-endian order, are replaced by one store of 8, 4 or 2 bytes made
where the last of them was, and the copies and shifts that fed only them are dropped. Each change is proven
in Z3 over the whole run (`window_check.prove_window`: registers live after it equal, memory equal) before
it is kept; a store a load between reads, or a base that may alias, makes the proof fail and the bytes stay.
The stack's alignment rule is `window_check.stack_safe`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import InsnClass, Kind, Mode, Size, mode, size
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.neighbours import shifted_values
from pybpfdsl.superopt.search import read_before_written
from pybpfdsl.superopt.window_check import DEFAULT_PROOF_UNITS, prove_window, stack_safe
from pybpfdsl.superopt.window_semantics import is_branch
from pybpfdsl.superopt.windows import core_relocated_slots, runs_of
from pybpfdsl.verify.analysis.liveness import registers_of

__all__ = ["merge_stores", "store_merge_pass"]

_SIZES = {2: Size.H, 4: Size.W, 8: Size.DW}
_MAX_RUN = 64
"""Runs longer than this are not looked at (a bound in instructions: the proof covers the whole run)."""
_MAX_STEPS = 16
"""Merges tried per run, proven or not (a bound in proofs)."""


def _stores(code: Sequence[Instruction]) -> list[tuple[int, Instruction]]:
    return [(i, insn) for i, insn in enumerate(code)
            if insn.kind == Kind.STX and mode(insn.opcode) == Mode.MEM and size(insn.opcode).bytes < 8]


Chunk = tuple[int, int, list[int], tuple[tuple[int, int], int] | None]
"""(offset, width, the stores it replaces, and for a copy the load's base value and the distance from each
byte stored to the byte it copies; None for bytes of one register's value)."""


def _chunks(code: Sequence[Instruction]) -> list[Chunk]:
    """Each run of consecutive bytes of one base stored by at least two stores, either all bytes of one value in
    little-endian order or all copies of the bytes at one distance from one other base, widest first."""
    vals = shifted_values(code)
    groups: dict[tuple[object, ...], dict[int, int]] = {}
    copies: dict[tuple[object, ...], tuple[tuple[int, int], int]] = {}
    for i, st in _stores(code):
        origin, shift = vals[i][st.src]
        n = size(st.opcode).bytes
        base = vals[i][st.dst]
        # Byte b of the store holds bits shift + 8 * (b - off) of the value: one little-endian store of the
        # value (shifted) puts bit k + 8 * b at byte b, for the same k.
        keys: list[tuple[object, ...]] = [("value", base, origin, shift - 8 * st.off)]
        ld = code[origin] if origin >= 0 else None
        if ld is not None and ld.kind == Kind.LDX and mode(ld.opcode) == Mode.MEM and shift % 8 == 0 \
                and shift // 8 + n <= size(ld.opcode).bytes:
            # A copy: byte b holds the byte loaded from the load's base at b + distance.
            copy = (vals[origin][ld.src], ld.off + shift // 8 - st.off)
            keys.append(("copy", base, *copy))
            copies[keys[-1]] = copy
        for key in keys:
            bytes_of = groups.setdefault(key, {})
            for b in range(st.off, st.off + n):
                bytes_of[b] = i if b not in bytes_of else -1  # a byte stored twice: not merged
    ranked: list[tuple[tuple[int, bool, int], Chunk]] = []
    for key, bytes_of in groups.items():
        info = copies.get(key)
        least = min(bytes_of)
        for width in (8, 4, 2):
            for off in sorted(bytes_of):
                span = [bytes_of.get(b) for b in range(off, off + width)]
                if any(s is None or s < 0 for s in span):
                    continue
                stores = sorted({s for s in span if s is not None})
                inside = all(code[s].off >= off and code[s].off + size(code[s].opcode).bytes <= off + width
                             for s in stores)
                if len(stores) >= 2 and inside:
                    # Widest first; then those cut where the group's lowest byte starts a chunk (six bytes as
                    # four and two, not one, four and one).
                    ranked.append(((-width, (off - least) % width != 0, stores[0]), (off, width, stores, info)))
    ranked.sort(key=lambda r: r[0])
    return [chunk for _, chunk in ranked]


def _live_after(code: Sequence[Instruction], live_out: int) -> list[int]:
    live, out = live_out, [0] * len(code)
    for k in range(len(code) - 1, -1, -1):
        out[k] = live
        reads, writes = registers_of(code[k])
        for r in writes:
            live &= ~(1 << r)
        for r in reads:
            live |= 1 << r
    return out


def _dead_dropped(code: list[Instruction], live_out: int, lo: int) -> list[Instruction]:
    """``code`` without the moves, arithmetic and loads from ``lo`` on whose results nothing reads (the copies,
    shifts and loads that fed only the stores merged)."""
    live = live_out
    keep: list[Instruction] = []
    for k in range(len(code) - 1, -1, -1):
        insn = code[k]
        reads, writes = registers_of(insn)
        pure = insn.kind in (Kind.MOV, Kind.ALU) or (insn.kind == Kind.LDX and mode(insn.opcode) == Mode.MEM)
        if k >= lo and pure and writes and not any(live >> r & 1 for r in writes):
            continue
        keep.append(insn)
        for r in writes:
            live &= ~(1 << r)
        for r in reads:
            live |= 1 << r
    return keep[::-1]


def _merged(code: Sequence[Instruction], chunk: Chunk, live_out: int) -> list[Instruction] | None:
    """``code`` with the chunk's stores replaced by one store of its width at its offset, made where the last
    of them was (or the first): from a register holding the value's lowest byte there, or for a copy, loaded
    there into a register free after it; None if there is none."""
    off, width, stores, copy = chunk
    vals = shifted_values(code)
    first = stores[0]
    lowest = next(s for s in stores if code[s].off == off)
    base_val = vals[lowest][code[lowest].dst]
    origin, shift = vals[lowest][code[lowest].src]
    shift -= 8 * (code[lowest].off - off)
    live = _live_after(code, live_out)
    for at in (stores[-1], first):
        base = next((r for r in range(11) if vals[at][r] == base_val), None)
        if base is None:
            continue
        if copy is None:
            src = next((r for r in range(10) if vals[at][r] == (origin, shift)), None)
            if src is None:
                continue
            new: tuple[Instruction, ...] = (Instruction(InsnClass.STX | Mode.MEM | _SIZES[width], base, src, off),)
        else:
            from_val, distance = copy
            src_base = next((r for r in range(11) if vals[at][r] == from_val), None)
            free = [r for r in (code[at].src, *range(10)) if not live[at] >> r & 1 and r not in (base, src_base)]
            if src_base is None or not free or not -(1 << 15) <= off + distance < 1 << 15:
                continue
            tmp = free[0]
            new = (Instruction(InsnClass.LDX | Mode.MEM | _SIZES[width], tmp, src_base, off + distance),
                   Instruction(InsnClass.STX | Mode.MEM | _SIZES[width], base, tmp, off))
        body = [x for k, insn in enumerate(code) for x in (new if k == at else (insn,) if k not in stores else ())]
        return _dead_dropped(body, live_out, 0)
    return None


def merge_stores(code: Sequence[Instruction], live_out: int,
                 units: int = DEFAULT_PROOF_UNITS) -> tuple[Instruction, ...] | None:
    """``code`` (straight-line, no jump) with its byte-wise stores of one value merged, each merge proven over
    the whole of it under ``live_out``; None if nothing was merged."""
    current = tuple(code)
    defined = read_before_written(code) | 1 << 10
    tried: set[tuple[int, int, tuple[int, ...], tuple[tuple[int, int], int] | None]] = set()
    steps = 0
    while steps < _MAX_STEPS:
        for chunk in _chunks(current):
            key = (chunk[0], chunk[1], tuple(chunk[2]), chunk[3])
            if key in tried:
                continue
            tried.add(key)
            cand = _merged(current, chunk, live_out)
            if cand is None or len(cand) >= len(current) or not stack_safe(cand) \
                    or read_before_written(cand) & ~defined:
                continue
            steps += 1
            if prove_window(current, cand, live_out, units).proven:
                current = tuple(cand)
                tried.clear()
                break
            if steps >= _MAX_STEPS:
                break
        else:
            break
    return current if len(current) < len(code) else None


Merged = tuple[str, str, int, tuple[Instruction, ...], tuple[Instruction, ...], int]
"""(section, function, start, before, after, live after) of a run `store_merge_pass` changed."""


def store_merge_pass(elf_bytes: bytes, sections: Sequence[str],
                     units: int = DEFAULT_PROOF_UNITS) -> tuple[bytes, list[Merged]]:
    """Every run's byte-wise stores merged (`merge_stores`): the object, and (section, function, start, before,
    after, live after) of each run changed."""
    elf = BpfElf.from_bytes(elf_bytes)
    core = core_relocated_slots(elf)
    edits: dict[str, list[Replacement]] = {}
    made: list[Merged] = []
    for sec in sections:
        prog = elf.program(sec) if sec != ".text" else elf.text
        assert prog is not None
        for run in runs_of(prog, core.get(sec, set())):
            n = len(run.code) - (1 if run.code and is_branch(run.code[-1]) else 0)
            if n < 3 or n > _MAX_RUN or len(_stores(run.code[:n])) < 2:
                continue
            body = run.code[:n]
            new = merge_stores(body, run.live_after[n - 1], units)
            if new is not None:
                edits.setdefault(sec, []).append(Replacement(run.start, n, new))
                made.append((sec, run.function, run.start, body, new, run.live_after[n - 1]))
    return (rewrite_code(elf_bytes, edits) if edits else elf_bytes), made
