"""Pointers in comparisons and as numbers: every pairing is encoded or answered "unknown", never a crash,
and the two differences the prover used to leave "unknown" (a null check turned into `== 1`, an
atomic counter update fed a pointer) are counterexamples the kernel confirms."""

from __future__ import annotations

import itertools
import struct

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind
from pybpfdsl.bpf.opcode import AluOp, CallKind, InsnClass, JmpOp, Mode, Size, Source, make
from pybpfdsl.runtime.bpf_object import LoadError
from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.verify.equivalence.bytecode_encoding import BytecodeEncoder
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram
from pybpfdsl.verify.equivalence.paths import Unsupported
from pybpfdsl.verify.equivalence.prove import prove_objects
from pybpfdsl.verify.equivalence.symbolic_state import Inputs, Layout, MapShape
from tests.verify.corpus.mutants import patch_section
from tests.verify.equivalence.assembled import c_object, kernel, needs_clang, needs_kernel, xdp

I = Instruction  # noqa: E741 - keeps the programs below readable

LAYOUT = Layout({"arr": MapShape("arr", 2, 4, 8, 4), "hash": MapShape("hash", 1, 4, 8, 4)}, {".bss": 16})


def _mov(dst: int, src: int) -> Instruction:
    return I(make(InsnClass.ALU64, AluOp.MOV, Source.X), dst, src)


def _ldx(dst: int, src: int, off: int) -> Instruction:
    return I(make(InsnClass.LDX, Mode.MEM, Size.W), dst, src, off)


def _lookup(dst: int, map_name: str) -> list[Instruction | tuple[Instruction, str]]:
    """dst = lookup(map, &0): never null in the array, maybe null in the hash map."""
    return [I(make(InsnClass.ST, Mode.MEM, Size.W), 10, 0, -4, 0), _mov(2, 10),
            I(make(InsnClass.ALU64, AluOp.ADD, Source.K), 2, 0, 0, -4), (I.lddw(1, 0), map_name),
            I(make(InsnClass.JMP, JmpOp.CALL), 0, CallKind.HELPER, 0, 1), _mov(dst, 0)]


KINDS: dict[str, object] = {
    "constant": lambda r: [I(make(InsnClass.ALU64, AluOp.MOV, Source.K), r, 0, 0, 7)],
    "scalar": lambda r: [_ldx(r, 9, 16)],  # rx_queue_index
    "ctx": lambda r: [_mov(r, 9)],
    "packet": lambda r: [_ldx(r, 9, 0)],
    "packet end": lambda r: [_ldx(r, 9, 4)],
    "stack": lambda r: [_mov(r, 10), I(make(InsnClass.ALU64, AluOp.ADD, Source.K), r, 0, 0, -8)],
    "map value": lambda r: _lookup(r, "arr"),
    "map value or null": lambda r: _lookup(r, "hash"),
    "map": lambda r: [(I.lddw(r, 0), "hash")],
    "global data": lambda r: [(I.lddw(r, 0), ".bss")],
    "low 32 bits of a pointer": lambda r: [I(make(InsnClass.ALU, AluOp.MOV, Source.X), r, 10)],
}

JUMPS = [(InsnClass.JMP, op) for op in (JmpOp.JEQ, JmpOp.JNE, JmpOp.JGT, JmpOp.JSGE, JmpOp.JSET)] + \
    [(InsnClass.JMP32, JmpOp.JEQ), (InsnClass.JMP32, JmpOp.JLT)]


def _program(a: str, b: str | None, cls: InsnClass, op: JmpOp, imm: int = 0) -> BytecodeProgram:
    """r6 = kind a; r7 = kind b; if r6 op r7 (or imm) goto +2; return 1 or 2."""
    code: list[Instruction | tuple[Instruction, str]] = [_mov(9, 1)]
    code += KINDS[a](6)  # type: ignore[operator]
    if b is not None:
        code += KINDS[b](7)  # type: ignore[operator]
    code += [I(make(cls, op, Source.X if b is not None else Source.K), 6, 7 if b is not None else 0, 2, imm),
             I(make(InsnClass.ALU64, AluOp.MOV, Source.K), 0, 0, 0, 1), I(make(InsnClass.JMP, JmpOp.EXIT)),
             I(make(InsnClass.ALU64, AluOp.MOV, Source.K), 0, 0, 0, 2), I(make(InsnClass.JMP, JmpOp.EXIT))]
    insns: list[Instruction] = []
    relocations: dict[int, Relocation] = {}
    for item in code:
        if isinstance(item, tuple):
            insn, target = item
            kind = RelocKind.DATA if target.startswith(".") else RelocKind.MAP
            relocations[len(insns)] = Relocation(len(insns), 0, target, kind, target if kind == RelocKind.DATA
                                                 else ".maps")
            insns.append(insn)
        else:
            insns.append(item)
    return BytecodeProgram("pairing", tuple(insns), relocations, LAYOUT, {})


def _encode(program: BytecodeProgram) -> str:
    """"encoded", or "unknown: why" (anything else raised fails the test)."""
    try:
        BytecodeEncoder(program, Inputs(LAYOUT)).run()
    except Unsupported as exc:
        return f"unknown: {exc}"
    return "encoded"


