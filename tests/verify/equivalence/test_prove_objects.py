"""`pybpfdsl prove A.o B.o`: clang -O1 against -O2 of one C program (equivalent) and a modified one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pybpfdsl.cli import main
from pybpfdsl.verify.equivalence.prove import prove_objects

SOURCE = r"""
#include <linux/bpf.h>
#define SEC(x) __attribute__((section(x), used))
struct { int (*type)[BPF_MAP_TYPE_ARRAY]; int (*max_entries)[4]; unsigned int *key; unsigned long long *value; }
    counts SEC(".maps");
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *) 1;
SEC("xdp") int filter(struct xdp_md *ctx) {
    unsigned char *data = (unsigned char *)(long)ctx->data, *end = (unsigned char *)(long)ctx->data_end;
    if (data + 14 > end) return XDP_PASS;
    unsigned int key = data[12] == 0x08 ? 0 : 1;
    unsigned long long *v = bpf_map_lookup_elem(&counts, &key);
    if (v) *v += 1;
    if (data[12] == 0x86 && data[13] == ETHERTYPE_LOW) return XDP_DROP;
    return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
"""

pytestmark = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")


def _build(tmp: Path, name: str, opt: str, low: str) -> bytes:
    src = tmp / f"{name}.c"
    src.write_text(SOURCE.replace("ETHERTYPE_LOW", low))
    out = tmp / f"{name}.o"
    subprocess.run(["clang", opt, "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", str(src),
                    "-o", str(out)], check=True)
    return out.read_bytes()


def test_o1_and_o2_are_equivalent(tmp_path: Path) -> None:
    a, b = _build(tmp_path, "a", "-O1", "0xdd"), _build(tmp_path, "b", "-O2", "0xdd")
    result = prove_objects(a, b, "filter")
    assert result.status == "proven", result.report()


def test_modified_program_gives_a_reproducing_counterexample(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _build(tmp_path, "a", "-O2", "0xdd"), _build(tmp_path, "b", "-O2", "0xde")
    result = prove_objects(a, b, "filter")
    assert result.status == "counterexample"
    cex = result.counterexample
    assert cex is not None and cex.reproduced and "action" in cex.differing
    assert main(["prove", str(tmp_path / "a.o"), str(tmp_path / "b.o"), "--section", "filter"]) == 1
    assert "replay reproduces the difference" in capsys.readouterr().out
    assert main(["prove", str(tmp_path / "a.o"), str(tmp_path / "a.o"), "--section", "filter"]) == 0
