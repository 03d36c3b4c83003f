"""What a name in a DSL function refers to: a local, a module-level constant, a state object, a DSL type,
a built-in, an @inline helper, or a module. Resolution follows Python's rules (closure, module globals,
builtins), at compile time.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from types import FunctionType, ModuleType

from pybpfdsl.lang import builtins as dsl_builtins
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.state import StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType

# DSL built-ins by the Python object that names them.
_DSL_BUILTINS: dict[int, str] = {
    id(dsl_builtins.random): "random",
    id(dsl_builtins.randint): "randint",
    id(dsl_builtins.prandom_u32): "prandom_u32",
    id(dsl_builtins.now_ns): "now_ns",
    id(dsl_builtins.cpu_id): "cpu_id",
    id(dsl_builtins.ip): "ip",
    id(dsl_builtins.bounded): "bounded",
    id(builtins.min): "min",
    id(builtins.max): "max",
    id(builtins.abs): "abs",
    id(builtins.range): "range",
    id(builtins.len): "len",
}
_PY_TYPES = (int, float, bool)


def resolve_global(fn: FunctionType, name: str, error: Callable[[str], DslError]) -> object:
    """The object `name` denotes inside `fn` (closure first, then module globals, then builtins)."""
    code = fn.__code__
    if fn.__closure__ and name in code.co_freevars:
        cell = fn.__closure__[code.co_freevars.index(name)]
        try:
            return cell.cell_contents
        except ValueError:
            raise error(f"`{name}` is not defined yet when the function is compiled") from None
    if name in fn.__globals__:
        return fn.__globals__[name]
    if hasattr(builtins, name):
        return getattr(builtins, name)
    raise error(f"unknown name `{name}`")


def classify(value: object) -> tuple[str, object]:
    """The kind of a Python object as the DSL sees it, and what to keep of it."""
    if id(value) in _DSL_BUILTINS and callable(value):
        return "builtin", _DSL_BUILTINS[id(value)]
    if isinstance(value, StateObject):
        return "state", value
    if isinstance(value, ScalarType) or value in _PY_TYPES:
        return "type", value
    if isinstance(value, bool | int | float):
        return "constant", value
    if isinstance(value, tuple):
        return "tuple", value
    if isinstance(value, str):
        return "string", value
    if isinstance(value, ModuleType):
        return "module", value
    if isinstance(value, type) and issubclass(value, Struct):
        return "struct", value
    if dsl_builtins.is_inline(value):
        return "inline", value
    if getattr(value, "__pybpfdsl_program__", False):
        return "program", value
    return "unsupported", value
