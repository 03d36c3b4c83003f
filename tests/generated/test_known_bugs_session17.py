"""Bugs the generated corpus found in session 17 (benchmarks/generated_corpus.py, new seed ranges), each reduced
to the smallest program that still shows it. Each test states the correct behaviour and is a strict xfail: it
starts to pass, and so fails here, when the bug is fixed; then drop the marker and keep the test. A bug fixed in
the same session keeps its program here as a plain test. Programs are kept as generated: unused locals and
nested checks are part of what the verifier sees."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from pybpfdsl.runtime.libbpf import kernel_bpf_available
from tests.generated.checks import load_module
from tests.generated.program_strategy import EXTENDED, RandomChooser, generate_program

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")


def test_a_run_time_randint_whose_bounds_fold_is_drawn_in_order() -> None:
    """EXTENDED seed 42097 (session 16): the generator drew `randint(i32(i32(T6[-2])), i32(i8(-1)))`, which
    folds to randint(726, -1), and the compiler refused the program ("needs lo <= hi"); a generated program must
    be valid. The bounds are swapped where both fold out of order, and the program compiles."""
    gen = generate_program(RandomChooser(42097), EXTENDED)
    assert "randint(i32(i8(-1)), i32(i32(T6[-2])))" in gen.source
    with tempfile.TemporaryDirectory() as tmp:
        module, _ = load_module(gen.source, Path(tmp), "gen_42097")
        getattr(module, gen.function).lower()  # no DslError
