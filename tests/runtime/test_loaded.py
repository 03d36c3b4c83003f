"""LoadedProgram: state objects copied into the kernel, bound while loaded, copied back on close.

Objects come from two sources: the backend (`compile_program`) and a hand-written llvmlite module that
follows the backend's conventions (maps named like the state objects, Globals as external variables in
`.bss`/`.data`). The hand-written one keeps these runtime tests independent of the backend's progress.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from llvmlite import ir  # type: ignore[import-untyped]
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pybpfdsl.backend.debuginfo import (
    CHAR,
    ArrayTypeDesc,
    DebugInfoBuilder,
    DebugScope,
    FieldDesc,
    ScalarTypeDesc,
    StructTypeDesc,
    TypeDesc,
)
from pybpfdsl.backend.object_emit import BPF_DATALAYOUT, BPF_TRIPLE, emit_bpf_object
from pybpfdsl.bpf.elf import read_symbols, section_names, variable_locations
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.builder import IRBuilder
from pybpfdsl.ir.interpreter import Environment, run_program
from pybpfdsl.ir.types import MapValueRef, StructType
from pybpfdsl.lang.state import (
    Array,
    Global,
    HashMap,
    LruHashMap,
    MapKind,
    PerCpuArray,
    StateObject,
)
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, i64, u32, u64
from pybpfdsl.runtime.bpf_object import LoadError
from pybpfdsl.runtime.errors import (
    KernelVerifierError,
    StateBindingError,
    final_verifier_message,
    verifier_locations,
)
from pybpfdsl.runtime.libbpf import get_libbpf, kernel_bpf_available
from pybpfdsl.runtime.loaded import LoadedProgram
from pybpfdsl.testing import on_cpu, reset_state

_BPF_OK, _BPF_REASON = kernel_bpf_available()
needs_bpf = pytest.mark.skipif(not _BPF_OK, reason=f"bpf() unavailable: {_BPF_REASON}")

XDP_DROP, XDP_PASS = 1, 2
I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType(I8)

# The "Python source" the counter program pretends to come from.
SOURCE_LINES = {
    10: "def counter(pkt):",
    11: "    hits.value += 1",
    12: "    slot = counts.lookup(pkt.len)",
    13: "    if slot is None:",
    14: "        counts[pkt.len] = seed.value",
    15: "    else:",
    16: "        slot += seed.value",
    17: "    return verdict.value",
    30: "def bad(pkt):",
    31: "    first = pkt.data[0]  # no bounds check",
    32: "    return XDP_PASS",
}
SOURCE_TEXT = "".join(f"{SOURCE_LINES.get(i, f'# line {i}')}\n" for i in range(1, 40))


class Pair(Struct):
    a: u32
    b: u64


# --------------------------------------------------------------------------- #
# IR programs
# --------------------------------------------------------------------------- #


def counter_program(source_file: str) -> n.Program:
    """hits += 1; counts[len] += seed (inserting seed when absent); return verdict."""
    b = IRBuilder()
    entry, found, missing, done = (b.new_block(h) for h in ("entry", "found", "missing", "done"))
    b.set_block(entry)
    one = b.emit(n.Const(b.value(u64), 1, line=11))
    b.append(n.StoreGlobal("hits", one, atomic_add=True, line=11))
    length = b.emit(n.PacketLen(b.value(u32, "len"), line=12))
    ref = b.emit(n.MapLookup(b.value(MapValueRef("counts")), "counts", length, line=12))
    is_null = b.emit(n.IsNull(b.value(BOOL), ref, line=13))
    b.terminate(n.Branch(is_null, n.Edge(missing.name), n.Edge(found.name), line=13))

    b.set_block(found)
    seed = b.emit(n.LoadGlobal(b.value(u64), "seed", line=16))
    b.append(n.StoreValue(ref, seed, atomic_add=True, line=16))
    b.terminate(n.Jump(n.Edge(done.name), line=16))

    b.set_block(missing)
    seed2 = b.emit(n.LoadGlobal(b.value(u64), "seed", line=14))
    b.emit(n.MapUpdate(b.value(i64), "counts", length, seed2, line=14))
    b.terminate(n.Jump(n.Edge(done.name), line=14))

    b.set_block(done)
    verdict = b.emit(n.LoadGlobal(b.value(u32), "verdict", line=17))
    b.terminate(n.Return(verdict, line=17))
    return n.Program(
        "counter", source_file, 10, b.blocks,
        maps=(n.MapDecl("counts", MapKind.HASH, u32, u64, 64),),
        globals=(n.GlobalDecl("hits", u64, 0), n.GlobalDecl("seed", u64, 7), n.GlobalDecl("verdict", u32, 2)),
    )


def counter_state() -> dict[str, StateObject]:
    return {"hits": Global(u64, 0), "seed": Global(u64, 7), "verdict": Global(u32, 2),
            "counts": HashMap(u32, u64, max_entries=64)}


def storage_program() -> n.Program:
    """Returns XDP_PASS; declares one map of each kind and a float Global (state round trips)."""
    b = IRBuilder()
    b.set_block(b.new_block("entry"))
    action = b.emit(n.Const(b.value(u32), XDP_PASS, line=10))
    b.terminate(n.Return(action, line=10))
    return n.Program(
        "storage", "storage.py", 10, b.blocks,
        maps=(n.MapDecl("table", MapKind.HASH, u32, StructType(Pair), 16),
              n.MapDecl("recent", MapKind.LRU_HASH, StructType(Pair), u32, 8),
              n.MapDecl("slots", MapKind.ARRAY, u32, u64, 8),
              n.MapDecl("per_cpu", MapKind.PERCPU_ARRAY, u32, u64, 4)),
        globals=(n.GlobalDecl("rate", FLOAT, 0), n.GlobalDecl("flag", BOOL, 1)),
    )


def storage_state() -> dict[str, StateObject]:
    return {"table": HashMap(u32, Pair, max_entries=16), "recent": LruHashMap(Pair, u32, max_entries=8),
            "slots": Array(u64, 8), "per_cpu": PerCpuArray(u64, 4), "rate": Global(FLOAT, 0.0),
            "flag": Global(BOOL, True)}


# --------------------------------------------------------------------------- #
# Hand-written objects (the backend's conventions, without the backend)
# --------------------------------------------------------------------------- #


def type_desc(t: ScalarType | StructType) -> TypeDesc:
    if isinstance(t, ScalarType):
        return ScalarTypeDesc(f"__{'s' if t.signed else 'u'}{t.size * 8}", t.size * 8, t.signed)
    cls = t.cls
    return StructTypeDesc(cls.__name__, tuple(FieldDesc(f.name, type_desc(f.type), f.offset)
                                              for f in cls.fields()), cls.size())


Body = Callable[[ir.IRBuilder, ir.Function, dict[str, ir.GlobalVariable], Callable[[int], ir.DIValue]], None]


def handmade_object(program: n.Program, body: Body) -> bytes:
    module = ir.Module(program.name)
    module.triple, module.data_layout = BPF_TRIPLE, BPF_DATALAYOUT
    db = DebugInfoBuilder(module, program.source_file, source_text=SOURCE_TEXT)
    symbols: dict[str, ir.GlobalVariable] = {}
    for m in program.maps:
        symbols[m.name] = db.map_definition(m.name, m.kind.value, type_desc(m.key_type),
                                            type_desc(m.value_type), m.max_entries)
    for g in program.globals:
        ty = ir.IntType(g.type.size * 8)
        gv = ir.GlobalVariable(module, ty, g.name)  # external linkage: nothing gets constant-folded
        gv.initializer = ir.Constant(ty, g.init)
        gv.section = ".bss" if g.init == 0 else ".data"
        gv.align = g.type.size
        db.global_variable(gv, type_desc(g.type))
        symbols[g.name] = gv
    lic_ty = ir.ArrayType(I8, 4)
    lic = ir.GlobalVariable(module, lic_ty, "_license")
    lic.initializer = ir.Constant(lic_ty, bytearray(b"GPL\0"))
    lic.section = "license"
    db.global_variable(lic, ArrayTypeDesc(CHAR, 4))
    fn = ir.Function(module, ir.FunctionType(I32, [PTR]), program.name)
    fn.section = "xdp"
    scope: DebugScope = db.function(fn, program.name, program.first_line)
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    body(builder, fn, symbols, lambda line: db.location(scope, line))
    db.finalize()
    return emit_bpf_object(module)


def helper_call(number: int, ret: ir.Type, args: list[ir.Type]) -> ir.Constant:
    fnty = ir.FunctionType(ret, args)
    callee = ir.Constant(I64, number).inttoptr(fnty.as_pointer())
    callee.function_type = fnty  # llvmlite's call() reads it; only Function objects have it
    return callee


def counter_body(b: ir.IRBuilder, fn: ir.Function, sym: dict[str, ir.GlobalVariable],
                 loc: Callable[[int], ir.DIValue]) -> None:
    b.debug_metadata = loc(11)
    b.atomic_rmw("add", sym["hits"], ir.Constant(I64, 1), "monotonic")
    b.debug_metadata = loc(12)
    ctx = b.bitcast(fn.args[0], I32.as_pointer())
    data = b.zext(b.load(ctx), I64)
    data_end = b.zext(b.load(b.gep(ctx, [ir.Constant(I32, 1)])), I64)
    key = b.alloca(I32)
    value = b.alloca(I64)  # allocas stay in the entry block: BPF has no dynamic stack allocation
    b.store(b.trunc(b.sub(data_end, data), I32), key)
    lookup = helper_call(1, PTR, [PTR, PTR])
    found = b.call(lookup, [b.bitcast(sym["counts"], PTR), b.bitcast(key, PTR)])
    b.debug_metadata = loc(13)
    with b.if_else(b.icmp_unsigned("==", found, ir.Constant(PTR, None))) as (missing, present):
        with missing:
            b.debug_metadata = loc(14)
            b.store(b.load(sym["seed"]), value)
            update = helper_call(2, I64, [PTR, PTR, PTR, I64])
            b.call(update, [b.bitcast(sym["counts"], PTR), b.bitcast(key, PTR), b.bitcast(value, PTR),
                            ir.Constant(I64, 0)])
        with present:
            b.debug_metadata = loc(16)
            b.atomic_rmw("add", b.bitcast(found, I64.as_pointer()), b.load(sym["seed"]), "monotonic")
    b.debug_metadata = loc(17)
    b.ret(b.load(sym["verdict"]))


def pass_body(b: ir.IRBuilder, fn: ir.Function, sym: dict[str, ir.GlobalVariable],
              loc: Callable[[int], ir.DIValue]) -> None:
    b.debug_metadata = loc(10)
    b.ret(ir.Constant(I32, XDP_PASS))


def unchecked_read_body(b: ir.IRBuilder, fn: ir.Function, sym: dict[str, ir.GlobalVariable],
                        loc: Callable[[int], ir.DIValue]) -> None:
    """Reads data[0] without comparing against data_end: the verifier must refuse."""
    b.debug_metadata = loc(31)
    data = b.load(b.bitcast(fn.args[0], I32.as_pointer()))
    first = b.load(b.inttoptr(b.zext(data, I64), PTR))
    b.debug_metadata = loc(32)
    b.ret(b.add(b.zext(b.and_(first, ir.Constant(I8, 1)), I32), ir.Constant(I32, 1)))


def compiled_object(program: n.Program) -> bytes:
    try:
        from pybpfdsl.backend.compile import compile_program
    except ImportError as exc:  # the hand-written variant covers the runtime regardless
        pytest.skip(f"backend not available: {exc}")
    elf: bytes = compile_program(program).elf
    return elf


@pytest.fixture(params=["handmade", "compiled"])
def counter_setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[bytes, n.Program]:
    src = tmp_path / "counter_src.py"
    src.write_text(SOURCE_TEXT)
    program = counter_program(str(src))
    if request.param == "handmade":
        return handmade_object(program, counter_body), program
    return compiled_object(program), program


def packet(size: int) -> bytes:
    p = bytes(Ether() / IP() / UDP() / Raw(b"\x00" * 64))
    return p[:size]


# --------------------------------------------------------------------------- #
# Tests that need no kernel
# --------------------------------------------------------------------------- #

CANNED_LOG = """\
func#0 @0
0: R1=ctx() R10=fp0
; hits.value += 1 @ prog.py:11
0: (b7) r2 = 1                        ; R2_w=1
; first = pkt.data[0]  # a @ sign @ prog.py:31
1: (61) r1 = *(u32 *)(r1 +0)          ; R1=pkt(r=0)
; hits.value += 1 @ prog.py:11
2: (71) r0 = *(u8 *)(r1 +0)
invalid access to packet, off=0 size=1, R1(id=0,off=0,r=0)
R1 offset is outside of the packet
processed 3 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""


