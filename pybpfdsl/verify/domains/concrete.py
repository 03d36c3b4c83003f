"""Kept only until `scalar`, `tnum` and `interval` import `bits` (files of another change): the concrete
BPF semantics the domains are checked against is `bpf.semantics` on Python ints, and the width helpers
are `bits`."""

from __future__ import annotations

from pybpfdsl.verify.domains.bits import mask_of, to_signed

__all__ = ["mask_of", "to_signed"]
