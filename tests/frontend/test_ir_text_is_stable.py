"""The IR text of a program is the same in every process: golden IR tests and the proof cache's keys
depend on it. (Hidden loop counters were named from Python object ids, so the text changed per run.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PRINT = """
import sys
sys.path.insert(0, sys.argv[1])
from pybpfdsl.ir.printer import format_program
from tests.differential import constructs
print(format_program(constructs.loops.lower().program))
"""


def _ir_text() -> str:
    done = subprocess.run([sys.executable, "-c", _PRINT, str(ROOT)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout


def test_a_program_with_loops_prints_the_same_ir_in_two_processes() -> None:
    first, second = _ir_text(), _ir_text()
    assert "$for0" in first and "$while" in first  # the loops' counters, numbered in lowering order
    assert first == second
