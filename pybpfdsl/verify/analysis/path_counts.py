"""Paths through a control-flow graph, counted: cheap bounds the loop and complexity checks start from.

Split out of :mod:`.loops`: both counts read only the graph, never a state.
"""

from __future__ import annotations

from pybpfdsl.bpf.abi import BPF_COMPLEXITY_LIMIT_INSNS
from pybpfdsl.verify.analysis.cfg import Cfg

ENTRY_PATHS_CAP = 1 << 20
"""Entry paths counted at most (the count is a product of branch counts: it can pass any integer)."""


def entry_paths(cfg: Cfg) -> dict[int, int]:
    """Loop head → how many paths reach it from the program's entry without passing a back edge (at most
    ``ENTRY_PATHS_CAP``). The kernel explores a loop once per entry state it cannot prune, and states
    that reach it by different header-parsing paths differ in their proven packet ranges and pointer ids,
    which its pruning compares exactly: issue 13's payload sum as compiled since 90e9906 enters its loop
    by 26 paths, and the kernel's count jumps from 48,713 (``range(26)``) past 1,000,000 (``range(27)``)
    where the closed form, counting one entry state, says 62,029 and 69,615."""
    n = len(cfg.succs)
    paths = [0] * n
    if n:
        paths[0] = 1
    for i in cfg.rpo:
        for t in cfg.succs[i]:
            if (i, t) not in cfg.back_edges:
                paths[t] = min(ENTRY_PATHS_CAP, paths[t] + paths[i])
    return {h: max(paths[h], 1) for h in cfg.heads}


def path_bound(cfg: Cfg) -> int:
    """An upper bound of the instructions the kernel processes for a program without loops: each path from
    the entry (through either side of every conditional jump, whether or not it can go that way) processes
    each of its instructions at most once, and the kernel's exploration follows each path at most once
    (pruning only removes paths). So: the sum, over the instructions, of the paths that reach them (capped
    just past the kernel's limit: the count is a product of branch counts)."""
    cap = BPF_COMPLEXITY_LIMIT_INSNS + 1
    paths = [0] * len(cfg.succs)
    total = 0
    if paths:
        paths[0] = 1
    for i in cfg.rpo:
        total = min(cap, total + paths[i])
        for t in cfg.succs[i]:
            paths[t] = min(cap, paths[t] + paths[i])
    return total