@pytest.mark.parametrize(("cls", "op"), JUMPS, ids=lambda x: getattr(x, "name", str(x)))
def test_every_pairing_of_operand_kinds_is_encoded_or_unknown(cls: InsnClass, op: JmpOp) -> None:
    outcomes = {}
    for a, b in itertools.product(KINDS, repeat=2):
        outcomes[a, b] = _encode(_program(a, b, cls, op))
    for a in KINDS:
        for imm in (0, 1, -1):
            outcomes[a, str(imm)] = _encode(_program(a, None, cls, op, imm))
    assert all(o == "encoded" or o.startswith("unknown: ") for o in outcomes.values())
    # Scalars and same-object pointers stay encoded; addresses of different objects are not ordered.
    assert outcomes["scalar", "constant"] == "encoded"
    if cls == InsnClass.JMP or op in (JmpOp.JEQ, JmpOp.JNE):
        assert outcomes["packet", "packet end"] == outcomes["stack", "stack"] == "encoded"
    else:  # the low 32 bits of two addresses in one object may wrap between them
        assert outcomes["packet", "packet end"].startswith("unknown: ")
        assert outcomes["stack", "stack"].startswith("unknown: ")
    if cls == InsnClass.JMP and op in (JmpOp.JGT, JmpOp.JSGE):
        assert "unknown: " in outcomes["ctx", "packet end"]
    if cls == InsnClass.JMP and op in (JmpOp.JEQ, JmpOp.JNE):
        # Null or an address the kernel never hands out: decided without knowing which address.
        assert outcomes["map value or null", "1"] == outcomes["map value or null", "0"] == "encoded"
        # Different objects are never equal, nor a map equal to itself; an object's end may be the next
        # one's start, so that is not decided.
        assert outcomes["ctx", "packet"] == outcomes["map", "map"] == outcomes["stack", "global data"] == "encoded"
        assert outcomes["ctx", "packet end"].startswith("unknown: ")


def test_a_pointer_compared_with_a_scalar_it_could_equal_is_unknown() -> None:
    outcome = _encode(_program("map value", "scalar", InsnClass.JMP, JmpOp.JEQ))
    assert outcome == "encoded"  # a u32 scalar is never a kernel address
    outcome = _encode(_program("stack", None, InsnClass.JMP, JmpOp.JGT, -(1 << 31)))
    assert outcome.startswith("unknown: ") and "address" in outcome


CTX_VS_PKT_END = "r2 = *(u32 *)(r1 + 4); r0 = 1; if r1 > r2 goto +1; r0 = 2; exit"


@needs_clang
def test_ordering_a_ctx_pointer_against_the_packet_end_is_unknown_not_a_crash() -> None:
    result = prove_objects(xdp(CTX_VS_PKT_END), xdp("r0 = 2; exit"), "prog")
    assert result.status == "unknown", result.summary()
    assert "comparison of a pointer" in result.reason


# -- the two differences that were "unknown" -------------------------------------------------------

LOOKUP = r"""
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, unsigned int);
         __type(value, unsigned long long); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned int k = 1;
    unsigned long long *v = bpf_map_lookup_elem(&m, &k);
    if (!v) return XDP_PASS;
    return *v ? XDP_DROP : XDP_PASS;
}
"""

COUNTER = r"""
unsigned long long bytes;
SEC("xdp") int prog(struct xdp_md *ctx) {
    char *data = (char *)(long)ctx->data, *end = (char *)(long)ctx->data_end;
    __sync_fetch_and_add(&bytes, (unsigned long)(end - data));
    return XDP_PASS;
}
"""


def _patched(elf: bytes, change: object) -> bytes:
    insns = list(BpfElf.from_bytes(elf).program("prog").instructions)
    index = next(i for i, insn in enumerate(insns) if change(insn) is not None)  # type: ignore[operator]
    insns[index] = change(insns[index])  # type: ignore[operator]
    return patch_section(elf, "xdp", insns)


def _null_check_against_one(insn: Instruction) -> Instruction | None:
    if insn.kind.value == "jcond" and insn.imm == 0 and insn.off > 0:
        return Instruction(insn.opcode, insn.dst, insn.src, insn.off, 1)
    return None


def _skip_the_subtraction(insn: Instruction) -> Instruction | None:
    # `rX -= rY` (the length) becomes `goto +0`: the atomic add gets data_end itself.
    if insn.opcode == make(InsnClass.ALU64, AluOp.SUB, Source.X):
        return I(make(InsnClass.JMP, JmpOp.JA), 0, 0, 0)
    return None


@needs_clang
def test_a_null_check_turned_into_a_comparison_with_one_is_a_counterexample() -> None:
    original = c_object(LOOKUP)
    result = prove_objects(original, _patched(original, _null_check_against_one), "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()


@needs_clang
def test_an_atomic_add_of_a_pointer_is_a_counterexample() -> None:
    original = c_object(COUNTER)
    result = prove_objects(original, _patched(original, _skip_the_subtraction), "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()
    assert any(".bss" in d for d in result.counterexample.differing)


@needs_clang
@needs_kernel
def test_the_kernel_confirms_both_differences() -> None:
    original = c_object(LOOKUP)
    with pytest.raises(LoadError), kernel(_patched(original, _null_check_against_one)):
        pass  # the kernel refuses the mutant (a possibly null pointer dereferenced): the original loads
    with kernel(original):
        pass
    totals = []
    counter = c_object(COUNTER)
    for elf in (counter, _patched(counter, _skip_the_subtraction)):
        with kernel(elf) as obj:
            run_xdp(obj.program_fd("prog"), bytes(64))
            value = obj.kernel_map(".bss").lookup(bytes(4))
            assert value is not None
            totals.append(struct.unpack_from("<Q", value)[0])
    assert totals[0] == 64 and totals[1] != 64
