"""Where two executions of one counterexample part: the source line a report names.

Each side's execution is its trace, the source lines it ran in order (the IR's lines, or the
bytecode's instructions mapped to lines through BTF line info). Positions in the two traces do not
correspond: the bytecode runs the function's line first (its prologue), LLVM moves instructions
between lines, and the bytecode's exits carry no line. So the traces are compared as sets of lines
both programs have, and a difference in data (same lines, different values) is put at the first line
that writes an output the replay saw differ.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.ir import nodes as n
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram

ANY_STATE = "*"
"""Key of `LineFacts.writers` for lines that may write any map, global or ring buffer (a bytecode
store does not say where its pointer points)."""

_STATE_HELPERS = frozenset({Helper.MAP_UPDATE_ELEM, Helper.MAP_DELETE_ELEM, Helper.RINGBUF_OUTPUT})


@dataclass(frozen=True)
class LineFacts:
    """What one program can do at its source lines: the lines it has at all, and per output (`action`,
    `map NAME`, `global data SECTION`, `global data SECTION+OFFSET` (one byte), `ring buffer NAME`, or
    `ANY_STATE`) the lines that may write it."""

    lines: frozenset[int] = frozenset()
    writers: dict[str, frozenset[int]] = field(default_factory=dict)

    def writes(self, line: int, outputs: Sequence[str], vague: bool) -> bool:
        """Whether `line` writes one of `outputs` for certain (a global-data byte is matched alone when
        some line writes that byte in particular, else by its section), or with `vague`, may write it
        (an `ANY_STATE` line)."""
        if vague:
            return line in self.writers.get(ANY_STATE, ()) and any(o != "action" for o in outputs)
        for o in outputs:
            key = o if o in self.writers else o.split("+")[0]
            if line in self.writers.get(key, ()):
                return True
        return False

    @staticmethod
    def of_ir(program: n.Program, variables: dict[str, tuple[str, int, int]]) -> LineFacts:
        """`variables`: each global's (section, offset, size), to name the section a store writes."""
        refs: dict[n.Value, str] = {}
        for block in program.blocks:
            for instr in block.instrs:
                if isinstance(instr, n.MapLookup):
                    refs[instr.out] = instr.map_name
        lines: set[int] = set()
        writers: dict[str, set[int]] = {}
        for block in program.blocks:
            for instr in block.instrs:
                lines.add(instr.line)
                target: str | None = None
                if isinstance(instr, n.MapUpdate | n.MapDelete):
                    target = f"map {instr.map_name}"
                elif isinstance(instr, n.StoreValue):
                    target = f"map {refs[instr.ref]}" if instr.ref in refs else ANY_STATE
                elif isinstance(instr, n.StoreGlobal):
                    target = ANY_STATE
                    if instr.name in variables:
                        section, offset, size = variables[instr.name]
                        target = f"global data {section}"
                        for i in range(offset, offset + size):
                            writers.setdefault(f"{target}+{i}", set()).add(instr.line)
                elif isinstance(instr, n.RingbufOutput):
                    target = f"ring buffer {instr.map_name}"
                if target is not None:
                    writers.setdefault(target, set()).add(instr.line)
            if block.terminator is not None:
                lines.add(block.terminator.line)
                if isinstance(block.terminator, n.Return):
                    writers.setdefault("action", set()).add(block.terminator.line)
        lines.discard(0)
        return LineFacts(frozenset(lines), {k: frozenset(v) for k, v in writers.items()})

    @staticmethod
    def of_bytecode(program: BytecodeProgram) -> LineFacts:
        lines: set[int] = set()
        state: set[int] = set()
        action: set[int] = set()
        insns = program.instructions
        for i, insn in enumerate(insns):
            line = program.line_of(i)
            lines.add(line)
            kind = insn.kind
            if kind in (Kind.ST, Kind.STX, Kind.ATOMIC) or (insn.is_helper_call and insn.imm in _STATE_HELPERS):
                state.add(line)
            # What r0 holds at an exit: the exit's line, or the line of the last move into r0 before it.
            if kind == Kind.EXIT or (kind in (Kind.MOV, Kind.ALU) and insn.dst == 0
                                     and i + 1 < len(insns) and insns[i + 1].kind == Kind.EXIT):
                action.add(line)
        lines.discard(0)
        return LineFacts(frozenset(lines), {ANY_STATE: frozenset(state), "action": frozenset(action)})


