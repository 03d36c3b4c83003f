"""A broken LLVM module is an error the compiler can report, with debug info as without it.

With the "Debug Info Version" flag, LLVM's parser verifies the module itself and ends the process
("Broken module found, compilation aborted!"). The emission runs in a child process here, so that a
regression fails this test rather than killing the test run.
"""

from __future__ import annotations

import subprocess
import sys

BROKEN = """
define i32 @f(i32 %a) !dbg !4 {
entry:
  br label %b
b:
  ret i32 %x, !dbg !7
c:
  %x = add i32 %a, 1
  br label %b
}
!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!3}
!0 = distinct !DICompileUnit(language: DW_LANG_C99, file: !1, producer: "t", isOptimized: false,
                             runtimeVersion: 0, emissionKind: FullDebug)
!1 = !DIFile(filename: "t.py", directory: "/")
!3 = !{i32 2, !"Debug Info Version", i32 3}
!4 = distinct !DISubprogram(name: "f", scope: !1, file: !1, line: 1, type: !5, unit: !0)
!5 = !DISubroutineType(types: !6)
!6 = !{}
!7 = !DILocation(line: 1, scope: !4)
"""

CHILD = """
import sys
from pybpfdsl.backend import object_emit
try:
    object_emit.emit_bpf_object(sys.stdin.read())
except RuntimeError as exc:
    print("RuntimeError:", exc)
"""


def _emit_in_child(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD], input=text, capture_output=True, text=True, timeout=120)


def test_a_broken_module_with_debug_info_raises() -> None:
    run = _emit_in_child(BROKEN)
    assert run.returncode == 0, run.stderr
    assert "RuntimeError: Instruction does not dominate all uses" in run.stdout, run.stdout + run.stderr


def test_a_broken_module_without_debug_info_raises_the_same() -> None:
    plain = BROKEN.replace(', !dbg !7', '').replace(' !dbg !4', '').replace('!"Debug Info Version"', '!"x"')
    run = _emit_in_child(plain.split("!llvm.dbg.cu")[0])
    assert run.returncode == 0, run.stderr
    assert "RuntimeError: Instruction does not dominate all uses" in run.stdout, run.stdout + run.stderr
