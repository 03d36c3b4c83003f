"""What issue 12's mutant run left "unknown" and the prover now models: map values at a variable offset
and the XDP helpers the corpus calls. Each difference is a counterexample that the interpreter replays
and the kernel confirms (BPF_PROG_TEST_RUN); each pair that is equal proves."""

from __future__ import annotations

import struct

from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.bpf.opcode import AluOp, InsnClass, JmpOp, Source, make
from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.verify.equivalence.bytecode_encoding import BytecodeEncoder
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram, load_program
from pybpfdsl.verify.equivalence.counterexample import Counterexample, run_bytecode
from pybpfdsl.verify.equivalence.paths import Unsupported
from pybpfdsl.verify.equivalence.prove import prove_objects
from pybpfdsl.verify.equivalence.symbolic_state import Inputs, Layout
from tests.verify.equivalence.assembled import c_object, kernel, needs_clang, needs_kernel

I = Instruction  # noqa: E741 - keeps the programs below readable

SLOTS = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, unsigned int);
         __type(value, unsigned int[8]); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned char *data = (unsigned char *)(long)ctx->data, *end = (unsigned char *)(long)ctx->data_end;
    if (data + 1 > end) return XDP_PASS;
    unsigned int k = 0, i = data[0] & MASK;
    unsigned int *s = bpf_map_lookup_elem(&m, &k);
    if (!s) return XDP_PASS;
    s[i] += STEP;
    return s[(i + 1) & 7] > 3 ? XDP_DROP : XDP_PASS;
}
"""


def _slots(mask: int, step: int) -> bytes:
    return c_object(f"#define MASK {mask}\n#define STEP {step}\n" + SLOTS)


def _kernel_slots(elf: bytes, packet: bytes) -> tuple[int, bytes]:
    with kernel(elf) as obj:
        action = run_xdp(obj.program_fd("prog"), packet).action
        value = obj.kernel_map("m").lookup(bytes(4))
        assert value is not None
        return action, bytes(value)


@needs_clang
def test_map_value_slots_at_a_variable_offset_prove_when_equal() -> None:
    result = prove_objects(_slots(7, 1), _slots(7, 1), "prog")
    assert result.status == "proven", result.summary()


@needs_clang
@needs_kernel
def test_a_different_slot_at_a_variable_offset_is_a_counterexample_the_kernel_confirms() -> None:
    original, mutant = _slots(7, 1), _slots(3, 1)  # slots 4-7 are never counted in the mutant
    result = prove_objects(original, mutant, "prog")
    assert result.status == "counterexample", result.summary()
    cex = result.counterexample
    assert cex is not None and cex.reproduced, result.report()
    packet = cex.packet
    assert packet[0] & 4  # only a packet whose first byte picks slot 4-7 tells them apart
    assert _kernel_slots(original, packet)[1] != _kernel_slots(mutant, packet)[1]


@needs_clang
@needs_kernel
def test_a_different_amount_added_at_a_variable_offset_is_a_counterexample_the_kernel_confirms() -> None:
    original, mutant = _slots(7, 1), _slots(7, 2)
    result = prove_objects(original, mutant, "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()
    packet = result.counterexample.packet
    a, b = _kernel_slots(original, packet)[1], _kernel_slots(mutant, packet)[1]
    slot = packet[0] & 7
    assert struct.unpack_from("<I", a, 4 * slot)[0] == 1 and struct.unpack_from("<I", b, 4 * slot)[0] == 2


def test_messages_number_instructions_by_slot_as_the_disassembler_does() -> None:
    # lddw r3, 5 takes slots 0 and 1; `r0 = r2` (r2 never set) is instruction 1 but slot 2.
    insns = (I.lddw(3, 5), I(make(InsnClass.ALU64, AluOp.MOV, Source.X), 0, 2), I(make(InsnClass.JMP, JmpOp.EXIT)))
    assert slot_offsets(list(insns))[1] == 2
    program = BytecodeProgram("slots", insns, {}, Layout({}, {}), {})
    try:
        BytecodeEncoder(program, Inputs(program.layout)).run()
    except Unsupported as exc:
        assert str(exc).startswith("insn 2 reads r2"), exc
    else:
        raise AssertionError("reading an uninitialised register was encoded")


# -- helpers -------------------------------------------------------------------------------------

HELPERS = r"""
static long (*bpf_redirect)(unsigned int ifindex, unsigned long long flags) = (void *) 23;
static long (*bpf_csum_diff)(void *from, unsigned int fs, void *to, unsigned int ts, unsigned int seed) = (void *) 28;
static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *) 44;
static long (*bpf_xdp_adjust_tail)(struct xdp_md *ctx, int delta) = (void *) 65;
static long (*bpf_xdp_load_bytes)(struct xdp_md *ctx, unsigned int off, void *buf, unsigned int len) = (void *) 189;
"""


def _helper_object(body: str, **defines: int) -> bytes:
    head = "".join(f"#define {k} {v}\n" for k, v in defines.items())
    return c_object(head + HELPERS + 'SEC("xdp") int prog(struct xdp_md *ctx) {\n' + body + "\n}\n")


def _kernel_run(elf: bytes, packet: bytes) -> tuple[int, bytes]:
    with kernel(elf) as obj:
        result = run_xdp(obj.program_fd("prog"), packet)
        return result.action, result.packet


def _counterexample(a: bytes, b: bytes) -> bytes:
    """The packet of the counterexample proving `a` and `b` different (replayed by the interpreter)."""
    result = prove_objects(a, b, "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()
    return result.counterexample.packet


REDIRECT = "return bpf_redirect(IFINDEX, FLAGS);"


@needs_clang
@needs_kernel
def test_redirect_flags_abort_as_in_the_kernel() -> None:
    ok, flagged = _helper_object(REDIRECT, IFINDEX=1, FLAGS=0), _helper_object(REDIRECT, IFINDEX=1, FLAGS=1)
    packet = _counterexample(ok, flagged)
    assert _kernel_run(ok, packet)[0] == 4 and _kernel_run(flagged, packet)[0] == 0  # XDP_REDIRECT, XDP_ABORTED


@needs_clang
def test_the_redirect_target_is_an_output_and_an_equal_redirect_proves() -> None:
    result = prove_objects(_helper_object(REDIRECT, IFINDEX=1, FLAGS=0), _helper_object(REDIRECT, IFINDEX=2, FLAGS=0),
                           "prog")
    assert result.status == "counterexample" and result.counterexample is not None, result.summary()
    assert result.counterexample.reproduced and result.counterexample.differing == ["redirect target"]
    same = _helper_object("long r = bpf_redirect(1, 0); return r == 4 ? 4 : (int)r;")
    assert prove_objects(_helper_object(REDIRECT, IFINDEX=1, FLAGS=0), same, "prog").status == "proven"


CSUM = """
    unsigned char *d = (unsigned char *)(long)ctx->data, *e = (unsigned char *)(long)ctx->data_end;
    unsigned int w[6];
    if (d + 28 > e) return 0;
    __builtin_memcpy(w, d, 24);
    return (unsigned int)bpf_csum_diff(w, FROM, w + 3, TO, *(unsigned int *)(d + 24));