def _distinct(lines: Iterable[int], keep: frozenset[int] | None) -> list[int]:
    out: list[int] = []
    for line in lines:
        if line and (keep is None or line in keep) and (not out or out[-1] != line):
            out.append(line)
    return out


def diverging_line(trace_a: Sequence[int], trace_b: Sequence[int], facts: tuple[LineFacts, LineFacts],
                   outputs: Sequence[str], fault_line: int = 0) -> int:
    """The first line where the two executions differ.

    In order: the line where one side faulted; else a line both ran where A certainly writes a differing
    map, global or ring buffer and B has no store at all (`_lost_store`); else, when side A ran a line
    side B has but never ran,
    the last line before it that both ran (the branch that sent them apart); else the line A ran that
    wrote one of the differing `outputs` (`_writer`); else, when B ran a line A has but never ran, the
    last line both ran before it; else A's last line. Lines one program does not have at all (the
    function's own line in the bytecode's prologue) are not compared."""
    if fault_line:
        return fault_line
    known = [f.lines for f in facts if f.lines]
    common = frozenset.intersection(*known) if len(known) == 2 else None
    ta, tb = _distinct(trace_a, common), _distinct(trace_b, common)
    ran_a, ran_b = set(ta), set(tb)
    both = ran_a & ran_b
    lost = _lost_store(ta, facts, outputs, both)
    if lost:
        return lost
    parted = _parting(ta, ran_b, both)
    if parted:
        return parted
    written = _writer(_distinct(trace_a, None), facts, outputs, both)
    if written:
        return written
    parted = _parting(tb, ran_a, both)
    if parted:
        return parted
    for trace in (ta, tb, _distinct(trace_a, None), _distinct(trace_b, None)):
        if trace:
            return trace[-1]
    return 0


def _writer(trace: list[int], facts: tuple[LineFacts, LineFacts], outputs: Sequence[str], both: set[int]) -> int:
    """The line in `trace` that wrote a differing output: the first write of a map, global or ring
    buffer (later writes build on it), the last write of the action (the return that counted);
    whichever ran first. Lines known to write the output are preferred to lines that only may. A
    return the other side has no code for (LLVM puts the action's constant on the branch's line and
    leaves the return without one) counts as the last line both ran before it."""
    state = [o for o in outputs if o != "action"]
    for vague in (False, True):
        found: list[int] = []
        if state:
            found += [i for i, line in enumerate(trace) if any(f.writes(line, state, vague) for f in facts)][:1]
        if "action" in outputs and not vague:
            returns = [i for i, line in enumerate(trace) if any(f.writes(line, ["action"], False) for f in facts)]
            if returns:
                i = returns[-1]
                while i > 0 and both and trace[i] not in both:
                    i -= 1
                found.append(i)
        if found:
            return trace[min(found)]
    return 0


def _lost_store(trace: list[int], facts: tuple[LineFacts, LineFacts], outputs: Sequence[str], both: set[int]) -> int:
    """The first line both sides ran at which A writes one of the differing state `outputs` for certain
    and B stores nothing: the write B lacks. It comes before the parting of the traces, because the
    traces also part where one side merged a branch into a select (the IR's merged `if` runs its
    store on every path, the bytecode's branch skips it): a dropped store before such a branch was put
    at the branch's condition."""
    state = [o for o in outputs if o != "action"]
    b_stores = facts[1].writers.get(ANY_STATE, frozenset())
    if not state or not facts[1].lines:
        return 0
    for line in trace:
        if line in both and line not in b_stores and facts[0].writes(line, state, False):
            return line
    return 0


def _parting(trace: list[int], other_ran: set[int], both: set[int]) -> int:
    """In `trace`, the last line both sides ran before the first line the other side did not run."""
    for i, line in enumerate(trace):
        if line not in other_ran:
            shared = [x for x in trace[:i] if x in both]
            return shared[-1] if shared else line
    return 0
