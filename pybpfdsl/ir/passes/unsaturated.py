"""Fixed-point saturation dropped where value ranges (`ranges.py`) show it cannot happen.

An integer becomes a float by a shift, saturating to the ends of the float range when it does not fit
(`lang.fixed.from_integer`), and an integer quotient saturates the same way and works on magnitudes with
the sign put back (`lang.fixed.divide_integers`). Where the operands' ranges rule all that out, the same
numbers come from cheaper operations:

- `convert x: T` to float, for a u32, u64 or i64 `x` in [-2**31, 2**31): `x` converted to i32 first (exact
  in that range), whose conversion to float is a plain shift, no test (the backend's LLVM then drops the
  i32 step: the shift leaves none of the bits it would change);
- `int_quotient a, N` for a constant N > 0 and `a` in [0, 2**31 * N): the quotient on unsigned numbers,
  whole part `a / N` shifted into place plus the remainder scaled by 2**32 and divided by N, which is what
  `divide_integers` computes on such operands, without the magnitudes, the sign or the saturation test;
  for `a` below 2**32 as well, `(a << 32) / N`, one division: the shift cannot overflow, and the whole
  part and the scaled remainder are that quotient's two parts (the prover sees it through the facts every
  quotient by a constant obeys, `verify/equivalence/nonlinear.py`).
"""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.ranges import Ranges, value_ranges
from pybpfdsl.ir.passes.rewrite import Fresh, copy_program
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.fixed import FRACTION_BITS, WHOLE_MAX, WHOLE_MIN
from pybpfdsl.lang.types import FLOAT, ScalarType, i32, u64

_SHIFTABLE = 1 << (64 - FRACTION_BITS)
"""Dividends below this are shifted into place without overflowing 64 bits."""


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    if not any(isinstance(i, (n.Convert, n.IntQuotient)) and i.out.type == FLOAT for b in out.blocks
               for i in b.instrs):
        return out
    ranges = value_ranges(out)
    consts = {i.out: i.value for b in out.blocks for i in b.instrs if isinstance(i, n.Const)}
    fresh = Fresh(out)
    for b in out.blocks:
        instrs: list[n.Instr] = []
        for i in b.instrs:
            if isinstance(i, n.Convert) and _fits_i32(i, ranges):
                narrow = fresh.value(i32, i.value.hint)
                instrs += [n.Convert(out=narrow, value=i.value, line=i.line),
                           n.Convert(out=i.out, value=narrow, line=i.line)]
            elif isinstance(i, n.IntQuotient) and _plain_quotient(i, ranges, consts):
                if ranges[i.lhs].hi < _SHIFTABLE:
                    instrs += _scaled_quotient(i, consts[i.rhs], fresh)
                else:
                    instrs += _unsigned_quotient(i, consts[i.rhs], fresh)
            else:
                instrs.append(i)
        b.instrs = instrs
    return out


def _fits_i32(i: n.Convert, ranges: Ranges) -> bool:
    """A conversion to float of an integer wider than i32, or a u32, whose range fits i32."""
    t = i.value.type
    if i.out.type != FLOAT or not isinstance(t, ScalarType) or t.is_fixed or t.is_bool:
        return False
    if t.bits < 32 or (t.bits == 32 and t.signed):
        return False  # already a plain shift
    r = ranges.get(i.value)
    return r is not None and r.within(WHOLE_MIN, WHOLE_MAX)


def _plain_quotient(i: n.IntQuotient, ranges: Ranges, consts: dict[n.Value, int]) -> bool:
    divisor = consts.get(i.rhs)
    r = ranges.get(i.lhs)
    return divisor is not None and divisor > 0 and r is not None and r.within(0, (WHOLE_MAX + 1) * divisor - 1)


def _unsigned_quotient(i: n.IntQuotient, divisor: int, fresh: Fresh) -> list[n.Instr]:
    """`a / N` as a float on unsigned numbers: `((a / N) << 32) + (((a % N) << 32) / N)`, the remainder as
    `a - (a / N) * N` (one divider, as `divide_integers` has it)."""
    line = i.line

    def value(hint: str = "") -> n.Value:
        return fresh.value(u64, hint)

    a, k, shift = value(), value(), value()
    q, qk, r, high, scaled, low, raw = (value() for _ in range(7))
    return [
        n.Convert(out=a, value=i.lhs, line=line),
        n.Const(out=k, value=divisor, line=line),
        n.Const(out=shift, value=FRACTION_BITS, line=line),
        n.Binary(out=q, op=BinOp.DIV, lhs=a, rhs=k, line=line),
        n.Binary(out=qk, op=BinOp.MUL, lhs=q, rhs=k, line=line),
        n.Binary(out=r, op=BinOp.SUB, lhs=a, rhs=qk, line=line),
        n.Binary(out=high, op=BinOp.SHL, lhs=q, rhs=shift, line=line),
        n.Binary(out=scaled, op=BinOp.SHL, lhs=r, rhs=shift, line=line),
        n.Binary(out=low, op=BinOp.DIV, lhs=scaled, rhs=k, line=line),
        n.Binary(out=raw, op=BinOp.ADD, lhs=high, rhs=low, line=line),
        n.Reinterpret(out=i.out, value=raw, line=line),
    ]


def _scaled_quotient(i: n.IntQuotient, divisor: int, fresh: Fresh) -> list[n.Instr]:
    """`a / N` as a float for `a` in [0, 2**32): `(a << 32) / N`."""
    line = i.line
    a, k, shift, scaled, raw = (fresh.value(u64) for _ in range(5))
    return [
        n.Convert(out=a, value=i.lhs, line=line),
        n.Const(out=k, value=divisor, line=line),
        n.Const(out=shift, value=FRACTION_BITS, line=line),
        n.Binary(out=scaled, op=BinOp.SHL, lhs=a, rhs=shift, line=line),
        n.Binary(out=raw, op=BinOp.DIV, lhs=scaled, rhs=k, line=line),
        n.Reinterpret(out=i.out, value=raw, line=line),
    ]