"""


@needs_clang
@needs_kernel
def test_csum_diff_is_exact_a_different_size_is_a_counterexample_the_kernel_confirms() -> None:
    # Sizes that are not whole words too: the kernel (6.12 and later) sums their rest, as encoded.
    original, mutant = _helper_object(CSUM, FROM=8, TO=12), _helper_object(CSUM, FROM=8, TO=10)
    packet = _counterexample(original, mutant)
    assert _kernel_run(original, packet)[0] != _kernel_run(mutant, packet)[0]
    assert prove_objects(original, _helper_object(CSUM, FROM=8, TO=12), "prog").status == "proven"


@needs_clang
@needs_kernel
def test_the_interpreter_computes_csum_diff_as_the_kernel_does() -> None:
    import random

    from pybpfdsl.bpf.elf import BpfElf
    from pybpfdsl.bpf.interpreter import run

    rng = random.Random(12)
    for sizes in ((8, 12), (0, 8), (12, 0), (7, 5), (0, 0)):
        elf = _helper_object(CSUM, FROM=sizes[0], TO=sizes[1])
        program = BpfElf.from_bytes(elf).program("prog")
        with kernel(elf) as obj:
            for trial in range(8):
                words = [rng.choice([0, 0xFFFFFFFF, rng.getrandbits(32)]) for _ in range(7)]
                packet = b"".join(w.to_bytes(4, "little") for w in words) + bytes(4 if trial % 2 else 8)
                if trial == 0:
                    packet = bytes(len(packet))
                kernel_action = run_xdp(obj.program_fd("prog"), packet).action
                assert run(list(program.instructions), packet).action == kernel_action, (sizes, packet.hex())


LOAD = """
    unsigned char buf[8] = {};
    long r = bpf_xdp_load_bytes(ctx, OFFSET, buf, LEN);
    if (r) return r == -22 ? 3 : 0;
    return buf[0] == 0xff ? XDP_DROP : XDP_PASS;
