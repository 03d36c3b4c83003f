"""Stage 1 of the frontend, resolve: what the names in a DSL function refer to.

Takes a function's source (`FunctionSource`) and names or dotted names in it; gives Python objects and
their DSL kind (`classify`: a module-level constant, a state object, a DSL type, a built-in, an @inline
helper, a module), the scalar type an annotation names, and the program's state objects, each under
one name. Resolution follows Python's rules (closure, module globals, builtins), at compile time. It
knows nothing of types' arithmetic or of the IR: the later stages (`fold`, then `emit/`) give the
objects found here their DSL values and code.
"""

from __future__ import annotations

import ast
import builtins
import enum
from collections.abc import Callable
from types import FunctionType, ModuleType

from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.lang import builtins as dsl_builtins
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.state import StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType

# DSL built-ins by the Python object that names them.
_DSL_BUILTINS: dict[int, str] = {
    id(dsl_builtins.random): "random",
    id(dsl_builtins.randint): "randint",
    id(dsl_builtins.prandom_u32): "prandom_u32",
    id(dsl_builtins.now_ns): "now_ns",
    id(dsl_builtins.cpu_id): "cpu_id",
    id(dsl_builtins.ip): "ip",
    id(dsl_builtins.redirect): "redirect",
    id(dsl_builtins.fib_lookup): "fib_lookup",
    id(builtins.print): "print",
    id(dsl_builtins.bounded): "bounded",
    id(dsl_builtins.likely): "likely",
    id(dsl_builtins.unlikely): "unlikely",
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


def local_names(fn: FunctionType) -> frozenset[str]:
    """The names Python treats as `fn`'s locals: its parameters and every name it assigns anywhere in its
    body. Reading one of them before an assignment reached it is Python's UnboundLocalError, even when a
    module-level name of the same spelling exists; Python's own compiler decided the set, so it is exact."""
    code = fn.__code__
    return frozenset(code.co_varnames) | frozenset(code.co_cellvars)


def classify(value: object) -> tuple[str, object]:
    """The kind of a Python object as the DSL sees it, and what to keep of it."""
    if id(value) in _DSL_BUILTINS and callable(value):
        return "builtin", _DSL_BUILTINS[id(value)]
    if isinstance(value, StateObject):
        return "state", value
    if isinstance(value, ScalarType) or value in _PY_TYPES:
        return "type", value
    if isinstance(value, enum.IntEnum):
        return "constant", int(value)  # `XdpAction.DROP`: its number
    if isinstance(value, enum.EnumMeta) and issubclass(value, enum.IntEnum):
        return "module", value  # `XdpAction`: a namespace of constants, as a module is
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


def eval_static(source: FunctionSource, node: ast.expr) -> object:
    """The Python object a name or dotted name refers to (for decorators and annotations)."""
    if isinstance(node, ast.Name):
        return resolve_global(source.function, node.id, lambda m: source.error(node, m))
    if isinstance(node, ast.Attribute):
        base = eval_static(source, node.value)
        if hasattr(base, node.attr):
            return getattr(base, node.attr)
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    raise source.error(node, f"cannot resolve `{ast.unparse(node)}` at compile time")


def scalar_type(value: object) -> ScalarType | None:
    """The DSL scalar type a Python object names (`float` and `bool` included), or None."""
    if value is float:
        return FLOAT
    if value is bool:
        return BOOL
    return value if isinstance(value, ScalarType) else None


def annotation_type(source: FunctionSource, node: ast.expr) -> ScalarType:
    """The DSL scalar type an annotation names (`float` and `bool` included)."""
    t = scalar_type(eval_static(source, node))
    if t is not None:
        return t
    raise source.error(node, f"`{ast.unparse(node)}` is not a DSL scalar type",
                       "annotate with u8, u16, u32, u64, i8, i16, i32, i64, bool or float")


def check_signature(source: FunctionSource) -> None:
    """An @xdp function takes the packet only, and @xdp is its only decorator."""
    tree = source.tree
    args = tree.args
    if (len(args.args) != 1 or args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs
            or args.defaults):
        raise source.error(tree, "an @xdp function takes exactly one parameter, the packet",
                           f"write `def {tree.name}(pkt: Packet) -> int:`")
    for deco in tree.decorator_list:
        if not _is_xdp_decorator(source, deco):
            raise source.error(deco, "an @xdp function cannot have other decorators",
                               "remove the decorator; @xdp must be the only one")


def _is_xdp_decorator(source: FunctionSource, node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    try:
        value = eval_static(source, target)
    except DslError:
        return False
    return getattr(value, "__pybpfdsl_decorator__", False) is True


def register_state(state: dict[str, StateObject], obj: StateObject, name: str, source: FunctionSource,
                   node: ast.expr) -> StateObject:
    """Name a state object after the module-level name it is first met under, and refuse two objects
    under one name (they would be one map or global in the object file)."""
    if obj.name is None:
        obj.name = name
    existing = state.get(obj.name)
    if existing is not None and existing is not obj:
        raise source.error(node, f"two different state objects are both called {obj.name}",
                           "give each Global or map a distinct module-level name")
    state[obj.name] = obj
    return obj
