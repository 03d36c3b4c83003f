"""The IR's stable textual form, for tests (golden text), `prog.ir` and debugging.

Each record is written by its class's `syntax` (`syntax.py`); `parser.parse_program` reads the text back.
The layout: a `program` header, the structs the program uses, its maps, ring buffers and globals, then
each block (`^name(params):`) with its instructions and terminator, one a line, each followed by
`; line N`, its Python source line.
"""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.syntax import syntax_of
from pybpfdsl.ir.types import IRType, StructType


def _typed(v: n.Value) -> str:
    return f"{v}: {v.type}"


def format_instr(i: n.Instr | n.Terminator) -> str:
    """One instruction (or terminator) as text, without its line annotation."""
    text = syntax_of(type(i)).render(i)
    result = i.result if isinstance(i, n.Instr) else None
    return f"{_typed(result)} = {text}" if result is not None else text


def format_terminator(t: n.Terminator) -> str:
    return format_instr(t)


def used_structs(p: n.Program) -> tuple[StructType, ...]:
    """The struct types the program's declarations and values use, in order of first use."""
    found: dict[StructType, None] = {}

    def see(t: IRType) -> None:
        if isinstance(t, StructType):
            found.setdefault(t)

    for m in p.maps:
        see(m.key_type)
        see(m.value_type)
    for r in p.ringbufs:
        see(r.record)
    for b in p.blocks:
        for v in b.params:
            see(v.type)
        for i in b.instrs:
            for v in i.operands():
                see(v.type)
            if i.result is not None:
                see(i.result.type)
    return tuple(found)


def format_struct(t: StructType) -> str:
    inner = ", ".join(f"{f.name}: {f.type}" for f in t.cls.fields())
    return f"struct {t.cls.__name__} {{{inner}}}"


def _with_line(text: str, line: int) -> str:
    return f"  {text:<60} ; line {line}" if line else f"  {text}"


def format_program(p: n.Program) -> str:
    """The whole program: declarations, then each block."""
    out = [f"program {p.name}  ; {p.source_file}:{p.first_line}"]
    out.extend(format_struct(t) for t in used_structs(p))
    for decl in (*p.maps, *p.ringbufs, *p.globals):
        out.append(syntax_of(type(decl)).render(decl))
    for b in p.blocks:
        params = "(" + ", ".join(_typed(v) for v in b.params) + ")" if b.params else ""
        out.append(f"^{b.name}{params}:")
        for i in b.instrs:
            out.append(_with_line(format_instr(i), i.line))
        if b.terminator is not None:
            out.append(_with_line(format_terminator(b.terminator), b.terminator.line))
    return "\n".join(out) + "\n"