def test_verifier_log_parsing() -> None:
    locs = verifier_locations(CANNED_LOG)
    assert [(loc.file, loc.line) for loc in locs] == [("prog.py", 31), ("prog.py", 11)]
    assert locs[0].text == "first = pkt.data[0]  # a @ sign"
    with_source = verifier_locations(CANNED_LOG, {11: "    hits.value += 1  # full"})
    assert with_source[-1].text == "hits.value += 1  # full"
    assert final_verifier_message(CANNED_LOG) == (
        "invalid access to packet, off=0 size=1, R1(id=0,off=0,r=0)\nR1 offset is outside of the packet")
    assert final_verifier_message("only one line\n") == "only one line"
    assert final_verifier_message("") == ""


def test_kernel_verifier_error_message() -> None:
    log = ("libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n" + CANNED_LOG
           + "-- END PROG LOAD LOG --\nlibbpf: failed to load object 'p'\n")
    err = KernelVerifierError("p", log=log, errno=13)
    assert isinstance(err, LoadError)
    text = str(err)
    assert text.splitlines()[0] == "kernel verifier rejected the program at prog.py:11: hits.value += 1"
    assert "  invalid access to packet" in text
    assert "prog.py:31: first = pkt.data[0]" in text
    assert err.location is not None and err.location.line == 11


