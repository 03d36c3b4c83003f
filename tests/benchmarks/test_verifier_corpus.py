"""benchmarks/verifier_corpus.py names every mutant false alarm and unsafe accept so a developer can fix it: the
program, build and mutation (kind, instruction index and slot, the instruction before and after), our first
error, the kernel's line, and the command that reruns just that mutant (``--only PROGRAM --mutant TAG``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.verifier_corpus import (
    detail,
    detail_lines,
    listed_mutants,
    mutant_tag,
    mutation,
    select_mutants,
    select_programs,
)
from pybpfdsl import XDP_DROP, XDP_PASS, HashMap, Packet, u32, u64, xdp
from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import slot_offsets
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from tests.verify.corpus.mutants import mutants
from tests.verify.corpus.third_party_corpus import Case, KernelResult, Outcome, ThirdPartyProgram, missing_headers

ROOT = Path(__file__).resolve().parents[2]
counts = HashMap(u32, u64, max_entries=16)


@xdp
def prog(pkt: Packet) -> int:
    v = counts.get(1)
    if v is not None:
        return XDP_DROP if v == 3 else XDP_PASS
    return XDP_PASS if pkt.payload[2] == 1 else XDP_DROP


def _program() -> ThirdPartyProgram:
    elf = prog.compile(prove=False, verify=False).elf
    return ThirdPartyProgram("demo", "dir/demo.c", "O1", "prog", "xdp", elf)


def _cases(p: ThirdPartyProgram) -> list[Case]:
    return [Case(p, m.kind, m.name, m.elf) for m in mutants(p.elf, p.function, p.name)]


def test_a_mutation_is_found_at_the_index_its_name_gives_with_the_kernels_slot_and_both_instructions() -> None:
    p = _program()
    cases = _cases(p)
    insns = BpfElf.from_bytes(p.elf).program(p.function).instructions
    slots = slot_offsets(insns)
    found = []
    for c in cases:
        m = mutation(p.elf, c.elf, p.function)
        assert m is not None
        assert m.index == int(mutant_tag(p, c.name).split(":")[0])
        assert m.slot == slots[m.index]
        assert m.old != m.new
        found.append(m)
    shifted = next(m for c, m in zip(cases, found, strict=True) if c.name.endswith(":offset+1"))
    offsets = [int(re.findall(r"([+-]\d+)\)", t)[0]) for t in (shifted.old, shifted.new)]
    assert offsets[1] == offsets[0] + 1
    # the map lookup's lddw takes two slots: the kernel numbers what follows it one past the index
    assert any(m.slot == m.index + 1 for m in found)
    assert mutation(p.elf, p.elf, p.function) is None


def test_a_mutant_false_alarm_is_listed_under_our_first_error_with_its_mutation_and_a_rerun_command() -> None:
    p = _program()
    c = next(c for c in _cases(p) if c.name.endswith(":offset+1"))
    alarm = Outcome(p, c.kind, c.name, KernelResult(True, "", 120, 0.001), False,
                    "packet-bounds @7: packet access of 1 bytes is not proven within the packet", 0.01)
    unsafe = Outcome(p, c.kind, c.name, KernelResult(False, "invalid access to packet, off=15 size=1", 50, 0.001),
                     True, "", 0.01)
    d = detail(alarm, c)
    tag = mutant_tag(p, c.name)
    index = int(tag.split(":")[0])
    assert (d["program"], d["build"], d["kind"], d["insn"]) == ("demo/dir/demo.c:prog[O1]", "O1", "shift offset", index)
    assert d["old"] != d["new"]
    assert d["rerun"] == f"benchmarks/verifier_corpus.py --builds O1 --only 'demo/dir/demo.c:prog[O1]' --mutant {tag}"
    text = "\n".join(detail_lines("MUTANT FALSE ALARMS", [d], True)
                     + detail_lines("MUTANT UNSAFE ACCEPTS", [detail(unsafe, c)], False))
    assert "MUTANT FALSE ALARMS: 1\n packet-bounds: 1\n" in text
    assert f"{c.name}  [shift offset] @{index} (slot {d['slot']}): {d['old']}  ->  {d['new']}" in text
    assert "ours:   packet-bounds @7: packet access" in text
    assert "MUTANT UNSAFE ACCEPTS: 1\n shift offset: 1\n" in text
    assert "kernel: invalid access to packet, off=15 size=1" in text


def test_one_mutant_is_selected_by_its_tag_and_every_mutant_at_an_instruction_by_its_index() -> None:
    p = _program()
    cases = _cases(p)
    one = next(c for c in cases if c.name.endswith(":offset+1"))  # with its twin offset-1 at the same index
    tag = mutant_tag(p, one.name)
    assert [c.name for c in select_mutants(cases, p, tag)] == [one.name]
    at = tag.split(":")[0]
    there = {c.name for c in cases if c.name.startswith(f"{p.name}@{at}:")}
    assert len(there) >= 2 and {c.name for c in select_mutants(cases, p, at)} == there
    other = ThirdPartyProgram("demo", "dir/demo.c", "O2", "prog", "xdp", p.elf)
    assert select_programs([p, other], p.name) == [p]
    assert select_programs([p, other], "demo.c") == [p, other]


def test_mutant_without_only_is_refused_before_any_work() -> None:
    r = subprocess.run([sys.executable, "benchmarks/verifier_corpus.py", "--mutant", "3"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--mutant needs --only PROGRAM" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not kernel_bpf_available()[0] or missing_headers() is not None,
                    reason="needs the kernel's bpf() as root and clang with the BPF headers")
def test_only_and_mutant_rerun_one_mutant_of_the_corpus_against_the_kernel(tmp_path: Path) -> None:
    name = "xdp-tutorial/packet-solutions/xdp_prog_kern_03.c:xdp_icmp_echo_func[O2]"
    r = subprocess.run([sys.executable, "benchmarks/verifier_corpus.py", "--builds", "O2", "--only", name,
                        "--mutant", "81:offset+1", "--workers", "1", "--save-elf", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote" not in r.stdout  # a rerun leaves the committed results alone
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(("agrees: ", "FALSE ALARM: ", "UNSAFE ACCEPT: "))]
    assert len(lines) == 1
    d = json.loads(lines[0].split(": ", 1)[1])
    assert (d["name"], d["insn"], d["kind"], d["kernel_ok"]) == (f"{name}@81:offset+1", 81, "shift offset", False)
    assert d["kernel"]  # the kernel refuses this mutant and says why
    assert [f.name for f in tmp_path.iterdir()] == [
        "xdp-tutorial_packet-solutions_xdp_prog_kern_03.c_xdp_icmp_echo_func_O2_at81_offset+1.o"]


def test_an_earlier_runs_listed_mutants_are_read_by_program(tmp_path: Path) -> None:
    earlier = {"mutant_false_alarms": [{"program": "a[O1]", "name": "a[O1]@3:offset+1"},
                                       {"program": "a[O1]", "name": "a[O1]@9:offset-1"}],
               "mutant_unsafe_accepts": [{"program": "b[O2]", "name": "b[O2]@4:no-null-check0"}]}
    (tmp_path / "r.json").write_text(json.dumps(earlier))
    assert listed_mutants(str(tmp_path / "r.json")) == {"a[O1]": {"a[O1]@3:offset+1", "a[O1]@9:offset-1"},
                                                       "b[O2]": {"b[O2]@4:no-null-check0"}}


@pytest.mark.skipif(os.geteuid() != 0 or not kernel_bpf_available()[0] or missing_headers() is not None,
                    reason="needs the kernel's bpf() as root and clang with the BPF headers")
def test_mutants_from_rechecks_just_the_listed_mutants_and_their_programs(tmp_path: Path) -> None:
    name = "xdp-tutorial/packet-solutions/xdp_prog_kern_03.c:xdp_icmp_echo_func[O2]"
    listed = tmp_path / "earlier.json"
    listed.write_text(json.dumps({"mutant_false_alarms": [{"program": name, "name": f"{name}@81:offset+1"}]}))
    r = subprocess.run([sys.executable, "benchmarks/verifier_corpus.py", "--builds", "O2", "--mutants-from",
                        str(listed), "--workers", "1", "--out", str(tmp_path / "again")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads((tmp_path / "again.json").read_text())
    assert [p["name"] for p in data["programs"]] == [name]
    assert data["mutants"]["all"]["programs"] == 1
    assert "the mutants" in data["header"] and ": 1;" in data["header"]
