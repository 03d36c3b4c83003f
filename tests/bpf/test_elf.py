"""Reading BPF ELF objects: programs, relocations, maps, BTF line info."""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from llvmlite import ir

from pybpfdsl.backend.debuginfo import CHAR, U32, U64, ArrayTypeDesc, DebugInfoBuilder, FieldDesc, StructTypeDesc
from pybpfdsl.backend.object_emit import BPF_DATALAYOUT, BPF_TRIPLE, emit_bpf_object
from pybpfdsl.bpf.btf_ext import Btf, BtfKind
from pybpfdsl.bpf.disasm import disassemble, format_listing
from pybpfdsl.bpf.elf import BpfElf, ElfError, func_info, line_info
from pybpfdsl.bpf.instruction import RelocKind, encode
from pybpfdsl.runtime.activity import ACTIVITY

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType(I8)
PAIR = StructTypeDesc("pair", (FieldDesc("a", U32, 0), FieldDesc("b", U64, 8)), 16)

SOURCE_LINES = {
    20: "def filter(ctx: XdpContext) -> int:",
    21: "    key = u32(0)",
    22: "    rule = acl.lookup(key)",
    23: "    if rule is None:",
    24: "        return XDP_PASS",
    25: "    counts[0] += hits + seed + mix(rule.b)",
    26: "    return XDP_DROP",
}
SOURCE = "".join(f"{SOURCE_LINES.get(i, f'# line {i}')}\n" for i in range(1, 40))


def _module(name: str) -> ir.Module:
    m = ir.Module(name)
    m.triple = BPF_TRIPLE
    m.data_layout = BPF_DATALAYOUT
    return m


def _helper(number: int, fnty: ir.FunctionType) -> ir.Constant:
    """``inttoptr (i64 N to ptr)`` usable as a call target (see test_debuginfo)."""
    callee = ir.Constant(I64, number).inttoptr(fnty.as_pointer())
    callee.function_type = fnty
    return callee


def _license(m: ir.Module, db: DebugInfoBuilder) -> None:
    ty = ir.ArrayType(I8, 4)
    lic = ir.GlobalVariable(m, ty, "_license")
    lic.initializer = ir.Constant(ty, bytearray(b"GPL\0"))
    lic.section = "license"
    db.global_variable(lic, ArrayTypeDesc(CHAR, 4))


def build_filter(with_subprogram: bool = True) -> ir.Module:
    """Two maps, .bss/.data globals, line info, optionally a .text subprogram."""
    m = _module("filter")
    db = DebugInfoBuilder(m, "examples/filter.py", source_text=SOURCE)
    acl = db.map_definition("acl", BPF_MAP_TYPE_HASH, U32, PAIR, 256, line=3)
    counts = db.map_definition("counts", BPF_MAP_TYPE_ARRAY, U32, U64, 4, line=4)
    hits = ir.GlobalVariable(m, I64, "hits")
    hits.initializer = ir.Constant(I64, 0)
    hits.align = 8
    db.global_variable(hits, U64, line=5)
    seed = ir.GlobalVariable(m, I64, "seed")
    seed.initializer = ir.Constant(I64, 7)
    seed.align = 8
    db.global_variable(seed, U64, line=6)
    _license(m, db)

    mix: ir.Function | None = None
    if with_subprogram:
        mix = ir.Function(m, ir.FunctionType(I64, [I64]), "mix")
        mix.attributes.add("noinline")
        mix.attributes.add("nounwind")
        mix.section = ".text"
        mb = ir.IRBuilder(mix.append_basic_block("entry"))
        mb.ret(mb.xor(mb.mul(mix.args[0], ir.Constant(I64, 0x9E3779B1)), ir.Constant(I64, 5)))

    fn = ir.Function(m, ir.FunctionType(I32, [PTR]), "filter")
    fn.section = "xdp"
    scope = db.function(fn, "filter", 20)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    found = fn.append_basic_block("found")
    out = fn.append_basic_block("out")

    def at(instr: ir.Instruction, line: int, col: int) -> ir.Instruction:
        instr.set_metadata("dbg", db.location(scope, line, col))
        return instr

    lookup = _helper(1, ir.FunctionType(PTR, [PTR, PTR]))
    key = at(b.alloca(I32, name="key"), 21, 5)
    at(b.store(ir.Constant(I32, 0), key), 21, 5)
    rule = at(b.call(lookup, [b.bitcast(acl, PTR), b.bitcast(key, PTR)]), 22, 12)
    at(b.cbranch(at(b.icmp_unsigned("==", rule, ir.Constant(PTR, None)), 23, 8), out, found), 23, 5)

    b.position_at_end(found)
    rule_b = at(b.load(b.bitcast(b.gep(rule, [ir.Constant(I64, 8)]), I64.as_pointer())), 25, 40)
    extra = at(b.call(mix, [rule_b]), 25, 36) if mix is not None else rule_b
    slot = at(b.call(lookup, [b.bitcast(counts, PTR), b.bitcast(key, PTR)]), 25, 5)
    done = fn.append_basic_block("done")
    at(b.cbranch(at(b.icmp_unsigned("==", slot, ir.Constant(PTR, None)), 25, 5), out, done), 25, 5)
    b.position_at_end(done)
    slot64 = b.bitcast(slot, I64.as_pointer())
    total = at(b.add(at(b.load(hits), 25, 17), at(b.load(seed), 25, 24)), 25, 17)
    total = at(b.add(total, extra), 25, 17)
    at(b.store(at(b.add(at(b.load(slot64), 25, 5), total), 25, 5), slot64), 25, 5)
    at(b.ret(ir.Constant(I32, 1)), 26, 5)

    b.position_at_end(out)
    at(b.ret(ir.Constant(I32, 2)), 24, 9)
    db.finalize()
    return m


