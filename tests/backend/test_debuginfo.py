"""Debug info -> BTF: object layout, BTF contents, and loading through libbpf."""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from llvmlite import ir  # type: ignore[import-untyped]

from pybpfdsl.backend import object_emit
from pybpfdsl.backend.debuginfo import (
    CHAR,
    U32,
    U64,
    ArrayTypeDesc,
    DebugInfoBuilder,
    FieldDesc,
    StructTypeDesc,
)
from pybpfdsl.backend.object_emit import (
    BPF_DATALAYOUT,
    BPF_TRIPLE,
    BpfTargetMissing,
    emit_bpf_assembly,
    emit_bpf_object,
)

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
XDP_PASS = 2

I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType(I8)

PAIR = StructTypeDesc("pair", (FieldDesc("a", U32, 0), FieldDesc("b", U64, 8)), 16)

# A fake Python source: line N of the file reads "<text of line N>".
DEMO_LINES = {
    9: "def demo(ctx: XdpContext) -> int:",
    10: "    key = u32(0)",
    11: "    count = counts.lookup(key)",
    12: "    if count is not None:",
    13: "        count[0] += hits + seed",
    14: "    return XDP_PASS",
    41: "def bad(ctx: XdpContext) -> int:",
    42: "    first = ctx.data[0]  # no bounds check",
    43: "    return XDP_PASS",
}
DEMO_SOURCE = "".join(f"{DEMO_LINES.get(i, f'# filler {i}')}\n" for i in range(1, 60))


# --------------------------------------------------------------------------- #
# Tiny ELF64 little-endian section reader
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Section:
    name: str
    sh_type: int
    flags: int
    data: bytes


def elf_sections(obj: bytes) -> dict[str, Section]:
    assert obj[:4] == b"\x7fELF"
    assert obj[4] == 2 and obj[5] == 1, "expected ELF64 little-endian"
    e_machine = struct.unpack_from("<H", obj, 18)[0]
    assert e_machine == 247, "expected EM_BPF"
    e_shoff = struct.unpack_from("<Q", obj, 0x28)[0]
    e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", obj, 0x3A)
    headers = []
    for i in range(e_shnum):
        name, sh_type, flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", obj, e_shoff + i * e_shentsize
        )
        headers.append((name, sh_type, flags, offset, size))
    strtab_off, strtab_size = headers[e_shstrndx][3], headers[e_shstrndx][4]
    strtab = obj[strtab_off : strtab_off + strtab_size]
    out = {}
    for name_off, sh_type, flags, offset, size in headers[1:]:
        name = strtab[name_off : strtab.index(b"\0", name_off)].decode()
        data = b"" if sh_type == 8 else obj[offset : offset + size]  # SHT_NOBITS
        out[name] = Section(name, sh_type, flags, data)
    return out


def btf_strings(btf: bytes) -> list[str]:
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", btf, 0)
    assert magic == 0xEB9F
    _type_off, _type_len, str_off, str_len = struct.unpack_from("<IIII", btf, 8)
    raw = btf[hdr_len + str_off : hdr_len + str_off + str_len]
    return [s.decode() for s in raw.split(b"\0")]


# --------------------------------------------------------------------------- #
# Minimal libbpf loader (ctypes); the real one lives in pybpfdsl.runtime
# --------------------------------------------------------------------------- #


class _Libbpf:
    def __init__(self) -> None:
        lib = ctypes.CDLL(
            ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True
        )
        vp, cp, sz, u32 = (
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint32,
        )
        sigs: dict[str, tuple[list[object], object]] = {
            "bpf_object__open_mem": ([cp, sz, vp], vp),
            "libbpf_get_error": ([vp], ctypes.c_long),
            "bpf_object__load": ([vp], ctypes.c_int),
            "bpf_object__close": ([vp], None),
            "bpf_object__next_program": ([vp, vp], vp),
            "bpf_program__set_log_buf": ([vp, cp, sz], ctypes.c_int),
            "bpf_program__set_log_level": ([vp, u32], ctypes.c_int),
            "bpf_program__name": ([vp], cp),
            "bpf_program__section_name": ([vp], cp),
            "bpf_object__find_map_by_name": ([vp, cp], vp),
            "bpf_map__type": ([vp], ctypes.c_int),
            "bpf_map__key_size": ([vp], u32),
            "bpf_map__value_size": ([vp], u32),
            "bpf_map__max_entries": ([vp], u32),
            "bpf_map__btf_value_type_id": ([vp], u32),
        }
        for name, (args, res) in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = res
        self.lib = lib


