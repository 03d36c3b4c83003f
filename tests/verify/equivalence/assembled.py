"""Tiny BPF objects for prover tests, built at test time: assembly (clang's BPF assembler) or C.

`xdp(body)` is an object with one XDP program `prog` whose instructions are `body` (clang's assembly
syntax, one instruction a line). `c_object(source)` compiles C with a minimal prelude instead of
libbpf's headers (maps declared the BTF way, helpers by number). `kernel` runs an object in the
kernel with BPF_PROG_TEST_RUN, to check that a difference the prover reports is real.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pybpfdsl.runtime.bpf_object import BpfObject
from pybpfdsl.runtime.libbpf import kernel_bpf_available

needs_clang = pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")

_ASM = """\
\t.section\txdp,"ax",@progbits
\t.globl\tprog
\t.type\tprog,@function
prog:
{body}
\t.size\tprog, .-prog
{extra}
\t.section\tlicense,"aw",@progbits
\t.globl\t_license
_license:
\t.asciz\t"GPL"
"""

PRELUDE = r"""
#include <linux/bpf.h>
#define SEC(x) __attribute__((section(x), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *) 1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, unsigned long long flags)
    = (void *) 2;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, unsigned long long size, unsigned long long flags)
    = (void *) 130;
char _license[] SEC("license") = "GPL";
"""


def _arch_include() -> list[str]:
    try:
        triple = subprocess.run(["gcc", "-dumpmachine"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        triple = f"{os.uname().machine}-linux-gnu"
    d = f"/usr/include/{triple}"
    return ["-idirafter", d] if os.path.isdir(d) else []


def _clang(source: str, suffix: str, flags: tuple[str, ...]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, f"prog{suffix}"), os.path.join(tmp, "prog.o")
        with open(src, "w") as f:
            f.write(source)
        subprocess.run(["clang", *flags, "-target", "bpf", *_arch_include(), "-c", src, "-o", out], check=True,
                       capture_output=True)
        with open(out, "rb") as f:
            return f.read()


@functools.cache
def xdp(body: str, extra: str = "") -> bytes:
    """An object whose XDP program `prog` is `body` (instructions separated by newlines or `;`);
    `extra` adds assembly after it (subprograms, data)."""
    lines = "\n".join(f"\t{part.strip()}" for line in body.splitlines() for part in line.split(";") if part.strip())
    return _clang(_ASM.format(body=lines, extra=extra), ".s", ())


@functools.cache
def c_object(source: str, opt: str = "-O2") -> bytes:
    """`source` after `PRELUDE`, compiled with clang `opt` and BTF."""
    return _clang(PRELUDE + source, ".c", (opt, "-g"))


def kernel_available() -> bool:
    return kernel_bpf_available()[0]


needs_kernel = pytest.mark.skipif(not kernel_available(), reason="kernel bpf() unavailable")


@contextmanager
def kernel(elf: bytes) -> Iterator[BpfObject]:
    """`elf` loaded into the kernel (closed afterwards)."""
    obj = BpfObject.load(elf, "prog")
    try:
        yield obj
    finally:
        obj.close()
