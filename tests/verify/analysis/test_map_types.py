"""Which helpers take which map types: our verdict against the kernel's, for every pair an XDP program
can write (issue 13 §2: LPM tries, device/CPU/socket maps, program and perf-event arrays, maps of maps).

Each program stores zeros at r10-8..r10-24, loads the map (instruction 3) and calls one helper the way
clang emits it. The table is what this machine's kernel (6.18) answered; where the kernel is available the
test asks it again, so the table cannot drift from the kernel.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions, verify_object
from pybpfdsl.verify.analysis.values import MapInfo
from tests.verify.analysis.map_oracle import kernel_verdict_maps
from tests.verify.analysis.opcodes import EXIT, add_imm, mov, mov_reg
from tests.verify.corpus.c_corpus import clang
from tests.verify.corpus.third_party_corpus import kernel_verdict as object_verdict

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

MAP_INSN = 3
SIZES = {1: (4, 8), 2: (4, 8), 3: (4, 4), 4: (4, 4), 5: (4, 8), 6: (4, 8), 9: (4, 8), 10: (4, 8), 11: (8, 8),
         12: (4, 4), 13: (4, 4), 14: (4, 4), 16: (4, 4), 17: (4, 4), 25: (4, 4)}
NAMES = {1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash", 6: "percpu_array",
         9: "lru_hash", 10: "lru_percpu_hash", 11: "lpm_trie", 12: "array_of_maps", 13: "hash_of_maps",
         14: "devmap", 16: "cpumap", 17: "xskmap", 25: "devmap_hash"}


def _stz(off: int) -> Instruction:
    return Instruction(0x7A, 10, 0, off, 0)


def _call(helper: int) -> Instruction:
    return Instruction(0x85, 0, 0, 0, helper)


def _key(reg: int, off: int) -> list[Instruction]:
    return [mov_reg(reg, 10), add_imm(reg, off)]


def program(use: str) -> list[Instruction]:
    """The use of the map (lddw at instruction 3), then ``return XDP_PASS``."""
    zero = [_stz(-8), _stz(-16), _stz(-24)]
    body = {
        "lookup": [Instruction.lddw(1, 0), *_key(2, -8), _call(1)],
        "update": [Instruction.lddw(1, 0), *_key(2, -8), *_key(3, -16), mov(4, 0), _call(2)],
        "delete": [Instruction.lddw(1, 0), *_key(2, -8), _call(3)],
        "redirect_map": [Instruction.lddw(1, 0), mov(2, 0), mov(3, 0), _call(51)],
        "perf_event_output": [Instruction.lddw(2, 0), mov(3, 0), *_key(4, -8), mov(5, 8), _call(25)],
        "tail_call": [Instruction.lddw(2, 0), mov(3, 0), _call(12)],
    }[use]
    return [*zero, *body, mov(0, 2), EXIT]


DATA = {1, 2, 5, 6, 9, 10, 11}
ACCEPTED = {
    "lookup": DATA | {12, 13, 14, 17, 25},
    "update": DATA,
    "delete": DATA,
    "redirect_map": {14, 16, 17, 25},
    "perf_event_output": {4},
    "tail_call": {3},
}
"""What this machine's kernel accepts (each map type and use above)."""
NOT_MODELLED = {("lookup", 12), ("lookup", 13)}
"""Kernel-accepted pairs we refuse here: lookups in maps of maps whose inner map's definition is not given
(an object gives it in BTF; see test_map_of_maps_lookups)."""

CASES = [(use, t) for use in ACCEPTED for t in SIZES]


def _map(t: int) -> MapInfo:
    k, v = SIZES[t]
    return MapInfo(f"m_{NAMES[t]}", t, k, v, 4)


@pytest.mark.parametrize(("use", "map_type"), CASES, ids=[f"{u}-{NAMES[t]}" for u, t in CASES])
def test_helper_takes_the_kernel_s_map_types(use: str, map_type: int) -> None:
    insns = program(use)
    m = _map(map_type)
    report = verify_instructions(insns, map_refs={MAP_INSN: (m, None)})
    kernel_ok = map_type in ACCEPTED[use]
    if KERNEL:
        verdict = kernel_verdict_maps(insns, {MAP_INSN: m})
        assert verdict.ok == kernel_ok, verdict.last_lines
    if kernel_ok and (use, map_type) not in NOT_MODELLED:
        assert report.ok, report.format()
    else:
        assert not report.ok, "verified, but the kernel refuses it" if not kernel_ok else "inner map unknown"
        if not kernel_ok:
            assert any(f.code == Code.HELPER_ARG and NAMES[map_type] in f.message for f in report.errors), \
                report.format()


def _lookup_then(*access: Instruction) -> list[Instruction]:
    """lookup; if r0 == 0 goto exit; <access>; exit with XDP_PASS."""
    return [_stz(-8), _stz(-16), _stz(-24), Instruction.lddw(1, 0), *_key(2, -8), _call(1),
            Instruction(0x15, 0, 0, len(access), 0), *access, mov(0, 2), EXIT]


