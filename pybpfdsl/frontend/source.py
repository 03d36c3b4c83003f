"""Getting a decorated function's source as an AST whose line numbers are those of the user's file."""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from types import FunctionType

from pybpfdsl.lang.errors import DslError, SourceLocation


@dataclass(frozen=True)
class FunctionSource:
    """A function's AST (lines as in `file`), the file's lines, and the function object itself."""

    function: FunctionType
    file: str
    tree: ast.FunctionDef
    file_lines: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.tree.name

    @property
    def first_line(self) -> int:
        return self.tree.lineno

    def location(self, node: ast.AST) -> SourceLocation:
        line = getattr(node, "lineno", self.tree.lineno)
        col = getattr(node, "col_offset", 0)
        text = self.file_lines[line - 1] if 0 < line <= len(self.file_lines) else ""
        return SourceLocation(self.file, line, col, text)

    def error(self, node: ast.AST, message: str, hint: str | None = None) -> DslError:
        return DslError(message, self.location(node), hint)


def read_function(fn: FunctionType) -> FunctionSource:
    """Parse `fn`'s source; a function whose source Python cannot find is an error that says why."""
    file = inspect.getsourcefile(fn) or fn.__code__.co_filename
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError) as exc:
        raise DslError(f"cannot read the source of {fn.__qualname__}: {exc}",
                       hint="define DSL functions in a .py file (not in an interactive prompt or exec)") from None
    text = textwrap.dedent("".join(lines))
    module = ast.parse(text, filename=file)
    ast.increment_lineno(module, first - 1)
    tree = module.body[0]
    if not isinstance(tree, ast.FunctionDef):
        raise DslError(f"{fn.__qualname__} is not a plain function definition",
                       SourceLocation(file, first, 0, lines[0] if lines else ""),
                       "decorate a `def` statement (async functions and lambdas are not supported)")
    try:
        with open(file, encoding="utf-8") as handle:
            file_lines = tuple(handle.read().splitlines())
    except OSError:
        file_lines = tuple([""] * (first - 1) + [line.rstrip("\n") for line in lines])
    return FunctionSource(fn, file, tree, file_lines)
