"""The verdict on one program (`VerifierReport`) and what the user reads of it: errors tied to their Python
line, and the annotated listing (``--explain``).

An error names the instruction and the source line BTF line info maps it to, shows the registers it
is about with their abstract values (type and range, VeRefine-style ``packet+[0, 14], id=15``), and
then walks the use-def chain the analysis recorded (``State.defs``) back through the instructions
that produced those values, each with its own line and operand values — from the symptom to the
cause, usually a missing or weaker-than-needed check a few lines earlier.

Instruction numbers shown to the user are 8-byte slots (an ``lddw`` takes two), the numbers
``llvm-objdump -d``, ``pybpfdsl disasm`` and the kernel's verifier log use; the analysis itself indexes
the instruction list (an ``lddw`` counts once), so the conversion happens here, at display time.
An ``lddw`` of a map shows the map's name (``r1 = map[counters] ll``), as ``pybpfdsl disasm`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pybpfdsl.bpf.btf_ext import LineInfo
from pybpfdsl.bpf.disasm import format_instruction
from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind, slot_offsets
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.checks import Sink, VerifierFinding
from pybpfdsl.verify.analysis.driver import Analysis
from pybpfdsl.verify.analysis.liveness import registers_of
from pybpfdsl.verify.analysis.transfer import step
from pybpfdsl.verify.analysis.values import describe

__all__ = ["VerifierReport", "format_finding", "format_listing", "format_report", "instruction_slot", "source_line"]

CHAIN_DEPTH = 6
CHAIN_WIDTH = 3


@dataclass
class VerifierReport:
    """The verdict on one program: ``ok`` unless some finding is an error."""

    name: str
    section: str
    instructions: tuple[Instruction, ...]
    findings: list[VerifierFinding]
    line_info: tuple[LineInfo, ...] = ()
    analysis: Analysis | None = field(default=None, repr=False)
    seconds: float = 0.0
    processed: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[VerifierFinding]:
        return [f for f in self.findings if f.is_error]

    def format(self, limit: int = 5) -> str:
        """The errors explained (instruction, Python line, registers, the chain that produced them)."""
        return format_report(self, limit)

    def explain(self) -> str:
        """Every instruction with the types and ranges of the registers it reads and writes."""
        return format_listing(self)

    def __str__(self) -> str:
        return self.format()


def source_line(report: VerifierReport, idx: int) -> str | None:
    """``file:line: text`` of the Python (or C) line instruction ``idx`` came from (None for code
    the compiler made up, which line info marks with line 0)."""
    best = None
    for li in report.line_info:
        if li.insn_index <= idx and (best is None or li.insn_index >= best.insn_index):
            best = li
    if best is None or best.line == 0:
        return None
    return f"{best.file}:{best.line}: {best.text.strip()}"


def instruction_slot(report: VerifierReport, idx: int) -> int:
    """The number the user reads for instruction ``idx`` of ``report.instructions``: its 8-byte slot,
    as ``llvm-objdump -d`` and the kernel's log count (-1, a whole-program finding, stays -1)."""
    if not 0 <= idx < len(report.instructions):
        return idx
    return slot_offsets(report.instructions[:idx + 1])[idx]


def _map_relocations(report: VerifierReport) -> dict[int, Relocation]:
    """What each map ``lddw`` refers to, as relocations (so the disassembler prints the map's name)."""
    if report.analysis is None:
        return {}
    slots = slot_offsets(report.instructions)
    out: dict[int, Relocation] = {}
    for idx, (info, offset) in report.analysis.env.map_refs.items():
        if not 0 <= idx < len(slots):
            continue
        if offset is None:
            out[idx] = Relocation(idx, slots[idx], info.name, RelocKind.MAP, ".maps")
        else:  # a pointer into global data (.bss, .data, .rodata): section and offset
            out[idx] = Relocation(idx, slots[idx], info.name, RelocKind.DATA, info.name, offset)
    return out


class _Text:
    """Instruction text as the user reads it: slot numbers and map names, computed once per report."""

    def __init__(self, report: VerifierReport) -> None:
        self.report = report
        self.slots = slot_offsets(report.instructions)
        self.relocations = _map_relocations(report)

    def insn(self, idx: int) -> str:
        text = format_instruction(self.report.instructions[idx], self.relocations.get(idx))
        return f"{self.slots[idx]}: {text}"


