"""Path-by-path symbolic execution with solver-pruned forks, shared by both encodings.

A machine runs one path until it ends (an `Outcome`) or reaches a branch on a symbolic condition (a
`Fork`). The explorer keeps a solver whose assertion stack is the current path condition, and follows a
branch only when the solver says it can be taken; infeasible paths (for example every failing packet
guard of the backend once the IR's bounds check has passed) are dropped without being executed. Loops
are unrolled by this: a path simply runs on until its condition makes the exit the only feasible way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

import z3

from pybpfdsl.verify.equivalence.state import Effects, Term

S = TypeVar("S")

OutcomeKind = Literal["return", "fault", "ir_error"]


class Unsupported(Exception):
    """The program does something the encoding does not model (the proof is then 'unknown')."""


@dataclass
class Outcome:
    """How one path ends. `trace` lists what it executed (IR: source lines; bytecode: indices)."""

    kind: OutcomeKind
    action: Term | None
    effects: Effects
    trace: tuple[int, ...]
    packet: Term = None
    """The packet array at the end (None: never written)."""
    packet_writes: tuple[Term, ...] = ()
    reason: str = ""
    condition: Term = True


@dataclass
class Fork(Generic[S]):
    """Alternatives of a branch: each a condition and the state (or outcome) that follows from it."""

    alternatives: list[tuple[Term, S | Outcome]]


@dataclass
class Exploration:
    outcomes: list[Outcome] = field(default_factory=list)
    solver_checks: int = 0


class PathLimit(Unsupported):
    pass


def explore(initial: S, step: Callable[[S], Outcome | Fork[S]], assumptions: list[Term],
            path_condition: Callable[[S], list[Term]], max_paths: int = 20_000,
            check_timeout_ms: int = 100, deadline: float | None = None) -> Exploration:
    """Every feasible path from `initial`. `step` runs a state to its next fork or its end;
    `path_condition` gives the conditions accumulated on a state (outcomes get their conjunction)."""
    solver = z3.Solver()
    # A branch the solver cannot decide quickly (deep fixed-point arithmetic) is simply followed: an
    # infeasible path costs a little in the final query, but never soundness.
    solver.set("timeout", check_timeout_ms)
    solver.add(*assumptions)
    result = Exploration()

    def run(state: S) -> None:
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise PathLimit("the time budget ran out while exploring paths")
            nxt = step(state)
            if isinstance(nxt, Outcome):
                nxt.condition = z3.And(*path_condition(state)) if path_condition(state) else z3.BoolVal(True)
                result.outcomes.append(nxt)
                if len(result.outcomes) > max_paths:
                    raise PathLimit(f"more than {max_paths} paths")
                return
            live: list[tuple[Term, S | Outcome]] = []
            for cond, succ in nxt.alternatives:
                simple = z3.simplify(cond)
                if z3.is_false(simple):
                    continue
                live.append((simple, succ))
            if len(live) == 1 and z3.is_true(live[0][0]):
                _, only = live[0]
                if isinstance(only, Outcome):
                    only.condition = z3.And(*path_condition(state)) if path_condition(state) else True
                    result.outcomes.append(only)
                    return
                state = only
                continue
            for cond, succ in live:
                solver.push()
                solver.add(cond)
                result.solver_checks += 1
                if solver.check() != z3.unsat:
                    if isinstance(succ, Outcome):
                        pc = [*path_condition(state), cond]
                        succ.condition = z3.And(*pc)
                        result.outcomes.append(succ)
                    else:
                        run(succ)
                solver.pop()
            return

    run(initial)
    return result