def _libbpf() -> _Libbpf:
    try:
        return _Libbpf()
    except OSError as exc:  # pragma: no cover - environment dependent
        pytest.skip(f"libbpf.so.1 not available: {exc}")


@dataclass
class OpenedObject:
    lib: ctypes.CDLL
    obj: int
    log: ctypes.Array[ctypes.c_char]

    def load(self) -> int:
        return int(self.lib.bpf_object__load(self.obj))

    @property
    def verifier_log(self) -> str:
        return self.log.value.decode(errors="replace")


@contextmanager
def open_object(data: bytes, log_level: int = 1) -> Iterator[OpenedObject]:
    lb = _libbpf()
    lib = lb.lib
    obj = lib.bpf_object__open_mem(data, len(data), None)
    err = lib.libbpf_get_error(obj)
    assert obj and err == 0, f"bpf_object__open_mem failed: {err}"
    log = ctypes.create_string_buffer(1 << 20)
    prog = lib.bpf_object__next_program(obj, None)
    while prog:
        lib.bpf_program__set_log_buf(prog, log, len(log))
        lib.bpf_program__set_log_level(prog, log_level)
        prog = lib.bpf_object__next_program(obj, prog)
    try:
        yield OpenedObject(lib, obj, log)
    finally:
        lib.bpf_object__close(obj)


def load_or_skip(opened: OpenedObject) -> int:
    err = opened.load()
    if (
        err in (-1, -13)
        and "processed" not in opened.verifier_log
        and not opened.verifier_log
    ):
        # EPERM / EACCES before the verifier ran: no privileges for BPF.
        pytest.skip(f"cannot load BPF programs here (error {err})")
    return err


# --------------------------------------------------------------------------- #
# Programs under test
# --------------------------------------------------------------------------- #


def new_module(name: str) -> ir.Module:
    m = ir.Module(name)
    m.triple = BPF_TRIPLE
    m.data_layout = BPF_DATALAYOUT
    return m


def add_license(m: ir.Module, db: DebugInfoBuilder) -> None:
    ty = ir.ArrayType(I8, 4)
    lic = ir.GlobalVariable(m, ty, "_license")
    lic.initializer = ir.Constant(ty, bytearray(b"GPL\0"))
    lic.section = "license"
    db.global_variable(lic, ArrayTypeDesc(CHAR, 4))


def helper(number: int, fnty: ir.FunctionType) -> ir.Constant:
    """BPF helper call target: ``inttoptr (i64 N to ptr)``.

    llvmlite's CallInstr reads ``callee.function_type``, which only Function
    objects have, so it is attached to the constant by hand.
    """
    callee = ir.Constant(I64, number).inttoptr(fnty.as_pointer())
    callee.function_type = fnty
    return callee


def build_demo(
    source_file: str = "examples/demo.py", source_text: str | None = DEMO_SOURCE
) -> ir.Module:
    m = new_module("demo")
    db = DebugInfoBuilder(m, source_file, source_text=source_text)
    counts = db.map_definition("counts", BPF_MAP_TYPE_HASH, U32, U64, 1024, line=3)
    db.map_definition("pairs", BPF_MAP_TYPE_ARRAY, U32, PAIR, 4, line=4)

    hits = ir.GlobalVariable(m, I64, "hits")  # zero-initialised -> .bss
    hits.initializer = ir.Constant(I64, 0)
    hits.align = 8
    db.global_variable(hits, U64, line=5)
    seed = ir.GlobalVariable(m, I64, "seed")  # non-zero -> .data
    seed.initializer = ir.Constant(I64, 7)
    seed.align = 8
    db.global_variable(seed, U64, line=6)
    add_license(m, db)

    fn = ir.Function(m, ir.FunctionType(I32, [PTR]), "demo")
    fn.section = "xdp"
    scope = db.function(fn, "demo", 9)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    found = fn.append_basic_block("found")
    out = fn.append_basic_block("out")

    def at(instr: ir.Instruction, line: int, col: int) -> ir.Instruction:
        instr.set_metadata("dbg", db.location(scope, line, col))
        return instr

    key = at(b.alloca(I32, name="key"), 10, 5)
    at(b.store(ir.Constant(I32, 0), key), 10, 5)
    lookup = helper(1, ir.FunctionType(PTR, [PTR, PTR]))  # bpf_map_lookup_elem
    value = at(b.call(lookup, [b.bitcast(counts, PTR), b.bitcast(key, PTR)]), 11, 13)
    is_null = at(b.icmp_unsigned("==", value, ir.Constant(PTR, None)), 12, 8)
    at(b.cbranch(is_null, out, found), 12, 5)

    b.position_at_end(found)
    slot = b.bitcast(value, I64.as_pointer())
    old = at(b.load(slot), 13, 9)
    total = at(b.add(old, at(b.load(hits), 13, 27)), 13, 9)
    total = at(b.add(total, at(b.load(seed), 13, 34)), 13, 9)
    total = at(b.add(total, ir.Constant(I64, 1)), 13, 9)
    at(b.store(total, slot), 13, 9)
    at(b.branch(out), 13, 9)

    b.position_at_end(out)
    at(b.ret(ir.Constant(I32, XDP_PASS)), 14, 5)
    db.finalize()
    return m