@pytest.fixture(scope="module")
def filter_object() -> bytes:
    return emit_bpf_object(build_filter())


@pytest.fixture(scope="module")
def filter_elf(filter_object: bytes) -> BpfElf:
    return BpfElf.from_bytes(filter_object)


# --------------------------------------------------------------------------- #
# Objects we emit
# --------------------------------------------------------------------------- #


def test_sections_programs_and_license(filter_elf: BpfElf) -> None:
    assert list(filter_elf.programs) == ["xdp"]
    assert filter_elf.license == "GPL"
    prog = filter_elf.programs["xdp"]
    assert prog.name == "filter" and prog.section == "xdp"
    assert [(f.name, f.insn_index, f.is_global) for f in prog.functions] == [("filter", 0, True)]
    assert filter_elf.program("filter") == prog  # by function name
    assert filter_elf.program("xdp") is prog  # by section
    text = filter_elf.text
    assert text is not None and [f.name for f in text.functions] == ["mix"]
    assert filter_elf.program("mix").instructions == text.instructions
    assert {f.name for f in filter_elf.functions} == {"filter", "mix"}
    with pytest.raises(KeyError, match="nope"):
        filter_elf.program("nope")


def test_instructions_round_trip(filter_elf: BpfElf) -> None:
    for name in ("xdp", ".text"):
        prog = filter_elf.program(name)
        assert encode(prog.instructions) == filter_elf.section_data(name)
        assert prog.slots * 8 == len(filter_elf.section_data(name) or b"")
    assert prog.instructions[-1].is_exit


def test_relocations_name_maps_globals_and_callee(filter_elf: BpfElf) -> None:
    prog = filter_elf.program("xdp")
    found = {(r.kind, r.symbol, r.section) for r in prog.relocations}
    assert found == {
        (RelocKind.MAP, "acl", ".maps"),
        (RelocKind.MAP, "counts", ".maps"),
        (RelocKind.DATA, "hits", ".bss"),
        (RelocKind.DATA, "seed", ".data"),
        (RelocKind.CALL, "mix", ".text"),
    }
    for r in prog.relocations:
        insn = prog.instructions[r.insn_index]
        assert prog.relocation_at(r.insn_index) == r
        if r.kind == RelocKind.CALL:
            assert insn.is_pseudo_call and r.reloc_type == 10  # R_BPF_64_32
        else:
            assert insn.is_wide and r.reloc_type == 1  # R_BPF_64_64
    text = disassemble(prog.instructions, prog.relocations)
    for line in (
        "r1 = map[acl] ll",
        "r1 = map[counts] ll",
        "call bpf_map_lookup_elem#1",
        "call mix",
        "exit",
    ):
        assert line in text, text
    assert any(re.fullmatch(r"r\d = map_value\[\.bss:hits\] ll", t) for t in text), text
    assert any(re.fullmatch(r"r\d = map_value\[\.data:seed\] ll", t) for t in text), text
    listing = format_listing(prog.instructions, prog.relocations)
    assert re.fullmatch(r"\d+: \(18\) r1 = map\[acl\] ll", next(t for t in listing if "acl" in t))


def test_maps_with_btf_sizes(filter_elf: BpfElf) -> None:
    maps = filter_elf.maps
    assert list(maps) == ["acl", "counts"]
    acl, counts = maps["acl"], maps["counts"]
    assert (acl.map_type, acl.key_size, acl.value_size, acl.max_entries) == (BPF_MAP_TYPE_HASH, 4, 16, 256)
    assert (counts.map_type, counts.key_size, counts.value_size, counts.max_entries) == (BPF_MAP_TYPE_ARRAY, 4, 8, 4)
    assert acl.section == ".maps" and counts.offset > acl.offset


