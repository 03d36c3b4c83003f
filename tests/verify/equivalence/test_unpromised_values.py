"""The prover assumes no value the kernel does not promise.

Each test is a pair of tiny objects that the kernel runs differently (or refuses) while a prover
assuming the value would call them equal; the prover must not say "proven". Where the kernel can show
the difference deterministically, the test shows it too.
"""

from __future__ import annotations

import ctypes
import struct

import pytest
import z3

from pybpfdsl.runtime.bpf_object import LoadError
from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.runtime.libbpf import BpfTestRunOpts, get_libbpf
from pybpfdsl.verify.equivalence.bytecode_memory import Unset, bv64, merge_values
from pybpfdsl.verify.equivalence.prove import prove_objects
from pybpfdsl.verify.equivalence.symbolic_state import MIN_PACKET_LEN
from tests.verify.equivalence.assembled import c_object, kernel, needs_clang, needs_kernel, xdp

pytestmark = needs_clang

RETURN_1 = "r0 = 1; exit"
READS_NEVER_WRITTEN_STACK = "r0 = *(u32 *)(r10 - 4); r0 &= 1; r0 += 1; exit"

# A subprogram leaves 5 on its stack; the next one, at the same depth, reads that slot unwritten.
LEFTOVER = ("call f; call g; exit", """
\t.text
\t.type\tf,@function
f:
\tr1 = 5
\t*(u64 *)(r10 - 8) = r1
\tr0 = 0
\texit
\t.size\tf, .-f
\t.type\tg,@function
g:
\tr0 = *(u32 *)(r10 - 8)
\tr0 &= 1
\tr0 += 1
\texit
\t.size\tg, .-g
""")


def _kernel_actions(elf: bytes, packet: bytes = bytes(64), runs: int = 5) -> set[int]:
    with kernel(elf) as obj:
        fd = obj.program_fd("prog")
        return {run_xdp(fd, packet).action for _ in range(runs)}


def test_never_written_stack_is_an_input_not_zero() -> None:
    result = prove_objects(xdp(READS_NEVER_WRITTEN_STACK), xdp(RETURN_1), "prog")
    assert result.status == "counterexample", result.summary()
    cex = result.counterexample
    assert cex is not None and cex.reproduced, result.report()
    assert cex.stacks[0][0][512 - 4] & 1, "the replay needs garbage with bit 0 set"
    assert "never-written stack" in result.report()