def build_unchecked_packet_read(
    source_file: str = "examples/demo.py", source_text: str | None = DEMO_SOURCE
) -> ir.Module:
    """Reads ``ctx->data[0]`` without comparing against ``data_end``."""
    m = new_module("bad")
    db = DebugInfoBuilder(m, source_file, source_text=source_text)
    add_license(m, db)
    fn = ir.Function(m, ir.FunctionType(I32, [PTR]), "bad")
    fn.section = "xdp"
    scope = db.function(fn, "bad", 41)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ctx = fn.args[0]
    data = b.load(b.bitcast(ctx, I32.as_pointer()))
    data.set_metadata("dbg", db.location(scope, 42, 13))
    pkt = b.inttoptr(b.zext(data, I64), PTR)
    first = b.load(pkt, name="first")
    first.set_metadata("dbg", db.location(scope, 42, 13))
    # keep the load alive: return XDP_DROP (1) or XDP_PASS (2) depending on it
    verdict = b.add(b.zext(b.and_(first, ir.Constant(I8, 1)), I32), ir.Constant(I32, 1))
    b.ret(verdict).set_metadata("dbg", db.location(scope, 43, 5))
    db.finalize()
    return m


@pytest.fixture(scope="module")
def demo_object() -> bytes:
    return emit_bpf_object(build_demo())


# --------------------------------------------------------------------------- #
# Tests
# --------------------------------------------------------------------------- #


def test_sections(demo_object: bytes) -> None:
    sections = elf_sections(demo_object)
    for name in (".maps", ".BTF", ".BTF.ext", "xdp", "license", ".bss", ".data"):
        assert name in sections, f"missing section {name}: {sorted(sections)}"
    assert sections["xdp"].flags & 0x4, "xdp must be SHF_EXECINSTR"
    assert sections[".bss"].sh_type == 8  # SHT_NOBITS
    assert sections[".data"].data == struct.pack("<Q", 7)
    assert sections["license"].data == b"GPL\0"
    assert len(sections[".maps"].data) == 2 * 32
    assert ".eh_frame" not in sections


def test_btf_strings(demo_object: bytes) -> None:
    sections = elf_sections(demo_object)
    strings = btf_strings(sections[".BTF"].data)
    assert any(s.endswith("demo.py") for s in strings), strings
    for name in ("counts", "pairs", "hits", "seed", "pair", "xdp_md", "ctx", "demo"):
        assert name in strings, name
    for member in ("type", "key", "value", "max_entries"):
        assert member in strings
    assert ".maps" in strings and ".bss" in strings and ".data" in strings
    # line_info carries the text of the Python source lines
    assert DEMO_LINES[11] in strings
    assert DEMO_LINES[13] in strings


def test_assembly_has_python_locations() -> None:
    asm = emit_bpf_assembly(build_demo())
    assert "call 1" in asm
    assert "demo.py:11" in asm


