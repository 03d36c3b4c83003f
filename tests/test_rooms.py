"""The room rule (issue 14): each folder of the package imports only the folders below it.

    lang      nothing            bpf       nothing
    ir        lang               frontend  ir, lang
    backend   ir, lang, bpf      verify    ir, lang, bpf
    runtime   bpf, lang, ir      top level (program.py, cli, differential, ...) anything

Imports are read from the source with `ast`, so an import inside a function counts too: a lazy import
still ties the rooms together. The imports that break the rule today are listed in KNOWN_BREAKS; the
test fails when a new one appears and when a listed one is gone (so the list only shrinks and stays
true). The architecture step removes the rest.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pybpfdsl"

ALLOWED: dict[str, frozenset[str]] = {
    "lang": frozenset(),
    "bpf": frozenset(),
    "ir": frozenset({"lang"}),
    "frontend": frozenset({"ir", "lang"}),
    "backend": frozenset({"ir", "lang", "bpf"}),
    "verify": frozenset({"ir", "lang", "bpf"}),
    "runtime": frozenset({"bpf", "lang", "ir"}),
}
TOP = "top"

KNOWN_BREAKS: frozenset[tuple[str, str]] = frozenset({
    ("pybpfdsl.bpf.interpreter", "lang"),
    ("pybpfdsl.bpf.interpreter", "top"),
    ("pybpfdsl.bpf.interpreter", "runtime"),
    ("pybpfdsl.bpf.raw_load", "runtime"),
    ("pybpfdsl.runtime.attach", "top"),
    ("pybpfdsl.runtime.attach", "verify"),
    ("pybpfdsl.verify.analysis.api", "top"),
    ("pybpfdsl.verify.equivalence.bytecode_program", "runtime"),
    ("pybpfdsl.verify.equivalence.counterexample", "top"),
    ("pybpfdsl.verify.equivalence.proof_cache", "top"),
    ("pybpfdsl.verify.equivalence.prove", "top"),
})
"""(module, room it wrongly imports) as of the first measurement; to be emptied by issue 14."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    return imports_in(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool = False) -> set[str]:
    """The pybpfdsl modules a module's source imports, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
    return {name for name in found if name == "pybpfdsl" or name.startswith("pybpfdsl.")}


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in ALLOWED else TOP


def breaks() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        room = room_of(module)
        if room == TOP:
            continue
        for target in _imports(path):
            other = room_of(target)
            if other != room and other not in ALLOWED[room]:
                found.add((module, other))
    return found


def test_no_new_upward_imports() -> None:
    new = breaks() - KNOWN_BREAKS
    assert not new, f"imports that break the room rule (see this file's docstring): {sorted(new)}"


def test_known_breaks_list_is_current() -> None:
    gone = KNOWN_BREAKS - breaks()
    assert not gone, f"these no longer break the rule; remove them from KNOWN_BREAKS: {sorted(gone)}"


def test_the_checker_sees_upward_imports() -> None:
    """The checker itself: absolute, relative and function-local imports are all seen."""
    source = "from ..program import X\nimport pybpfdsl.verify.analysis\ndef f():\n    from . import elf\n"
    found = imports_in(source, "pybpfdsl.bpf.interpreter")
    assert found == {"pybpfdsl.program", "pybpfdsl.verify.analysis", "pybpfdsl.bpf"}
    assert [room_of(m) for m in sorted(found)] == ["bpf", TOP, "verify"]
    assert room_of("pybpfdsl") == TOP and room_of("pybpfdsl.cli_commands.run") == TOP
