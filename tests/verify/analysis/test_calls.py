"""bpf-to-bpf calls (issue 13 §2): each call is verified in its caller's context, as the kernel does.

Every program here is loaded into the kernel too (where available), so each case states both verdicts:
what the kernel accepts we accept (the frames, callee-saved registers, arguments, the return value), what it
refuses we refuse (uninitialised registers across the call, separate stacks, recursion, too many frames,
too much stack, packet pointers after a callee moved the packet, a stack pointer returned).
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, VerifierReport, verify_instructions, verify_object
from tests.verify.analysis.kernel_oracle import HASH_MAP, kernel_verdict
from tests.verify.analysis.opcodes import EXIT, ST_DW, U8, U32, U64, add_imm, jeq_imm, load, mov, mov_reg
from tests.verify.corpus.c_corpus import clang
from tests.verify.corpus.third_party_corpus import kernel_verdict as object_verdict

KERNEL, WHY = kernel_bpf_available()


def pcall(at: int, target: int) -> Instruction:
    """``call target`` at index ``at`` (programs here have no lddw before the call, so index = slot)."""
    return Instruction(0x85, 0, 1, 0, target - at - 1)


def st_imm(off: int, imm: int, op: int = ST_DW) -> Instruction:
    """``*(u64 *)(r10 + off) = imm``"""
    return Instruction(op, 10, 0, off, imm)


def helper(n: int) -> Instruction:
    return Instruction(0x85, 0, 0, 0, n)


def both(insns: list[Instruction], map_insns: tuple[int, ...] = ()) -> tuple[VerifierReport, bool | None]:
    report = verify_instructions(insns, map_refs=dict.fromkeys(map_insns, (HASH_MAP, None)))
    kernel = kernel_verdict(insns, map_insns).ok if KERNEL else None
    return report, kernel


# main: r6 = ctx; r1 = 3; call f; r2 = *(u32 *)(r6 + 0) (ctx data, r6 kept); exit with f's r0
# f:    r0 = r1; r0 &= 3; exit
ACCEPTED = {
    "callee-saved r6 and the return value": [
        mov_reg(6, 1), mov(1, 3), pcall(2, 5), load(U32, 2, 6, 0), EXIT,
        mov_reg(0, 1), Instruction(0x57, 0, 0, 0, 3), EXIT],
    "return value known per call site": [  # f(r1) = r1: called with 1 and 2, exits with 1 + 2 = 3
        mov(1, 1), pcall(1, 7), mov_reg(6, 0), mov(1, 2), pcall(4, 7), Instruction(0x0F, 0, 6, 0, 0), EXIT,
        mov_reg(0, 1), EXIT],
    "nested calls, 8 frames": [
        pcall(0, 2), EXIT,
        pcall(2, 4), EXIT, pcall(4, 6), EXIT, pcall(6, 8), EXIT, pcall(8, 10), EXIT, pcall(10, 12), EXIT,
        pcall(12, 14), EXIT, mov(0, 2), EXIT],
    "map value passed as argument": [
        *[Instruction(0x62, 10, 0, -4, 0), mov_reg(2, 10), add_imm(2, -4), Instruction.lddw(1, 0), helper(1)],
        jeq_imm(0, 0, 3), mov_reg(1, 0), Instruction(0x85, 0, 1, 0, 2), mov(0, 2), EXIT,
        load(U64, 0, 1, 0), mov(0, 1), EXIT],
    "maybe-null value checked by the callee": [
        *[Instruction(0x62, 10, 0, -4, 0), mov_reg(2, 10), add_imm(2, -4), Instruction.lddw(1, 0), helper(1)],
        mov_reg(1, 0), Instruction(0x85, 0, 1, 0, 2), mov(0, 2), EXIT,
        jeq_imm(1, 0, 1), load(U64, 0, 1, 0), mov(0, 1), EXIT],
    "checked packet pointer passed as argument": [  # the proven range holds in the callee
        load(U32, 2, 1, 0), load(U32, 3, 1, 4), mov_reg(4, 2), add_imm(4, 8), Instruction(0x2D, 4, 3, 2, 0),
        mov_reg(1, 2), pcall(6, 9), mov(0, 2), EXIT,
        load(U64, 0, 1, 0), mov(0, 0), EXIT],
    "context passed as argument": [
        pcall(0, 3), mov(0, 2), EXIT, load(U32, 2, 1, 0), load(U32, 3, 1, 4), mov(0, 0), EXIT],
    "256 + 256 bytes of stack": [
        st_imm(-256, 0), pcall(1, 4), mov(0, 2), EXIT,
        st_imm(-256, 0), mov(0, 0), EXIT],
}
MAPS = {"map value passed as argument": (3,), "maybe-null value checked by the callee": (3,)}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_kernel_accepted_calls_are_accepted(name: str) -> None:
    report, kernel = both(ACCEPTED[name], MAPS.get(name, ()))
    assert kernel in (True, None)
    assert report.ok, report.format()


REFUSED = {
    # name: (program, instruction we refuse at, code, kernel's words)
    "callee reads the caller's r6": (
        [mov(6, 1), pcall(1, 4), mov(0, 2), EXIT, mov_reg(0, 6), EXIT], 4, Code.UNINIT_REG, "R6 !read_ok"),
    "caller reads r1 after the call": (
        [mov(1, 1), pcall(1, 4), mov_reg(0, 1), EXIT, mov(0, 0), EXIT], 2, Code.UNINIT_REG, "R1 !read_ok"),
    "caller reads the return value the callee did not set": (
        [pcall(0, 2), EXIT, mov(1, 0), EXIT], 1, None, "R0 !read_ok"),
    "callee reads the caller's spilled pointer through its own r10": (
        [Instruction(0x7B, 10, 1, -8, 0), pcall(1, 4), mov(0, 2), EXIT, load(U64, 1, 10, -8), load(U32, 0, 1, 0),
         EXIT], 4, Code.UNINIT_STACK, "R1 invalid mem access 'scalar'"),
    "callee dereferences a maybe-null argument": (
        [Instruction(0x62, 10, 0, -4, 0), mov_reg(2, 10), add_imm(2, -4), Instruction.lddw(1, 0), helper(1),
         mov_reg(1, 0), Instruction(0x85, 0, 1, 0, 2), mov(0, 2), EXIT, load(U64, 0, 1, 0), mov(0, 1), EXIT],
        9, Code.NULL_DEREF, "invalid mem access 'map_value_or_null'"),
    "callee reads past the caller's packet check": (
        [load(U32, 2, 1, 0), load(U32, 3, 1, 4), mov_reg(4, 2), add_imm(4, 8), Instruction(0x2D, 4, 3, 2, 0),
         mov_reg(1, 2), pcall(6, 9), mov(0, 2), EXIT, load(U64, 0, 1, 1), mov(0, 0), EXIT], 9, Code.PACKET_BOUNDS,
        "invalid access to packet"),
    "recursion": (
        [pcall(0, 3), mov(0, 2), EXIT, pcall(3, 3), EXIT], 3, Code.INVALID_INSN,
        "the call stack of 9 frames is too deep"),
    "9 frames": (
        [pcall(0, 2), EXIT, pcall(2, 4), EXIT, pcall(4, 6), EXIT, pcall(6, 8), EXIT, pcall(8, 10), EXIT,
         pcall(10, 12), EXIT, pcall(12, 14), EXIT, pcall(14, 16), EXIT, mov(0, 2), EXIT], 14, Code.COMPLEXITY,
        "the call stack of 9 frames is too deep"),
    "512 + 32 bytes of stack": (
        [st_imm(-512, 0), pcall(1, 4), mov(0, 2), EXIT, st_imm(-8, 0), mov(0, 0), EXIT], 1, Code.STACK_BOUNDS,
        "combined stack size"),
    "callee returns a pointer to its stack": (
        [pcall(0, 3), mov(0, 2), EXIT, mov_reg(0, 10), add_imm(0, -8), EXIT], 5, Code.BAD_POINTER,
        "cannot return stack pointer to the caller"),
    "jump out of the function": (
        [pcall(0, 3), mov(0, 2), EXIT, Instruction(0x05, 0, 0, -3, 0), EXIT], 3, Code.INVALID_INSN,
        "jump out of range"),
    "last instruction of main is a call": (
        [mov(0, 2), EXIT, pcall(2, 3), mov(0, 0), EXIT], 2, Code.INVALID_INSN, "last insn is not an exit or jmp"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_kernel_refused_calls_are_refused(name: str) -> None:
    insns, at, code, kernel_says = REFUSED[name]
    maps = (3,) if name == "callee dereferences a maybe-null argument" else ()
    report, _ = both(insns, maps)
    if KERNEL:
        verdict = kernel_verdict(insns, maps)
        assert not verdict.ok and kernel_says in verdict.log, verdict.last_lines
    assert not report.ok, "verified, but the kernel refuses it"
    assert any(f.insn == at and code in (None, f.code) for f in report.errors), report.format()


def test_packet_pointers_of_the_caller_are_gone_after_a_callee_moves_the_packet() -> None:
    """The callee calls bpf_xdp_adjust_head: the caller's checked packet pointer in r6 is invalid after."""
    insns = [
        load(U32, 2, 1, 0), load(U32, 3, 1, 4), mov_reg(4, 2), add_imm(4, 8),
        Instruction(0x2D, 4, 3, 3, 0),  # if r4 > r3 goto r0 = XDP_PASS
        mov_reg(6, 2), pcall(6, 10), load(U8, 0, 6, 0), mov(0, 2), EXIT,
        mov(2, 0), helper(44), mov(0, 0), EXIT]
    report, kernel = both(insns)
    assert kernel in (False, None)
    assert not report.ok
    assert any(f.insn == 7 for f in report.errors), report.format()
    without_move = [*insns[:11], mov(0, 0), mov(0, 0), EXIT]
    report, kernel = both(without_move)
    assert kernel in (True, None)
    assert report.ok, report.format()


