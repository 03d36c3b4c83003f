"""The backend's public entry: IR program → BPF ELF object (plus the LLVM IR, for inspection)."""

from __future__ import annotations

import linecache
import os
from dataclasses import dataclass

from pybpfdsl.backend.lower import BackendError, lower_program
from pybpfdsl.backend.object_emit import BpfTargetMissing, emit_with_ir
from pybpfdsl.backend.stack_depth import deepest_stack_access
from pybpfdsl.bpf.abi import STACK_SIZE
from pybpfdsl.ir.check import IRError, check_program
from pybpfdsl.ir.nodes import Program
from pybpfdsl.ir.passes.pipeline import optimize as optimize_ir
from pybpfdsl.lang.errors import DslError, SourceLocation

__all__ = ["OPTIMIZE", "BackendError", "CompiledObject", "compile_program"]

OPTIMIZE = os.environ.get("PYBPFDSL_OPTIMIZE", "1") != "0"
"""Whether `compile_program` runs the IR passes (`ir/passes`) by default; `PYBPFDSL_OPTIMIZE=0` turns
them off (the bytecode is then lowered from the frontend's IR as it is)."""


@dataclass(frozen=True)
class CompiledObject:
    """A compiled program: the ELF object libbpf loads, and the LLVM IR before and after optimisation."""

    elf: bytes
    llvm_ir: str
    optimized_llvm_ir: str


def compile_program(program: Program, cpu: str = "v3", opt_level: int = 2, license: str = "GPL",
                    optimize: bool | None = None) -> CompiledObject:
    """Check, optimise, lower and compile one XDP program.

    `cpu` is the BPF ISA version LLVM targets ("v1".."v4", "generic", "probe"); `license` goes into the
    object's "license" section (GPL-only helpers need a GPL-compatible one). `optimize` (default
    `OPTIMIZE`) runs the IR passes first, on a copy: `program` itself is unchanged, and it is what the
    equivalence proof compares the bytecode with.
    Raises BackendError for IR that is malformed or cannot be lowered, and DslError for a program whose
    code needs more than the kernel's 512 bytes of stack.
    """
    try:
        check_program(program)
        if OPTIMIZE if optimize is None else optimize:
            program = optimize_ir(program)
            check_program(program)
    except IRError as exc:
        raise BackendError(f"{program.name}: invalid IR: {exc}") from exc
    text = str(lower_program(program, license=license))
    try:
        # One run of the LLVM pipeline gives both the object and the optimised IR (it used to run twice).
        emitted = emit_with_ir(text, cpu=cpu, opt_level=opt_level)
    except BpfTargetMissing:
        raise
    except RuntimeError as exc:  # LLVM rejected the module: the lowering produced something wrong
        raise BackendError(f"{program.name}: LLVM failed: {exc}") from exc
    _check_stack(program, emitted.elf)
    return CompiledObject(elf=emitted.elf, llvm_ir=text, optimized_llvm_ir=emitted.optimized_ir)


def _check_stack(program: Program, elf: bytes) -> None:
    """A DslError at the user's line when the code needs more than the kernel's 512-byte stack (LLVM
    is allowed to build such a frame so that it does not end the process: `stack_depth`)."""
    reach = deepest_stack_access(elf)
    if reach is None or reach.depth <= STACK_SIZE:
        return
    line = reach.line.line if reach.line is not None else program.first_line
    text = linecache.getline(program.source_file, line) or (reach.line.text if reach.line is not None else "")
    raise DslError(
        f"the compiled code of {program.name} needs {reach.depth} bytes of stack; the kernel allows a BPF "
        f"program {STACK_SIZE}",
        SourceLocation(program.source_file, line, 0, text.rstrip("\n")),
        hint="the stack holds map keys and values, records, and the values kept alive across long stretches "
             "of code: keep a large record in a map (a PerCpuArray slot) instead of building it in the "
             "function, or split the work so fewer values are live at once")
