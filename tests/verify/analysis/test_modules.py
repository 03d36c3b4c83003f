"""Unit tests of the analysis modules: transfer functions on pointers, packet-range joins and
partitions, the stack's spill rules, helper signatures, liveness, and the privileged-loader option."""

from __future__ import annotations

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.verify.analysis import Code, verify_instructions
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.cfg import build_cfg
from pybpfdsl.verify.analysis.liveness import live_in
from pybpfdsl.verify.analysis.partitions import partition_key
from pybpfdsl.verify.analysis.transfer import Env
from pybpfdsl.verify.analysis.values import PacketEnd, PacketPtr, ScalarValue, StackPtr
from pybpfdsl.verify.domains.scalar import Scalar
from tests.verify.analysis.opcodes import EXIT, load, mov


def codes(insns: list[Instruction], allow_uninit_stack_reads: bool = False) -> set[Code]:
    return {f.code for f in verify_instructions(insns, allow_uninit_stack_reads=allow_uninit_stack_reads).errors}


def _pkt_prologue() -> list[Instruction]:
    return [load(0x61, 2, 1, 0), load(0x61, 3, 1, 4)]  # r2 = data, r3 = data_end


def test_branch_ranges_are_kept_apart() -> None:
    """Two paths prove 40 and 60 bytes, with pointers at +32 and +52: the read at +7 is safe on both
    (a plain join would keep 40 bytes and a pointer in [32, 52])."""
    insns = [
        *_pkt_prologue(),
        load(0x61, 5, 1, 16),                  # r5 = rx_queue_index
        Instruction(0x55, 5, 0, 5, 0),        # if r5 != 0 goto B
        Instruction(0xBF, 4, 2, 0, 0), Instruction(0x07, 4, 0, 0, 40),
        Instruction(0x2D, 4, 3, 9, 0),        # if r4 > r3 goto out
        Instruction(0x07, 4, 0, 0, -8),       # r4 = data + 32
        Instruction(0x05, 0, 0, 4, 0),        # goto join
        Instruction(0xBF, 4, 2, 0, 0), Instruction(0x07, 4, 0, 0, 60),   # B:
        Instruction(0x2D, 4, 3, 4, 0),
        Instruction(0x07, 4, 0, 0, -8),       # r4 = data + 52
        load(0x71, 0, 4, 7),                   # join: r0 = *(u8 *)(r4 + 7)
        Instruction(0x57, 0, 0, 0, 1),
        EXIT,
        mov(0, 2), EXIT,                      # out:
    ]
    assert codes(insns) == set()


def test_partition_key_ignores_dead_registers() -> None:
    s = st.entry_state()
    a = s.set_reg(4, PacketPtr(Scalar.const(14)), 0)
    b = s.set_reg(4, PacketPtr(Scalar.const(18)), 0)
    live_r4 = 1 << 4
    assert partition_key(a, live_r4) != partition_key(b, live_r4)
    assert partition_key(a, 0) == partition_key(b, 0)


def test_join_keeps_smaller_range_and_links_ids() -> None:
    s = st.entry_state()
    a = s.set_reg(4, PacketPtr(Scalar.urange(0, 10), 7, 0), 0).with_range(7, 20)
    b = s.set_reg(4, PacketPtr(Scalar.urange(0, 10), 9, 0), 0).with_range(9, 30)
    j = st.join(a, b)
    assert j is not None
    r4 = j.regs[4]
    assert isinstance(r4, PacketPtr) and r4.pid is not None
    assert j.range_of(r4.pid) == 20


def test_pointer_subtraction_gives_a_number() -> None:
    insns = [*_pkt_prologue(), Instruction(0x1F, 3, 2, 0, 0),  # r3 -= r2 (data_end - data)
             mov(0, 2), Instruction(0x25, 3, 0, 1, 100), mov(0, 1), EXIT]
    assert codes(insns) == set()