def test_btf_types(filter_elf: BpfElf) -> None:
    btf = filter_elf.btf
    assert btf is not None
    (pair,) = btf.by_name("pair", BtfKind.STRUCT)
    assert [(n, off) for n, _t, off in pair.members] == [("a", 0), ("b", 64)]  # bit offsets
    assert btf.size_of(pair.id) == 16
    assert btf.by_name(".maps", BtfKind.DATASEC)
    assert any(t.kind == BtfKind.FUNC and t.name == "filter" for t in btf.types)


def test_line_info_matches_dilocations(filter_object: bytes, filter_elf: BpfElf) -> None:
    infos = line_info(filter_object)
    assert set(infos) == {"xdp", ".text"} or set(infos) == {"xdp"}
    xdp = infos["xdp"]
    assert xdp, "no line info for xdp"
    assert {li.line for li in xdp} <= set(SOURCE_LINES)
    assert {20, 21, 22, 23, 25} <= {li.line for li in xdp}
    for li in xdp:
        assert li.file == "examples/filter.py"
        assert li.text == SOURCE_LINES[li.line]
    prog = filter_elf.program("xdp")
    assert tuple(xdp) == prog.line_info
    assert xdp[0].insn_index == 0 and xdp[0].line == 20
    # insn_index indexes instructions, slot counts 8-byte slots (kernel numbering)
    for li in xdp:
        assert sum(i.slots for i in prog.instructions[: li.insn_index]) == li.slot

    def line_of(index: int) -> int:  # a record covers instructions up to the next one
        return max((li for li in xdp if li.insn_index <= index), key=lambda li: li.insn_index).line

    lookup_calls = [i for i, insn in enumerate(prog.instructions) if insn.is_helper_call]
    assert [line_of(i) for i in lookup_calls] == [22, 25]
    col = {(li.line, li.column) for li in xdp}
    assert (21, 5) in col
    fi = func_info(filter_object)
    assert [(f.slot, f.name) for f in fi["xdp"]] == [(0, "filter")]


def test_function_slicing_with_two_programs_in_one_section() -> None:
    m = _module("two")
    for name, verdict in (("first", 1), ("second", 2)):
        fn = ir.Function(m, ir.FunctionType(I32, [PTR]), name)
        fn.section = "xdp"
        fn.attributes.add("nounwind")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        b.ret(ir.Constant(I32, verdict))
    elf = BpfElf.from_bytes(emit_bpf_object(m))
    whole = elf.program("xdp")
    assert [f.name for f in whole.functions] == ["first", "second"]
    first, second = elf.program("first"), elf.program("second")
    assert disassemble(first.instructions) == ["w0 = 1", "exit"]
    assert disassemble(second.instructions) == ["w0 = 2", "exit"]
    assert first.instructions + second.instructions == whole.instructions
    assert second.functions[0].insn_index == 0


def test_legacy_maps_and_rodata_section_symbol() -> None:
    m = _module("legacy")
    defty = ir.ArrayType(I32, 5)
    legacy = ir.GlobalVariable(m, defty, "old_map")
    legacy.initializer = ir.Constant(defty, [BPF_MAP_TYPE_ARRAY, 4, 8, 16, 0])
    legacy.section = "maps"
    legacy.align = 4
    table_ty = ir.ArrayType(I32, 4)
    table = ir.GlobalVariable(m, table_ty, "table")
    table.linkage = "internal"
    table.global_constant = True
    table.initializer = ir.Constant(table_ty, [3, 1, 4, 1])
    table.section = ".rodata"
    fn = ir.Function(m, ir.FunctionType(I64, [PTR]), "prog")
    fn.section = "socket"
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    idx = b.and_(b.zext(b.load(b.bitcast(fn.args[0], I32.as_pointer())), I64), ir.Constant(I64, 3))
    val = b.load(b.gep(table, [ir.Constant(I64, 0), idx]))
    mp = b.ptrtoint(legacy, I64)
    b.ret(b.add(b.zext(val, I64), mp))
    elf = BpfElf.from_bytes(emit_bpf_object(m))
    old = elf.maps["old_map"]
    assert (old.section, old.map_type, old.key_size, old.value_size, old.max_entries) == ("maps", 2, 4, 8, 16)
    kinds = {(r.kind, r.section) for r in elf.program("socket").relocations}
    assert (RelocKind.MAP, "maps") in kinds
    assert (RelocKind.DATA, ".rodata") in kinds


def test_not_a_bpf_object() -> None:
    with pytest.raises(ElfError):
        BpfElf.from_bytes(b"not an elf at all")
    x86 = Path("/bin/true")
    if x86.exists():
        with pytest.raises(ElfError, match="BPF"):
            BpfElf.from_path(x86)


def test_btf_parse_rejects_bad_magic() -> None:
    with pytest.raises(ValueError):
        Btf.parse(b"\0" * 32)