"""


@needs_clang
@needs_kernel
def test_load_bytes_at_another_offset_or_past_the_end_is_a_counterexample_the_kernel_confirms() -> None:
    original = _helper_object(LOAD, OFFSET=0, LEN=8)
    for mutant in (_helper_object(LOAD, OFFSET=1, LEN=8), _helper_object(LOAD, OFFSET=60, LEN=8)):
        packet = _counterexample(original, mutant)
        assert _kernel_run(original, packet)[0] != _kernel_run(mutant, packet)[0], packet.hex()
    assert prove_objects(original, _helper_object(LOAD, OFFSET=0, LEN=8), "prog").status == "proven"


HEAD = """
    if (bpf_xdp_adjust_head(ctx, DELTA)) return 0;
    unsigned char *d = (unsigned char *)(long)ctx->data, *e = (unsigned char *)(long)ctx->data_end;
    if (d + 14 > e) return 1;
    return d[12] == 8 ? XDP_PASS : XDP_TX;
"""
TAIL = """
    if (bpf_xdp_adjust_tail(ctx, DELTA)) return 0;
    unsigned char *d = (unsigned char *)(long)ctx->data, *e = (unsigned char *)(long)ctx->data_end;
    if (d + 14 > e) return 1;
    return XDP_PASS;
"""


@needs_clang
@needs_kernel
def test_moving_the_packet_start_or_end_differently_is_a_counterexample_the_kernel_confirms() -> None:
    pairs = [(_helper_object(HEAD, DELTA=4), _helper_object(HEAD, DELTA=2)),
             (_helper_object(HEAD, DELTA=-8), _helper_object(HEAD, DELTA=-4)),
             (_helper_object(TAIL, DELTA=-4), _helper_object(TAIL, DELTA=-5)),
             (_helper_object(TAIL, DELTA=8), _helper_object(TAIL, DELTA=4))]
    for original, mutant in pairs:
        packet = _counterexample(original, mutant)
        assert _kernel_run(original, packet) != _kernel_run(mutant, packet), packet.hex()
    assert prove_objects(pairs[0][0], _helper_object(HEAD, DELTA=4), "prog").status == "proven"


@needs_clang
@needs_kernel
def test_the_test_run_frame_is_what_the_interpreter_replays() -> None:
    # BPF_PROG_TEST_RUN's headroom (216 bytes usable) and frame end (3,520 bytes from the start), grown
    # bytes cleared: what the prover prefers its counterexamples to have and the interpreter runs.
    from pybpfdsl.bpf.elf import BpfElf
    from pybpfdsl.bpf.interpreter import run

    packet = bytes(range(1, 61))
    cases = [(HEAD, -216), (HEAD, -217), (TAIL, 3520 - 60), (TAIL, 3521 - 60), (TAIL, 6), (TAIL, -46), (TAIL, -47)]
    for body, delta in cases:
        elf = _helper_object(body, DELTA=delta)
        action, out = _kernel_run(elf, packet)
        ran = run(list(BpfElf.from_bytes(elf).program("prog").instructions), packet)
        assert (ran.action, ran.packet) == (action, out), (body, delta)
    assert _kernel_run(_helper_object(TAIL, DELTA=6), packet)[1] == packet + bytes(6)


PRINTK = """
    static const char fmt[] = FORMAT;
    unsigned char *d = (unsigned char *)(long)ctx->data, *e = (unsigned char *)(long)ctx->data_end;
    if (d + 16 > e) return 0;
    long r = bpf_trace_printk(fmt, sizeof(fmt), FIRST, *(unsigned long long *)(d + 4), d[12]);
    RETURN;
