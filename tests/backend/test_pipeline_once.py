"""One compile runs LLVM's optimisation pipeline once, and the optimised IR shown to the user is the IR the
object was generated from (issue 14 §6: it used to run the pipeline a second time just to print it)."""

from __future__ import annotations

from typing import Any

import pytest

from pybpfdsl.backend import object_emit
from pybpfdsl.backend.compile import compile_program
from pybpfdsl.ir.builder import IRBuilder
from pybpfdsl.ir.nodes import Program
from pybpfdsl.lang.actions import XDP_PASS
from tests.backend.test_lower import finish, ret


def _program() -> Program:
    b = IRBuilder()
    b.set_block(b.new_block("entry"))
    ret(b, XDP_PASS)
    return finish("once", b)


def test_a_compile_runs_the_pipeline_once(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []
    real = object_emit._optimize

    def counting(mod: Any, tm: Any, opt_level: int) -> None:
        runs.append(opt_level)
        real(mod, tm, opt_level)

    monkeypatch.setattr(object_emit, "_optimize", counting)
    compile_program(_program())
    assert len(runs) == 1


def test_the_object_is_the_one_a_separate_emit_gives() -> None:
    compiled = compile_program(_program())
    assert compiled.elf == object_emit.emit_bpf_object(compiled.llvm_ir)
    assert "define" in compiled.optimized_llvm_ir and "target triple" in compiled.optimized_llvm_ir