def test_elf_symbols_of_handmade_object() -> None:
    elf = handmade_object(counter_program("counter_src.py"), counter_body)
    assert ".bss" in section_names(elf) and ".data" in section_names(elf)
    locs = variable_locations(elf)
    assert locs["hits"].section == ".bss" and locs["hits"].offset == 0 and locs["hits"].size == 8
    assert {locs["seed"].section, locs["verdict"].section} == {".data"}
    assert sorted((locs["seed"].offset, locs["verdict"].offset)) == [0, 8]
    assert "counts" in {s.name for s in read_symbols(elf) if s.section == ".maps"}


# --------------------------------------------------------------------------- #
# Kernel tests
# --------------------------------------------------------------------------- #


@needs_bpf
def test_state_flows_between_python_and_kernel(counter_setup: tuple[bytes, n.Program]) -> None:
    elf, program = counter_setup
    state = counter_state()
    hits, seed, verdict, counts = state["hits"], state["seed"], state["verdict"], state["counts"]
    assert isinstance(hits, Global) and isinstance(seed, Global) and isinstance(verdict, Global)
    assert isinstance(counts, HashMap)
    # Written in Python before loading: the kernel must start from these.
    seed.value = 3
    verdict.value = XDP_DROP
    hits.value = 100
    counts[70] = 1000

    # The reference: the IR interpreter on a copy of the same initial state.
    ref_state = counter_state()
    for name in ("seed", "verdict", "hits"):
        g = ref_state[name]
        assert isinstance(g, Global)
        g.value = state[name].value  # type: ignore[attr-defined]
    ref_counts = ref_state["counts"]
    assert isinstance(ref_counts, HashMap)
    ref_counts[70] = 1000
    env = Environment(maps={"counts": ref_counts},
                      globals={k: v for k, v in ref_state.items() if isinstance(v, Global)})

    with LoadedProgram.load(elf, program, state, source_lines=SOURCE_LINES) as loaded:
        assert hits.bound and counts.bound
        assert hits.value == 100 and seed.value == 3 and counts[70] == 1000  # read back from the kernel
        for size in (60, 60, 70):
            result = loaded.run(packet(size))
            assert result.action == XDP_DROP == run_program(program, packet(size), env).action
            assert result.packet == packet(size)
        # Visible while loaded, through the state objects.
        assert hits.value == 103
        assert counts[60] == 6 and counts[70] == 1003
        assert sorted(counts.keys()) == [60, 70]
        # Python writes while loaded reach the kernel.
        verdict.value = XDP_PASS
        seed.value = 10
        assert loaded.run(Ether() / IP() / Raw(b"\x00" * 26)).action == XDP_PASS  # 60 bytes, scapy input
        assert counts[60] == 16
        del counts[70]
        assert 70 not in counts
        multi = loaded.run(packet(70), repeat=5)
        assert multi.action == XDP_PASS and multi.duration_ns >= 0
        assert counts[70] == 10 + 4 * 10 and hits.value == 100 + 3 + 1 + 5
        assert loaded.xlated_insns > 5
        assert loaded.fd >= 0
        jited = loaded.jited_insns
        assert jited is None or jited > 0

    # After close: the kernel's last values are in the Python-side state.
    assert not hits.bound and not counts.bound and loaded.closed
    assert hits.value == 109 and seed.value == 10 and verdict.value == XDP_PASS
    assert dict(counts.items()) == {60: 16, 70: 50}
    assert ref_counts[60] == 6 and ref_counts[70] == 1003  # the interpreter agreed on the first runs
    loaded.close()  # idempotent
    with pytest.raises(ValueError):
        loaded.run(packet(60))


