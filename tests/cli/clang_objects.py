"""Small C programs built with clang at test time, the objects the CLI is asked to read like anyone's.

`build(tmp_path, name, source)` compiles with `-O2 -g -target bpf` (line info included, as users build) and
skips the test, with the reason, where clang is not installed. `objdump_slots(obj)` gives llvm-objdump's
own numbering: for each instruction, its number and its text.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.verify.corpus.c_corpus import CLANG_FLAGS, clang

PRELUDE = r"""
#include <linux/bpf.h>
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *) 1;
"""

NULL_DEREF_C = PRELUDE + r"""
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, unsigned int);
    __type(value, unsigned long long);
} counters SEC(".maps");

SEC("xdp")
int count(struct xdp_md *ctx) {
    unsigned int key = ctx->ingress_ifindex;
    unsigned long long *v = bpf_map_lookup_elem(&counters, &key);
    return *v == 3 ? 1 : 2;
}
char _license[] SEC("license") = "GPL";
"""
"""The lookup's result is read without a NULL check, after the two-slot lddw of the map."""

SUBPROGRAM_C = PRELUDE + r"""
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, unsigned int);
    __type(value, unsigned long long);
} counters SEC(".maps");

static __attribute__((noinline)) int is_three(unsigned long long *v) { return *v == 3; }

SEC("xdp")
int count(struct xdp_md *ctx) {
    unsigned int key = ctx->ingress_ifindex;
    unsigned long long *v = bpf_map_lookup_elem(&counters, &key);
    return is_three(v) ? 1 : 2;
}
char _license[] SEC("license") = "GPL";
"""
"""The same unchecked read, inside a bpf-to-bpf callee (libbpf appends .text after the entry program)."""

COUNTER_C = PRELUDE + r"""
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, unsigned int);
    __type(value, unsigned long long);
} counters SEC(".maps");
unsigned long long packets = 0;
unsigned int limit = 7;

SEC("xdp")
int count(struct xdp_md *ctx) {
    unsigned int key = 1;
    unsigned long long *v = bpf_map_lookup_elem(&counters, &key);
    packets += 1;
    if (!v) return XDP_ABORTED;
    *v += 1;
    return *v > limit ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int drop_all(struct xdp_md *ctx) { return XDP_DROP; }
char _license[] SEC("license") = "GPL";
"""
"""Two XDP programs: `count` passes the first 6 packets (counters[1] counts them, limit is 7), then drops."""

TRACEPOINT_C = r"""
#define SEC(n) __attribute__((section(n), used))
SEC("tracepoint/syscalls/sys_enter_openat")
int on_open(void *ctx) { return 0; }
char _license[] SEC("license") = "GPL";
"""

NO_PROGRAM_C = r"""
#define SEC(n) __attribute__((section(n), used))
unsigned int counter;
char _license[] SEC("license") = "GPL";
"""


def _arch_include() -> list[str]:
    """`-target bpf` does not search the multiarch directory that holds `asm/types.h`."""
    gcc = shutil.which("gcc")
    triple = subprocess.run([gcc, "-print-multiarch"], capture_output=True, text=True).stdout.strip() if gcc else ""
    return ["-idirafter", f"/usr/include/{triple}"] if triple else []


def build(tmp_path: Path, name: str, source: str) -> Path:
    cc = clang()
    if cc is None:
        pytest.skip("clang is not installed (make installs it from the distribution)")
    c, obj = tmp_path / f"{name}.c", tmp_path / f"{name}.o"
    c.write_text(source)
    subprocess.run([cc, *CLANG_FLAGS, *_arch_include(), "-c", str(c), "-o", str(obj)], check=True)
    return obj


def objdump_slots(obj: Path) -> list[tuple[int, str]]:
    """(number, text) of each instruction as `llvm-objdump -d` prints them (skips where it is missing)."""
    objdump = shutil.which("llvm-objdump")
    if objdump is None:
        pytest.skip("llvm-objdump is not installed (it comes with clang's llvm package)")
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for line in out.splitlines():
        m = re.match(r"^\s*(\d+):\s+(\S.*)$", line)
        if m:
            found.append((int(m.group(1)), m.group(2).strip()))
    return found
