"""Which commands prove, and `pybpfdsl compile` showing (and enforcing) the verdicts of both checks.

`compile`, `attach` and `prove` prove; `ir`, `disasm`, `verify`, `run` and `maps` show or run a program
and prove nothing (the proof of a token bucket takes seconds; a test run does not need it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import HTTP_HEX, Result, needs_bpf

Cli = Callable[..., Result]


@pytest.mark.parametrize("command", [
    ["ir"], ["ir", "--llvm"], ["disasm"], ["verify"],
    ["run", "--packet", HTTP_HEX, "--python"],
    pytest.param(["run", "--packet", HTTP_HEX], marks=needs_bpf),
    pytest.param(["maps"], marks=needs_bpf),
], ids=lambda c: " ".join(a for a in c if a != HTTP_HEX))
def test_commands_that_show_or_run_a_program_do_not_prove(call: Cli, counter_file: Path, proofs: list[str],
                                                         command: list[str]) -> None:
    r = call(command[0], counter_file, *command[1:])
    assert r.code == 0, r.err
    assert proofs == []


def test_compile_proves_and_shows_both_verdicts(call: Cli, counter_file: Path, tmp_path: Path,
                                                proofs: list[str]) -> None:
    r = call("compile", counter_file, "-o", tmp_path / "x.o")
    assert r.code == 0, r.err
    assert proofs == ["drop_telnet"]
    assert "verifier: safe" in r.out
    assert "proof:    proven in" in r.out


def test_compile_json_carries_both_verdicts(call: Cli, counter_file: Path, tmp_path: Path) -> None:
    r = call("compile", counter_file, "-o", tmp_path / "x.o", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["ok"] is True
    assert data["verification"]["ok"] is True and data["verification"]["errors"] == 0
    assert data["proof"]["status"] == "proven" and data["proof"]["seconds"] > 0


@pytest.mark.usefixtures("rejected_by_our_verifier")
def test_compile_fails_when_our_verifier_rejects_the_program(call: Cli, counter_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.o"
    r = call("compile", counter_file, "-o", out, "--no-prove")
    assert r.code == 1
    assert "verifier: rejected: uninit-register" in r.out
    assert "error[uninit-register] at instruction 0" in r.out  # the full explanation, with the Python line
    assert "--allow-unverified" in r.err and "Traceback" not in r.err
    assert out.is_file()  # written anyway, to be inspected
    allowed = call("compile", counter_file, "-o", out, "--no-prove", "--allow-unverified")
    assert allowed.code == 0, allowed.err
    assert "verifier: rejected" in allowed.out
    data = json.loads(call("compile", counter_file, "-o", out, "--no-prove", "--json").out)
    assert data["ok"] is False and data["verification"]["ok"] is False
    assert data["verification"]["findings"][0]["code"] == "uninit-register"


@pytest.mark.parametrize("status", ["unknown", "counterexample"])
def test_compile_fails_when_the_proof_does_not_prove(call: Cli, counter_file: Path, tmp_path: Path, status: str,
                                                     proof_verdict: Callable[[str, str], None]) -> None:
    proof_verdict(status, "a stand-in verdict")
    r = call("compile", counter_file, "-o", tmp_path / "x.o")
    assert r.code == 1
    assert f"proof:    {status} in 0.01 s: a stand-in verdict" in r.out
    assert "--allow-unproven" in r.err
    assert call("compile", counter_file, "-o", tmp_path / "x.o", "--allow-unproven").code == 0
    # Allowing one check does not allow the other.
    assert call("compile", counter_file, "-o", tmp_path / "x.o", "--allow-unverified").code == 1


def test_compile_no_prove_skips_the_proof(call: Cli, counter_file: Path, tmp_path: Path, proofs: list[str]) -> None:
    r = call("compile", counter_file, "-o", tmp_path / "x.o", "--no-prove")
    assert r.code == 0, r.err
    assert proofs == []
    assert "proof:    skipped" in r.out and "attach proves before attaching" in r.out


def test_the_flags_are_in_the_help(call: Cli) -> None:
    r = call("compile", "--help")
    assert r.code == 0
    for flag in ("--allow-unverified", "--allow-unproven", "--no-prove"):
        assert flag in r.out
