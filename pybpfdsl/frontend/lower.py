"""The frontend's entry: a typed Python function to checked SSA IR, in named stages.

1. resolve (`resolve`): names, globals, state objects, helpers and annotations, by Python's rules.
   Gives Python objects and their DSL kind; no types' arithmetic, no IR.
2. type-check and fold (`typecheck`, with the rules of `fold`): a walk over the AST, path by path as
   Python runs it, before any IR. Gives the typed, folded AST (`type_facts.TypedFunction`): each
   expression's DSL type and constant per lowering context, the locals' types, each inlined call's
   helper parse. Refuses ill-typed programs (`DslError` at the line). Pure-Python mode reads it.
3. emit (`emit/`): SSA IR from the same trees, split by concept: statements, loops, conditions,
   expressions, arithmetic, calls, state access, packet access, built-ins (see `emit.base`). It
   reads the checker's decisions (operations' result types, loop variables' types, helper parses,
   atomic adds, random thresholds) from the typed AST and checks every scalar it computes against
   it: a difference is a compiler bug, reported as one.

`Lowerer` combines the emitter's concept mixins; one instance handles one `@xdp` function and the
`@inline` helpers it calls (inlined in place). Every construct the DSL does not support ends in a
`DslError` at the construct's line, saying what to write instead: the type checker's, before any IR
(the emitter has no refusals of its own; meeting one is an internal compiler error).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from types import FunctionType

from pybpfdsl.frontend.emit import packet_access
from pybpfdsl.frontend.emit.arithmetic import ArithmeticEmitter
from pybpfdsl.frontend.emit.calls import CallEmitter
from pybpfdsl.frontend.emit.conditions import ConditionEmitter
from pybpfdsl.frontend.emit.expressions import ExpressionEmitter
from pybpfdsl.frontend.emit.loops import LoopEmitter
from pybpfdsl.frontend.emit.state_access import StateEmitter
from pybpfdsl.frontend.emit.statements import StatementEmitter
from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.type_facts import Ctx, Key, TypedFunction, TypeFacts
from pybpfdsl.frontend.typecheck import Checker
from pybpfdsl.frontend.values import PacketVal
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.nodes import Expect
from pybpfdsl.ir.types import StructType, value_ir_type
from pybpfdsl.lang.errors import DslError, InternalCompilerError
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import BpfMap, Global, StateObject


@dataclass(frozen=True)
class Lowered:
    """The frontend's product: the IR program, the state objects it uses, the typed AST the type checker
    built (`facts`, over `source` and the helper parses it holds), and the function's count of source
    lines."""

    program: n.Program
    source: FunctionSource
    state: dict[str, StateObject]
    facts: TypeFacts
    dsl_loc: int


class Lowerer(StatementEmitter, LoopEmitter, ConditionEmitter, ExpressionEmitter, ArithmeticEmitter, CallEmitter,
              StateEmitter):
    """The emitter, its concepts combined: lowers one @xdp function (see `emit.base`)."""

    def lower(self) -> Lowered:
        tree = self.main.tree
        entry = self.b.new_block("entry")
        self.b.set_block(entry)
        self.env = {tree.args.args[0].arg: PacketVal()}
        packet_access.parse_headers_up_front(self, tree, tree.args.args[0].arg)
        self.body(tree.body)
        if not self.b.terminated:
            last = tree.body[-1]
            raise self.unchecked(last)  # the checker: "can reach its end without returning an action"
        self.b.remove_unreachable()
        program = n.Program(
            self.name, self.main.file, self.main.first_line, self.b.blocks,
            maps=tuple(self.map_decl(o) for o in self.state.values() if isinstance(o, BpfMap)),
            globals=tuple(n.GlobalDecl(k, o.type, o.init_raw) for k, o in self.state.items()
                          if isinstance(o, Global)),
            ringbufs=tuple(n.RingBufDecl(k, StructType(o.record), o.size) for k, o in self.state.items()
                           if isinstance(o, RingBuf)),
        )
        dsl_loc = sum(1 for line in range(tree.lineno, (tree.end_lineno or tree.lineno) + 1)
                      if self.main.file_lines[line - 1].strip()
                      and not self.main.file_lines[line - 1].strip().startswith("#"))
        if self.local_types != self.typed.var_types:  # the emitter typed a local otherwise: a compiler bug
            raise AssertionError(f"the locals' types differ: emitted {self.local_types}, "
                                 f"checked {self.typed.var_types}")
        return Lowered(program, self.main, self.state, self.typed, dsl_loc)

    def map_decl(self, m: BpfMap) -> n.MapDecl:
        assert m.name is not None
        return n.MapDecl(m.name, m.kind, value_ir_type(m.key_type), value_ir_type(m.value_type), m.max_entries)


def typecheck_function(fn: FunctionType) -> TypedFunction:
    """Stages 1 and 2: the function's parse and its typed, folded AST."""
    checker = Checker(fn)
    return TypedFunction(checker.main, checker.check())


def lower_function(fn: FunctionType, program_name: str) -> Lowered:
    """Lower an @xdp function to a checked IR program."""
    try:
        typed = typecheck_function(fn)
    except (DslError, Warning):
        raise
    except Exception as exc:  # a compiler bug: say where, never a bare traceback
        raise InternalCompilerError(
            f"internal compiler error while type-checking {program_name} ({type(exc).__name__}: {exc}). "
            "This is a pybpfdsl bug; please report it with this function's source.") from exc
    return _emit(typed, program_name)


def lower_with_expectations(lowered: Lowered, expectations: Mapping[Key, Expect]) -> Lowered:
    """`lowered` emitted again from its typed AST, with the branches of the conditions in `expectations`
    hinted (`likelihood.BranchProfile.expectations`, gathered on this typed AST) as `likely(c)` /
    `unlikely(c)` would hint them; the program's own hints win where both speak."""
    return _emit(TypedFunction(lowered.source, lowered.facts), lowered.program.name, expectations)


def _emit(typed: TypedFunction, program_name: str, expectations: Mapping[Key, Expect] | None = None) -> Lowered:
    from pybpfdsl.ir.check import IRError, check_program

    lowerer = Lowerer(typed, program_name)
    if expectations:
        lowerer.expectations = expectations
    try:
        lowered = lowerer.lower()
        check_program(lowered.program)
    except (DslError, Warning):  # a DslWarning the user's filters made an error is theirs, not a bug
        raise
    except (IRError, Exception) as exc:  # a compiler bug: say where, never a bare traceback
        where = lowerer.scope.source.location(ast.Constant(value=None, lineno=lowerer.line, col_offset=0))
        raise InternalCompilerError(
            f"{where}: internal compiler error while compiling {program_name} ({type(exc).__name__}: {exc}). "
            "This is a pybpfdsl bug; please report it with this function's source.") from exc
    return lowered


__all__ = ["Ctx", "Lowered", "Lowerer", "lower_function", "lower_with_expectations"]
