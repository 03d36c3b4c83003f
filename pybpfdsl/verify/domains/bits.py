"""Bit patterns of a given width: the all-ones mask and the two's-complement reading.

The domains are parameterised by width (4 or 8 bits in the exhaustive tests, 64 in the verifier), so these
take the width explicitly. What the operations on the patterns mean is `bpf.semantics`' (the domains'
tests compare against its Python-int instance).
"""

from __future__ import annotations

__all__ = ["mask_of", "to_signed"]


def mask_of(width: int) -> int:
    """All-ones pattern of ``width`` bits."""
    return (1 << width) - 1


def to_signed(x: int, width: int) -> int:
    """Two's-complement value of the ``width``-bit pattern ``x``."""
    x &= mask_of(width)
    return x - (1 << width) if x >> (width - 1) else x
