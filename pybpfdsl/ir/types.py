"""IR types: DSL scalars (integers, bool, Q32.32 fixed point), struct aggregates and map-value references."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType


@dataclass(frozen=True)
class StructType:
    """A Struct record held as an SSA aggregate."""

    cls: type[Struct]

    def __str__(self) -> str:
        return f"struct {self.cls.__name__}"


@dataclass(frozen=True)
class MapValueRef:
    """A pointer to a map value, or null: the result of a map lookup. Loads need a null check first."""

    map_name: str

    def __str__(self) -> str:
        return f"ref<{self.map_name}>"


IRType: TypeAlias = "ScalarType | StructType | MapValueRef"


def value_ir_type(t: ScalarType | type[Struct]) -> ScalarType | StructType:
    """The IR type that holds a map key or value of declared type `t`."""
    return t if isinstance(t, ScalarType) else StructType(t)
