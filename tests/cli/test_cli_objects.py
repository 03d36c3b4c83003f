"""BPF object files (clang's) in `disasm`, `maps`, `run`, `verify` and `prove`, and what a user sees when the
file is not a usable object: one line naming the file and what is wrong, exit status 2, never a traceback."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from pybpfdsl.bpf.elf import BpfElf, ElfError
from pybpfdsl.verify.analysis.api import verify_elf_program

from .clang_objects import COUNTER_C, NO_PROGRAM_C, TRACEPOINT_C, build, objdump_slots
from .conftest import Result, needs_bpf, tcp_packet

Cli = Callable[..., Result]

PACKET = tcp_packet(80).hex()


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("objects")


@pytest.fixture(scope="module")
def counter_o(objects: Path) -> Path:
    return build(objects, "counter", COUNTER_C)


# --------------------------------------------------------------------------- #
# disasm
# --------------------------------------------------------------------------- #


def test_disasm_of_an_object_numbers_as_llvm_objdump_and_names_maps(call: Cli, counter_o: Path) -> None:
    r = call("disasm", counter_o)
    assert r.code == 0, r.err
    ours = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+): \(", r.out, re.M)]
    theirs = [n for n, _ in objdump_slots(counter_o)]
    assert ours == theirs  # both programs of section xdp, slot by slot
    assert "section xdp, program count:" in r.out and "<drop_all>:" in r.out
    assert "r1 = map[counters] ll" in r.out
    assert "map_value[.bss:packets] ll" in r.out and "map_value[.data:limit] ll" in r.out
    assert "; *v += 1;  (counter.c:" in r.out  # the C lines, from the object's line info


def test_disasm_section_chooses_one_program_and_json_says_which(call: Cli, counter_o: Path) -> None:
    r = call("disasm", counter_o, "--section", "drop_all", "--no-source")
    assert r.code == 0, r.err
    assert r.out.splitlines()[1:] == ["0: (b7) r0 = 1", "1: (95) exit"]
    r = call("disasm", counter_o, "--json")
    records = json.loads(r.out)
    assert {(rec["section"], rec["program"]) for rec in records} == {("xdp", "count")}
    assert any(rec["text"] == "r1 = map[counters] ll" for rec in records)


def test_disasm_of_an_object_refuses_cpu(call: Cli, counter_o: Path) -> None:
    r = call("disasm", counter_o, "--cpu", "v2")
    assert r.code == 2 and "--cpu applies to Python programs" in r.err


# --------------------------------------------------------------------------- #
# maps and run (the kernel)
# --------------------------------------------------------------------------- #


@needs_bpf
def test_maps_of_an_object_shows_its_globals_and_maps(call: Cli, counter_o: Path) -> None:
    r = call("maps", counter_o)
    assert r.code == 0, r.err
    rows = [line.split() for line in r.out.splitlines()]
    assert ["packets", "Global(8", "B,", ".bss)", "0"] in rows
    assert ["limit", "Global(4", "B,", ".data)", "7"] in rows
    assert ["counters", "array(8", "B,", "4)", "(all", "zero)"] in rows
    r = call("maps", counter_o, "--all", "--json")
    state = {e["name"]: e for e in json.loads(r.out)["state"]}
    assert state["counters"]["kind"] == "array(8 B, 4)"
    assert [(e["key"], e["value"]) for e in state["counters"]["entries"]] == [(0, 0), (1, 0), (2, 0), (3, 0)]


@needs_bpf
def test_run_an_object_in_the_kernel_with_its_state(call: Cli, counter_o: Path) -> None:
    r = call("run", counter_o, *["--packet", PACKET] * 8, "--state", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    # counters[1] counts the packets: up to the limit (7) they pass, the 8th is dropped.
    assert [x["action"] for x in data["results"]] == ["XDP_PASS"] * 7 + ["XDP_DROP"]
    state = {e["name"]: e for e in data["state"]}
    assert state["packets"]["value"] == 8 and state["limit"]["value"] == 7
    assert [(e["key"], e["value"]) for e in state["counters"]["entries"]] == [(1, 8)]


@needs_bpf
def test_run_section_chooses_the_program(call: Cli, counter_o: Path) -> None:
    r = call("run", counter_o, "--section", "drop_all", "--packet", PACKET)
    assert r.code == 0, r.err
    assert "counter.o:drop_all in kernel (BPF_PROG_TEST_RUN), 1 packet" in r.out and "XDP_DROP" in r.out


def test_run_an_object_refuses_python_mode(call: Cli, counter_o: Path) -> None:
    r = call("run", counter_o, "--python", "--packet", PACKET)
    assert r.code == 2 and "is a BPF object" in r.err and "--python" in r.err


def test_run_refuses_a_program_that_is_not_xdp(call: Cli, objects: Path) -> None:
    obj = build(objects, "tracepoint", TRACEPOINT_C)
    r = call("run", obj, "--packet", PACKET)
    assert r.code == 2 and "no XDP program in the object" in r.err, r.err
    r = call("run", obj, "--section", "on_open", "--packet", PACKET)
    assert r.code == 2 and "not an XDP program" in r.err, r.err


def test_section_applies_to_objects_only(call: Cli, counter_file: Path) -> None:
    r = call("disasm", counter_file, "--section", "xdp")
    assert r.code == 2 and "--section applies to object files" in r.err


# --------------------------------------------------------------------------- #
# Objects that are not usable: one line, the file, what is wrong, exit 2
# --------------------------------------------------------------------------- #


def _bad_objects(objects: Path, counter_o: Path) -> dict[str, tuple[Path, str]]:
    real = counter_o.read_bytes()
    other_machine = real[:18] + (62).to_bytes(2, "little") + real[20:]  # e_machine = EM_X86_64
    cases = {
        "first 100 bytes": (real[:100], "truncated"),
        "first half": (real[:len(real) // 2], "truncated"),
        "random bytes": (bytes(range(256)) * 3, "not an ELF file"),
        "empty": (b"", "the file is empty"),
        "x86-64 ELF": (other_machine, "an ELF file for x86-64"),
        "ELF magic only": (b"\x7fELF" + bytes(12), "malformed or truncated ELF header"),
    }
    out = {}
    for n, (name, (data, says)) in enumerate(cases.items()):
        path = objects / f"bad{n}.o"
        path.write_bytes(data)
        out[name] = (path, says)
    out["no program section"] = (build(objects, "noprog", NO_PROGRAM_C), "no BPF program in the object")
    out["missing file"] = (objects / "missing.o", "no such file")
    return out


BAD = ["first 100 bytes", "first half", "random bytes", "empty", "x86-64 ELF", "ELF magic only",
       "no program section", "missing file"]
COMMANDS = {
    "verify": (),
    "disasm": (),
    "maps": (),
    "run": ("--packet", PACKET),
    "prove": ("OTHER",),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", BAD)
def test_a_bad_object_is_one_clear_line(call: Cli, objects: Path, counter_o: Path, case: str, command: str) -> None:
    path, says = _bad_objects(objects, counter_o)[case]
    extra = [str(counter_o) if a == "OTHER" else a for a in COMMANDS[command]]
    r = call(command, path, *extra)
    assert r.code == 2, (r.code, r.out, r.err)
    assert r.err.startswith(f"error: {path}: ") and says in r.err, r.err
    assert r.err.strip().count("\n") == 0, r.err  # one line
    assert "internal error" not in r.err and "Traceback" not in r.err


def test_every_truncation_of_a_real_object_is_an_elf_error(counter_o: Path) -> None:
    """Parsing, checking and verifying any prefix of a real object ends in ElfError, nothing else."""
    real = counter_o.read_bytes()
    for n in range(0, len(real), 97):
        with pytest.raises(ElfError):
            elf = BpfElf.from_bytes(real[:n]).check()
            verify_elf_program(elf, elf.entry_program())


def test_a_missing_program_lists_the_objects_programs(call: Cli, counter_o: Path) -> None:
    r = call("verify", counter_o, "--section", "nope")
    assert r.code == 2
    assert "no program or function 'nope' in the object; its programs: xdp (count)" in r.err
