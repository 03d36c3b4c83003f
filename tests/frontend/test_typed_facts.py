"""The type checker's findings (`type_facts.TypeFacts`) are what pure-Python mode reads, and the only place
it gets a type from: every operation the checker typed has its type recorded, and `evaluate.py` has no
type rules of its own (no promotion, no result-type logic: those are `fold`'s, which the emitter asks).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import warnings
from pathlib import Path

import pytest

import examples
from pybpfdsl.frontend import evaluate, fold
from pybpfdsl.frontend.lower import Lowered, lower_function
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang.errors import DslWarning
from pybpfdsl.lang.types import FLOAT, u8
from pybpfdsl.program import XdpProgram
from tests.frontend.test_evaluate import PROGRAMS

# The rules `fold` gives pure-Python mode where the operation has no node of its own to record a type
# under: a comparison's operand type (also `in` over a tuple, `match` cases, min/max pairwise) and the
# constant rules (conversion, folding a comparison, a literal's type, the raw value of a constant, the
# threshold `random() < p` is compared with where the emitter recorded that it chose that comparison,
# whether a constant's conversion to float saturates, the integer an integral float divisor stands for).
_FOLD_RULES_EVALUATE_MAY_ASK = {"compare_type", "fold_compare", "constant", "convert_constant", "raw_constant",
                                "random_threshold", "saturates_up", "integral_divisor"}
# The promotion and result-type rules, which pure-Python mode reads from the recorded types instead.
_TYPE_RULES = {"promote", "common_type", "literal_type", "binary_type", "unary_type", "join_type"}


def _lowered_programs() -> list[tuple[str, Lowered]]:
    found = [(f"test_evaluate.{name}", lower_function(fn, name)) for name, fn in sorted(PROGRAMS.items())]
    for info in pkgutil.iter_modules(examples.__path__):
        module = importlib.import_module(f"examples.{info.name}")
        for value in vars(module).values():
            if isinstance(value, XdpProgram) and value.function.__module__ == module.__name__:
                found.append((f"{info.name}.{value.name}", lower_function(value.function, value.name)))
    return found


with warnings.catch_warnings():  # test_evaluate's tiny float constant (rounds to 0 on purpose) warns
    warnings.simplefilter("ignore", DslWarning)
    LOWERED = _lowered_programs()


def _typed_operations(tree: ast.AST) -> list[ast.AST]:
    """The nodes whose result type is a promotion rule's decision: arithmetic, unary minus and `~`.
    (A conditional expression's type is recorded too, when its arms are numbers: they may be records.)"""
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.BinOp)
            or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Invert))]


@pytest.mark.parametrize("name,lowered", LOWERED, ids=[name for name, _ in LOWERED])
def test_every_typed_operation_has_its_type_recorded(name: str, lowered: Lowered) -> None:
    typed = {node for _, node in lowered.facts.types}
    sources = [lowered.source, *lowered.facts.inline_sources.values()]
    missing = [f"line {getattr(node, 'lineno', '?')}: {ast.unparse(node)}"
               for source in sources for node in _typed_operations(source.tree) if node not in typed]
    assert not missing, f"{name}: no type recorded for {missing}"


def test_the_corpus_has_operations_to_check() -> None:
    """The check above is not vacuous: the programs hold many typed operations, some in helpers."""
    assert len(LOWERED) >= 15
    assert sum(len(_typed_operations(lw.source.tree)) for _, lw in LOWERED) >= 200
    assert any(lw.facts.inline_sources for _, lw in LOWERED)


def _evaluate_tree() -> ast.Module:
    """Every module of pure-Python mode, as one tree."""
    package = Path(inspect.getfile(evaluate)).parent
    modules = [ast.parse(path.read_text()) for path in sorted(package.glob("*.py"))]
    assert len(modules) >= 5, "pure-Python mode is split by concept"
    return ast.Module(body=[stmt for module in modules for stmt in module.body], type_ignores=[])


def test_evaluate_imports_no_type_rules() -> None:
    imported = set()
    for node in ast.walk(_evaluate_tree()):
        if isinstance(node, ast.ImportFrom):
            imported |= {alias.name for alias in node.names}
    assert not imported & _TYPE_RULES


def test_evaluate_decides_nothing_by_a_types_width() -> None:
    """Choices that hang on a type's width (an atomic add on 32- and 64-bit state, promotion) are the
    emitter's, recorded for pure Python: evaluate.py never reads `.bits`."""
    widths = [node.lineno for node in ast.walk(_evaluate_tree())
              if isinstance(node, ast.Attribute) and node.attr == "bits"]
    assert not widths


def test_evaluate_asks_fold_only_for_rules_with_no_node_to_record_under() -> None:
    asked = {node.attr for node in ast.walk(_evaluate_tree())
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "fold"}
    assert asked <= _FOLD_RULES_EVALUATE_MAY_ASK, asked - _FOLD_RULES_EVALUATE_MAY_ASK
    assert all(hasattr(fold, rule) for rule in _FOLD_RULES_EVALUATE_MAY_ASK)


def test_one_scalar_for_both_executions() -> None:
    """The emitter's scalars and pure-Python mode's are one class (issue 14 §6: not `Num` beside
    `Scalar`): the type rules read both alike."""
    assert not hasattr(evaluate, "Num")
    running = Scalar(u8, 200)  # a raw value, as pure Python runs it
    assert fold.untyped(running) is False
    assert evaluate.convert(running, FLOAT).value == 200 << 32
    constant = Scalar(u8, 7, 7)  # a typed constant: converted by fold's constant rule
    assert evaluate.convert(constant, FLOAT) == Scalar(FLOAT, 7 << 32, 7.0)
