"""What one proof may spend, counted in work rather than time, so that its verdict is the same on any machine.

A budget in seconds makes the verdict depend on the machine and on its load: the same object proves on
an idle machine and is "unknown" beside two busy test runs. Z3 counts the work it does in resource
units instead (`rlimit`: roughly one per propagation, conflict or rewrite step). Within one Z3 context
the count is cumulative, it is the same in every run of the same sequence of operations, and a check
given the parameter `rlimit=n` gives up ("unknown") after n more units. So every budget here is in
those units:

- The solver's own work is measured by the context's counter (`solver_count`): what a proof spent is
  the counter's growth since it started, whichever solver (or `z3.simplify`) did the work.
- Each check runs with `rlimit` = the smaller of its own cap (one branch's feasibility, one sweep
  question) and what is left of the proof's budget (`Budget.limit`).
- Work done in Python (exploring a path step, normalizing a term node, rewriting one for the
  abstraction) costs the solver nothing, so it is charged at a fixed rate per step (`STEP_COSTS`),
  chosen so that a unit of Python work takes about as long as a unit of solver work: the budget then
  still reads as "about this long on a reference machine".
- A phase that may use part of what is left (merging, sweeping, the abstract query) gets a `share`: a
  budget of its own, counted in the same units, that also counts towards its parent.

One wall-clock limit remains, as a safety net only (`SAFETY_SECONDS`): far beyond what any budget
takes on a loaded machine, so no verdict depends on it; should it ever fire, the verdict is "unknown"
and says so.
"""

from __future__ import annotations

import re
import time

import z3

from pybpfdsl.verify.equivalence.context import PerContext

SAFETY_SECONDS = 900.0
"""Wall-clock limit of one proof, whatever its budget: a net under the unit budgets (which every example
stays far inside, loaded or not), never what decides a verdict."""
MAX_RLIMIT = 2**32 - 1
"""Z3 takes `rlimit` as an unsigned 32-bit parameter."""

STEP_COSTS = {
    "explore": 3_000,
    "normalize": 60,
    "literal": 4,
    "walk": 2,
    "abstract": 30,
    "question": 3_000,
    "sample": 300,
}
"""Units charged per Python-side step: exploring one step of one symbolic state (`paths.explore`),
normalizing one term node (`normalize`), each item of a normalized conjunction or disjunction
(`literal`: a path condition nested once per branch is flattened at every level, so its work grows
with its length, not with its nodes), visiting one node of a walk over a term's subterms (`walk`: the
shared parts of a merge or sweep question's two sides, which a question's fixed charge does not
cover), rewriting one node for the abstraction (`nonlinear`), the bookkeeping around one merge or sweep
question, evaluating one term at one sample point (`sweep`). Rough, from a profile of the examples, so
that a unit of Python work takes about as long as a unit of solver work (Z3 spends 1,000 to 3,000
units a millisecond on the examples' hard checks here). What matters is that they are fixed: the
count, unlike the time, is the same on every machine."""
_REFRESH = 30_000
"""Python-side units charged between two readings of the solver's counter (a reading costs as much as
a few hundred normalized nodes)."""

_PROBE = PerContext(z3.Solver)
"""A solver without assertions, to read the counter of the context it is in (one per proof's context)."""


def solver_count() -> int:
    """Resource units Z3 has spent in the main context so far (cumulative; any solver's statistics
    report the context's counter, a fresh solver's without a check). A proof has a context of its own
    (`context`), so this starts from 0 in each."""
    return int(_PROBE.get().statistics().get_key_value("rlimit count"))


class OutOfBudget(Exception):
    """A proof's budget (or the wall-clock safety net) ran out; the proof's verdict is "unknown"."""