def test_finding_in_a_callee_names_the_call() -> None:
    """A problem inside a function is reported at its own instruction, through the call that reached it."""
    insns, at, _, _ = REFUSED["callee reads the caller's r6"]
    report = verify_instructions(insns)
    f = next(f for f in report.errors if f.insn == at)
    assert "through the call at instruction 1" in f.message


def test_pointer_to_the_caller_s_stack_is_passed() -> None:
    """A callee reads and writes the caller's stack through an argument (an out-parameter): accepted."""
    insns = [st_imm(-8, 1), mov_reg(1, 10), add_imm(1, -8), pcall(3, 6), mov(0, 2), EXIT,
             load(U64, 0, 1, 0), Instruction(0x7A, 1, 0, 0, 7), EXIT]
    report, kernel = both(insns)
    assert kernel in (True, None)
    assert report.ok, report.format()


STACK_ARG_REFUSED = {
    # name: (program, instruction we refuse at, kernel's words)
    "callee reads past the caller's frame": (
        [st_imm(-8, 1), mov_reg(1, 10), add_imm(1, -8), pcall(3, 6), mov(0, 2), EXIT, load(U64, 0, 1, 8), EXIT],
        6, "invalid read from stack"),
    "caller's spilled pointer overwritten by the callee": (
        [Instruction(0x7B, 10, 1, -8, 0), mov_reg(1, 10), add_imm(1, -8), pcall(3, 8),
         load(U64, 1, 10, -8), load(U32, 0, 1, 0), mov(0, 2), EXIT,
         Instruction(0x7A, 1, 0, 0, 0), mov(0, 0), EXIT],
        5, "R1 invalid mem access 'scalar'"),
}


