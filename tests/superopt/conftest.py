"""The superoptimizer's subject: tests/superopt/sample.c built by clang once per session (skipped without
clang), and the optimised object with a small budget."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.verify.corpus.c_corpus import _arch_include

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def sample_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    cc = shutil.which("clang")
    if cc is None:
        pytest.skip("clang is not installed")
    out = tmp_path_factory.mktemp("superopt") / "sample.o"
    subprocess.run([cc, "-O2", "-g", "-target", "bpf", *_arch_include(), "-c", str(HERE / "sample.c"),
                    "-o", str(out)], check=True, capture_output=True)
    return out.read_bytes()
