"""`pybpfdsl verify`: our safety verifier on DSL programs and on clang-built objects."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Result

Cli = Callable[..., Result]

UNSAFE_C = r"""
#include <linux/bpf.h>
#define SEC(n) __attribute__((section(n), used))
SEC("xdp")
int peek(struct xdp_md *ctx) {
    unsigned char *data = (unsigned char *)(long)ctx->data;
    unsigned char *end = (unsigned char *)(long)ctx->data_end;
    if (data + 10 > end) return 2;
    return data[12] == 7 ? 1 : 2;
}
char _license[] SEC("license") = "GPL";
"""


def _clang_object(tmp_path: Path, source: str) -> Path:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (make installs it from the distribution)")
    c, obj = tmp_path / "peek.c", tmp_path / "peek.o"
    c.write_text(source)
    triple = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    extra = ["-idirafter", f"/usr/include/{triple}"] if triple else []
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", *extra, "-c", str(c), "-o", str(obj)], check=True)
    return obj


def test_a_safe_dsl_program_verifies(call: Cli, counter_file: Path) -> None:
    r = call("verify", counter_file)
    assert r.code == 0, r.out + r.err
    assert r.out.startswith("verified counter.py:") and "instructions" in r.out


def test_explain_lists_each_instruction_with_register_types(call: Cli, counter_file: Path) -> None:
    r = call("verify", counter_file, "--explain")
    assert r.code == 0
    assert "reads r1=ctx" in r.out and "writes r1=packet" in r.out
    assert "; " in r.out and "counter.py:" in r.out  # the Python lines above their instructions


def test_an_unsafe_clang_object_is_rejected_at_its_c_line(call: Cli, tmp_path: Path) -> None:
    r = call("verify", _clang_object(tmp_path, UNSAFE_C), "--section", "xdp")
    assert r.code == 1
    assert "error[packet-bounds]" in r.out
    assert "peek.c:9" in r.out and "data[12]" in r.out  # the C line of the unchecked read
    assert "checked length: 10 bytes" in r.out and "produced by:" in r.out


def test_json_gives_the_verdict_and_findings(call: Cli, tmp_path: Path) -> None:
    r = call("verify", _clang_object(tmp_path, UNSAFE_C), "--json")
    data = json.loads(r.out)
    assert r.code == 1 and data["ok"] is False
    assert [f["code"] for f in data["findings"] if f["error"]] == ["packet-bounds"]


def test_a_file_that_is_not_an_object_is_a_usage_error(call: Cli, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.o"
    bogus.write_bytes(b"not an elf")
    r = call("verify", bogus)
    assert r.code == 2 and "not a BPF object" in r.err