@pytest.mark.parametrize("map_type", [14, 25, 17], ids=["devmap", "devmap_hash", "xskmap"])
def test_writes_through_a_device_or_socket_lookup_are_refused(map_type: int) -> None:
    """A devmap entry is read-only for programs, an xdp_sock too: a store through the lookup result is
    refused by the kernel and by us."""
    insns = _lookup_then(Instruction(0x62, 0, 0, 0, 1))  # *(u32 *)(r0 + 0) = 1
    m = _map(map_type)
    report = verify_instructions(insns, map_refs={MAP_INSN: (m, None)})
    assert not report.ok
    assert any(f.insn == 8 for f in report.errors), report.format()
    if KERNEL:
        assert not kernel_verdict_maps(insns, {MAP_INSN: m}).ok


@pytest.mark.parametrize("map_type", [14, 17], ids=["devmap", "xskmap"])
def test_existence_test_on_a_device_or_socket_map_is_accepted(map_type: int) -> None:
    """``if (bpf_map_lookup_elem(&xsks_map, &index)) return bpf_redirect_map(&xsks_map, index, 0);``"""
    insns = [_stz(-8), Instruction.lddw(1, 0), *_key(2, -8), _call(1), mov(6, 2),
             Instruction(0x15, 0, 0, 6, 0), Instruction.lddw(1, 0), mov(2, 0), mov(3, 0), _call(51),
             mov_reg(6, 0), mov_reg(0, 6), EXIT]
    m = _map(map_type)
    maps = {1: m, 7: m}
    report = verify_instructions(insns, map_refs={i: (mm, None) for i, mm in maps.items()})
    assert report.ok, report.format()
    if KERNEL:
        verdict = kernel_verdict_maps(insns, maps)
        assert verdict.ok, verdict.last_lines


def test_lpm_trie_value_is_read_after_the_null_check() -> None:
    m = _map(11)
    insns = _lookup_then(Instruction(0x79, 1, 0, 0, 0))  # r1 = *(u64 *)(r0 + 0)
    assert verify_instructions(insns, map_refs={MAP_INSN: (m, None)}).ok
    if KERNEL:
        assert kernel_verdict_maps(insns, {MAP_INSN: m}).ok
    past_end = _lookup_then(Instruction(0x79, 1, 0, 4, 0))  # r1 = *(u64 *)(r0 + 4): past the 8-byte value
    report = verify_instructions(past_end, map_refs={MAP_INSN: (m, None)})
    assert not report.ok and any(f.code == Code.MAP_BOUNDS for f in report.errors), report.format()
    if KERNEL:
        assert not kernel_verdict_maps(past_end, {MAP_INSN: m}).ok


def test_lpm_trie_key_must_cover_the_key_size() -> None:
    """The key of an 8-byte LPM key map at r10-4 runs past the frame: both refuse."""
    m = _map(11)
    insns = [_stz(-8), Instruction(0x62, 10, 0, -4, 0), Instruction.lddw(1, 0), *_key(2, -4), _call(1),
             mov(0, 2), EXIT]
    report = verify_instructions(insns, map_refs={2: (m, None)})
    assert not report.ok and any(f.code == Code.HELPER_ARG for f in report.errors), report.format()
    if KERNEL:
        assert not kernel_verdict_maps(insns, {2: m}).ok


# --------------------------------------------------------------------------- #
# Maps of maps: a lookup gives the inner map (or NULL), usable as a map argument after the NULL check
# --------------------------------------------------------------------------- #

INNER = MapInfo("inner", 2, 4, 8, 4)
"""The inner map of the map_oracle's maps of maps: an array, u32 key, u64 value."""


def _outer_lookup(*rest: Instruction) -> list[Instruction]:
    """key = 0; r0 = lookup(outer, &key) (outer's lddw is instruction 3); <rest>"""
    return [Instruction(0x62, 10, 0, -4, 0), *_key(2, -4), Instruction.lddw(1, 0), _call(1), *rest]


MAP_IN_MAP = {
    # name: (program, the kernel accepts, instruction we refuse at)
    "inner value read": (_outer_lookup(
        Instruction(0x15, 0, 0, 6, 0), mov_reg(1, 0), *_key(2, -4), _call(1), Instruction(0x15, 0, 0, 1, 0),
        Instruction(0x79, 1, 0, 0, 0), mov(0, 2), EXIT), True, None),
    "inner value read past its end": (_outer_lookup(
        Instruction(0x15, 0, 0, 6, 0), mov_reg(1, 0), *_key(2, -4), _call(1), Instruction(0x15, 0, 0, 1, 0),
        Instruction(0x79, 1, 0, 8, 0), mov(0, 2), EXIT), False, 11),
    "inner map used before its NULL check": (_outer_lookup(
        mov(3, 0), mov_reg(1, 0), *_key(2, -4), _call(1), Instruction(0x15, 0, 0, 1, 0),
        Instruction(0x79, 1, 0, 0, 0), mov(0, 2), EXIT), False, 9),
    "arithmetic on the inner map": (_outer_lookup(
        Instruction(0x15, 0, 0, 1, 0), add_imm(0, 8), mov(0, 2), EXIT), False, 6),
}