def test_pointer_multiplication_is_rejected() -> None:
    insns = [load(0x61, 2, 1, 0), Instruction(0x27, 2, 0, 0, 2), mov(0, 2), EXIT]
    assert Code.POINTER_ARITH in codes(insns)


def test_uninit_stack_read_option() -> None:
    insns = [load(0x79, 0, 10, -16), Instruction(0x57, 0, 0, 0, 1), EXIT]
    assert Code.UNINIT_STACK in codes(insns)
    assert codes(insns, allow_uninit_stack_reads=True) == set()


def test_partial_fill_of_a_spilled_pointer_is_rejected() -> None:
    insns = [Instruction(0x7B, 10, 1, -8, 0), load(0x61, 0, 10, -8), Instruction(0x57, 0, 0, 0, 1), EXIT]
    assert Code.POINTER_LEAK in codes(insns, allow_uninit_stack_reads=True)


def test_narrow_spill_tracked_only_at_slot_start() -> None:
    s = stk.empty_stack()
    five = ScalarValue(Scalar.const(5))
    aligned = stk.write(s, -8, 4, five)
    assert stk.read(aligned, -8, 4) == five
    unaligned = stk.write(s, -4, 4, five)
    assert stk.read(unaligned, -4, 4) != five
    zero = ScalarValue(Scalar.const(0))
    assert stk.read(stk.write(s, -4, 4, zero), -4, 4) == zero


def test_helper_trace_printk_takes_two_arguments() -> None:
    insns = [Instruction(0x7A, 10, 0, -8, 0x6869), Instruction(0xBF, 1, 10, 0, 0), Instruction(0x07, 1, 0, 0, -8),
             mov(2, 8), Instruction(0x85, 0, 0, 0, 6), mov(0, 2), EXIT]
    assert codes(insns) == set()


def test_helper_map_argument_must_be_a_map() -> None:
    insns = [Instruction(0x7A, 10, 0, -8, 0), mov(1, 0), Instruction(0xBF, 2, 10, 0, 0),
             Instruction(0x07, 2, 0, 0, -8), Instruction(0x85, 0, 0, 0, 1), mov(0, 2), EXIT]
    assert Code.HELPER_ARG in codes(insns)


def test_redirect_returns_an_xdp_action() -> None:
    insns = [mov(1, 1), mov(2, 0), Instruction(0x85, 0, 0, 0, 23), EXIT]
    assert codes(insns) == set()


def test_liveness() -> None:
    insns = (mov(1, 1), mov(2, 2), Instruction(0xBF, 0, 1, 0, 0), EXIT)
    env = Env(insns, {i: i for i in range(4)}, list(range(4)))
    live = live_in(insns, build_cfg(env).succs)
    assert live[0] & (1 << 2) == 0          # r2 is never read
    assert live[1] & (1 << 1)               # r1 is read at 2
    assert live[3] == 1                     # exit reads r0


def test_stack_pointer_offset_tracks_constants() -> None:
    insns = [Instruction(0xBF, 2, 10, 0, 0), Instruction(0x07, 2, 0, 0, -16), Instruction(0x7A, 2, 0, 0, 7),
             load(0x79, 0, 10, -16), EXIT]
    r = verify_instructions(insns)
    assert r.analysis is not None
    s = r.analysis.pre[2]
    assert isinstance(s.regs[2], StackPtr) and s.regs[2].off.const_value == (-16) & ((1 << 64) - 1)
    assert Code.EXIT_ACTION in {f.code for f in r.findings} and r.ok  # r0 = 7: a warning (the kernel loads it)


def test_packet_end_arithmetic_is_rejected() -> None:
    insns = [load(0x61, 3, 1, 4), Instruction(0x07, 3, 0, 0, 1), mov(0, 2), EXIT]
    assert Code.POINTER_ARITH in codes(insns)
    assert isinstance(PacketEnd(), PacketEnd)