@pytest.mark.parametrize("name", list(STACK_ARG_REFUSED))
def test_misuse_of_the_caller_s_stack_is_refused(name: str) -> None:
    insns, at, kernel_says = STACK_ARG_REFUSED[name]
    if KERNEL:
        verdict = kernel_verdict(insns)
        assert not verdict.ok and kernel_says in verdict.log, verdict.last_lines
    report = verify_instructions(insns)
    assert not report.ok, "verified, but the kernel refuses it"
    assert any(f.insn == at for f in report.errors), report.format()


# --------------------------------------------------------------------------- #
# clang objects: static and global functions in .text
# --------------------------------------------------------------------------- #

C_HEAD = """
typedef unsigned int __u32; typedef unsigned char __u8;
struct xdp_md { __u32 data; __u32 data_end; __u32 data_meta; __u32 ingress_ifindex; __u32 rx_queue_index;
                __u32 egress_ifindex; };
#define SEC(name) __attribute__((section(name), used))
char LICENSE[] SEC("license") = "GPL";
"""
FIRST_BYTE = """
{LINKAGE} __attribute__((noinline)) int first_byte(struct xdp_md *ctx) {{
    __u8 *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    {CHECK}
    return data[0];
}}
SEC("xdp") int prog(struct xdp_md *ctx) {{ return first_byte(ctx) == 7 ? 1 : 2; }}
"""
C_CASES = {
    # name: (linkage, bounds check, the kernel accepts)
    "static function, checked": ("static", "if (data + 1 > end) return 0;", True),
    "static function, unchecked": ("static", "", False),
    "global function, checked": ("", "if (data + 1 > end) return 0;", True),
    "global function, unchecked": ("", "", False),
}


