"""The control-flow graph of a program as the analysis walks it: static successors (calls into
subprograms and bpf_loop callbacks, returns), predecessors, reverse post-order, back edges and loop heads.
Structural faults (a jump outside the program, falling off its end, unreachable code) are findings here."""

from __future__ import annotations

from dataclasses import dataclass, field

from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.verify.analysis.checks import Code, VerifierFinding
from pybpfdsl.verify.analysis.transfer import Env

__all__ = ["Cfg", "build_cfg"]


@dataclass
class Cfg:
    succs: list[list[int]]
    preds: list[list[int]]
    rpo: list[int]
    order: dict[int, int]
    back_edges: set[tuple[int, int]]
    heads: set[int]
    findings: list[VerifierFinding] = field(default_factory=list)

    def loop_body(self, head: int) -> set[int]:
        """The natural loop of ``head``: nodes reaching one of its back-edge sources without passing it."""
        body = {head}
        work = [s for s, t in self.back_edges if t == head]
        while work:
            n = work.pop()
            if n in body:
                continue
            body.add(n)
            work.extend(self.preds[n])
        return body


def _static_succs(env: Env, idx: int) -> list[int]:
    insn = env.insns[idx]
    kind = env.kinds[idx]
    if kind == Kind.EXIT:
        back = env.return_to.get(idx)
        return [] if back is None else [back]
    if kind == Kind.INVALID:
        return []
    if kind == Kind.CALL and insn.is_pseudo_call and idx not in env.global_calls:
        entry = env.call_entry.get(idx)
        return [] if entry is None else [entry]
    if kind == Kind.CALL and idx in env.call_entry:  # bpf_loop: after the call, or into its callback
        return [idx + 1, env.call_entry[idx]]
    if kind in (Kind.JA, Kind.GOTOL):
        return [env.target(idx, insn)]
    if kind in (Kind.JCOND, Kind.MAY_GOTO):
        return [idx + 1, env.target(idx, insn)]
    return [idx + 1]


def build_cfg(env: Env) -> Cfg:
    n = len(env.insns)
    findings: list[VerifierFinding] = []
    succs: list[list[int]] = []
    for i in range(n):
        out = []
        for t in _static_succs(env, i):
            if 0 <= t < n:
                out.append(t)
            elif t == n and env.insns[i].kind not in (Kind.JA, Kind.GOTOL, Kind.JCOND, Kind.MAY_GOTO):
                findings.append(VerifierFinding(Code.INVALID_INSN, i, "execution falls off the end of the program"))
            else:
                findings.append(VerifierFinding(Code.INVALID_INSN, i, "jump target outside the program"))
        succs.append(out)
    preds: list[list[int]] = [[] for _ in range(n)]
    for i, out in enumerate(succs):
        for t in out:
            preds[t].append(i)
    # Iterative DFS: post-order for RPO, grey set for back edges.
    post: list[int] = []
    colour = [0] * n  # 0 white, 1 grey, 2 black
    back: set[tuple[int, int]] = set()
    if n:
        stack: list[tuple[int, int]] = [(0, 0)]
        colour[0] = 1
        while stack:
            node, k = stack[-1]
            if k < len(succs[node]):
                stack[-1] = (node, k + 1)
                t = succs[node][k]
                if colour[t] == 0:
                    colour[t] = 1
                    stack.append((t, 0))
                elif colour[t] == 1:
                    back.add((node, t))
            else:
                colour[node] = 2
                post.append(node)
                stack.pop()
    rpo = post[::-1]
    for i in range(n):
        if colour[i] == 0:
            findings.append(VerifierFinding(Code.UNREACHABLE, i, "unreachable instruction (the kernel rejects it)"))
    return Cfg(succs, preds, rpo, {v: k for k, v in enumerate(rpo)}, back, {t for _, t in back}, findings)
