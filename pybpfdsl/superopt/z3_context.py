"""A Z3 context of the optimizer's own for each object, so that its output does not depend on what ran before.

Z3's answers within a unit budget, and the models it gives for a satisfiable query, depend on the history
of the context they are asked in (the terms it made before, the solvers it ran): one window proof gave the
counterexample r6 = 8 in a fresh context and r6 = 5 after ten other proofs. A counterexample becomes a test
of the window's search (`search`), which steers its chain, so the same object came out 18 slots alone and
19 after other objects in the same process. Every query of one `optimize_object` call therefore goes to a
context created for it: its result depends on the object and the arguments only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["own_context"]


@contextlib.contextmanager
def own_context() -> Iterator[None]:
    """Within the block, Z3's default context (the one every ``z3.BitVec(...)`` without ``ctx=`` uses) is a
    new one; the one before is restored after it. Terms made before the block must not be used inside it
    (nor terms made inside after it): two contexts' terms do not mix."""
    import z3

    # z3 keeps its default context in a module global that `z3.main_ctx()` creates on first use; the
    # semantics and the proofs call z3 without a ctx argument, so swapping that global is the one way in.
    saved = z3.z3._main_ctx
    z3.z3._main_ctx = z3.Context()
    try:
        yield
    finally:
        z3.z3._main_ctx = saved
