"""An object's output does not depend on what the process optimised before it: two objects optimised in
either order come out the same. (Z3's counterexamples depend on its context's history, and a counterexample
steers a window's search: clang's signed bound check came out 18 slots alone and 19 after widths.c.)"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pybpfdsl.superopt.api import optimize_object
from tests.superopt.conftest import _build
from tests.verify.corpus.c_corpus import CLANG_FLAGS, HERE, _arch_include


@pytest.fixture(scope="module")
def signed_bound_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    cc = shutil.which("clang")
    if cc is None:
        pytest.skip("clang is not installed")
    out = tmp_path_factory.mktemp("order") / "ok_signed_bound.o"
    subprocess.run([cc, *CLANG_FLAGS, *_arch_include(), "-I", HERE, "-c", str(Path(HERE) / "ok_signed_bound.c"),
                    "-o", str(out)], check=True, capture_output=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def widths_elf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _build(tmp_path_factory, "widths")


def _outputs(objects: list[bytes]) -> list[bytes]:
    return [optimize_object(elf, proposals=600, kernel=False).after for elf in objects]


def test_two_objects_come_out_the_same_in_either_order(signed_bound_elf: bytes, widths_elf: bytes) -> None:
    bound_first, widths_second = _outputs([signed_bound_elf, widths_elf])
    widths_first, bound_second = _outputs([widths_elf, signed_bound_elf])
    assert bound_second == bound_first
    assert widths_second == widths_first
    assert len(bound_first) < len(signed_bound_elf) or bound_first != signed_bound_elf  # it did optimise
