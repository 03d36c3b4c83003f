"""The verifier and the prover read an IR program and the object compiled from it (issue 14 §1): no
`CompiledProgram`, nothing from the package's top. Here the object comes straight from the backend."""

from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, HashMap, Packet, u16, u64, xdp
from pybpfdsl.backend.compile import compile_program
from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.ir.printer import format_program
from pybpfdsl.verify.analysis.api import verify_program
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from pybpfdsl.verify.subject import Subject

drops = HashMap(u16, u64, max_entries=16)


@xdp
def drop_port_7(pkt: Packet) -> int:
    if pkt.udp is not None and pkt.udp.dport == 7:
        drops[7] = drops.get(7, 0) + 1
        return XDP_DROP
    return XDP_PASS


def _subject() -> Subject:
    lowered = drop_port_7.lower()
    elf = compile_program(lowered.program).elf
    return Subject(lowered.program, elf, "xdp", lowered.state)


def test_the_verifier_and_the_prover_take_ir_and_object_bytes() -> None:
    subject = _subject()
    report = verify_program(subject)
    assert report.ok, report.format()
    proof = prove_compiled(subject, budget=COMPILE_BUDGET)
    assert proof.status == "proven", proof.report()


def test_the_section_may_be_named_by_the_program_function() -> None:
    by_section = _subject()
    by_function = Subject(by_section.program, by_section.elf, drop_port_7.name, by_section.state)
    assert BpfElf.from_bytes(by_section.elf).program("xdp").name == drop_port_7.name
    assert [str(i) for i in verify_program(by_function).instructions] == \
        [str(i) for i in verify_program(by_section).instructions]


def test_a_compiled_programs_subject_is_what_compile_checked() -> None:
    compiled = drop_port_7.compile(prove=False)
    subject = compiled.subject
    assert (subject.program, subject.elf, subject.section) == (compiled.lowered.program, compiled.elf, "xdp")
    assert format_program(subject.program) == compiled.ir  # the proof cache's key: compile's verdict is found
