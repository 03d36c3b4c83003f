"""Each proof in a Z3 context of its own, so that its verdict and units do not depend on what ran before it.

Budgets are Z3 resource units (`budget`) so that a verdict is the same on any machine. But Z3's work
depends on its context's history: terms are hash-consed, their ids (which order the simplifier's and
the solver's choices) and the context's caches carry every earlier proof's terms. In Z3's main context
the same proof (the hash_maps construct) spent 8.7 million units in a fresh process and 21 million after
the other examples' proofs; under pytest-xdist the proofs a worker runs first vary from run to run, so
a proof near its budget would flip between "proven" and "unknown". In a context of its own, a proof
starts from the same state wherever it runs and spends the same units.

How: for the duration of one proof (`own_context`), a fresh `z3.Context` is made Z3's main context
(z3's `main_ctx()` reads the module global `z3.z3._main_ctx`), and the previous one is put back after,
whatever happens. The alternative, passing `ctx=` to every call that builds a term, solver or tactic,
would touch several hundred calls across the encoders, the normalizer and the shared `Z3_OPS` algebra,
and one forgotten call would silently build in the main context. Swapping is sound because:

- Every Z3 object of a proof is built inside the block, so all of them are in the proof's context:
  a call without `ctx` uses `main_ctx()` at the time of the call (the encoders, `Z3_OPS`), and one
  with Z3 operands uses theirs. No result of a proof holds a Z3 object (`ProofResult` and
  `Counterexample` hold Python values only), so none is mixed with another proof's.
- The prover keeps no Z3 object across proofs: the two it used to keep at module level (the solver
  that reads the resource counter, the bit-blasting tactic of feasibility checks) are built once per
  context (`PerContext`). tests/verify/equivalence/test_deterministic_units.py checks the units.
- Z3's main context is one per process, not per thread: a lock lets one thread at a time hold a
  context of its own (re-entrant: a proof inside a proof gets its own too). Code that uses Z3's main
  context in another thread while a proof runs would see the proof's; the prover does not do that.

The Python side must build the same terms in the same order too: the order decides their ids. So the
prover never builds terms in the order of a set of strings (or of values holding strings), whose hashes
Python salts per process (`PYTHONHASHSEED`); see `state._union` and `IREncoder.merge_states`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import z3

T = TypeVar("T")

_LOCK = threading.RLock()


@contextmanager
def own_context() -> Iterator[z3.Context]:
    """Run the block with a fresh Z3 context as the main one (the previous one is restored after)."""
    with _LOCK:
        module = z3.z3
        previous = module._main_ctx
        ctx = z3.Context()
        module._main_ctx = ctx
        try:
            yield ctx
        finally:
            module._main_ctx = previous


class PerContext(Generic[T]):
    """A Z3 object the prover reuses (a solver, a tactic), built once per context: in the context that
    is the main one when it is asked for. It keeps the last one only (a new context is a new proof)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._ctx: z3.Context | None = None
        self._value: T | None = None

    def get(self) -> T:
        ctx = z3.main_ctx()
        if self._ctx is not ctx or self._value is None:
            self._value = self._build()
            self._ctx = ctx
        return self._value