@needs_bpf
@pytest.mark.parametrize("source", ["handmade", "compiled"])
def test_every_state_kind_round_trips(source: str) -> None:
    program = storage_program()
    elf = handmade_object(program, pass_body) if source == "handmade" else compiled_object(program)
    state = storage_state()
    table, recent, slots, per_cpu, rate, flag = (state[k] for k in
                                                 ("table", "recent", "slots", "per_cpu", "rate", "flag"))
    assert isinstance(table, HashMap) and isinstance(recent, LruHashMap) and isinstance(slots, Array)
    assert isinstance(per_cpu, PerCpuArray) and isinstance(rate, Global) and isinstance(flag, Global)
    table[5] = Pair(1, 2**40)
    recent[Pair(7, 8)] = 9
    slots[3] = 33
    per_cpu[1] = 5
    with on_cpu(1, per_cpu):
        per_cpu.raw_update(2, 4)
    per_cpu.raw_update(2, 6)  # CPU 0
    rate.value = -1.25
    flag.value = False
    ncpus = get_libbpf().num_possible_cpus()

    with LoadedProgram.load(elf, program, state) as loaded:
        assert table[5] == Pair(1, 2**40)
        assert recent[Pair(7, 8)] == 9
        assert slots[3] == 33 and slots[0] == 0
        assert per_cpu[1] == 5 and per_cpu[2] == 10
        assert len(per_cpu.per_cpu(1)) == ncpus
        assert rate.value == -1.25 and flag.value == 0
        assert loaded.run(packet(60)).action == XDP_PASS
        table[6] = Pair(2, 3)
        slots[3] = 0
        slots[7] = 77
        per_cpu[1] = 11
        rate.value = 2.5
        flag.value = True
        with pytest.raises(KeyError):
            slots[8] = 1  # out of range, as the kernel says

    assert dict(table.items()) == {5: Pair(1, 2**40), 6: Pair(2, 3)}
    assert dict(recent.items()) == {Pair(7, 8): 9}
    assert [slots[i] for i in range(8)] == [0, 0, 0, 0, 0, 0, 0, 77]
    assert per_cpu[1] == 11 and per_cpu[2] == 10 and len(per_cpu.per_cpu(2)) == ncpus
    assert rate.value == 2.5 and flag.value == 1