@pytest.mark.parametrize("cpu", ["v1", "v2", "v3", "v4"])
def test_cpu_versions_emit(cpu: str) -> None:
    obj = emit_bpf_object(build_demo(), cpu=cpu)
    assert ".BTF.ext" in elf_sections(obj)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        emit_bpf_object(build_demo(), cpu="v9")
    assert issubclass(BpfTargetMissing, RuntimeError)
    db = DebugInfoBuilder(new_module("x"), "x.py", source_text="")
    db.finalize()
    with pytest.raises(RuntimeError):
        db.finalize()


def test_opt_level_zero_emits() -> None:
    assert ".BTF" in elf_sections(emit_bpf_object(build_demo(), opt_level=0))


def test_libbpf_sees_btf_defined_maps(demo_object: bytes) -> None:
    with open_object(demo_object) as opened:
        lib = opened.lib
        counts = lib.bpf_object__find_map_by_name(opened.obj, b"counts")
        pairs = lib.bpf_object__find_map_by_name(opened.obj, b"pairs")
        assert counts and pairs
        assert lib.bpf_map__type(counts) == BPF_MAP_TYPE_HASH
        assert (lib.bpf_map__key_size(counts), lib.bpf_map__value_size(counts)) == (
            4,
            8,
        )
        assert lib.bpf_map__max_entries(counts) == 1024
        assert lib.bpf_map__type(pairs) == BPF_MAP_TYPE_ARRAY
        assert lib.bpf_map__value_size(pairs) == 16
        assert lib.bpf_map__max_entries(pairs) == 4
        assert lib.bpf_map__btf_value_type_id(pairs) != 0
        # global data maps, named "<obj>.bss" / "<obj>.data" (truncated)
        prog = lib.bpf_object__next_program(opened.obj, None)
        assert lib.bpf_program__section_name(prog) == b"xdp"
        assert lib.bpf_program__name(prog) == b"demo"


@pytest.mark.parametrize("cpu", ["v2", "v3"])
def test_demo_loads_in_kernel(cpu: str) -> None:
    obj = emit_bpf_object(build_demo(), cpu=cpu)
    with open_object(obj) as opened:
        err = load_or_skip(opened)
        assert err == 0, opened.verifier_log


def test_verifier_log_shows_python_line() -> None:
    obj = emit_bpf_object(build_unchecked_packet_read())
    with open_object(obj) as opened:
        err = load_or_skip(opened)
        log = opened.verifier_log
    assert err != 0
    assert "invalid access to packet" in log, log
    # The kernel prints "; <source line, leading blanks stripped> @ <basename>:<line>"
    assert f"; {DEMO_LINES[42].strip()} @ demo.py:42" in log, log


def test_verifier_log_line_text_read_from_disk(tmp_path: Path) -> None:
    # Without source_text the builder reads the file and embeds its contents.
    src = tmp_path / "prog.py"
    src.write_text(DEMO_SOURCE)
    module = build_unchecked_packet_read(str(src), source_text=None)
    src.unlink()  # embedded: no longer needed at emission time
    obj = emit_bpf_object(module)
    with open_object(obj) as opened:
        err = load_or_skip(opened)
        log = opened.verifier_log
    assert err != 0
    assert f"; {DEMO_LINES[42].strip()} @ prog.py:42" in log, log


def test_verifier_log_without_source_text(tmp_path: Path) -> None:
    # Unreadable source: the line text is empty but file:line remain.
    module = build_unchecked_packet_read(str(tmp_path / "missing.py"), source_text=None)
    obj = emit_bpf_object(module)
    with open_object(obj) as opened:
        err = load_or_skip(opened)
        log = opened.verifier_log
    assert err != 0
    assert "@ missing.py:42" in log, log


def test_source_text_escaping() -> None:
    line42 = '    first = ctx.data[0]  # "quoted" \\ back\tslash, unicode: é → ok'
    source = DEMO_SOURCE.replace(DEMO_LINES[42], line42)
    obj = emit_bpf_object(build_unchecked_packet_read(source_text=source))
    assert line42 in btf_strings(elf_sections(obj)[".BTF"].data)  # stored untrimmed


def test_missing_bpf_target_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_target(triple: str) -> None:
        raise RuntimeError(f"No available targets are compatible with triple {triple}")

    monkeypatch.setattr(object_emit.llvm.Target, "from_triple", no_target)
    with pytest.raises(BpfTargetMissing, match=r"llvmlite==0\.50"):
        emit_bpf_object(build_demo())
