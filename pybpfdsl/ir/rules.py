"""What an instruction's type rule may ask while the checker runs, and the error a broken rule raises.

Each instruction class in `nodes` states its own rule in a `check(rules)` method; `check.check_program`
walks the program (structure, SSA dominance) and hands each instruction a `ProgramRules` (the
`nodes.TypeRules` protocol) for where it stands.
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpfdsl.ir.nodes import GlobalDecl, MapDecl, Program, RingBufDecl, Value
from pybpfdsl.ir.types import IRType, MapValueRef, StructType
from pybpfdsl.lang.types import ScalarType


class IRError(Exception):
    """The IR breaks a rule; the message names the block and instruction."""


@dataclass(frozen=True)
class ProgramRules:
    """The program's declarations, and `where` (block and index) to name in an error."""

    program: Program
    where: str

    def expect(self, cond: bool, message: str) -> None:
        if not cond:
            raise IRError(f"{self.where}: {message}")

    def scalar(self, v: Value) -> ScalarType:
        """`v`'s type, which must be a scalar."""
        self.expect(isinstance(v.type, ScalarType), f"{v} must be a scalar, is {v.type}")
        assert isinstance(v.type, ScalarType)
        return v.type

    def same(self, a: IRType, b: IRType, what: str) -> None:
        self.expect(a == b, f"{what}: {a} vs {b}")

    def map_decl(self, name: str) -> MapDecl:
        return self.program.map_decl(name)

    def global_decl(self, name: str) -> GlobalDecl:
        return self.program.global_decl(name)

    def ringbuf_decl(self, name: str) -> RingBufDecl:
        decls = [d for d in self.program.ringbufs if d.name == name]
        self.expect(bool(decls), f"@{name} is not declared as a ring buffer")
        return decls[0]

    def value_slot_type(self, ref: Value, field_name: str | None) -> IRType:
        """The type stored where `ref` (a map-value reference) points, or in its field `field_name`."""
        self.expect(isinstance(ref.type, MapValueRef), f"{ref} is not a map value reference")
        assert isinstance(ref.type, MapValueRef)
        vt = self.map_decl(ref.type.map_name).value_type
        if field_name is None:
            return vt
        self.expect(isinstance(vt, StructType), f"field access on a {vt} value")
        assert isinstance(vt, StructType)
        for f in vt.cls.fields():
            if f.name == field_name:
                return f.type
        raise IRError(f"{self.where}: {vt} has no field {field_name}")