MOVES_PACKET = """
static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)44;
{LINKAGE} __attribute__((noinline)) int pop(struct xdp_md *ctx) {{ return bpf_xdp_adjust_head(ctx, {DELTA}); }}
SEC("xdp") int prog(struct xdp_md *ctx) {{
    __u8 *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 1 > end) return 1;
    int r = pop(ctx);
    {AFTER}
    return data[0] == 7 ? 1 : 2;
}}
"""


@pytest.mark.parametrize("linkage", ["static", ""], ids=["static", "global"])
def test_packet_pointers_after_a_function_that_moves_the_packet(linkage: str) -> None:
    """The caller's checked packet pointer is invalid after a call of a function that may move the packet;
    loaded again and checked, it is fine."""
    stale = C_HEAD + MOVES_PACKET.format(LINKAGE=linkage, DELTA=0, AFTER="if (r) return 1;")
    fresh = C_HEAD + MOVES_PACKET.format(
        LINKAGE=linkage, DELTA=0,
        AFTER="if (r) return 1; data = (void *)(long)ctx->data; end = (void *)(long)ctx->data_end; "
              "if (data + 1 > end) return 1;")
    for source, kernel_ok in ((stale, False), (fresh, True)):
        elf = _build(source)
        if KERNEL:
            verdict = object_verdict(elf, "prog")
            assert verdict.ok == kernel_ok, verdict.log[-500:]
        report = verify_object(elf, "prog")
        assert report.ok == kernel_ok, report.format()


def _build(source: str) -> bytes:
    cc = clang()
    if cc is None:
        pytest.skip("clang is not installed")
    with tempfile.TemporaryDirectory() as d:
        src, obj = os.path.join(d, "calls.c"), os.path.join(d, "calls.o")
        with open(src, "w") as f:
            f.write(source)
        subprocess.run([cc, "-O2", "-g", "-target", "bpf", "-c", src, "-o", obj], check=True, capture_output=True)
        with open(obj, "rb") as f:
            return f.read()


