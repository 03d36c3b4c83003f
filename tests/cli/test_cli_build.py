"""`pybpfdsl compile`, `disasm`, `ir`, target selection, error reporting and --help."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.cli import build_parser

from .conftest import DSL_ERROR_SRC, EXAMPLES, IMPORT_ERROR_SRC, SYNTAX_ERROR_SRC, Result, write

ANSI = re.compile(r"\x1b\[")
Cli = Callable[..., Result]

COMMANDS = ["compile", "disasm", "ir", "run", "maps", "attach", "detach", "status"]


# -- compile ------------------------------------------------------------------------------------------


def test_compile_writes_a_bpf_object(call: Cli, counter_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.o"
    r = call("compile", counter_file, "-o", out)
    assert r.code == 0, r.err
    elf = BpfElf.from_path(out)
    assert "xdp" in elf.programs
    assert elf.license == "GPL"
    assert "BPF instructions" in r.out and str(out) in r.out


def test_compile_default_output_name(call: Cli, counter_file: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = call("compile", f"{counter_file}:drop_telnet")
    assert r.code == 0, r.err
    assert (tmp_path / "drop_telnet.o").is_file()


def test_compile_json_gives_stats(call: Cli, counter_file: Path, tmp_path: Path) -> None:
    r = call("compile", counter_file, "-o", tmp_path / "x.o", "--json")
    assert r.code == 0
    data = json.loads(r.out)
    assert data["program"] == "drop_telnet"
    assert data["stats"]["bpf_insns"] > 0 and data["stats"]["elf_bytes"] == (tmp_path / "x.o").stat().st_size


def test_compile_unwritable_output_is_a_user_error(call: Cli, counter_file: Path, tmp_path: Path) -> None:
    r = call("compile", counter_file, "-o", tmp_path / "no" / "such" / "dir.o")
    assert r.code == 1
    assert "cannot write" in r.err and "Traceback" not in r.err


def test_compile_an_example(call: Cli, tmp_path: Path) -> None:
    r = call("compile", EXAMPLES / "port_acl.py", "-o", tmp_path / "acl.o")
    assert r.code == 0, r.err


# -- target selection -----------------------------------------------------------------------------


def test_missing_file_is_a_usage_error(call: Cli, tmp_path: Path) -> None:
    r = call("compile", tmp_path / "nope.py")
    assert r.code == 2
    assert "no such file" in r.err


def test_several_programs_need_func(call: Cli, two_file: Path) -> None:
    r = call("ir", two_file)
    assert r.code == 2
    assert "allow_all" in r.err and "deny_all" in r.err and "FUNC" in r.err


def test_func_by_function_or_program_name(call: Cli, two_file: Path) -> None:
    assert "program allow_all" in call("ir", f"{two_file}:allow_all").out
    assert "program deny" in call("ir", f"{two_file}:deny_all").out
    assert "program deny" in call("ir", f"{two_file}:deny").out


def test_unknown_func_lists_programs(call: Cli, two_file: Path) -> None:
    r = call("disasm", f"{two_file}:nothing")
    assert r.code == 2
    assert "'nothing'" in r.err and "allow_all" in r.err and "deny_all" in r.err


def test_file_without_programs(call: Cli, tmp_path: Path) -> None:
    r = call("ir", write(tmp_path, "empty.py", "X = 1\n"))
    assert r.code == 2
    assert "no @xdp programs" in r.err


def test_files_import_their_neighbours(call: Cli, tmp_path: Path) -> None:
    write(tmp_path, "ports.py", "TELNET = 23\n")
    src = (
        "from pybpfdsl import XDP_DROP, XDP_PASS, Packet, xdp\n"
        "from ports import TELNET\n\n"
        "@xdp\n"
        "def f(pkt: Packet) -> int:\n"
        "    if pkt.tcp is not None and pkt.tcp.dport == TELNET:\n"
        "        return XDP_DROP\n"
        "    return XDP_PASS\n"
    )
    r = call("ir", write(tmp_path, "uses_ports.py", src))
    assert r.code == 0, r.err
    assert str(tmp_path) not in sys.path


# -- user errors are diagnostics, not tracebacks ---------------------------------------------------


def test_dsl_error_is_file_line_diagnostic(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", DSL_ERROR_SRC)
    r = cli("compile", path, "-o", tmp_path / "b.o")
    assert r.code == 1
    assert "Traceback" not in r.err
    first = r.err.splitlines()[0]
    assert first.startswith(f"{path}:6:") and "error:" in first
    assert "items = [1, 2]" in r.err
    assert not (tmp_path / "b.o").exists()


def test_syntax_error_is_file_line_diagnostic(call: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "syntax.py", SYNTAX_ERROR_SRC)
    r = call("disasm", path)
    assert r.code == 1
    assert r.err.startswith(f"{path}:4:") and "SyntaxError" in r.err
    assert "Traceback" not in r.err


def test_exception_while_importing_names_the_line(call: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, "boom.py", IMPORT_ERROR_SRC)
    r = call("ir", path)
    assert r.code == 1
    assert r.err.startswith(f"{path}:3: error: NameError")
    assert "LIMIT = undefined_name + 1" in r.err


def test_internal_error_is_one_line_without_debug(call: Cli, counter_file: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from pybpfdsl.cli_commands import build

    def explode(*_: object) -> object:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(build, "disasm_records", explode)
    r = call("disasm", counter_file)
    assert r.code == 1
    assert "internal error: RuntimeError: kaboom" in r.err
    assert "Traceback" not in r.err
    r = call("--debug", "disasm", counter_file)
    assert "Traceback" in r.err and "kaboom" in r.err
    r = call("disasm", counter_file, "--debug")
    assert "Traceback" in r.err


# -- disasm -----------------------------------------------------------------------------------------


def test_disasm_shows_python_lines(call: Cli, counter_file: Path) -> None:
    r = call("disasm", counter_file)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert "; dropped.value += 1  (counter.py:17)" in lines
    assert "; if tcp.dport == 23:  (counter.py:16)" in lines
    at = lines.index("; dropped.value += 1  (counter.py:17)")
    assert re.match(r"^\s*\d+: \([0-9a-f]{2}\) ", lines[at + 1])
    assert lines[0].startswith("; def drop_telnet(pkt: Packet) -> int:  (counter.py:")
    assert "map_value[.bss:dropped]" in r.out or "dropped" in r.out


def test_disasm_without_source(call: Cli, counter_file: Path) -> None:
    r = call("disasm", counter_file, "--no-source")
    assert r.code == 0
    assert not any(line.startswith(";") for line in r.out.splitlines())


def test_disasm_json_records(call: Cli, counter_file: Path) -> None:
    r = call("disasm", counter_file, "--json")
    records = json.loads(r.out)
    assert all({"index", "text", "line"} <= rec.keys() for rec in records)
    assert records[0]["index"] == 0
    assert records == sorted(records, key=lambda rec: rec["index"])
    assert any(rec["line"] == 17 for rec in records)
    assert records[-1]["text"] in ("exit",) or records[-1]["text"].startswith(("goto", "exit", "w0", "r0"))


# -- ir ---------------------------------------------------------------------------------------------


def test_ir_variants(call: Cli, counter_file: Path) -> None:
    r = call("ir", counter_file)
    assert r.code == 0 and r.out.startswith("program drop_telnet")
    llvm = call("ir", counter_file, "--llvm")
    assert "define" in llvm.out
    opt = call("ir", counter_file, "--optimized")
    assert "define" in opt.out
    data = json.loads(call("ir", counter_file, "--json").out)
    assert data["kind"] == "ir" and data["text"].startswith("program drop_telnet")
    assert call("ir", counter_file, "--llvm", "--optimized").code == 2


# -- help, usage, plain output --------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_help_for_every_command(call: Cli, command: str) -> None:
    r = call(command, "--help")
    assert r.code == 0
    assert r.out.startswith(f"usage: pybpfdsl {command}")
    assert "examples:" in r.out


def test_every_command_is_documented() -> None:
    parser = build_parser()
    text = parser.format_help()
    for command in COMMANDS:
        assert command in text


def test_top_level_help_and_no_command(cli: Cli) -> None:
    r = cli("--help")
    assert r.code == 0 and "commands:" in r.out
    r = cli()
    assert r.code == 2 and "usage:" in r.err


def test_unknown_option_is_usage_error(call: Cli, counter_file: Path) -> None:
    assert call("disasm", counter_file, "--frobnicate").code == 2


def test_piped_output_has_no_ansi(cli: Cli, counter_file: Path, tmp_path: Path) -> None:
    for args in (["disasm", counter_file], ["compile", counter_file, "-o", tmp_path / "o.o"],
                 ["ir", counter_file]):
        r = cli(*args)
        assert r.code == 0, r.err
        assert not ANSI.search(r.out)
    r = cli("compile", write(tmp_path, "broken.py", DSL_ERROR_SRC))
    assert r.code == 1 and not ANSI.search(r.err)


def test_colour_on_a_terminal_unless_no_color(counter_file: Path, tmp_path: Path) -> None:
    pty = pytest.importorskip("pty")
    import os
    import subprocess

    def run_on_pty(env: dict[str, str]) -> str:
        master, slave = pty.openpty()
        try:
            proc = subprocess.run([sys.executable, "-m", "pybpfdsl", "compile", str(counter_file), "-o",
                                   str(tmp_path / "t.o")], stdout=slave, stderr=subprocess.PIPE, env=env,
                                  timeout=120, check=False)
            assert proc.returncode == 0, proc.stderr
            os.close(slave)
            chunks = []
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            return b"".join(chunks).decode()
        finally:
            os.close(master)

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    assert ANSI.search(run_on_pty(env))
    assert not ANSI.search(run_on_pty({**env, "NO_COLOR": "1"}))


def test_console_script_and_module_agree(cli: Cli) -> None:
    r = cli("--version")
    assert r.code == 0 and r.out.startswith("pybpfdsl ")
