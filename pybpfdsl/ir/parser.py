"""IR text back into a `Program`: the inverse of `printer.format_program`.

`parse_program(format_program(p), structs)` equals `p`, and printing it again gives the same text. Each
record is read by its class's `syntax` (`syntax.py`), so the parser knows no operation by name. An error
(`IRSyntaxError`) names the line and the column and shows the line.

Reading is two passes: the first collects every value's definition (results and block parameters) and
every block name, so the second can read operands in any block order and check each use names a value
that is defined, with the type it was defined with.

Structs: the text declares each one (`struct Flow {src: u32, dport: u16}`). A class passed in `structs`
under that name is used when its fields match (then the program is equal to the one printed); otherwise
the parser makes a `Struct` class with those fields.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.syntax import NAME, WORD, Cursor, IRSyntaxError, Syntax, read_type, read_value_name, syntax_of
from pybpfdsl.ir.types import IRType, StructType
from pybpfdsl.lang.structs import Struct, StructLayoutError
from pybpfdsl.lang.types import ScalarType

__all__ = ["IRSyntaxError", "parse_program"]

_LINE_NOTE = re.compile(r"line\s+(\d+)")
_HEADER = re.compile(r"program\s+(?P<name>\S+)\s*;\s*(?P<file>.*):(?P<line>\d+)\s*$")
_BLOCK_HEADER = re.compile(r"\^(?P<name>[\w$.<>]+)")


def _dispatch(classes: Iterable[type]) -> dict[str, Syntax]:
    """Each syntax by the words its text may start with (`add` and `sub` both start a `Binary`)."""
    table: dict[str, Syntax] = {}
    for cls in classes:
        s = syntax_of(cls)
        for word in s.first_words:
            assert word not in table, f"{cls.__name__} and {table[word].cls.__name__} both start with {word!r}"
            table[word] = s
    return table


_INSTRUCTIONS = _dispatch(n.INSTRUCTIONS)
_TERMINATORS = _dispatch(n.TERMINATORS)
_DECLARATIONS = _dispatch(n.DECLARATIONS)


@dataclass
class _Line:
    """One line of the text: its number, its text without the `; line N` note, and that note."""

    number: int
    text: str
    source_line: int = 0


@dataclass
class _Reader:
    """The scope both passes read against: structs, values and blocks seen so far."""

    lines: list[str]
    known_structs: dict[str, type[Struct]]
    structs: dict[str, StructType] = field(default_factory=dict)
    values: dict[int, n.Value] = field(default_factory=dict)
    defined_at: dict[int, int] = field(default_factory=dict)
    blocks: dict[str, int] = field(default_factory=dict)

    # ----------------------------------------------------------------------------- Scope, for syntax.py
    def value(self, hint: str, id_: int, declared: IRType | None, cursor: Cursor, start: int) -> n.Value:
        found = self.values.get(id_)
        shown = f"%{hint}.{id_}" if hint else f"%{id_}"
        if found is None:
            raise cursor.error(f"{shown} is never defined", start)
        if found.hint != hint:
            raise cursor.error(f"{shown} is defined as {found} (line {self.defined_at[id_]})", start)
        if declared is not None and declared != found.type:
            raise cursor.error(f"{found} is {found.type}, not {declared}", start)
        return found

    def struct(self, name: str, cursor: Cursor, start: int) -> StructType:
        found = self.structs.get(name)
        if found is None:
            raise cursor.error(f"struct {name} is not declared (declare it: struct {name} {{field: u32, ...}})",
                               start)
        return found

    def block(self, name: str, cursor: Cursor, start: int) -> str:
        if name not in self.blocks:
            raise cursor.error(f"no block ^{name}", start)
        return name

    # ----------------------------------------------------------------------------- definitions
    def define(self, cursor: Cursor) -> n.Value:
        """`%hint.N: type` at the cursor: a new value."""
        hint, id_, start = read_value_name(cursor)
        cursor.take_literal(":")
        value = n.Value(id_, read_type(cursor, self), hint)
        if id_ in self.values:
            raise cursor.error(f"{value} is defined twice (first on line {self.defined_at[id_]})", start)
        self.values[id_] = value
        self.defined_at[id_] = cursor.line
        return value

    def declare_struct(self, c: Cursor) -> None:
        c.take_literal("struct")
        c.skip_space()
        start = c.pos
        name = c.take(NAME, "a struct name").group()
        if name in self.structs:
            raise c.error(f"struct {name} is declared twice", start)
        c.take_literal("{")
        layout: list[tuple[str, ScalarType]] = []
        while not c.peek("}"):
            if layout:
                c.take_literal(",")
            fname = c.take(NAME, "a field name").group()
            c.take_literal(":")
            c.skip_space()
            type_start = c.pos
            ftype = read_type(c, self)
            if not isinstance(ftype, ScalarType):
                raise c.error(f"field {fname} must have a scalar type, not {ftype}", type_start)
            layout.append((fname, ftype))
        c.take_literal("}")
        c.expect_end()
        self.structs[name] = StructType(self._struct_class(name, layout, c, start))

    def _struct_class(self, name: str, layout: list[tuple[str, ScalarType]], c: Cursor, at: int) -> type[Struct]:
        known = self.known_structs.get(name)
        if known is not None:
            if [(f.name, f.type) for f in known.fields()] != layout:
                raise c.error(f"struct {name} does not have the fields of the given class {known.__qualname__}", at)
            return known
        try:
            made: type[Struct] = type(name, (Struct,), {"__annotations__": dict(layout), "__module__": __name__})
        except StructLayoutError as exc:
            raise c.error(str(exc), at) from None
        return made


def _split(text: str) -> list[_Line]:
    """The lines that say something: `;` starts a comment (`; line N` is an instruction's source line),
    except on the header, whose `; FILE:LINE` is part of it."""
    out: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not out:
            if raw.strip() and not raw.lstrip().startswith(";"):
                out.append(_Line(number, raw.rstrip()))
            continue
        body, _, comment = raw.partition(";")
        note = _LINE_NOTE.fullmatch(comment.strip())
        if body.strip():
            out.append(_Line(number, body.rstrip(), int(note.group(1)) if note else 0))
    return out


def parse_program(text: str, structs: Iterable[type[Struct]] = ()) -> n.Program:
    """The program `text` (as `format_program` writes it) describes; `structs` are classes to use for the
    struct declarations of the same name and fields."""
    lines = _split(text)
    reader = _Reader(text.splitlines(), {cls.__name__: cls for cls in structs})
    if not lines:
        raise IRSyntaxError(1, 1, "empty program: expected 'program NAME  ; FILE:LINE'")
    header = _HEADER.match(lines[0].text)
    if header is None:
        raise IRSyntaxError(lines[0].number, 1, "expected 'program NAME  ; FILE:LINE'", lines[0].text)
    body = lines[1:]
    _first_pass(reader, body)
    decls: list[object] = []
    blocks: list[n.Block] = []
    for line in body:
        c = Cursor(line.text, line.number)
        if line.text.startswith("^"):
            blocks.append(n.Block(_BLOCK_HEADER.match(line.text)["name"],  # type: ignore[index]
                                  _block_params(reader, c)))
            continue
        if not line.text[0].isspace():
            if not line.text.startswith("struct"):
                decls.append(_record(_DECLARATIONS, reader, c, {}, "a declaration (struct, map, ringbuf, global)"))
            continue
        if not blocks:
            raise c.error("an instruction before the first block (^name:)")
        _instruction(reader, c, blocks[-1], line.source_line)
    for b in blocks:
        if b.terminator is None:
            raise IRSyntaxError(reader.blocks[b.name], 1, f"block ^{b.name} has no terminator (jump, branch, return)",
                                reader.lines[reader.blocks[b.name] - 1])
    if not blocks:
        raise IRSyntaxError(lines[-1].number, 1, "the program has no blocks", lines[-1].text)
    return n.Program(
        header["name"], header["file"], int(header["line"]), blocks,
        maps=tuple(d for d in decls if isinstance(d, n.MapDecl)),
        globals=tuple(d for d in decls if isinstance(d, n.GlobalDecl)),
        ringbufs=tuple(d for d in decls if isinstance(d, n.RingBufDecl)),
    )


def _first_pass(reader: _Reader, body: list[_Line]) -> None:
    """Structs, block names and every value's definition, so operands can be read in any order."""
    for line in body:
        c = Cursor(line.text, line.number)
        if line.text.startswith("struct"):
            reader.declare_struct(c)
        elif line.text.startswith("^"):
            m = _BLOCK_HEADER.match(line.text)
            if m is None:
                raise c.error("expected a block name (^name)")
            if m["name"] in reader.blocks:
                raise c.error(f"block ^{m['name']} is declared twice (first on line {reader.blocks[m['name']]})")
            reader.blocks[m["name"]] = line.number
            c.pos = m.end()
            if c.peek("("):
                c.take_literal("(")
                defined = 0
                while not c.peek(")"):
                    if defined:
                        c.take_literal(",")
                    reader.define(c)
                    defined += 1
                c.take_literal(")")
            c.take_literal(":")
            c.expect_end()
        elif line.text[0].isspace() and line.text.lstrip().startswith("%"):
            reader.define(c)


def _block_params(reader: _Reader, c: Cursor) -> list[n.Value]:
    """The parameters of the block header at the cursor, already defined by the first pass."""
    params: list[n.Value] = []
    c.take(_BLOCK_HEADER, "a block name (^name)")
    if c.peek("("):
        c.take_literal("(")
        while not c.peek(")"):
            if params:
                c.take_literal(",")
            _, id_, _ = read_value_name(c)
            params.append(reader.values[id_])
            c.take_literal(":")
            read_type(c, reader)
        c.take_literal(")")
    return params


def _instruction(reader: _Reader, c: Cursor, block: n.Block, source_line: int) -> None:
    if block.terminator is not None:
        raise c.error(f"block ^{block.name} already ended (with its terminator on an earlier line)")
    out: dict[str, object] = {}
    if c.peek("%"):
        _, id_, _ = read_value_name(c)
        out["out"] = reader.values[id_]
        c.take_literal(":")
        read_type(c, reader)
        c.take_literal("=")
    c.skip_space()
    word = WORD.match(c.text, c.pos)
    if word is not None and word.group() in _TERMINATORS and not out:
        term = _record(_TERMINATORS, reader, c, {}, "a terminator", source_line)
        assert isinstance(term, n.Terminator)
        block.terminator = term
        return
    instr = _record(_INSTRUCTIONS, reader, c, out, "an instruction", source_line)
    assert isinstance(instr, n.Instr)
    block.instrs.append(instr)


def _record(table: dict[str, Syntax], reader: _Reader, c: Cursor, fields: dict[str, object], what: str,
            source_line: int = 0) -> object:
    """The record at the cursor, read by the syntax its first word selects."""
    c.skip_space()
    word = WORD.match(c.text, c.pos)
    if word is None or word.group() not in table:
        found = repr(word.group()) if word else c.found().removeprefix("found ")
        raise c.error(f"expected {what} ({', '.join(sorted(table))}), found {found}")
    syntax = table[word.group()]
    has_result = "out" in {f.name for f in dataclasses.fields(syntax.cls)}
    if has_result != ("out" in fields):
        shown = "needs a result (%name.N: type = ...)" if has_result else "has no result"
        raise c.error(f"{word.group()} {shown}")
    syntax.read(c, reader, fields)
    c.expect_end()
    make: Callable[..., object] = syntax.cls
    return make(**fields) if syntax.cls in n.DECLARATIONS else make(**fields, line=source_line)
