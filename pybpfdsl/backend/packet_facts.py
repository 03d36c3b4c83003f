"""Which packet bounds checks cover a packet load, so the load needs no guard of its own.

An IR `in_bounds off, W` whose result a branch tests establishes, on the branch's true edge, that the W
bytes at `off` are in the packet. When that edge is the only way into its target, the fact holds in
every block the target dominates. A load at `off + k` (k a constant) of w bytes with k + w <= W is then
lowered from the very pointer the check tested (`start + k`), which is what the kernel verifier needs
to know the access is in range: no second compare, no second `return XDP_ABORTED`. Loads no check
covers keep their own guard (`lower._load_packet`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llvmlite import ir

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, constant_offset, definitions

_SMALL = 1 << 16  # constant parts of offsets beyond this are left to the guarded path


@dataclass(frozen=True)
class Checked:
    """One lowered bounds check: `width` bytes from `base + k` are in the packet at `start`."""

    base: n.Value | None
    k: int
    width: int
    start: ir.Value


@dataclass
class PacketFacts:
    """The checks lowered so far and the blocks in which each one holds."""

    program: n.Program
    cfg: Cfg = field(init=False)
    defs: dict[n.Value, n.Instr] = field(init=False)
    checks: dict[n.Value, Checked] = field(default_factory=dict)
    holding: dict[str, list[Checked]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cfg = Cfg.of(self.program)
        self.defs = definitions(self.program)

    def checked(self, op: n.InBounds, start: ir.Value) -> None:
        base, k = constant_offset(op.offset, self.defs)
        if k < _SMALL:
            self.checks[op.out] = Checked(base, k, op.width, start)

    def branched(self, block: str, term: n.Branch) -> None:
        """Note what holds on the true edge of `term` (ending `block`)."""
        check = self.checks.get(term.cond)
        target = term.if_true.target
        if check is not None and target != term.if_false.target and self.cfg.only_edge_from(target, block):
            self.holding.setdefault(target, []).append(check)

    def split(self, offset: n.Value) -> tuple[n.Value | None, int]:
        """`offset` as (base, k): base + k, k a constant (base None: the constant k)."""
        return constant_offset(offset, self.defs)

    def covering(self, block: str, op: n.LoadPacket) -> tuple[ir.Value, int] | None:
        """(checked pointer, offset from it) of a check that covers `op` in `block`, if one does."""
        base, k = constant_offset(op.offset, self.defs)
        if k >= _SMALL:
            return None
        for d in self.cfg.dominators(block):
            for c in self.holding.get(d, ()):
                if c.base == base and c.k <= k and k + op.width <= c.k + c.width:
                    return c.start, k - c.k
        return None
