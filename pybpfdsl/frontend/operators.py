"""Python's operator nodes and the DSL operations they mean, shared by the lowering and pure-Python mode."""

from __future__ import annotations

import ast
from typing import Final

from pybpfdsl.lang.arith import BinOp, CmpOp

BINARY_OPERATORS: Final[dict[type[ast.operator], BinOp]] = {
    ast.Add: BinOp.ADD, ast.Sub: BinOp.SUB, ast.Mult: BinOp.MUL, ast.FloorDiv: BinOp.DIV,
    ast.Mod: BinOp.MOD, ast.BitAnd: BinOp.AND, ast.BitOr: BinOp.OR, ast.BitXor: BinOp.XOR,
    ast.LShift: BinOp.SHL, ast.RShift: BinOp.SHR,
}
OPERATOR_SYMBOLS: Final[dict[type[ast.operator], str]] = {ast.MatMult: "@", ast.Pow: "**", ast.Div: "/"}
"""How the user writes the operators the DSL does not have as `BinOp`s, for messages (not the AST's names)."""
COMPARISONS: Final[dict[type[ast.cmpop], CmpOp]] = {
    ast.Eq: CmpOp.EQ, ast.NotEq: CmpOp.NE, ast.Lt: CmpOp.LT, ast.LtE: CmpOp.LE, ast.Gt: CmpOp.GT,
    ast.GtE: CmpOp.GE,
}
