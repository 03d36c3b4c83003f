"""The CLI's exit codes are the ones its --help lists (issue 16 §6): each listed code is given by the cases
it names and by no other, in-process and as a real process; error messages name the user's classes by
their own names (never the module name the CLI imports a file under)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import IMPORT_ERROR_SRC, SYNTAX_ERROR_SRC, Result, write

RECORD_ERROR_SRC = '''
from pybpfdsl import XDP_PASS, HashMap, Packet, Struct, u32, xdp

class Flow(Struct):
    port: u32

seen = HashMap(u32, Flow, max_entries=4)

@xdp
def flows(pkt: Packet) -> int:
    seen[1] = 3
    return XDP_PASS
'''

LAYOUT_ERROR_SRC = '''
from pybpfdsl import XDP_PASS, Packet, Struct, u32, xdp

class Flow(Struct):
    port: u32
    names: list[int]

@xdp
def flows(pkt: Packet) -> int:
    return XDP_PASS
'''

SATURATING_SRC = '''
from pybpfdsl import XDP_PASS, Global, Packet, u64, xdp

seconds = Global(float, 0.0)

@xdp
def clock(pkt: Packet) -> int:
    seconds.value = float(u64(5_000_000_000))
    return XDP_PASS
'''


def _listed_codes(help_text: str) -> dict[int, str]:
    match = re.search(r"exit codes: (.*)", help_text)
    assert match is not None, help_text
    return {int(code): what for code, what in re.findall(r"(\d+) ([^,]+)", match.group(1))}


def test_the_help_lists_the_codes(call: Callable[..., Result]) -> None:
    r = call("--help")
    assert r.code == 0
    codes = _listed_codes(r.out)
    assert codes[0] == "ok" and codes[1].startswith("program or input error") and codes[2] == "usage error"
    assert set(codes) <= {0, 1, 2, 130}  # 130: a command ended by Ctrl-C (cli.main), if the help lists it


def test_ok_is_0(call: Callable[..., Result], counter_file: Path) -> None:
    assert call("ir", counter_file).code == 0


@pytest.mark.parametrize(("name", "source", "shown"), [
    ("record.py", RECORD_ERROR_SRC, "the values of seen are Flow records"),
    ("layout.py", LAYOUT_ERROR_SRC, "Flow.names: a Struct field cannot be list[int]"),
    ("saturating.py", SATURATING_SRC, "is outside the float range"),
    ("syntax.py", SYNTAX_ERROR_SRC, "SyntaxError"),
    ("import_error.py", IMPORT_ERROR_SRC, "NameError"),
])
def test_a_program_error_is_1_and_names_the_users_classes(call: Callable[..., Result], tmp_path: Path, name: str,
                                                          source: str, shown: str) -> None:
    path = write(tmp_path, name, source)
    r = call("compile", path, "-o", tmp_path / "out.o")
    assert r.code == 1, (r.out, r.err)
    assert shown in r.err and f"{path}:" in r.err
    assert "_pybpfdsl_cli" not in r.err and "Traceback" not in r.err


@pytest.mark.parametrize("args", [
    ("frobnicate",),                       # no such command
    ("compile",),                          # a missing argument
    ("compile", "/nonexistent/prog.py"),   # no such file
    ("disasm", "{counter}", "--frobnicate"),
    ("run", "{counter}:no_such_program", "--python", "--packet", "00"),
])
def test_a_usage_error_is_2(call: Callable[..., Result], counter_file: Path, args: tuple[str, ...]) -> None:
    r = call(*[a.format(counter=counter_file) for a in args])
    assert r.code == 2, (args, r.out, r.err)
    assert "Traceback" not in r.err


def test_a_real_process_exits_with_the_same_codes(cli: Callable[..., Result], tmp_path: Path,
                                                  counter_file: Path) -> None:
    assert cli("ir", counter_file).code == 0
    bad = cli("compile", write(tmp_path, "record.py", RECORD_ERROR_SRC), "-o", tmp_path / "out.o")
    assert bad.code == 1 and "_pybpfdsl_cli" not in bad.err
    assert cli("frobnicate").code == 2
