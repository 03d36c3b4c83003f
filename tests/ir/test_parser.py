"""IR text round-trips: `parse_program(format_program(p))` is `p` again, and printing it gives the same text,
for every example, every differential construct, the golden files and generated programs
(`tests/generated/program_strategy.py`, seeded). Bad text is refused with the line and column at fault.
Hand-written IR text runs in the IR interpreter.
"""

from __future__ import annotations

import importlib
import pkgutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

import examples
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.check import check_program
from pybpfdsl.ir.interpreter import run_program
from pybpfdsl.ir.parser import IRSyntaxError, parse_program
from pybpfdsl.ir.printer import format_program, used_structs
from pybpfdsl.ir.rules import IRError
from pybpfdsl.ir.syntax import syntax_of
from pybpfdsl.lang.actions import XDP_DROP, XDP_PASS
from pybpfdsl.program import XdpProgram
from tests.differential import constructs
from tests.generated.checks import load_module
from tests.generated.program_strategy import RandomChooser, generate_program
from tests.ir.ir_runner import environment_for

GENERATED = 20
"""Generated programs round-tripped (seeds 0..19 of the seeded generator; about 0.1 s each; 60 seeds passed when
this was written)."""


def _xdp_programs() -> list[tuple[str, XdpProgram]]:
    modules = [importlib.import_module(f"examples.{m.name}") for m in pkgutil.iter_modules(examples.__path__)]
    found = []
    for module in [*modules, constructs]:
        for name, value in vars(module).items():
            if isinstance(value, XdpProgram):
                found.append((f"{module.__name__.split('.')[-1]}.{name}", value))
    return found


PROGRAMS = _xdp_programs()


def _assert_round_trips(program: n.Program) -> None:
    text = format_program(program)
    parsed = parse_program(text, [t.cls for t in used_structs(program)])
    assert parsed == program
    assert format_program(parsed) == text
    alone = parse_program(text)  # without the classes: structs made from their declarations
    assert format_program(alone) == text
    check_program(alone)


def test_every_example_and_construct_is_covered() -> None:
    assert len(PROGRAMS) >= 25


@pytest.mark.parametrize("name,fn", PROGRAMS, ids=[name for name, _ in PROGRAMS])
def test_an_example_round_trips(name: str, fn: XdpProgram) -> None:
    _assert_round_trips(fn.lower().program)


@pytest.fixture(scope="module")
def directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pybpfdsl-ir-text-") as path:
        yield Path(path)


def test_generated_programs_round_trip(directory: Path) -> None:
    for seed in range(GENERATED):
        gen = generate_program(RandomChooser(seed))
        module, _ = load_module(gen.source, directory, f"ir_text_{seed}")
        program = getattr(module, gen.function).lower().program
        try:
            _assert_round_trips(program)
        except AssertionError:
            raise AssertionError(f"seed {seed} does not round-trip:\n{gen.source}") from None


# ------------------------------------------------------------------------------ hand-written IR
TINY = """\
program tiny  ; hand_written.py:1
struct Key {addr: u32, port: u16}
map @counts: hash<struct Key, u64>[16]
global @total: u64 = 0
global @scale: float = 1.5 (raw 6442450944)
^entry0:
  %len.0: u32 = packet_len
  %1: u64 = const 0
  %2: bool = in_bounds %1, 2
  branch %2, ^read1, ^done2(%len.0)
^read1:
  %3: u16 = load_packet le16 %1
  %4: u32 = convert %3: u16
  jump ^done2(%4)
^done2(%x.5: u32):
  %6: u32 = const 256
  %7: bool = cmp ge %x.5, %6
  %8: u32 = const 1
  %9: u32 = const 2
  %10: u32 = select %7, %8, %9
  %11: u64 = const 1
  atomic_add_global @total, %11
  return %10
"""


def test_hand_written_ir_runs() -> None:
    program = parse_program(TINY)
    check_program(program)
    assert format_program(parse_program(format_program(program))) == format_program(program)
    env = environment_for(program)
    actions = [run_program(program, packet, env).action for packet in (b"\x00\x01", b"\x01\x00", b"\x05", b"")]
    assert actions == [XDP_DROP, XDP_PASS, XDP_PASS, XDP_PASS]  # 0x0100 little-endian is 256
    assert env.globals["total"].raw_get() == 4
    assert env.globals["scale"].value == 1.5


def test_blank_lines_and_comments_are_skipped() -> None:
    text = TINY.replace("^read1:\n", "\n; the two-byte read\n^read1:  ; little-endian\n")
    text = text.replace("%6: u32 = const 256", "%6: u32 = const 256  ; 0x0100")
    assert format_program(parse_program(text)) == format_program(parse_program(TINY))


