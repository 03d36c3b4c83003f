"""The analysis over-approximates concrete execution.

Generated programs (``pybpfdsl.bpf.random_programs``) are run by the bytecode interpreter on random
packets with a trace of the registers before every instruction; for each program our verifier
accepts, every traced scalar register must lie in the abstract value the analysis holds for it at that
instruction, and every traced packet pointer's offset from ``data`` in its abstract offset.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as hs

from pybpfdsl.bpf import interpreter as it
from pybpfdsl.bpf.faults import BytecodeFault
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.memory import Pointer
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.bpf.random_programs import generate, random_packet
from pybpfdsl.verify.analysis import verify_instructions
from pybpfdsl.verify.analysis.values import PacketPtr, ScalarValue

Trace = list[tuple[int, list[object]]]


class _Tracing(it._Machine):
    """The interpreter's machine, recording (pc, registers) before each instruction."""

    trace: Trace

    def run(self) -> it.ExecutionResult:
        self.trace = []
        steps = 0
        while True:
            insn = self.insns[self.pc]
            self.trace.append((self.pc, list(self.regs)))
            steps += 1
            assert steps <= self.step_limit
            if insn.kind == Kind.EXIT:
                r0 = it._address(self.regs[0])
                return it.ExecutionResult(r0 & 0xFFFFFFFF, b"", r0, steps, self.maps)
            handler = it._HANDLERS[insn.kind]
            nxt = handler(self, insn)
            self.pc = self.pc + 1 if nxt is None else nxt


def _trace(insns: tuple[Instruction, ...], packet: bytes) -> Trace | None:
    m = _Tracing(it._Code(insns), {}, {}, {}, (), packet, it.XdpContext(), it.DEFAULT_STEP_LIMIT)
    try:
        m.run()
    except BytecodeFault:
        return None
    return m.trace


def check(seed: int, packet_seed: int) -> int:
    prog = generate(seed, body_length=30)
    report = verify_instructions(prog.instructions)
    if not report.ok or report.analysis is None:
        return 0
    trace = _trace(prog.instructions, random_packet(random.Random(packet_seed)))
    if trace is None:
        return 0
    checked = 0
    for pc, regs in trace:
        state = report.analysis.pre.get(pc)
        assert state is not None, f"seed {seed}: instruction {pc} ran but the analysis thinks it unreachable"
        for r, concrete in enumerate(regs):
            abstract = state.regs[r]
            if isinstance(abstract, ScalarValue):
                assert isinstance(concrete, int), (seed, pc, r, concrete, abstract)
                assert abstract.value.contains(concrete), f"seed {seed} pc {pc} r{r}={concrete:#x} not in {abstract}"
                checked += 1
            elif isinstance(abstract, PacketPtr) and isinstance(concrete, Pointer) \
                    and concrete.region.kind == "packet":
                off = concrete.offset - concrete.region.lo
                assert abstract.off.contains(off & ((1 << 64) - 1)), \
                    f"seed {seed} pc {pc} r{r}: {off} not in {abstract}"
                checked += 1
    return checked


@settings(max_examples=60, deadline=None)
@given(hs.integers(0, 10_000), hs.integers(0, 1_000))
def test_concrete_values_lie_in_abstract_values(seed: int, packet_seed: int) -> None:
    check(seed, packet_seed)


def test_some_programs_are_checked() -> None:
    assert sum(check(s, s) for s in range(30)) > 0