@needs_bpf
def test_verifier_rejection_names_python_line(tmp_path: Path) -> None:
    b = IRBuilder()
    b.set_block(b.new_block("entry"))
    b.terminate(n.Return(b.emit(n.Const(b.value(u32), XDP_PASS, line=32)), line=32))
    program = n.Program("bad", str(tmp_path / "bad_prog.py"), 30, b.blocks)
    elf = handmade_object(program, unchecked_read_body)
    with pytest.raises(KernelVerifierError) as info:
        LoadedProgram.load(elf, program, {}, source_lines=SOURCE_LINES)
    err = info.value
    text = str(err)
    assert text.splitlines()[0] == (
        "kernel verifier rejected the program at bad_prog.py:31: first = pkt.data[0]  # no bounds check")
    assert "invalid access to packet" in err.message
    assert "processed" not in err.message
    assert "; first = pkt.data[0]  # no bounds check @ bad_prog.py:31" in text  # the full log follows
    assert err.errno != 0


@needs_bpf
def test_binding_errors_leave_state_alone() -> None:
    program = counter_program("counter_src.py")
    elf = handmade_object(program, counter_body)
    state = counter_state()
    missing = dict(state)
    del missing["seed"]
    with pytest.raises(StateBindingError, match="seed"):
        LoadedProgram.load(elf, program, missing)
    wrong = dict(state, counts=Array(u64, 64))
    with pytest.raises(StateBindingError, match="counts"):
        LoadedProgram.load(elf, program, wrong)
    wrong_type = dict(state, seed=Global(u32, 7))
    with pytest.raises(StateBindingError, match="seed"):
        LoadedProgram.load(elf, program, wrong_type)
    assert not any(obj.bound for obj in state.values())
    with LoadedProgram.load(elf, program, state), pytest.raises(StateBindingError, match="already bound"):
        LoadedProgram.load(elf, program, state)
    assert not any(obj.bound for obj in state.values())


@needs_bpf
def test_other_load_errors_are_load_errors() -> None:
    program = counter_program("counter_src.py")
    with pytest.raises(LoadError) as info:
        LoadedProgram.load(b"\x7fELF not really", program, counter_state())
    assert not isinstance(info.value, KernelVerifierError)



@needs_bpf
def test_reset_state_on_bound_objects() -> None:
    program = storage_program()
    elf = handmade_object(program, pass_body)
    state = storage_state()
    with LoadedProgram.load(elf, program, state):
        table, slots, per_cpu, rate = state["table"], state["slots"], state["per_cpu"], state["rate"]
        assert isinstance(table, HashMap) and isinstance(slots, Array)
        assert isinstance(per_cpu, PerCpuArray) and isinstance(rate, Global)
        table[1] = Pair(1, 1)
        slots[2] = 5
        per_cpu[3] = 8
        rate.value = 0.75
        reset_state(*state.values())
        assert len(table) == 0 and slots[2] == 0 and per_cpu[3] == 0 and rate.value == 0.0
        flag = state["flag"]
        assert isinstance(flag, Global) and flag.value == 1  # back to its declared initial value
