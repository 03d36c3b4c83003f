"""The superoptimizer's subjects: tests/superopt/sample.c and diamonds.c built by clang once per session
(skipped without clang)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.verify.corpus.c_corpus import _arch_include

HERE = Path(__file__).resolve().parent


def _build(tmp_path_factory: pytest.TempPathFactory, name: str) -> bytes:
    cc = shutil.which("clang")
    if cc is None:
        pytest.skip("clang is not installed")
    out = tmp_path_factory.mktemp("superopt") / f"{name}.o"
    subprocess.run([cc, "-O2", "-g", "-target", "bpf", *_arch_include(), "-c", str(HERE / f"{name}.c"),
                    "-o", str(out)], check=True, capture_output=True)
    return out.read_bytes()


@pytest.fixture(scope="session")
def sample_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _build(tmp_path_factory, "sample")


@pytest.fixture(scope="session")
def diamonds_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """tests/superopt/diamonds.c: clang's boolean diamonds (`a == X || a == Y` computed into a register)."""
    return _build(tmp_path_factory, "diamonds")