def _values(state: State | None, regs: tuple[int, ...]) -> str:
    if state is None:
        return "(unreachable)"
    return ", ".join(f"r{r}={describe(state.regs[r])}" if r < len(state.regs) else f"r{r} (no such register)"
                     for r in dict.fromkeys(regs))


def _chain(report: VerifierReport, text_of: _Text, idx: int, regs: tuple[int, ...]) -> list[str]:
    """The instructions that produced ``regs`` at ``idx``, and theirs in turn (breadth-first, bounded)."""
    analysis = report.analysis
    if analysis is None:
        return []
    lines: list[str] = []
    seen: set[int] = set()
    frontier = [(idx, r, 1) for r in regs]
    while frontier:
        at, reg, depth = frontier.pop(0)
        s = analysis.pre.get(at)
        if s is None or depth > CHAIN_DEPTH:
            continue
        for site in sorted(s.defs[reg])[:CHAIN_WIDTH]:
            if site in seen:
                continue
            seen.add(site)
            reads, _ = registers_of(report.instructions[site])
            pre = analysis.pre.get(site)
            where = source_line(report, site)
            text = "  " * depth + f"r{reg} <- {text_of.insn(site)}"
            if reads:
                text += f"    [{_values(pre, reads)}]"
            if where:
                text += f"    ({where})"
            lines.append(text)
            frontier.extend((site, r, depth + 1) for r in reads if r != 10)
    return lines


def format_finding(report: VerifierReport, f: VerifierFinding) -> str:
    head = f"error[{f.code.value}]" if f.is_error else f"warning[{f.code.value}]"
    if f.insn < 0:
        return f"{head} in {report.name}: {f.message}"
    text_of = _Text(report)
    out = [f"{head} at instruction {text_of.insn(f.insn)}", f"  {f.message}"]
    where = source_line(report, f.insn)
    if where:
        out.append(f"  --> {where}")
    state = report.analysis.pre.get(f.insn) if report.analysis else None
    if f.registers and state is not None:
        out.append(f"  registers: {_values(state, f.registers)}")
        chain = _chain(report, text_of, f.insn, f.registers)
        if chain:
            out.append("  produced by:")
            out.extend("  " + c for c in chain)
    return "\n".join(out)


def format_report(report: VerifierReport, limit: int = 5) -> str:
    if report.ok:
        warn = [format_finding(report, f) for f in report.findings]
        slots = sum(i.slots for i in report.instructions)
        return "\n".join([f"{report.name}: safe ({slots} instructions, "
                          f"{report.seconds * 1000:.1f} ms)", *warn])
    errs = report.errors
    parts = [f"{report.name}: {len(errs)} problem(s) found by the userspace verifier"]
    parts += [format_finding(report, f) for f in errs[:limit]]
    if len(errs) > limit:
        parts.append(f"... and {len(errs) - limit} more")
    return "\n\n".join(parts)


def format_listing(report: VerifierReport) -> str:
    """Every instruction, grouped under its source line, with what it reads (before) and writes (after)."""
    analysis = report.analysis
    out: list[str] = []
    last_line = None
    sink = Sink()
    text_of = _Text(report)
    for idx, insn in enumerate(report.instructions):
        where = source_line(report, idx)
        if where != last_line and where is not None:
            out.append(f"; {where}")
            last_line = where
        s = analysis.pre.get(idx) if analysis else None
        reads, writes = registers_of(insn)
        if insn.kind == Kind.CALL:
            reads = ()
        text = f"{text_of.insn(idx):<40}"
        if analysis is None:
            out.append(text + " ; not analysed")
            continue
        if s is None:
            out.append(text + " ; unreachable")
            continue
        notes = []
        if reads:
            notes.append("reads " + _values(s, reads))
        if writes and analysis is not None:
            succ = step(analysis.env, idx, s, sink)
            if succ:
                notes.append("writes " + _values(succ[0][1], writes))
        out.append(text + (" ; " + "; ".join(notes) if notes else ""))
    return "\n".join(out)