class Budget:
    """Work one proof (or one phase of it, `share`) may do, in solver resource units.

    Not a value: it counts what has been spent since it was made. The solver's work is read from Z3's
    counter; Python-side work is added by `charge`."""

    def __init__(self, units: int, *, safety_seconds: float | None = None, parent: Budget | None = None) -> None:
        """`units` to spend from now; `safety_seconds` (default `SAFETY_SECONDS`) is the wall-clock net."""
        self.units = max(0, int(units))
        self.parent = parent
        seconds = SAFETY_SECONDS if safety_seconds is None else safety_seconds
        self.safety_seconds: float = parent.safety_seconds if parent is not None else seconds
        self.safety_end: float = parent.safety_end if parent is not None else time.monotonic() + seconds
        self._start = solver_count()
        self._seen = self._start
        self._charged = 0
        self._unread = 0

    # -- accounting ----------------------------------------------------------------------------------

    @property
    def spent(self) -> int:
        """Units spent since this budget was made: the solver's (read now) and the Python side's."""
        self._seen = solver_count()
        self._unread = 0
        return self._seen - self._start + self._charged

    @property
    def solver_spent(self) -> int:
        """The solver's part of `spent`."""
        return solver_count() - self._start

    @property
    def left(self) -> int:
        return max(0, self.units - self.spent)

    @property
    def exhausted(self) -> bool:
        return self.left == 0 or self.past_safety_net

    @property
    def past_safety_net(self) -> bool:
        return time.monotonic() > self.safety_end

    def charge(self, kind: str, steps: int = 1) -> None:
        """Count `steps` Python-side steps of `kind` (a key of `STEP_COSTS`), here and in every parent."""
        units = STEP_COSTS[kind] * steps
        b: Budget | None = self
        while b is not None:
            b._charged += units
            b._unread += units
            b = b.parent

    def require(self, doing: str) -> None:
        """Raise `OutOfBudget` when nothing is left (`doing` says what ran out of it). The solver's
        counter is read only every `_REFRESH` charged units: Python-side steps between two readings
        do no solver work, so the answer is the same as if it were read every time, up to that many."""
        if self._unread >= _REFRESH:
            self._seen = solver_count()
            self._unread = 0
        if self._seen - self._start + self._charged >= self.units:
            raise OutOfBudget(f"the budget ({self.describe()}) ran out while {doing}")
        if self.past_safety_net:
            raise OutOfBudget(self.safety_reason(doing))

    def describe(self) -> str:
        root = self
        while root.parent is not None:
            root = root.parent
        return f"{root.units:,} units"

    def safety_reason(self, doing: str) -> str:
        return (f"the wall-clock safety net ({self.safety_seconds:.0f} s, beyond any budget) ran out while {doing}; "
                "the machine is far slower than expected")

    def share(self, fraction: float) -> Budget:
        """A budget for a phase that may use `fraction` of what is left; its spending counts here too."""
        return Budget(int(self.left * fraction), parent=self)

    # -- solver checks -------------------------------------------------------------------------------

    def limit(self, cap: int | None = None) -> int:
        """The `rlimit` of the next check: its own `cap` (if any), at most what is left. 0: nothing left."""
        left = self.left
        return min(left, cap, MAX_RLIMIT) if cap is not None else min(left, MAX_RLIMIT)

    def check(self, solver: z3.Solver, cap: int | None = None) -> z3.CheckSatResult:
        """`solver.check()` within `limit(cap)` units (and the safety net); unknown without a check when
        nothing is left. Out of the safety net's time it raises `OutOfBudget`: then no result counts."""
        units = self.limit(cap)
        if units <= 0:
            return z3.unknown
        remaining = self.safety_end - time.monotonic()
        if remaining <= 0:
            raise OutOfBudget(self.safety_reason("solving"))
        solver.set("rlimit", units)
        solver.set("timeout", max(1, int(remaining * 1000)))
        verdict = solver.check()
        if verdict == z3.unknown and self.past_safety_net:
            raise OutOfBudget(self.safety_reason("solving"))
        return verdict


def parse_units(text: str) -> int:
    """A budget written as an integer of units, with `_` or `,` separators and an optional k, M or G
    suffix (`250M` = 250,000,000)."""
    match = re.fullmatch(r"\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*([kKmMgG]?)\s*", text)
    if match is None:
        raise ValueError(f"not a budget in units: {text!r} (write e.g. 100000000 or 100M)")
    number = float(match.group(1).replace("_", "").replace(",", ""))
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    return int(number * scale)
