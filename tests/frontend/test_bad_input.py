"""Wrong and unsupported programs: each must give a `DslError` pointing at the offending line.

Every `@xdp` program in `tests/frontend/bad_programs/*.py` is a small wrong program. The offending line
carries a marker comment:

    x: u8 = 300  # error: does not fit in u8
    x = pkt.len ** 2  # error: `**` works only on constants | hint: x * x

`# error: TEXT` says the message contains TEXT; an optional `| hint: TEXT` says the hint contains that
text. A marker inside the program's own lines belongs to that program. When the error is reported in an
`@inline` helper (outside the program's lines), the marker names the program: `# error(prog_name): ...`.
Programs whose names start with `_` are valid ones that the cases refer to (e.g. a program to call).

For each program, `fn.lower()` (the frontend alone, no backend or kernel) must raise a `DslError` (never
another exception) whose location is the marker's file and line, whose message and hint contain the
expected text, and whose rendering shows the file:line:column, the source line, a caret and the hint.
A case that the frontend cannot get right yet is listed in `XFAIL` with the reason (strict).
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from pybpfdsl import DslError
from pybpfdsl.program import XdpProgram

BAD_DIR = Path(__file__).parent / "bad_programs"
MARKER = re.compile(r"#\s*error(?:\((?P<owner>\w+)\))?:\s*(?P<message>.*?)\s*(?:\|\s*hint:\s*(?P<hint>.*?)\s*)?$")
MIN_CASES = 45

# Program name -> why the frontend does not (yet) report it as the marker says. Strict: an xfail that
# starts passing fails the suite, so the entry is removed when the frontend is fixed.
XFAIL: dict[str, str] = {}


@dataclass(frozen=True)
class Marker:
    line: int
    owner: str | None
    message: str
    hint: str | None


@dataclass(frozen=True)
class Case:
    module: ModuleType
    file: Path
    name: str
    program: XdpProgram
    marker: Marker

    @property
    def id(self) -> str:
        return f"{self.file.stem}::{self.name}"


def _load(path: Path) -> ModuleType:
    name = f"_pybpfdsl_bad_programs_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _markers(path: Path) -> list[Marker]:
    """The `# error:` comments of a file (real comments only, found with the tokenizer)."""
    out = []
    with path.open("rb") as handle:
        for token in tokenize.tokenize(handle.readline):
            if token.type == tokenize.COMMENT:
                m = MARKER.fullmatch(token.string)
                if m is not None:
                    out.append(Marker(token.start[0], m["owner"], m["message"], m["hint"]))
    return out


def _programs(module: ModuleType) -> list[tuple[str, XdpProgram]]:
    """The module's @xdp programs; a name starting with `_` is a valid program the cases use, not a case."""
    return [(name, obj) for name, obj in vars(module).items()
            if isinstance(obj, XdpProgram) and obj.function.__module__ == module.__name__
            and not name.startswith("_")]


def _span(program: XdpProgram) -> range:
    lines, first = inspect.getsourcelines(program.function)
    return range(first, first + len(lines))


def collect() -> list[Case]:
    cases = []
    for path in sorted(BAD_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module = _load(path)
        markers = _markers(path)
        used: set[int] = set()
        for name, program in _programs(module):
            span = _span(program)
            mine = [m for m in markers if m.owner == program.name or (m.owner is None and m.line in span)]
            assert len(mine) == 1, f"{path.name}:{name}: expected one `# error:` marker, found {len(mine)}"
            used.add(mine[0].line)
            cases.append(Case(module, path, name, program, mine[0]))
        orphans = [m.line for m in markers if m.line not in used]
        assert not orphans, f"{path.name}: markers on lines {orphans} belong to no @xdp program"
    return cases


CASES = collect()


def _params() -> list[object]:
    params = []
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[case.name])] if case.name in XFAIL else []
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= MIN_CASES
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), "program names must be unique across the bad_programs modules"
    assert set(XFAIL) <= set(names)


@pytest.mark.parametrize("case", _params())
def test_bad_program_is_rejected_at_its_line(case: Case) -> None:
    try:
        case.program.lower()
    except DslError as exc:
        err = exc
    except Exception as exc:
        pytest.fail(f"{case.id}: {type(exc).__name__} instead of DslError: {exc!r}")
    else:
        pytest.fail(f"{case.id}: the frontend accepted this program")
    loc = err.location
    assert loc is not None, f"{case.id}: the error has no location: {err}"
    assert Path(loc.file).resolve() == case.file.resolve(), f"{case.id}: reported in {loc.file}"
    assert loc.line == case.marker.line, f"{case.id}: reported at line {loc.line}, expected {case.marker.line}:\n{err}"
    assert case.marker.message in err.message, f"{case.id}: unexpected message:\n{err}"
    if case.marker.hint is not None:
        assert err.hint is not None and case.marker.hint in err.hint, f"{case.id}: unexpected hint:\n{err}"

    # The rendering: "file:line:col: error: message", the source line, a caret under it, the hint.
    source_line = case.file.read_text(encoding="utf-8").splitlines()[loc.line - 1]
    assert loc.text == source_line
    rendered = str(err).splitlines()
    assert rendered[0] == f"{loc.file}:{loc.line}:{loc.column + 1}: error: {err.message}"
    assert rendered[1] == "    " + source_line.rstrip()
    assert rendered[2].strip() == "^"
    assert len(rendered[2]) - 1 >= len(source_line) - len(source_line.lstrip()) + 4
    if err.hint:
        assert rendered[-1] == f"hint: {err.hint}"
    else:
        assert not any(line.startswith("hint:") for line in rendered)


def test_break_outside_a_loop_never_reaches_the_dsl() -> None:
    """`break`/`continue` outside a loop are rejected by Python itself, before any decorator runs."""
    for stmt in ("break", "continue"):
        source = f"def f(pkt):\n    {stmt}\n    return 2\n"
        with pytest.raises(SyntaxError, match="loop"):
            compile(source, "<bad>", "exec")