def test_each_program_finds_its_own_garbage() -> None:
    # The same program twice: two runs in the kernel need not find the same stack contents.
    same = xdp(READS_NEVER_WRITTEN_STACK)
    result = prove_objects(same, same, "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced


def test_a_subprogram_frame_holds_garbage_too() -> None:
    result = prove_objects(xdp(*LEFTOVER), xdp(RETURN_1), "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced


@needs_kernel
def test_the_kernel_leaves_garbage_on_the_stack() -> None:
    # g finds what f left: the kernel returns 2 where a zeroed stack would give 1.
    assert _kernel_actions(xdp(*LEFTOVER)) == {2}
    assert _kernel_actions(xdp(RETURN_1)) == {1}


@pytest.mark.parametrize("body", [
    "r0 = r2; exit",  # r2 is uninitialised at entry
    "r0 = 2; r0 += r5; exit",
    "if r3 == 0x0 goto +1; r0 = 1; r0 = 2; exit",
    "call 5; r0 = r1; exit",  # r1-r5 are uninitialised after a helper call
    "call 5; r2 = 1; *(u64 *)(r10 - 8) = r3; r0 = 2; exit",
])
def test_uninitialised_registers_have_no_value(body: str) -> None:
    result = prove_objects(xdp(body), xdp("r0 = 2; exit"), "prog")
    assert result.status == "unknown", result.summary()
    assert "uninitialised" in result.reason


CALLEE_READS_R6 = ("r6 = 2; call f; exit", """
\t.text
\t.type\tf,@function
f:
\tr0 = r6
\texit
\t.size\tf, .-f
""")


def test_a_subprogram_does_not_see_its_callers_r6() -> None:
    result = prove_objects(xdp(*CALLEE_READS_R6), xdp("r0 = 2; exit"), "prog")
    assert result.status == "unknown", result.summary()
    assert "uninitialised" in result.reason


@needs_kernel
def test_the_kernel_refuses_reading_uninitialised_registers() -> None:
    for elf in (xdp("r0 = r2; exit"), xdp("call 5; r0 = r1; exit"), xdp(*CALLEE_READS_R6)):
        with pytest.raises(LoadError, match="!read_ok"), kernel(elf):
            pass


def test_registers_uninitialised_for_different_reasons_merge() -> None:
    # Merged paths keep one state; a register set on one path only keeps them apart.
    when = z3.Bool("when")
    assert isinstance(merge_values(when, Unset("at entry"), Unset("after a call")), Unset)
    assert merge_values(when, Unset("at entry"), bv64(0)) is None
    assert merge_values(when, bv64(0), Unset("after a call")) is None


# -- packets the kernel never produces -------------------------------------------------------------

CHECKS_AN_ETHERNET_HEADER = """
r2 = *(u32 *)(r1 + 0); r3 = *(u32 *)(r1 + 4); r2 += 14; if r2 > r3 goto +2; r0 = 2; exit; r0 = 1; exit
"""


def test_no_counterexample_is_shorter_than_an_ethernet_header() -> None:
    # The two agree on every frame of 14 bytes or more, and differ only on shorter ones.
    result = prove_objects(xdp(CHECKS_AN_ETHERNET_HEADER), xdp("r0 = 2; exit"), "prog")
    assert result.status == "proven", result.report()


def test_a_counterexample_packet_is_a_frame() -> None:
    # Differ from the 15th byte on: the shortest counterexample is still 14 bytes long.
    longer = CHECKS_AN_ETHERNET_HEADER.replace("r2 += 14", "r2 += 15")
    result = prove_objects(xdp(longer), xdp("r0 = 2; exit"), "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and len(result.counterexample.packet) == MIN_PACKET_LEN


def _test_run_errno(fd: int, size: int) -> int:
    """0 when BPF_PROG_TEST_RUN accepts a `size`-byte frame, else the errno it fails with."""
    data_in = ctypes.create_string_buffer(bytes(size), max(size, 1))
    data_out = ctypes.create_string_buffer(size + 4096)
    opts = BpfTestRunOpts()
    opts.sz = ctypes.sizeof(BpfTestRunOpts)
    opts.data_in, opts.data_size_in = ctypes.addressof(data_in), size
    opts.data_out, opts.data_size_out = ctypes.addressof(data_out), size + 4096
    opts.repeat = 1
    try:
        get_libbpf().prog_test_run_opts(fd, opts)
    except OSError as exc:
        return exc.errno or -1
    return 0


@needs_kernel
def test_the_kernel_runs_xdp_on_no_frame_shorter_than_an_ethernet_header() -> None:
    with kernel(xdp(CHECKS_AN_ETHERNET_HEADER)) as obj:
        fd = obj.program_fd("prog")
        assert [_test_run_errno(fd, n) != 0 for n in range(MIN_PACKET_LEN + 2)] == \
            [True] * MIN_PACKET_LEN + [False, False]
        longer = xdp(CHECKS_AN_ETHERNET_HEADER.replace("r2 += 14", "r2 += 15"))
    with kernel(longer) as other:
        assert run_xdp(other.program_fd("prog"), bytes(14)).action == 1  # the difference is real


# -- padding ---------------------------------------------------------------------------------------

PADDED_KEY = r"""
struct key { unsigned char a; unsigned int b; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, struct key);
         __type(value, unsigned int); } m SEC(".maps");
static __attribute__((noinline)) int dirty(void) {
    volatile unsigned long long x[4];
    for (int i = 0; i < 4; i++) x[i] = ~0ULL;
    return x[1] & 1;
}
static __attribute__((noinline)) int look(void) {
    struct key k;
    ZERO
    k.a = 1;
    k.b = 2;
    return bpf_map_lookup_elem(&m, &k) ? 2 : 1;
}
SEC("xdp") int prog(struct xdp_md *ctx) { return dirty() + look() - 1; }
"""


def test_padding_of_a_key_built_on_the_stack_is_not_zero() -> None:
    garbage = c_object(PADDED_KEY.replace("ZERO", ""))
    zeroed = c_object(PADDED_KEY.replace("ZERO", "__builtin_memset(&k, 0, sizeof k);"))
    result = prove_objects(garbage, zeroed, "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()


@needs_kernel
def test_the_kernel_looks_up_the_padding_it_finds() -> None:
    key = struct.pack("<B3xI", 1, 2)
    actions = []
    for zero in ("", "__builtin_memset(&k, 0, sizeof k);"):
        with kernel(c_object(PADDED_KEY.replace("ZERO", zero))) as obj:
            obj.kernel_map("m").update(key, struct.pack("<I", 7))
            actions.append(run_xdp(obj.program_fd("prog"), bytes(64)).action)
    assert actions == [1, 2]


# -- helper results --------------------------------------------------------------------------------

UPDATE = r"""
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, unsigned int);
         __type(value, unsigned int); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned int k = 100, v = 7;
    long err = bpf_map_update_elem(&m, &k, &v, BPF_ANY);
    return RESULT;
}
"""


def test_an_update_of_a_full_hash_map_fails() -> None:
    checks = c_object(UPDATE.replace("RESULT", "err ? XDP_DROP : XDP_PASS"))
    trusts = c_object(UPDATE.replace("RESULT", "XDP_PASS"))
    result = prove_objects(checks, trusts, "prog")
    assert result.status == "counterexample", result.summary()
    cex = result.counterexample
    assert cex is not None and cex.reproduced, result.report()
    assert len(cex.maps["m"]) == 4  # the replay's map is full


@needs_kernel
def test_the_kernel_refuses_a_new_key_in_a_full_hash_map() -> None:
    actions = []
    for result in ("err ? XDP_DROP : XDP_PASS", "XDP_PASS"):
        with kernel(c_object(UPDATE.replace("RESULT", result))) as obj:
            for k in range(4):
                obj.kernel_map("m").update(struct.pack("<I", k), struct.pack("<I", 0))
            actions.append(run_xdp(obj.program_fd("prog"), bytes(64)).action)
    assert actions == [1, 2]


RING = r"""
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned int v = 7;
    long err = bpf_ringbuf_output(&rb, &v, sizeof v, 0);
    return RESULT;
}
"""


def test_the_result_of_a_ring_buffer_output_is_not_assumed() -> None:
    checks = c_object(RING.replace("RESULT", "err ? XDP_DROP : XDP_PASS"))
    trusts = c_object(RING.replace("RESULT", "XDP_PASS"))
    result = prove_objects(checks, trusts, "prog")
    assert result.status == "unknown", result.summary()
    assert "bpf_ringbuf_output" in result.reason
    assert prove_objects(trusts, trusts, "prog").status == "proven"  # logging alone is modelled


@needs_kernel
def test_the_kernel_fails_a_ring_buffer_output_on_a_full_ring() -> None:
    # Nobody consumes: 16 bytes a record, the 4 KiB ring is full after 255 records.
    assert _kernel_actions(c_object(RING.replace("RESULT", "err ? XDP_DROP : XDP_PASS")), runs=300) == {1, 2}


STALE = r"""
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, unsigned int);
         __type(value, unsigned int); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned int k = 1, v = 7;
    unsigned int *p = bpf_map_lookup_elem(&m, &k);
    if (!p) return XDP_ABORTED;
    bpf_map_update_elem(&m, &k, &v, BPF_ANY);
    return *p == 7 ? XDP_DROP : XDP_PASS;
}
"""


def test_a_pointer_from_before_an_update_of_a_hash_map_is_not_read_as_the_new_value() -> None:
    result = prove_objects(c_object(STALE), c_object(STALE.replace("*p == 7", "1")), "prog")
    assert result.status == "unknown", result.summary()
    assert "before an update" in result.reason


@needs_kernel
def test_the_kernel_keeps_the_old_element_behind_an_old_pointer() -> None:
    with kernel(c_object(STALE)) as obj:
        obj.kernel_map("m").update(struct.pack("<I", 1), struct.pack("<I", 3))
        assert run_xdp(obj.program_fd("prog"), bytes(64)).action == 2  # *p is still 3


def test_data_meta_is_not_assumed_to_be_data() -> None:
    # The driver decides: metadata before the packet, or none (data_meta = data + 1). The interpreters
    # (and BPF_PROG_TEST_RUN) have data_meta = data, so the difference is found but not confirmed.
    meta = "r2 = *(u32 *)(r1 + 8); r3 = *(u32 *)(r1 + 0); r0 = 1; if r2 == r3 goto +1; r0 = 2; exit"
    result = prove_objects(xdp(meta), xdp("r0 = 1; exit"), "prog")
    assert result.status == "unknown", result.summary()
    assert "data_meta" in result.reason


LRU = r"""
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 4); __type(key, unsigned int);
         __type(value, unsigned int); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned int one = 1, two = 2, v = 7;
    FIRST
    SECOND
    return p ? XDP_DROP : XDP_PASS;
}
"""
UPDATE_ONE = "bpf_map_update_elem(&m, &one, &v, BPF_ANY);"
LOOK_UP_TWO = "void *p = bpf_map_lookup_elem(&m, &two);"


def _lru(first: str, second: str) -> bytes:
    return c_object(LRU.replace("FIRST", first).replace("SECOND", second))


def test_an_update_of_an_lru_map_may_evict_what_a_later_lookup_asks_for() -> None:
    # Which entries an update evicts is an input shared by both programs: a lookup moved across an
    # update may see an evicted entry on one side only. The interpreters do not evict, so the
    # difference is not confirmed as a counterexample, but it is never "proven".
    result = prove_objects(_lru(UPDATE_ONE, LOOK_UP_TWO), _lru(LOOK_UP_TWO, UPDATE_ONE), "prog")
    assert result.status == "unknown", result.summary()
    assert "LRU map update evicts" in result.reason
    same_key = LOOK_UP_TWO.replace("&two", "&one")
    assert prove_objects(_lru(UPDATE_ONE, same_key), _lru(UPDATE_ONE, same_key), "prog").status == "proven"


@needs_kernel
def test_the_kernel_evicts_on_an_lru_update() -> None:
    actions = []
    for first, second in ((UPDATE_ONE, LOOK_UP_TWO), (LOOK_UP_TWO, UPDATE_ONE)):
        with kernel(_lru(first, second)) as obj:
            for k in range(2, 6):  # full: 2 is the least recently used
                obj.kernel_map("m").update(struct.pack("<I", k), struct.pack("<I", 0))
            actions.append(run_xdp(obj.program_fd("prog"), bytes(64)).action)
    assert actions == [2, 1]


@pytest.mark.parametrize("load", ["r2 = *(u64 *)(r1 + 0)", "r2 = *(u16 *)(r1 + 12)"])
def test_xdp_md_is_read_only_as_u32_fields(load: str) -> None:
    # The kernel refuses other widths; the prover must not give the load a value.
    result = prove_objects(xdp(f"{load}; r0 = 2; exit"), xdp("r0 = 2; exit"), "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()


# -- map contents and record padding ----------------------------------------------------------------

READS_A_VALUE = r"""
struct { __uint(type, MAP_TYPE); __uint(max_entries, 4); __type(key, unsigned int);
         __type(value, unsigned int); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned int k = 2;
    unsigned int *v = bpf_map_lookup_elem(&m, &k);
    return v && (*v & 1) ? XDP_DROP : XDP_PASS;
}
"""


@pytest.mark.parametrize("map_type", ["BPF_MAP_TYPE_ARRAY", "BPF_MAP_TYPE_PERCPU_ARRAY"])
def test_array_values_are_inputs_not_zero(map_type: str) -> None:
    reads = READS_A_VALUE.replace("MAP_TYPE", map_type)
    ignores = reads.replace("v && (*v & 1) ? XDP_DROP : XDP_PASS", "XDP_PASS")
    result = prove_objects(c_object(reads), c_object(ignores), "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()


PADDED_RECORD = r"""
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
struct ev { unsigned char a; unsigned int b; };
SEC("xdp") int prog(struct xdp_md *ctx) {
    struct ev e;
    ZERO
    e.a = 1;
    e.b = 2;
    bpf_ringbuf_output(&rb, &e, sizeof e, 0);
    return XDP_PASS;
}
"""


def test_padding_of_a_ring_buffer_record_is_not_zero() -> None:
    garbage = c_object(PADDED_RECORD.replace("ZERO", ""))
    zeroed = c_object(PADDED_RECORD.replace("ZERO", "__builtin_memset(&e, 0, sizeof e);"))
    result = prove_objects(garbage, zeroed, "prog")
    assert result.status == "counterexample", result.summary()
    assert result.counterexample is not None and result.counterexample.reproduced, result.report()
    assert any("ring buffer rb" in d for d in result.counterexample.differing)


@pytest.mark.parametrize(("offset", "field"), [(12, "ingress_ifindex"), (16, "rx_queue_index")])
def test_a_difference_in_an_interface_field_replays_with_that_field(offset: int, field: str) -> None:
    # The solver picks the field's value; the replay must run with it, or the difference would not
    # reproduce and a real difference would come back "unknown".
    reads = f"r2 = *(u32 *)(r1 + {offset}); r0 = 1; if r2 == 5 goto +1; r0 = 2; exit"
    result = prove_objects(xdp(reads), xdp("r0 = 2; exit"), "prog")
    assert result.status == "counterexample", result.summary()
    cex = result.counterexample
    assert cex is not None and cex.reproduced and getattr(cex.ctx, field) == 5, result.report()
    assert f"{field}=5" in result.report()
