"""The search's liveness: a helper call reads its arguments up to its arity, nothing more and nothing less."""

from __future__ import annotations

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.windows import call_reads, live_in, succs_of

LOOKUP = Instruction(0x85, 0, 0, 0, 1)  # call bpf_map_lookup_elem (map, key)
TRACE_PRINTK = Instruction(0x85, 0, 0, 0, 6)  # variadic
SUBPROGRAM = Instruction(0x85, 0, 1, 0, 3)  # call pc+3 (a bpf-to-bpf call)
EXIT = Instruction(0x95, 0, 0, 0, 0)


def test_a_helper_reads_its_arguments_only() -> None:
    assert call_reads(LOOKUP) == 0b110  # r1, r2
    assert call_reads(TRACE_PRINTK) == 0b111110  # a variadic helper may read r1-r5
    assert call_reads(SUBPROGRAM) == 0b111110


def test_setup_of_a_register_the_helper_does_not_read_is_dead() -> None:
    code = (Instruction(0xB7, 3, 0, 0, 7), LOOKUP, EXIT)  # r3 = 7; call lookup; exit
    live = live_in(code, succs_of(code)[0])
    assert not live[1] >> 3 & 1 and live[1] >> 1 & 1 and live[1] >> 2 & 1
    code = (Instruction(0xB7, 3, 0, 0, 7), TRACE_PRINTK, EXIT)
    assert live_in(code, succs_of(code)[0])[1] >> 3 & 1