def test_a_float_constant_may_leave_out_its_raw_bits() -> None:
    program = parse_program(TINY.replace("1.5 (raw 6442450944)", "1.5"))
    assert program.globals[1].init == 6442450944


BAD = [
    # (replace this, with this, the error points at this text of the changed line, the message says)
    ("packet_len", "packet_length", "packet_length", "expected an instruction"),
    ("cmp ge %x.5, %6", "cmp ge %x.55, %6", "%x.55", "%x.55 is never defined"),
    ("^done2(%len.0)", "^done2(%n.0)", "%n.0", "is defined as %len.0"),
    ("convert %3: u16", "convert %3: u32", "%3: u32", "%3 is u16, not u32"),
    ("jump ^done2(%4)", "jump ^done9(%4)", "^done9", "no block ^done9"),
    ("load_packet le16", "load_packet le12", "12 ", "12 bits is not whole bytes"),
    ("%6: u32 = const 256", "%6: u31 = const 256", "u31", "unknown type 'u31'"),
    ("%8: u32 = const 1", "%6: u32 = const 1", "%6", "defined twice (first on line 16)"),
    ("map @counts: hash<struct Key,", "map @counts: hash<struct Flow,", "struct Flow", "struct Flow is not declared"),
    ("struct Key {addr: u32, port: u16}", "struct Key {}", "Key", "Key declares no fields"),
    ("struct Key {addr: u32, port: u16}", "struct Key {addr: u32, port: ref<counts>}", "ref<counts>",
     "must have a scalar type"),
    ("atomic_add_global @total", "%12: u64 = atomic_add_global @total", "atomic_add_global", "has no result"),
    ("%7: bool = cmp ge", "cmp ge", "cmp", "needs a result"),
    ("1.5 (raw 6442450944)", "1.5 (raw 5)", "1.5", "is not the float of raw 5"),
    ("select %7, %8, %9", "select %7, %8 %9", "%9", "expected ','"),
    ("in_bounds %1, 2", "in_bounds %1, 2, 3", ", 3", "unexpected text after the end"),
    ("hash<", "hashed<", "hashed", "expected one of hash, array"),
]


@pytest.mark.parametrize("old,new,at,message", BAD, ids=[b[1] for b in BAD])
def test_bad_text_is_refused_at_its_line_and_column(old: str, new: str, at: str, message: str) -> None:
    assert TINY.count(old) == 1
    text = TINY.replace(old, new)
    number = next(i for i, line in enumerate(text.splitlines(), 1) if new in line)
    with pytest.raises(IRSyntaxError) as caught:
        parse_program(text)
    error = caught.value
    line = text.splitlines()[number - 1]
    assert (error.line, error.column) == (number, line.index(at) + 1), str(error)
    assert message in error.message
    assert str(error).startswith(f"line {number}, column {error.column}: ")
    assert line in str(error)  # the line is shown, with a caret under the column


def test_a_block_without_terminator_is_named() -> None:
    text = TINY.replace("  return %10\n", "")
    with pytest.raises(IRSyntaxError, match=r"line 15, column 1: block \^done2 has no terminator"):
        parse_program(text)


def test_parsed_text_is_checked_by_the_same_rules() -> None:
    wrong = TINY.replace("%10: u32 = select", "%10: u64 = select").replace("return %10", "return %9")
    with pytest.raises(IRError, match="select arm"):
        check_program(parse_program(wrong))


# ------------------------------------------------------------------------------ declarations
def test_every_operation_declares_its_text_and_its_rule() -> None:
    """An operation is one class: its fields, its `syntax` and its `check`; the parser finds it by the
    `INSTRUCTIONS` table, so a class left out of it could be printed but not read."""
    bases = {n.Instr, n.PureInstr, n.EffectInstr}
    declared = {cls for cls in vars(n).values() if isinstance(cls, type) and issubclass(cls, n.Instr)} - bases
    assert declared == set(n.INSTRUCTIONS)
    for cls in (*n.INSTRUCTIONS, *n.TERMINATORS, *n.DECLARATIONS):
        assert "syntax" in vars(cls), f"{cls.__name__} declares no syntax"
        syntax_of(cls)  # every field appears in it once
    for cls in n.INSTRUCTIONS:
        assert "check" in vars(cls), f"{cls.__name__} declares no type rule"
    words = [w for cls in n.INSTRUCTIONS for w in syntax_of(cls).first_words]
    assert len(words) == len(set(words)), "two operations start with the same word"


def test_a_syntax_that_leaves_out_a_field_is_refused() -> None:
    @dataclass(frozen=True)
    class Halved(n.Instr):
        syntax: ClassVar[str] = "halved {value}"
        out: n.Value
        value: n.Value
        rounding: int

    with pytest.raises(TypeError, match="must name each of"):
        syntax_of(Halved)
