"""Which multiple assignments between header fields only move the fields' values among themselves.

`ip4.src, ip4.dst = ip4.dst, ip4.src` reads the fields it writes, of one header named the same way on
both sides: the values are the old ones in another order. Where `lang.checksum.sums_unchanged` says
such a move keeps every checksum's sum, the emitter and pure Python both write the fields without a
checksum update; this is the one place the statement's form is recognised.
"""

from __future__ import annotations

import ast

from pybpfdsl.lang.checksum import sums_unchanged
from pybpfdsl.lang.headers import FieldSpec, HeaderSpec

__all__ = ["keeps_checksums"]


def keeps_checksums(header: HeaderSpec, targets: ast.Tuple | ast.List, values: ast.expr) -> bool:
    """Whether `targets = values` (fields of `header`) is `h.a, h.b = h.b, h.a` for one local `h`, a
    move that keeps the sums of the checksums covering the fields."""
    if not isinstance(values, ast.Tuple | ast.List) or len(values.elts) != len(targets.elts):
        return False
    bases: set[str] = set()
    moves: list[tuple[FieldSpec, FieldSpec]] = []
    for t, v in zip(targets.elts, values.elts):
        if not (isinstance(t, ast.Attribute) and isinstance(v, ast.Attribute)
                and isinstance(t.value, ast.Name) and isinstance(v.value, ast.Name)):
            return False
        target, source = header.field(t.attr), header.field(v.attr)
        if target is None or source is None:
            return False
        bases.update((t.value.id, v.value.id))
        moves.append((target, source))
    return len(bases) == 1 and sums_unchanged(header.name, moves)
