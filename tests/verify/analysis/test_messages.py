"""What the user reads from the verifier: instruction numbers are 8-byte slots (an lddw takes two), the
numbers llvm-objdump, `pybpfdsl disasm` and the kernel's verifier log use, and maps are named.

The analysis indexes its instruction list (an lddw counts once); every text and JSON record a user reads
converts at display time, so a program with an lddw before the faulty instruction is the test.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from pybpfdsl import XDP_PASS, Packet, xdp
from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.cli import main
from pybpfdsl.runtime.bpf_object import BpfObject, LoadError
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from pybpfdsl.verify.analysis.api import verify_elf_program
from tests.cli.clang_objects import NULL_DEREF_C, SUBPROGRAM_C, build, objdump_slots
from tests.cli.conftest import COUNTER_SRC, write
from tests.verify.analysis.kernel_oracle import HASH_MAP
from tests.verify.analysis.opcodes import EXIT, LOOKUP_MAP_INSN, hash_lookup, load, mov

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

FAULTY_TEXT = "r1 = *(u64 *)(r0 + 0)"
"""llvm-objdump's text of the read through the unchecked lookup result in NULL_DEREF_C."""


@pytest.fixture(scope="module")
def null_deref_o(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("messages"), "lookup", NULL_DEREF_C)


def _objdump_number(obj: Path, text: str) -> int:
    numbers = [n for n, t in objdump_slots(obj) if t == text]
    assert len(numbers) == 1, objdump_slots(obj)
    return numbers[0]


def _run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().out


def test_the_error_names_the_instruction_llvm_objdump_numbers(null_deref_o: Path) -> None:
    data = null_deref_o.read_bytes()
    elf = BpfElf.from_bytes(data)
    report = verify_elf_program(elf, elf.program("xdp"))
    [error] = report.errors
    slot = _objdump_number(null_deref_o, FAULTY_TEXT)
    assert error.insn == slot - 1, "the program must have an lddw before the fault, or this test shows nothing"
    text = report.format()
    assert f"error[null-deref] at instruction {slot}: r1 = *(u64 *)(r0 +0)" in text
    # The chain back to the cause numbers its instructions the same way: the lookup is after the lddw.
    call = _objdump_number(null_deref_o, "call 1")
    lddw = _objdump_number(null_deref_o, "r1 = 0 ll")
    assert f"r0 <- {call}: call bpf_map_lookup_elem#1" in text
    assert f"r1 <- {lddw}: r1 = map[counters] ll" in text


@needs_kernel
@pytest.mark.parametrize("source", ["entry program", "subprogram"])
def test_the_error_names_the_instruction_the_kernel_log_names(tmp_path: Path, source: str) -> None:
    obj = build(tmp_path, "lookup", NULL_DEREF_C if source == "entry program" else SUBPROGRAM_C)
    data = obj.read_bytes()
    with pytest.raises(LoadError) as refused:
        BpfObject.load(data, "lookup").close()
    log = refused.value.verifier_log
    lines = log.splitlines()
    where = next(i for i, line in enumerate(lines) if "invalid mem access" in line)
    kernel_number = int(re.match(r"^(\d+): ", lines[where - 1]).group(1))  # type: ignore[union-attr]
    elf = BpfElf.from_bytes(data)
    report = verify_elf_program(elf, elf.program("xdp"))
    assert f"at instruction {kernel_number}: " in report.format(), (log, report.format())


def test_explain_numbers_every_instruction_as_llvm_objdump(null_deref_o: Path) -> None:
    data = null_deref_o.read_bytes()
    elf = BpfElf.from_bytes(data)
    listing = verify_elf_program(elf, elf.program("xdp")).explain()
    ours = [int(m.group(1)) for m in re.finditer(r"^(\d+): ", listing, re.M)]
    assert ours == [n for n, _ in objdump_slots(null_deref_o)]
    assert re.search(r"^4: r1 = map\[counters\] ll +; writes r1=map_ptr\(counters\)", listing, re.M), listing


