"""Bad input never produces a traceback from inside the compiler: mutated programs either compile or give a
DslError. Mutants come from the construct programs, with operators swapped, names and constants replaced,
statements deleted or duplicated, and annotations retyped; an InternalCompilerError or any other exception
is a compiler bug this test reports with the mutant's source."""

from __future__ import annotations

import ast
import importlib.util
import itertools
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl import DslError, XdpProgram

SOURCE = Path(__file__).resolve().parents[1] / "differential" / "constructs.py"
TREE = ast.parse(SOURCE.read_text())
_counter = itertools.count()

OPERATORS: list[type[ast.AST]] = [ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Div, ast.Pow, ast.LShift,
                                  ast.RShift, ast.BitOr, ast.BitXor, ast.BitAnd]
COMPARISONS: list[type[ast.AST]] = [ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot,
                                    ast.In, ast.NotIn]
NAMES = ["pkt", "acc", "ratio", "flag", "per_port", "slots", "Flow", "u8", "i64", "float", "random", "ip", "None",
         "LIMITS", "mix", "undefined_thing", "range", "bounded", "per_cpu", "Rpc", "len"]
CONSTANTS: list[object] = [0, -1, 1 << 40, 2**64, 3.5, 1e-12, 1e12, True, None, "text", (1, 2), 255, -2**63]


def _mutate(tree: ast.Module, choices: list[int]) -> ast.Module:
    tree = ast.parse(ast.unparse(tree))  # a fresh copy
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.expr | ast.stmt | ast.operator | ast.cmpop)]
    picks = itertools.cycle(choices)
    for _ in range(2):
        target = nodes[next(picks) % len(nodes)]
        kind = next(picks) % 6
        for parent in ast.walk(tree):
            for field, value in ast.iter_fields(parent):
                if isinstance(value, list) and target in value and kind == 0 and isinstance(target, ast.stmt):
                    if len(value) > 1:
                        value.remove(target)  # delete a statement
                elif isinstance(value, list) and target in value and kind == 1 and isinstance(target, ast.stmt):
                    value.insert(value.index(target), ast.parse(ast.unparse(target)).body[0])  # duplicate it
                elif value is target:
                    if isinstance(target, ast.operator):
                        setattr(parent, field, OPERATORS[next(picks) % len(OPERATORS)]())
                    elif isinstance(target, ast.cmpop):
                        setattr(parent, field, COMPARISONS[next(picks) % len(COMPARISONS)]())
                    elif isinstance(target, ast.expr) and kind in (2, 3):
                        setattr(parent, field, ast.Name(NAMES[next(picks) % len(NAMES)], ast.Load()))
                    elif isinstance(target, ast.expr) and kind == 4:
                        setattr(parent, field, ast.Constant(CONSTANTS[next(picks) % len(CONSTANTS)]))
                if isinstance(value, list) and target in value and isinstance(target, ast.cmpop):
                    value[value.index(target)] = COMPARISONS[next(picks) % len(COMPARISONS)]()
    ast.fix_missing_locations(tree)
    return tree


def _is_program(statement: ast.stmt) -> bool:
    return isinstance(statement, ast.FunctionDef) and any(
        isinstance(d, ast.Name) and d.id == "xdp" for d in statement.decorator_list)


_ORIGINAL = ast.parse(ast.unparse(TREE))  # compared as the mutants are made: after a round trip
_SHARED = [ast.dump(s) for s in _ORIGINAL.body if not _is_program(s)]
_PROGRAMS = {ast.dump(s) for s in _ORIGINAL.body if _is_program(s)}


def _mutated_programs(tree: ast.Module) -> set[str] | None:
    """The `@xdp` functions a mutation changed, or None when it changed what every program may read
    (state, constants, structs, inline functions): the others lower as the originals do."""
    if [ast.dump(s) for s in tree.body if not _is_program(s)] != _SHARED:
        return None
    return {s.name for s in tree.body if isinstance(s, ast.FunctionDef) and _is_program(s)
            and ast.dump(s) not in _PROGRAMS}


def _programs(tree: ast.Module, tmp: Path) -> list[XdpProgram]:
    path = tmp / f"mutant_{next(_counter)}.py"
    path.write_text(ast.unparse(tree))
    name = f"_pybpfdsl_mutant_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # mutants write `x is 3`; Python warns, we test
            spec.loader.exec_module(module)
    except Exception:
        return []
    finally:
        sys.modules.pop(name, None)
    return [v for v in vars(module).values() if isinstance(v, XdpProgram)]


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(choices=st.lists(st.integers(0, 10_000), min_size=16, max_size=16))
def test_mutated_programs_compile_or_give_a_dsl_error(choices: list[int], tmp_path: Path) -> None:
    try:
        mutant = _mutate(TREE, choices)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            compile(mutant, "<mutant>", "exec")
    except (SyntaxError, ValueError, TypeError):
        return  # the mutation itself is not valid Python
    mutated = _mutated_programs(mutant)
    for prog in _programs(mutant, tmp_path):
        if mutated is not None and prog.function.__name__ not in mutated:
            continue  # unchanged, and so is all it reads: it lowers as the original does
        try:
            prog.lower()
        except DslError:
            pass
        except Exception as exc:
            source = ast.unparse(next(f for f in mutant.body if isinstance(f, ast.FunctionDef)
                                      and f.name == prog.function.__name__))
            pytest.fail(f"{type(exc).__name__}: {exc}\n--- mutant {prog.name} ---\n{source}")
