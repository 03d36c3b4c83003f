"""The table and colour helpers of the command line."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfdsl.cli_output import Style, Table, colour_enabled, print_json, visible_len


def test_table_aligns_columns() -> None:
    t = Table(["NAME", "N"], ["<", ">"])
    t.add("a", 1)
    t.add("longer", 12345)
    lines = t.render().splitlines()
    assert lines == ["NAME        N", "------  -----", "a           1", "longer  12345"]


def test_table_ignores_colour_codes_in_widths() -> None:
    st = Style(True)
    t = Table(["A", "B"])
    t.add(st("red", "red"), "x")
    t.add("plain", "y")
    lines = t.render().splitlines()
    assert visible_len(lines[2]) == visible_len(lines[3])


def test_table_multiline_cells_and_row_width() -> None:
    t = Table(["A", "B"])
    t.add("x", "one\ntwo")
    assert t.render().splitlines()[2:] == ["x  one", "   two"]
    with pytest.raises(ValueError):
        t.add("only one")


def test_style_off_returns_text_unchanged() -> None:
    st = Style(False)
    assert st.error("e") == "e" and st("x", "bold", "red") == "x"
    assert Style(True)("x", "bold") == "\x1b[1mx\x1b[0m"


def test_colour_only_on_terminals_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_enabled(Tty())
    assert not colour_enabled(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_enabled(Tty())


def test_print_json() -> None:
    buf = io.StringIO()
    print_json({"a": [1, 2]}, buf)
    assert buf.getvalue().endswith("\n") and '"a"' in buf.getvalue()


def test_console_script_is_installed(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("pybpfdsl")
    if not script.exists():
        found = shutil.which("pybpfdsl")
        if found is None:
            pytest.skip("the pybpfdsl console script is not installed (pip install -e .)")
        script = Path(found)
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("pybpfdsl ")
