"""The room rule (issue 14): each folder of the package imports only the folders below it.

    lang      nothing            bpf       nothing
    ir        lang               frontend  ir, lang
    backend   ir, lang, bpf      verify    ir, lang, bpf
    runtime   bpf, lang, ir      superopt  bpf, verify, runtime, lang, ir
    top level (program.py, cli, differential, ...) anything

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
    "superopt": frozenset({"bpf", "verify", "runtime", "lang", "ir"}),
}
TOP = "top"

KNOWN_BREAKS: frozenset[tuple[str, str]] = frozenset()
"""(module, room it wrongly imports): the breaks still to remove; issue 14 emptied the list."""


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


# ----------------------------------------------------------------- rooms already in order
# The frontend is split into stages and concepts (issue 14 §4); these keep it that way. Other rooms join
# the list as their part of the architecture step lands.
ACYCLIC_ROOMS = ("backend", "bpf", "frontend", "ir", "lang", "runtime", "verify")
LONG_MODULE_LINES = 600
LONG_MODULE_REASON = "Long because"
"""A module over LONG_MODULE_LINES lines says why in its docstring, in a sentence starting with this."""


def imported_modules(source: str, module: str, known: set[str], is_package: bool = False) -> set[str]:
    """The modules of `known` a module's source imports. `from pkg import mod` (mod a module) counts as
    importing pkg.mod only, as `import pkg.mod` does: both run pkg's __init__ first, and a package whose
    __init__ gathers its submodules' public names (a facade) would otherwise make every submodule that
    imports a sibling this way part of one cycle through the facade."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - (node.level - 1)]
                                + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found & known


def import_cycles(room: str) -> list[list[str]]:
    """The import cycles among a room's modules (strongly connected components of more than one module, or
    a module importing itself), function-local and TYPE_CHECKING imports included."""
    paths = {_module_name(p): p for p in sorted((PACKAGE / room).rglob("*.py"))}
    graph = {m: imported_modules(p.read_text(), m, set(paths), p.name == "__init__.py") for m, p in paths.items()}
    return strongly_connected(graph)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; only the components that are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph[step]))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles_in_ordered_rooms() -> None:
    found = {room: import_cycles(room) for room in ACYCLIC_ROOMS}
    assert not any(found.values()), f"modules that import one another (split the shared part out): {found}"


def test_long_modules_in_ordered_rooms_say_why() -> None:
    long = []
    for room in ACYCLIC_ROOMS:
        for path in sorted((PACKAGE / room).rglob("*.py")):
            source = path.read_text()
            docstring = ast.get_docstring(ast.parse(source)) or ""
            if source.count("\n") > LONG_MODULE_LINES and LONG_MODULE_REASON not in docstring:
                long.append(f"{_module_name(path)} ({source.count(chr(10))} lines)")
    assert not long, f"modules over {LONG_MODULE_LINES} lines whose docstring does not say why: {long}"


def test_the_cycle_checker_sees_cycles() -> None:
    """The checker itself: a two-module cycle through `from pkg import mod`, a self-import, no false cycle."""
    known = {"pybpfdsl.frontend.a", "pybpfdsl.frontend.b", "pybpfdsl.frontend"}
    assert imported_modules("from pybpfdsl.frontend import b\n", "pybpfdsl.frontend.a", known) == {
        "pybpfdsl.frontend.b"}
    assert imported_modules("from . import a\n", "pybpfdsl.frontend.b", known) == {"pybpfdsl.frontend.a"}
    # A name that is not a submodule is an import of the package (its __init__) itself.
    assert imported_modules("from pybpfdsl.frontend import Thing\n", "pybpfdsl.frontend.a", known) == {
        "pybpfdsl.frontend"}
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


FRONTEND_STAGES_WITHOUT_IR = ("resolve.py", "fold.py", "type_facts.py", "typecheck")
"""The frontend's stages before emission (issue 14 §4): names and type rules, no IR. A folder is
a stage made of several modules, each of which is held to the rule."""


def test_the_frontend_stages_before_emit_do_not_import_the_ir() -> None:
    found = {}
    paths = [p for stage in FRONTEND_STAGES_WITHOUT_IR
             for p in (sorted((PACKAGE / "frontend" / stage).glob("*.py")) if not stage.endswith(".py")
                       else [PACKAGE / "frontend" / stage])]
    assert len(paths) > len(FRONTEND_STAGES_WITHOUT_IR), "a stage folder is empty or missing"
    for path in paths:
        stem = str(path.relative_to(PACKAGE / "frontend"))
        ir = sorted(m for m in _imports(path) if room_of(m) == "ir" or m.startswith("pybpfdsl.frontend.emit"))
        if ir:
            found[stem] = ir
    assert not found, f"stages before emit that import the IR or the emitter: {found}"
