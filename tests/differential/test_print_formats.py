"""One definition of a print's format (`lang.printk.PrintFormat`, decided by the type checker): the text the
kernel writes to the trace pipe, the IR interpreter's and pure Python's agree, for prints drawn at random
from every kind of argument: constant strings (with `%` and conversion-like text), numbers written in the
call, negative numbers (values), each integer width signed and unsigned, bools, conversions that wrap and
the packet's length.

The oracle is Python's own `print`: the arguments' values shown with `str`, separated by spaces (a bool as
True or False). The values come from Globals the test sets, so they are not constants.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl.differential import run_ir, run_python
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang import printk
from pybpfdsl.lang.types import i8, i16, i64, u64
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.trace_pipe import drain
from tests.generated.checks import load_module

WIDTHS = {f"{sign}{bits}": (bits, sign == "i") for bits in (8, 16, 32, 64) for sign in ("u", "i")}
PACKET = bytes(12) + b"\x08\x00" + bytes(46)
MARK = "pbdfmt"


def wrap(value: int, bits: int, signed: bool) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if signed and value >> (bits - 1) else value


@dataclass(frozen=True)
class Arg:
    """One argument of a print: its source and what Python's print shows for it, given the Globals."""

    source: str
    shows: Callable[[dict[str, int]], str]


def _global(name: str) -> Arg:
    return Arg(f"g_{name}.value", lambda g: str(g[name]))


def _converted(target: str, source: str) -> Arg:
    bits, signed = WIDTHS[target]
    return Arg(f"{target}(g_{source}.value)", lambda g: str(wrap(g[source], bits, signed)))


TEXT = st.lists(st.sampled_from([*"ab %dlu-\t", "%%", "llu", "%lld", "%s", "100%", "%u%"]), max_size=6).map("".join)

ARGS: st.SearchStrategy[Arg] = st.one_of(
    TEXT.map(lambda s: Arg(repr(s), lambda g, s=s: s)),
    st.integers(0, 2**64 - 1).map(lambda n: Arg(str(n), lambda g, n=n: str(n))),
    st.integers(1, 2**31).map(lambda n: Arg(f"-{n}", lambda g, n=n: str(-n))),
    st.sampled_from(sorted(WIDTHS)).map(_global),
    st.sampled_from(sorted(WIDTHS)).map(lambda t: Arg(f"g_{t}.value < 0", lambda g, t=t: str(g[t] < 0))),
    st.tuples(st.sampled_from(sorted(WIDTHS)), st.sampled_from(sorted(WIDTHS))).map(lambda ts: _converted(*ts)),
    st.just(Arg("pkt.len", lambda g: str(len(PACKET)))),
)


def _is_value(arg: Arg) -> bool:
    return not (arg.source.startswith(("'", '"')) or arg.source.isdigit())


@st.composite
def prints(draw: st.DrawFn) -> list[Arg]:
    """A print's arguments after the marker: up to 3 values, any constants around them."""
    args = draw(st.lists(ARGS, max_size=6))
    values = [a for a in args if _is_value(a)]
    for extra in values[printk.MAX_VALUES:]:
        args.remove(extra)
    return args


globals_values = st.fixed_dictionaries(
    {t: st.integers(-(1 << (bits - 1)) if signed else 0, (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1)
     for t, (bits, signed) in WIDTHS.items()})

HEADER = "from pybpfdsl import XDP_PASS, Global, Packet, xdp, " + ", ".join(sorted(WIDTHS)) + "\n\n" + "".join(
    f"g_{t} = Global({t}, 0)\n" for t in sorted(WIDTHS))


@pytest.fixture(scope="module")
def directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pybpfdsl-printk-") as path:
        yield Path(path)


_count = iter(range(1 << 30))


def program(args: list[Arg], directory: Path) -> tuple[ModuleType, XdpProgram]:
    call = ", ".join([repr(MARK), *(a.source for a in args)])
    source = HEADER + f"\n\n@xdp\ndef shows(pkt: Packet) -> int:\n    print({call})\n    return XDP_PASS\n"
    module, _ = load_module(source, directory, f"printk_{next(_count)}")
    return module, module.shows


def expected(args: list[Arg], values: dict[str, int]) -> str:
    return " ".join([MARK, *(a.shows(values) for a in args)])


def set_globals(module: ModuleType, values: dict[str, int]) -> None:
    for t, v in values.items():
        getattr(module, f"g_{t}").value = v


def printed(run: Callable[[XdpProgram, list[bytes]], object], prog: XdpProgram) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run(prog, [PACKET])
    return out.getvalue().rstrip("\n")


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(args=prints(), values=globals_values)
def test_python_and_the_ir_interpreter_print_what_python_would(args: list[Arg], values: dict[str, int],
                                                               directory: Path) -> None:
    module, prog = program(args, directory)
    set_globals(module, values)
    want = expected(args, values)
    assert printed(run_python, prog) == want
    assert printed(run_ir, prog) == want


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(args=prints(), values=globals_values)
def test_the_kernel_writes_what_python_prints(args: list[Arg], values: dict[str, int], directory: Path,
                                              tracefs: Path) -> None:
    module, prog = program(args, directory)
    pipe = tracefs / "trace_pipe"
    drain(pipe, quiet_seconds=0.02)
    with prog.load() as loaded:
        set_globals(module, values)  # the kernel's .bss now
        loaded.run(PACKET)
        lines = [line.text for line in drain(pipe, quiet_seconds=0.1) if MARK in line.text]
        assert printed(run_python, prog) == expected(args, values)
    assert lines == [expected(args, values)]


def test_a_format_is_one_frozen_description() -> None:
    fmt = printk.PrintFormat(("a 100%", printk.Shown(i8), "5", printk.Shown(u64)))
    assert fmt.fmt == "a 100%% %d 5 %llu"
    assert fmt.data == b"a 100%% %d 5 %llu\0"
    assert [v.passed for v in fmt.values] == [i64, u64]
    assert fmt.text([-3, 2**64 - 1]) == "a 100% -3 5 18446744073709551615"
    assert fmt == printk.PrintFormat(fmt.parts) and hash(fmt) == hash(printk.PrintFormat(fmt.parts))
    with pytest.raises(ValueError, match="shows 2 values, not 1"):
        fmt.text([1])


def test_the_checker_records_the_format_the_emitter_compiles(directory: Path) -> None:
    _, prog = program([Arg("'x%d'", lambda g: "x%d"), _global("i16"), Arg("7", lambda g: "7")], directory)
    formats = list(prog.lower().facts.print_formats.values())
    assert formats == [printk.PrintFormat((MARK, "x%d", printk.Shown(i16), "7"))]
    ops = [op for block in prog.lower().program.blocks for op in block.instrs
           if isinstance(op, n.TracePrintk)]
    assert [op.fmt for op in ops] == [formats[0].fmt] == [f"{MARK} x%%d %d 7"]
