"""The verdict of an equivalence proof (`prove`), and what the proof cache (`proof_cache`) stores and
gives back: a module of its own so that the cache and the prover need not import each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pybpfdsl.verify.equivalence.report import render_text

if TYPE_CHECKING:
    from pybpfdsl.verify.equivalence.counterexample import Counterexample

__all__ = ["ProofResult", "Status", "skipped"]

Status = Literal["proven", "counterexample", "unknown", "skipped"]


@dataclass
class ProofResult:
    """The verdict of one equivalence proof, with its cost: `seconds` (informative only: nothing
    depends on them) and `units`, the resource units spent (`budget`), the same on every machine."""

    status: Status
    seconds: float = 0.0
    stats: dict[str, int | float | str] = field(default_factory=dict)
    reason: str = ""
    counterexample: Counterexample | None = None
    units: int = 0

    @property
    def proven(self) -> bool:
        return self.status == "proven"

    def summary(self) -> str:
        head = f"{self.status} in {self.seconds:.3f} s" + (f" ({self.units:,} units)" if self.units else "")
        if self.stats:
            head += " (" + ", ".join(f"{k}={v}" for k, v in self.stats.items() if k in _SHOWN) + ")"
        return head + (f": {self.reason}" if self.reason else "")

    def report(self, full: bool = False) -> str:
        """The summary, and for a counterexample the side-by-side replay: a screenful unless `full`."""
        if self.counterexample is None:
            return self.summary()
        return self.summary() + "\n" + render_text(self.counterexample, full)


_SHOWN = ("paths_a", "paths_b", "solver_checks", "paired", "abstracted", "merged", "swept", "sweep_passes",
          "sweep_undecided", "cuts", "refined", "conflicts", "decisions")


def skipped(reason: str = "compile(prove=False)") -> ProofResult:
    """The verdict of a proof not run, and why."""
    return ProofResult("skipped", reason=reason)