# --------------------------------------------------------------------------- #
# Our disassembly against the kernel verifier's own listing
# --------------------------------------------------------------------------- #


def _verifier_log(obj: bytes) -> str:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
    except OSError as exc:
        pytest.skip(f"libbpf.so.1 not available: {exc}")
    vp, cp, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    for name, args, res in (
        ("bpf_object__open_mem", [cp, sz, vp], vp),
        ("bpf_object__load", [vp], ctypes.c_int),
        ("bpf_object__close", [vp], None),
        ("bpf_object__next_program", [vp, vp], vp),
        ("bpf_program__set_log_buf", [vp, cp, sz], ctypes.c_int),
        ("bpf_program__set_log_level", [vp, ctypes.c_uint32], ctypes.c_int),
    ):
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = res
    handle = lib.bpf_object__open_mem(obj, len(obj), None)
    if not handle:
        pytest.skip("libbpf could not open the object")
    log = ctypes.create_string_buffer(1 << 20)
    try:
        prog = lib.bpf_object__next_program(handle, None)
        lib.bpf_program__set_log_buf(prog, log, len(log))
        lib.bpf_program__set_log_level(prog, 2)
        err = lib.bpf_object__load(handle)
    finally:
        lib.bpf_object__close(handle)
    text = log.value.decode(errors="replace")
    if err != 0 and not text:
        pytest.skip(f"cannot load BPF programs here (error {err})")
    ACTIVITY.loads += 1  # the program reached the kernel verifier: report it as a kernel test
    return text


@pytest.mark.kernel
def test_listing_matches_kernel_verifier_log() -> None:
    obj = emit_bpf_object(build_filter(with_subprogram=False))
    log = _verifier_log(obj)
    # "N: (op) text" lines the kernel printed, minus trailing register state
    kernel = {m.group(1): m.group(2).strip() for m in re.finditer(r"^(\d+: \(\w\w\)) ([^;\n]*)", log, re.MULTILINE)}
    if not kernel:
        pytest.skip("verifier log has no instruction listing")
    prog = BpfElf.from_bytes(obj).program("xdp")
    compared = 0
    for line, insn in zip(format_listing(prog.instructions), prog.instructions, strict=True):
        if insn.is_wide:  # the kernel prints the patched pointer value
            continue
        prefix, _, ours = line.partition(") ")
        theirs = kernel.get(prefix + ")")
        if theirs is not None:
            assert ours == theirs, f"{line!r} vs kernel {theirs!r}"
            compared += 1
    assert compared >= 10


# --------------------------------------------------------------------------- #
# clang-compiled object
# --------------------------------------------------------------------------- #

CLANG_XDP = r"""
#include <linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 64);
} acl SEC(".maps");

__u64 hits = 0;

static __attribute__((noinline)) int bump(__u64 *v) { *v += 3; return 0; }

SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = ctx->ingress_ifindex;
    __u64 *v = bpf_map_lookup_elem(&acl, &k);
    if (!v)
        return XDP_PASS;
    bump(v);
    __sync_fetch_and_add(&hits, 1);
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_clang_object(tmp_path: Path) -> None:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang not installed (apt-get install clang) - clang object test not run")
    src = tmp_path / "prog.c"
    src.write_text(CLANG_XDP)
    out = tmp_path / "prog.o"
    machine = subprocess.run(["uname", "-m"], capture_output=True, text=True, check=True).stdout.strip()
    flags = ["-O2", "-g", "-target", "bpf", "-mcpu=v3", f"-I/usr/include/{machine}-linux-gnu"]
    result = subprocess.run(
        [clang, *flags, "-c", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"clang could not build the test program (missing kernel headers?): {result.stderr[:300]}")
    elf = BpfElf.from_path(out)
    assert list(elf.programs) == ["xdp"] and elf.license == "GPL"
    acl = elf.maps["acl"]
    assert (acl.map_type, acl.key_size, acl.value_size, acl.max_entries) == (BPF_MAP_TYPE_HASH, 4, 8, 64)
    prog = elf.program("prog")
    assert encode(prog.instructions) == elf.section_data("xdp")
    text = disassemble(prog.instructions, prog.relocations)
    assert "r1 = map[acl] ll" in text
    assert "call bpf_map_lookup_elem#1" in text
    assert "call bump" in text  # static callee through the .text section symbol
    assert any(re.fullmatch(r"lock \*\(u64 \*\)\(r\d \+0\) \+= r\d", t) for t in text), text
    assert elf.text is not None and [f.name for f in elf.text.functions] == ["bump"]
    lines = line_info(out.read_bytes())["xdp"]
    assert any(li.text.strip() == "__u32 k = ctx->ingress_ifindex;" for li in lines)
    assert all(li.file.endswith("prog.c") for li in lines)
