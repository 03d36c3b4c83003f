"""What the verifier and the prover check: an IR program and the BPF object compiled from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pybpfdsl.ir.nodes import Program
from pybpfdsl.lang.state import StateObject

__all__ = ["Subject"]


@dataclass(frozen=True)
class Subject:
    """`program` (the IR) compiled to `elf`, whose code is in `section` (a section or function name, as
    `BpfElf.program` takes it). `state` (the program's Python state objects by name) is what the IR
    interpreter runs with when the prover replays a counterexample (restored afterwards)."""

    program: Program
    elf: bytes
    section: str
    state: Mapping[str, StateObject] = field(compare=False)