@pytest.mark.parametrize("outer_type", [12, 13], ids=["array_of_maps", "hash_of_maps"])
@pytest.mark.parametrize("name", list(MAP_IN_MAP))
def test_map_of_maps_lookups(name: str, outer_type: int) -> None:
    insns, kernel_ok, at = MAP_IN_MAP[name]
    outer = _map(outer_type)
    if KERNEL:
        verdict = kernel_verdict_maps(insns, {MAP_INSN: outer})
        assert verdict.ok == kernel_ok, verdict.last_lines
    report = verify_instructions(insns, map_refs={MAP_INSN: (outer, None)}, inner_maps={outer.name: INNER})
    assert report.ok == kernel_ok, report.format()
    if at is not None:
        assert any(f.insn == at for f in report.errors), report.format()


MAP_IN_MAP_C = """
typedef unsigned int __u32; typedef unsigned long long __u64;
struct xdp_md { __u32 data; __u32 data_end; __u32 data_meta; __u32 ingress_ifindex; __u32 rx_queue_index; };
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
struct inner { __uint(type, 2); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); }
    inner_map SEC(".maps");
struct { __uint(type, 12); __uint(max_entries, 2); __type(key, __u32); __array(values, struct inner); }
    outer SEC(".maps") = { .values = { [0] = &inner_map } };
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    void *m = bpf_map_lookup_elem(&outer, &k);
    if (!m) return 2;
    __u64 *v = bpf_map_lookup_elem(m, &k);
    if (!v) return 2;
    return v[READ] == 3 ? 1 : 2;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize(("read", "kernel_ok"), [(0, True), (1, False)], ids=["in bounds", "past the value"])
def test_map_of_maps_from_a_clang_object(read: int, kernel_ok: bool) -> None:
    """The inner map's definition comes from the object's BTF (libbpf's ``__array(values, ...)``)."""
    cc = clang()
    if cc is None:
        pytest.skip("clang is not installed")
    with tempfile.TemporaryDirectory() as d:
        src, obj = os.path.join(d, "mim.c"), os.path.join(d, "mim.o")
        with open(src, "w") as f:
            f.write(MAP_IN_MAP_C.replace("READ", str(read)))
        subprocess.run([cc, "-O2", "-g", "-target", "bpf", "-c", src, "-o", obj], check=True, capture_output=True)
        with open(obj, "rb") as f:
            elf = f.read()
    if KERNEL:
        verdict = object_verdict(elf, "prog")
        assert verdict.ok == kernel_ok, verdict.log[-500:]
    report = verify_object(elf, "prog")
    assert report.ok == kernel_ok, report.format()


FALLBACK_C = """
typedef unsigned int __u32; typedef unsigned long long __u64;
struct xdp_md { __u32 data; __u32 data_end; __u32 data_meta; __u32 ingress_ifindex; __u32 rx_queue_index; };
#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define __array(name, val) typeof(val) *name[]
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static __u32 (*bpf_get_smp_processor_id)(void) = (void *)8;
struct lru { __uint(type, 9); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64); };
struct lru fallback SEC(".maps");
struct { __uint(type, 12); __uint(max_entries, 4); __type(key, __u32); __array(values, struct lru); }
    per_cpu SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 cpu = bpf_get_smp_processor_id(), k = 0;
    void *m = bpf_map_lookup_elem(&per_cpu, &cpu);
    if (!m) m = &fallback;
    __u64 *v = bpf_map_lookup_elem(m, &k);
    if (!v) return 2;
    return v[READ] == 3 ? 1 : 2;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize(("read", "kernel_ok"), [(0, True), (1, False)], ids=["in bounds", "past the value"])
def test_inner_map_or_a_fallback_map_of_the_same_shape(read: int, kernel_ok: bool) -> None:
    """katran's idiom: the CPU's LRU from a map of maps, else a fallback LRU defined alike; the lookup after
    the join takes either (their definitions are one)."""
    cc = clang()
    if cc is None:
        pytest.skip("clang is not installed")
    with tempfile.TemporaryDirectory() as d:
        src, obj = os.path.join(d, "fallback.c"), os.path.join(d, "fallback.o")
        with open(src, "w") as f:
            f.write(FALLBACK_C.replace("READ", str(read)))
        subprocess.run([cc, "-O2", "-g", "-target", "bpf", "-c", src, "-o", obj], check=True, capture_output=True)
        with open(obj, "rb") as f:
            elf = f.read()
    if KERNEL:
        verdict = object_verdict(elf, "prog")
        assert verdict.ok == kernel_ok, verdict.log[-500:]
    report = verify_object(elf, "prog")
    assert report.ok == kernel_ok, report.format()