@pytest.mark.parametrize("name", list(C_CASES))
def test_clang_functions_are_verified_as_the_kernel_does(name: str) -> None:
    linkage, check, kernel_ok = C_CASES[name]
    elf = _build(C_HEAD + FIRST_BYTE.format(LINKAGE=linkage, CHECK=check))
    assert any(i.is_pseudo_call for i in BpfElf.from_bytes(elf).program("prog").instructions)
    if KERNEL:
        verdict = object_verdict(elf, "prog")
        assert verdict.ok == kernel_ok, verdict.log[-500:]
    report = verify_object(elf, "prog")
    assert report.ok == kernel_ok, report.format()
    if not kernel_ok:
        assert any(f.code == Code.PACKET_BOUNDS and "calls.c:" in report.format() for f in report.errors)


# --------------------------------------------------------------------------- #
# bpf_loop: a callback run any number of times (the kernel needs the object's BTF func_info for it)
# --------------------------------------------------------------------------- #

LOOP_C = """
typedef unsigned long long __u64;
static long (*bpf_loop)(__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags) = (void *)181;
static long callback(__u32 index, void *ctx) {{ __u64 *n = ctx; {BODY} }}
SEC("xdp") int prog(struct xdp_md *ctx) {{ __u64 n = 0; bpf_loop(10, callback, &n, 0); return n == 3 ? 1 : 2; }}
"""
LOOP_CASES = {
    # name: (callback body, the kernel accepts)
    "callback counts through its context": ("*n += 1; return 0;", True),
    "callback stops the loop": ("*n += 1; return *n == 5;", True),
    "callback returns 2": ("*n += 1; return 2;", False),
    "callback reads past its context": ("return n[1] & 1;", False),
}


@pytest.mark.parametrize("name", list(LOOP_CASES))
def test_bpf_loop_as_the_kernel_verifies_it(name: str) -> None:
    body, kernel_ok = LOOP_CASES[name]
    elf = _build(C_HEAD + LOOP_C.format(BODY=body))
    if KERNEL:
        verdict = object_verdict(elf, "prog")
        assert verdict.ok == kernel_ok, verdict.log[-800:]
    report = verify_object(elf, "prog")
    assert report.ok == kernel_ok, report.format()


def test_bpf_loop_without_func_info_is_refused() -> None:
    """A bare instruction list cannot carry the BTF func_info the kernel wants for a callback's address."""
    insns = [mov(1, 10), Instruction.lddw(2, 6, src=4), mov(3, 0), mov(4, 0), helper(181), mov(0, 2), EXIT,
             mov(0, 0), EXIT]
    if KERNEL:
        verdict = kernel_verdict(insns)
        assert not verdict.ok and "missing btf func_info" in verdict.log, verdict.last_lines
    assert not verify_instructions(insns).ok


GLOBAL_POINTER = """
typedef unsigned long long __u64;
__attribute__((noinline)) int bump(__u64 *p) {{ {BODY} }}
SEC("xdp") int prog(struct xdp_md *ctx) {{ __u64 n = 0; int r = bump({ARG}); return n == 3 || r == 5 ? 1 : 2; }}
"""
GLOBAL_POINTER_CASES = {
    # name: (body, argument, the kernel accepts)
    "checked before use": ("if (!p) return 0; *p += 1; return 1;", "&n", True),
    "called with NULL": ("if (!p) return 0; *p += 1; return 1;", "(void *)0", True),
    "used unchecked": ("*p += 1; return 1;", "&n", False),
    "called with the context": ("if (!p) return 0; *p += 1; return 1;", "(void *)ctx", False),
}


@pytest.mark.parametrize("name", list(GLOBAL_POINTER_CASES))
def test_global_function_pointer_arguments(name: str) -> None:
    """The kernel types a global function's ``__u64 *p`` as 8 bytes of memory or NULL: the function must
    check it, a caller must pass 8 accessible bytes or NULL (and its bytes are unknown after)."""
    body, arg, kernel_ok = GLOBAL_POINTER_CASES[name]
    elf = _build(C_HEAD + GLOBAL_POINTER.format(BODY=body, ARG=arg))
    if KERNEL:
        verdict = object_verdict(elf, "prog")
        assert verdict.ok == kernel_ok, verdict.log[-500:]
    report = verify_object(elf, "prog")
    assert report.ok == kernel_ok, report.format()