def test_cli_verify_text_and_json_give_the_slot(null_deref_o: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slot = _objdump_number(null_deref_o, FAULTY_TEXT)
    code, out = _run_cli(capsys, "verify", null_deref_o)
    assert code == 1 and f"at instruction {slot}: " in out
    code, out = _run_cli(capsys, "verify", null_deref_o, "--json")
    data = json.loads(out)
    [finding] = [f for f in data["findings"] if f["error"]]
    assert finding["instruction"] == slot
    line = next(n for n, text in enumerate(NULL_DEREF_C.splitlines(), 1) if "return *v == 3" in text)
    assert finding["source"].endswith(f"lookup.c:{line}: return *v == 3 ? 1 : 2;")
    assert data["instructions"] == max(n for n, _ in objdump_slots(null_deref_o)) + 1  # slots, lddw twice


def test_hand_written_program_numbers_slots_and_names_its_map() -> None:
    # key = 0; r0 = lookup(&m, &key) (an lddw: slots 3-4, call at 5); r1 = *(u64 *)(r0 + 0); exit
    insns: list[Instruction] = [*hash_lookup(), load(0x79, 1, 0, 0), mov(0, 2), EXIT]
    report = verify_instructions(insns, map_refs={LOOKUP_MAP_INSN: (HASH_MAP, None)})
    [error] = report.errors
    assert error.code == Code.NULL_DEREF and error.insn == 5
    text = report.format()
    assert "at instruction 6: r1 = *(u64 *)(r0 +0)" in text
    assert "5: call bpf_map_lookup_elem#1" in text and "3: r1 = map[m] ll" in text
    assert "map_value_or_null(m" in text  # the value names its map too


@xdp
def passes(pkt: Packet) -> int:
    return XDP_PASS


def test_a_compiled_programs_summary_gives_the_slot(tmp_path: Path) -> None:
    """`compile` prints CompiledProgram.verification_summary(); an AttachRefused carries report.format()."""
    compiled = passes.compile(prove=False, verify=False)
    insns: list[Instruction] = [*hash_lookup(), load(0x79, 1, 0, 0), mov(0, 2), EXIT]
    report = verify_instructions(insns, map_refs={LOOKUP_MAP_INSN: (HASH_MAP, None)})
    summary = dataclasses.replace(compiled, verification=report).verification_summary()
    assert summary.startswith("rejected: null-deref at instruction 6: "), summary


def test_dsl_verify_explain_and_disasm_agree_on_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A DSL program with maps and Globals (lddw's): `verify --explain` and `disasm` number alike."""
    src = write(tmp_path, "counter.py", COUNTER_SRC)
    code, explain = _run_cli(capsys, "verify", src, "--explain")
    assert code == 0, explain
    code, disasm = _run_cli(capsys, "disasm", src, "--no-source")
    assert code == 0
    explained = [int(m.group(1)) for m in re.finditer(r"^(\d+): ", explain, re.M)]
    listed = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+): \(", disasm, re.M)]
    assert explained == listed and len(listed) > 10
    assert len(set(range(max(listed) + 1)) - set(listed)) >= 1  # there are lddw's: a slot is skipped
    assert re.search(r"^\d+: r\d = map\[per_port\] ll", explain, re.M), explain


def test_numbers_inside_a_message_are_slots_too() -> None:
    """A jump out of a bpf-to-bpf callee names its target and the function's extent, in slots."""
    insns = [
        Instruction.lddw(1, 5),                # slots 0-1
        Instruction(0x85, 0, 1, 0, 2),         # 2: call pc+2 (the function at slot 5)
        mov(0, 2),                             # 3
        EXIT,                                  # 4
        Instruction(0x05, 0, 0, -4, 0),        # 5: goto pc-4, to slot 2: out of the function
        EXIT,                                  # 6
    ]
    text = verify_instructions(insns).format()
    assert "at instruction 5: goto pc-4" in text, text
    assert "(to instruction 2; the function spans 5..6)" in text, text
