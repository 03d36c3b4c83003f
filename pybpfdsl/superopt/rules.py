"""The rule cache (EPSO): every proven window rewrite, kept as a rule and tried first on the next program.

A rule's key is the window's instructions with registers renamed in order of first use (r10 stays
r10: the frame pointer is not interchangeable) plus the renamed set of registers live after it; its
value is the rewrite in the same names. Immediates and offsets stay concrete, except a branch
window's jump distance (not part of what the window computes: the rule keeps 0 and a match takes the
window's own). Each rule whose rewrite only carries the window's own immediates and offsets (and known
constants) over is also kept *general* (EPSO's abstraction): those values become placeholders in order
of first use, so ``r4 = r1; r4 += 23; r3 = *(u8 *)(r4 +0)`` learned once matches the same shape at
offset 14; shift amounts and zeros stay concrete (they decide what the code computes). A general rule
is tried after an exact one, and proven again like every rule. A rule is a hint, never a
proof: each match is proven again for the window it is applied to before it is used, so a stale or
edited cache file can cost time but never correctness.

The file is JSON, in ``$XDG_CACHE_HOME/pybpfdsl/superopt-rules.json`` (``~/.cache/...``) unless
``PYBPFDSL_SUPEROPT_RULES`` or the caller names another path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import Kind, Source, source
from pybpfdsl.superopt.window_check import BRANCH_SHIFT, stack_safe

__all__ = ["RuleCache", "default_path", "normalise"]

_VERSION = 2


def default_path() -> Path:
    named = os.environ.get("PYBPFDSL_SUPEROPT_RULES", "").strip()
    if named:
        return Path(named)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "pybpfdsl" / "superopt-rules.json"


def _registers(insn: Instruction) -> tuple[str, ...]:
    """Which of dst/src name registers (not pseudo tags or unused fields)."""
    k = insn.kind
    if k == Kind.LDDW:
        return ("dst",)
    if k in (Kind.LDX, Kind.LDX_SX, Kind.STX):
        return ("dst", "src")
    if k == Kind.ST:
        return ("dst",)
    if k in (Kind.MOVSX,) or (source(insn.opcode) == Source.X and k not in (Kind.END, Kind.BSWAP)):
        return ("dst", "src")
    return ("dst",)


def _rename(insns: Sequence[Instruction], names: dict[int, int], grow: bool) -> list[list[int]] | None:
    out = []
    for insn in insns:
        regs = {"dst": insn.dst, "src": insn.src}
        for f in _registers(insn):
            r = regs[f]
            if r != 10 and r not in names:
                if not grow:
                    return None
                names[r] = len(names)
            regs[f] = 10 if r == 10 else names[r]
        off = 0 if insn.kind == Kind.JCOND else insn.off
        out.append([insn.opcode, regs["dst"], regs["src"], off, insn.imm, insn.imm_hi, int(insn.is_wide)])
    return out


def normalise(window: Sequence[Instruction], live_out: int, known: Mapping[int, int] | None = None,
              widths: Mapping[int, int] | None = None) -> tuple[str, dict[int, int]]:
    """The rule key of ``window`` (with the constants and widths known on entry in its registers) and its
    renaming (register -> pattern name)."""
    names: dict[int, int] = {}
    pattern = _rename(window, names, grow=True)
    # A branch window's liveness has a second register set from BRANCH_SHIFT on (at the jump's target).
    live = sorted(names[r] + shift for r in names for shift in (0, BRANCH_SHIFT) if live_out >> (r + shift) & 1)
    consts = sorted([names[r], v] for r, v in (known or {}).items() if r in names)
    bits = sorted([names[r], v] for r, v in (widths or {}).items() if r in names)
    key = [pattern, live, consts, bits] if bits else [pattern, live, consts]
    return json.dumps(key, separators=(",", ":")), names


_Row = list[int | str]


def _concrete(row: Sequence[int | str]) -> bool:
    """Whether an instruction's immediate stays in a general rule: shifts and byte swaps (the amount is
    the operation), 64-bit constants, and what is not a number."""
    opcode = int(row[0])
    cls = opcode & 0x07
    alu = cls in (0x04, 0x07)
    return bool(row[6]) or (alu and (opcode & 0xF0) in (0x60, 0x70, 0xC0, 0xD0))


def _abstract(rows: list[list[int]], known: Sequence[list[int]],
              values: list[int] | None = None) -> tuple[list[_Row], list[list[int | str]], list[int]] | None:
    """``rows`` (and the known constants) with every nonzero immediate and offset a placeholder ``"$n"``
    (n: its first use in ``values``, which grows unless given); None when a given ``values`` lacks one
    of them."""
    grow = values is None
    vals: list[int] = [] if values is None else values

    def slot(v: int) -> int | str:
        if v == 0:
            return 0
        if v not in vals:
            if not grow:
                raise KeyError(v)
            vals.append(v)
        return f"${vals.index(v)}"

    try:
        out: list[_Row] = []
        for row in rows:
            r: _Row = list(row)
            r[3] = slot(row[3])
            if not _concrete(row):
                r[4] = slot(row[4])
            out.append(r)
        consts: list[list[int | str]] = [[name, slot(v)] for name, v in known]
    except KeyError:
        return None
    return out, consts, vals


def _general_key(key: str) -> tuple[str, list[int]] | None:
    """The general rule key of an exact one, and the values its placeholders stand for."""
    parsed = json.loads(key)
    abstract = _abstract(parsed[0], parsed[2])
    if abstract is None:
        return None
    pattern, consts, values = abstract
    return json.dumps([pattern, parsed[1], consts, *parsed[3:]], separators=(",", ":")), values


def _instantiate(rows: Sequence[_Row], values: Sequence[int]) -> list[list[int]] | None:
    out = []
    for row in rows:
        concrete = []
        for field_ in row:
            if isinstance(field_, str):
                n = int(field_[1:])
                if n >= len(values):
                    return None
                concrete.append(values[n])
            else:
                concrete.append(field_)
        out.append(concrete)
    return out


def _build(rows: Sequence[Sequence[int]], back: dict[int, int]) -> tuple[Instruction, ...]:
    out = []
    for opcode, dst, src, off, imm, imm_hi, wide in rows:
        insn = Instruction(opcode, dst, src, off, imm, imm_hi, bool(wide))
        regs = {"dst": dst, "src": src}
        for f in _registers(insn):
            regs[f] = 10 if regs[f] == 10 else back[regs[f]]
        out.append(Instruction(opcode, regs["dst"], regs["src"], off, imm, imm_hi, bool(wide)))
    return tuple(out)


@dataclass
class RuleCache:
    """Rules by key; ``lengths`` are the pattern lengths present (what a matcher tries)."""

    path: Path | None = None
    rules: dict[str, list[list[int]]] = field(default_factory=dict)
    general: dict[str, list[_Row]] = field(default_factory=dict)
    """General rules (placeholders for immediates and offsets) by their abstract key."""
    added: int = 0
    used: int = 0

    @classmethod
    def load(cls, path: Path | None = None) -> RuleCache:
        where = path or default_path()
        cache = cls(where)
        try:
            data = json.loads(where.read_text())
            if data.get("version") == _VERSION:
                cache.rules = {str(k): v for k, v in data["rules"].items()}
                cache.general = {str(k): v for k, v in data.get("general", {}).items()}
        except (OSError, ValueError, KeyError, AttributeError):
            pass  # no cache yet, or one from another version: start empty
        return cache

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": _VERSION, "rules": self.rules, "general": self.general},
                                  indent=0, sort_keys=True))
        tmp.replace(self.path)

    @property
    def lengths(self) -> list[int]:
        return sorted({len(json.loads(k)[0]) for k in [*self.rules, *self.general]}, reverse=True)

    def add(self, window: Sequence[Instruction], live_out: int, rewrite: Sequence[Instruction],
            known: Mapping[int, int] | None = None, widths: Mapping[int, int] | None = None) -> bool:
        """Store a proven rewrite; False when it names a register the window does not (not a rule)."""
        key, names = normalise(window, live_out, known, widths)
        rows = _rename(rewrite, dict(names), grow=False)
        if rows is None or key in self.rules:
            return False
        self.rules[key] = rows
        self.added += 1
        general = _general_key(key)
        if general is not None:
            gkey, values = general
            abstract = _abstract(rows, [], values)
            if abstract is not None and gkey not in self.general:
                self.general[gkey] = abstract[0]
        return True

    def forget(self, window: Sequence[Instruction], live_out: int, known: Iterable[tuple[int, int]] = (),
               widths: Iterable[tuple[int, int]] = ()) -> None:
        """Drop the rule for ``window`` (its rewrite was refused by the verifier or the kernel)."""
        key, _ = normalise(window, live_out, dict(known), dict(widths))
        self.rules.pop(key, None)
        general = _general_key(key)
        if general is not None:
            self.general.pop(general[0], None)

    def lookup(self, window: Sequence[Instruction], live_out: int, known: Mapping[int, int] | None = None,
               widths: Mapping[int, int] | None = None) -> tuple[Instruction, ...] | None:
        """The cached rewrite of ``window``, in its registers, if there is one (still to be proven) and its
        stack accesses are ones the kernel takes (a general rule put at other offsets may misalign them)."""
        key, names = normalise(window, live_out, known, widths)
        rows = self.rules.get(key)
        if rows is None:
            general = _general_key(key)
            found = self.general.get(general[0]) if general is not None else None
            if general is None or found is None:
                return None
            rows = _instantiate(found, general[1])
            if rows is None:
                return None
        built = _build(rows, {v: k for k, v in names.items()})
        if built and built[-1].kind == Kind.JCOND and window[-1].kind == Kind.JCOND:
            last = built[-1]
            built = (*built[:-1], Instruction(last.opcode, last.dst, last.src, window[-1].off, last.imm))
        return built if stack_safe(built) else None
