"""Abstract domains of the BPF safety verifier: tnums, intervals and their reduced product, scalars.

Each domain is a frozen class with ``join``, ``meet``, ``widen``, ``narrow``, ``le`` and ``contains``;
transfer functions are module-level functions, one per operation, each checked for soundness against
``bpf.semantics`` on Python ints (exhaustively at small widths, by Z3 at 64 bits).
"""

from __future__ import annotations

from pybpfdsl.verify.domains.interval import Interval
from pybpfdsl.verify.domains.scalar import Scalar, alu, bswap, end, movsx, refine, truncate
from pybpfdsl.verify.domains.tnum import Tnum

__all__ = ["Interval", "Scalar", "Tnum", "alu", "bswap", "end", "movsx", "refine", "truncate"]