"""
TRACE_PRINTK = "static long (*bpf_trace_printk)(const char *fmt, unsigned int size, ...) = (void *) 6;\n"


def _printk(fmt: str, ret: str, first: str = "*(unsigned int *)d") -> bytes:
    return c_object(TRACE_PRINTK + f'#define FORMAT "{fmt}"\n#define RETURN {ret}\n#define FIRST {first}\n'
                    + 'SEC("xdp") int prog(struct xdp_md *ctx) {' + PRINTK + "}\n")


def _interpret(elf: bytes, packet: bytes) -> int:
    """The action of the object's program in the bytecode interpreter (its .rodata as the kernel has it)."""
    program = load_program(elf, "prog")
    ran = run_bytecode(program, Counterexample("difference", packet, {}, {}, [], [], 0, [], ("A", "B"), [], []))
    assert ran.action is not None, ran.error
    return ran.action


@needs_clang
@needs_kernel
def test_the_interpreter_returns_what_bpf_trace_printk_returns_in_the_kernel() -> None:
    for fmt in ("q=%u", "%d %llu %x\\n", "%08x|%-5d|%c", "100%% %lx"):
        elf = _printk(fmt, "return (int)r")
        for packet in (bytes(16), bytes(range(200, 216)), b"\xff" * 16):
            assert _interpret(elf, packet) == _kernel_run(elf, packet)[0], (fmt, packet.hex())


@needs_clang
@needs_kernel
def test_trace_printk_a_different_action_is_a_counterexample_a_different_text_is_never_proven() -> None:
    original = _printk("v=%u", "return r > 0 ? XDP_PASS : XDP_DROP")
    plain = _printk("v=%u", "return XDP_PASS")
    assert prove_objects(plain, _printk("v=%u", "return XDP_PASS"), "prog").status == "proven"
    packet = _counterexample(plain, _printk("v=%u", "return XDP_TX"))
    assert _kernel_run(plain, packet)[0] == 2
    # The text goes to the trace, which no replay shows: a different argument or format is never "proven".
    assert prove_objects(plain, _printk("v=%u", "return XDP_PASS", "d[1]"), "prog").status == "unknown"
    assert prove_objects(plain, _printk("w=%u", "return XDP_PASS"), "prog").status == "unknown"
    # Reading the helper's result (the text's length) is not modelled.
    assert prove_objects(original, plain, "prog").status == "unknown"


TWO_LOOKUPS = r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, unsigned int);
         __type(value, unsigned int); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned int k = 0;
    unsigned int *v = bpf_map_lookup_elem(&m, &k);
    if (!v) return XDP_ABORTED;
    return RESULT;
}
"""


@needs_clang
@needs_kernel
def test_returning_a_pointer_returns_its_address_a_counterexample_the_kernel_confirms() -> None:
    # A privileged program may return a pointer: the action is the low 32 bits of an address.
    original, mutant = (c_object(TWO_LOOKUPS.replace("RESULT", r)) for r in ("*v ? XDP_DROP : XDP_PASS", "(long)v"))
    packet = _counterexample(original, mutant)
    assert _kernel_run(original, packet)[0] == 2 and _kernel_run(mutant, packet)[0] not in range(5)


END_VS_NUMBER = r"""
SEC("xdp") int prog(struct xdp_md *ctx) {
    long data = (long)ctx->data, end = (long)ctx->data_end;
    return CONDITION ? XDP_DROP : XDP_PASS;
}
"""


@needs_clang
@needs_kernel
def test_the_packet_end_compared_with_a_number_is_decided_for_every_address() -> None:
    # data_end's offset is the packet's length (bounded), so the comparison is the same at every
    # kernel address: encoded, and the difference from comparing the length is confirmed.
    original = c_object(END_VS_NUMBER.replace("CONDITION", "end - data > 100"))
    mutant = c_object(END_VS_NUMBER.replace("CONDITION", "end > 100"))
    packet = _counterexample(original, mutant)
    assert _kernel_run(original, packet)[0] == 2 and _kernel_run(mutant, packet)[0] == 1
