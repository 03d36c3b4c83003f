"""Lowering a typed Python function to SSA IR: statements, expressions, calls and state access.

One `Lowerer` handles one `@xdp` function and the `@inline` helpers it calls (inlined in place). Every
construct it does not support ends in a `DslError` at the construct's line, saying what to write instead.
Packet parsing lives in `packet_access`, names in `resolve`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FunctionType
from typing import TypeVar, cast

from pybpfdsl.frontend import packet_access
from pybpfdsl.frontend.flow import Env, Flow, FlowBuilder, components
from pybpfdsl.frontend.operators import BINARY_OPERATORS, COMPARISONS
from pybpfdsl.frontend.resolve import resolve_global
from pybpfdsl.frontend.source import FunctionSource, read_function
from pybpfdsl.frontend.values import (
    Callee,
    ConstTuple,
    DslValue,
    HeaderVal,
    LocalValue,
    ModuleVal,
    NoneVal,
    OptionalVal,
    PacketVal,
    PayloadVal,
    Scalar,
    StateVal,
    StringVal,
    StructVal,
    describe,
)
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.builder import IRBuilder
from pybpfdsl.ir.types import MapValueRef, StructType, value_ir_type
from pybpfdsl.lang import arith, fixed
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslError, InternalCompilerError
from pybpfdsl.lang.state import Array, BpfMap, Global, HashMap, LruHashMap, RingBuf, StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import (
    BOOL,
    FLOAT,
    ScalarType,
    common_type,
    i64,
    literal_type,
    promote,
    u32,
    u64,
)

_BINOPS = BINARY_OPERATORS
_CMPOPS = COMPARISONS
_SYMBOL: dict[BinOp, str] = {
    BinOp.ADD: "+", BinOp.SUB: "-", BinOp.MUL: "*", BinOp.DIV: "//", BinOp.MOD: "%", BinOp.AND: "&",
    BinOp.OR: "|", BinOp.XOR: "^", BinOp.SHL: "<<", BinOp.SHR: ">>",
}
MAX_UNROLL = 256
KERNEL_INSN_LIMIT = 1_000_000
"""The kernel verifier's BPF_COMPLEXITY_LIMIT_INSNS (the frontend may not import the verifier's copy)."""
MAX_LOOP_ITERATIONS = KERNEL_INSN_LIMIT // 3
"""A range loop the kernel can never accept: it follows every iteration, and each runs at least the
counter's increment, its comparison and one instruction of the body. Refused here, at once, rather
than after the verifier has unrolled it for minutes."""
_K = TypeVar("_K")




@dataclass
class LoopContext:
    carried: list[str]
    header: str | None  # None for unrolled loops
    break_flows: list[Flow] = field(default_factory=list)
    continue_flows: list[Flow] = field(default_factory=list)


@dataclass
class Scope:
    """The function being lowered: the program itself or an inlined helper."""

    source: FunctionSource
    env: Env
    var_types: dict[str, ScalarType] = field(default_factory=dict)
    loops: list[LoopContext] = field(default_factory=list)
    returns: list[Flow] | None = None  # for helpers: flows carrying "$ret"
    return_type: ScalarType | None = None
    call_line: int | None = None  # helpers from other files report the call site's line


# Where a node is lowered: the (loop, iteration) pairs of the enclosing unrolled `for x in (…)` loops.
# A node in an unrolled body is lowered once per item, perhaps with different types or constants.
Ctx = tuple[tuple[ast.AST, int], ...]


@dataclass(frozen=True)
class Lowered:
    """The frontend's product: the IR program, the state objects it uses, and per-node scalar types."""

    program: n.Program
    source: FunctionSource
    state: dict[str, StateObject]
    expr_types: dict[ast.AST, ScalarType]
    const_values: dict[ast.AST, int | float]
    var_types: dict[FunctionType, dict[str, ScalarType]]
    dsl_loc: int
    # The same per lowering context (pure-Python mode reads these): exact also inside unrolled loops.
    # Augmented assignments to locals are recorded under their statement node (the operation's result).
    ctx_types: dict[tuple[Ctx, ast.AST], ScalarType] = field(default_factory=dict)
    ctx_consts: dict[tuple[Ctx, ast.AST], int | float] = field(default_factory=dict)
    ctx_literals: set[tuple[Ctx, ast.AST]] = field(default_factory=set)  # untyped constants
    # The helper source each inline call was lowered from (each call parses the helper anew).
    inline_sources: dict[tuple[Ctx, ast.AST], FunctionSource] = field(default_factory=dict)


class Lowerer:
    def __init__(self, fn: FunctionType, program_name: str) -> None:
        self.main = read_function(fn)
        self.name = program_name
        self.b = IRBuilder()
        self.flow = FlowBuilder(self.b, self.materialize)
        self.state: dict[str, StateObject] = {}
        self.expr_types: dict[ast.AST, ScalarType] = {}
        self.const_values: dict[ast.AST, int | float] = {}
        self.not_const: set[ast.AST] = set()
        self.ctx: Ctx = ()
        self.ctx_types: dict[tuple[Ctx, ast.AST], ScalarType] = {}
        self.ctx_consts: dict[tuple[Ctx, ast.AST], int | float] = {}
        self.ctx_not_const: set[tuple[Ctx, ast.AST]] = set()
        self.ctx_literals: set[tuple[Ctx, ast.AST]] = set()
        self.inline_sources: dict[tuple[Ctx, ast.AST], FunctionSource] = {}
        self.var_types: dict[FunctionType, dict[str, ScalarType]] = {}
        self.scope = Scope(self.main, {})
        self.var_types[self.main.function] = self.scope.var_types
        self.inline_stack: list[FunctionType] = []
        self.line = self.main.first_line
        self.loc_lines: set[tuple[str, int]] = set()

    # ----------------------------------------------------------------- small utilities
    @property
    def env(self) -> Env:
        return self.scope.env

    @env.setter
    def env(self, value: Env) -> None:
        self.scope.env = value

    def err(self, node: ast.AST, message: str, hint: str | None = None) -> DslError:
        return self.scope.source.error(node, message, hint)

    def set_line(self, node: ast.AST) -> None:
        if self.scope.call_line is not None:
            self.line = self.scope.call_line
        else:
            self.line = getattr(node, "lineno", self.line)

    def new(self, t: object, hint: str = "") -> n.Value:
        return self.b.value(t, hint)  # type: ignore[arg-type]

    def op(self, cls: Callable[..., n.Instr], t: object, *operands: object, hint: str = "") -> n.Value:
        """Emit `cls(fresh value of type t, *operands)` at the current line and return the value."""
        return self.b.emit(cls(self.new(t, hint), *operands, line=self.line))

    def const(self, t: ScalarType, value: int) -> n.Value:
        return self.b.emit(n.Const(self.new(t), value, line=self.line))

    def materialize(self, v: LocalValue) -> LocalValue:
        if isinstance(v, Scalar) and v.value is None:
            return replace(v, value=self.scalar_value(v))
        return v

    def scalar_value(self, s: Scalar) -> n.Value:
        if s.value is not None:
            return s.value
        assert s.const is not None
        if s.type.is_fixed:
            raw = fixed.from_float(float(s.const)) if isinstance(s.const, float) else fixed.from_int(int(s.const))
            return self.const(FLOAT, raw)
        return self.const(s.type, s.type.wrap(int(s.const)))

    def record(self, node: ast.AST, v: DslValue) -> DslValue:
        """Remember each expression's type, and its value where it is the same constant every time the
        node is lowered (pure-Python mode reads both, so it makes the same decisions)."""
        if isinstance(v, Scalar):
            _remember(node, v, self.expr_types, self.const_values, self.not_const)
            _remember((self.ctx, node), v, self.ctx_types, self.ctx_consts, self.ctx_not_const)
            if v.literal:
                self.ctx_literals.add((self.ctx, node))
        return v

    # ----------------------------------------------------------------- entry point
    def lower(self) -> Lowered:
        tree = self.main.tree
        self.check_signature(tree)
        entry = self.b.new_block("entry")
        self.b.set_block(entry)
        self.env = {tree.args.args[0].arg: PacketVal()}
        packet_access.parse_headers_up_front(self, tree, tree.args.args[0].arg)
        self.lower_body(tree.body)
        if not self.b.terminated:
            last = tree.body[-1]
            raise self.err(last, f"{tree.name} can reach its end without returning an action",
                           "end every path with `return XDP_PASS` (or another action)")
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
        return Lowered(program, self.main, self.state, self.expr_types, self.const_values, self.var_types,
                       dsl_loc, ctx_types=self.ctx_types, ctx_consts=self.ctx_consts,
                       ctx_literals=self.ctx_literals, inline_sources=self.inline_sources)

    def map_decl(self, m: BpfMap) -> n.MapDecl:
        assert m.name is not None
        return n.MapDecl(m.name, m.kind, value_ir_type(m.key_type), value_ir_type(m.value_type), m.max_entries)

    def check_signature(self, tree: ast.FunctionDef) -> None:
        args = tree.args
        if (len(args.args) != 1 or args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs
                or args.defaults):
            raise self.err(tree, "an @xdp function takes exactly one parameter, the packet",
                           f"write `def {tree.name}(pkt: Packet) -> int:`")
        for deco in tree.decorator_list:
            if not self.is_xdp_decorator(deco):
                raise self.err(deco, "an @xdp function cannot have other decorators",
                               "remove the decorator; @xdp must be the only one")

    def is_xdp_decorator(self, node: ast.expr) -> bool:
        target = node.func if isinstance(node, ast.Call) else node
        try:
            value = self.eval_static(target)
        except DslError:
            return False
        return getattr(value, "__pybpfdsl_decorator__", False) is True

    def eval_static(self, node: ast.expr) -> object:
        """The Python object a name or dotted name refers to (for decorators and annotations)."""
        if isinstance(node, ast.Name):
            return resolve_global(self.scope.source.function, node.id, lambda m: self.err(node, m))
        if isinstance(node, ast.Attribute):
            base = self.eval_static(node.value)
            if hasattr(base, node.attr):
                return getattr(base, node.attr)
        if isinstance(node, ast.Constant) and node.value is None:
            return None
        raise self.err(node, f"cannot resolve `{ast.unparse(node)}` at compile time")

    # ----------------------------------------------------------------- statements
    def lower_body(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            if self.b.terminated:
                return  # code after return/break/continue never runs; Python allows it, so do we
            self.set_line(stmt)
            self.lower_stmt(stmt)

    def lower_stmt(self, s: ast.stmt) -> None:
        match s:
            case ast.Expr(value=ast.Constant(value=str())):
                return  # a docstring
            case ast.Expr(value=ast.Call() as call):
                self.lower_expr(call)
            case ast.Expr():
                raise self.err(s, "this expression statement has no effect",
                               "assign it to a variable or remove it")
            case ast.Pass():
                return
            case ast.Return(value=value):
                self.lower_return(s, value)
            case ast.Assign(targets=targets, value=value):
                if len(targets) != 1:
                    raise self.err(s, "chained assignment `a = b = ...` is not supported",
                                   "assign each variable on its own line")
                self.assign(targets[0], value, None, s)
            case ast.AnnAssign(target=target, annotation=annotation, value=value):
                if value is None:
                    raise self.err(s, "a declaration needs a value", f"write `{ast.unparse(target)}: "
                                   f"{ast.unparse(annotation)} = 0`")
                if not isinstance(target, ast.Name):
                    raise self.err(s, "only local variables can be annotated")
                t = self.annotation_type(annotation)
                self.assign(target, value, t, s)
            case ast.AugAssign(target=target, op=op, value=value):
                self.aug_assign(target, op, value, s)
            case ast.If():
                self.lower_if(s)
            case ast.While():
                self.lower_while(s)
            case ast.For():
                self.lower_for(s)
            case ast.Break():
                self.lower_break(s)
            case ast.Continue():
                self.lower_continue(s)
            case ast.Match():
                self.lower_match(s)
            case ast.Delete(targets=deleted):
                for target_node in deleted:
                    self.lower_delete(target_node)
            case ast.Assert():
                raise self.err(s, "`assert` is not supported in a DSL function",
                               "use `if not cond: return XDP_ABORTED`")
            case ast.Try() | ast.Raise():
                raise self.err(s, "exceptions are not supported in a DSL function",
                               "return an action (XDP_ABORTED, XDP_DROP, ...) instead")
            case ast.With() | ast.AsyncWith():
                raise self.err(s, "`with` is not supported in a DSL function")
            case ast.FunctionDef() | ast.AsyncFunctionDef() | ast.ClassDef() | ast.Lambda():
                raise self.err(s, "functions and classes cannot be defined inside a DSL function",
                               "define helpers at module level and mark them with @inline")
            case ast.Global() | ast.Nonlocal():
                raise self.err(s, f"`{type(s).__name__.lower()}` is not supported",
                               "keep mutable state in a Global(...) object and write `g.value = ...`")
            case ast.Import() | ast.ImportFrom():
                raise self.err(s, "imports belong at module level, not inside a DSL function")
            case _:
                raise self.err(s, f"the `{type(s).__name__}` statement is not supported in a DSL function")

    def annotation_type(self, node: ast.expr) -> ScalarType:
        value = self.eval_static(node)
        if value is float:
            return FLOAT
        if value is bool:
            return BOOL
        if isinstance(value, ScalarType):
            return value
        raise self.err(node, f"`{ast.unparse(node)}` is not a DSL scalar type",
                       "annotate with u8, u16, u32, u64, i8, i16, i32, i64, bool or float")

    def lower_return(self, s: ast.Return, value: ast.expr | None) -> None:
        if self.scope.returns is not None:  # inside an inline helper
            ret_type = self.scope.return_type
            env: Env = {}
            if ret_type is not None:
                if value is None:
                    raise self.err(s, f"this helper must return a {ret_type}")
                result = self.convert(self.scalar(value), ret_type, value, implicit=True)
                env["$ret"] = Scalar(ret_type, self.scalar_value(result))
            elif value is not None:
                raise self.err(s, "this helper is declared `-> None` but returns a value")
            assert self.b.current is not None
            self.scope.returns.append(Flow(self.b.current, env))
            self.b.set_block(None)
            return
        if value is None:
            raise self.err(s, "an @xdp function must return an action", "write `return XDP_PASS`")
        v = self.scalar(value)
        if not v.type.is_int:
            raise self.err(value, f"an action must be an integer, not {describe(v)}")
        if v.const is not None and not 0 <= int(v.const) <= 4:
            raise self.err(value, f"{v.const} is not an XDP action",
                           "return XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX or XDP_REDIRECT")
        action = self.convert(v, u32, value)
        self.b.terminate(n.Return(self.scalar_value(action), line=self.line))

    # --- assignment
    def assign(self, target: ast.expr, value_node: ast.expr, annotated: ScalarType | None, s: ast.stmt) -> None:
        match target:
            case ast.Name(id=name):
                self.assign_local(name, value_node, annotated, s)
            case ast.Attribute(value=base, attr="value"):
                obj = self.lower_expr(base)
                if not isinstance(obj, StateVal) or not isinstance(obj.obj, Global):
                    raise self.err(target, f"cannot assign to `{ast.unparse(target)}`")
                g = obj.obj
                v = self.convert(self.scalar(value_node), g.type, value_node, implicit=True)
                assert g.name is not None
                self.b.append(n.StoreGlobal(g.name, self.scalar_value(v), line=self.line))
            case ast.Subscript(value=base, slice=index):
                m = self.map_of(base)
                key = self.map_key(m, index)
                val = self.map_value(m, value_node)
                assert m.name is not None
                self.b.emit(n.MapUpdate(self.new(i64), m.name, key, val, line=self.line))
            case ast.Attribute():
                raise self.err(target, f"cannot assign to `{ast.unparse(target)}`",
                               "packet fields and records are read-only; build a new record instead")
            case ast.Tuple() | ast.List():
                raise self.err(target, "unpacking assignment is not supported", "assign one variable per line")
            case _:
                raise self.err(target, f"cannot assign to `{ast.unparse(target)}`")

    def assign_local(self, name: str, value_node: ast.expr, annotated: ScalarType | None, s: ast.stmt) -> None:
        if name in self.scope.var_types or (name in self.env and not annotated):
            declared = self.scope.var_types.get(name)
        else:
            declared = None
        if annotated is not None:
            if name in self.scope.var_types and self.scope.var_types[name] != annotated:
                raise self.err(s, f"{name} was declared {self.scope.var_types[name]} before; "
                               f"it cannot become {annotated}", "use a new variable name")
            self.scope.var_types[name] = annotated
            declared = annotated
        value = self.lower_expr(value_node)
        if isinstance(value, PacketVal):
            raise self.err(value_node, "the packet cannot be copied into a variable", "use the parameter")
        held = self.env.get(name)
        if declared is None and isinstance(value, Scalar) and isinstance(held, OptionalVal) and \
                isinstance(held.inner, Scalar):
            # A number that may be None has the number's type: `if b is None: b = 0` keeps b a u8, so
            # the paths join into one u8 (and pure Python converts the same way, by the variable's type).
            declared = held.inner.type
            self.scope.var_types[name] = declared
        if isinstance(value, Scalar) and (isinstance(held, StructVal | HeaderVal | PayloadVal) or (
                isinstance(held, OptionalVal) and not isinstance(held.inner, Scalar))):
            raise self.err(s, f"{name} held {describe(held)}; it cannot now hold {describe(value)}",
                           "use a new variable name")
        if declared is not None and isinstance(value, OptionalVal) and isinstance(value.inner, Scalar):
            # A number that may be None, stored again (`b = pkt.payload[1]` after `if b is None: b = 0`):
            # it keeps the variable's type.
            inner = self.materialize(replace(self.convert(value.inner, declared, value_node, implicit=True),
                                             literal=False))
            assert isinstance(inner, Scalar)
            self.env[name] = replace(value, inner=inner)
            return
        if declared is not None:
            # A typed local: its constant folds in its type, even if a literal of that type was assigned.
            self.env[name] = self.materialize(replace(self.convert(self.as_scalar(value, value_node), declared,
                                                                   value_node, implicit=True), literal=False))
            return
        if isinstance(value, Scalar):
            self.scope.var_types[name] = value.type
            self.env[name] = self.materialize(replace(value, literal=False))
            return
        if isinstance(value, StructVal | HeaderVal | PayloadVal | OptionalVal):
            old = self.env.get(name)
            if old is not None and type(old) is not type(value):
                raise self.err(s, f"{name} held {describe(old)}; it cannot now hold {describe(value)}",
                               "use a new variable name")
            self.env[name] = value
            return
        raise self.err(value_node, f"{describe(value)} cannot be stored in a variable")

    def aug_assign(self, target: ast.expr, op: ast.operator, value_node: ast.expr, s: ast.stmt) -> None:
        binop = self.binop_of(op, s)
        match target:
            case ast.Name(id=name):
                old = self.env.get(name)
                if isinstance(old, OptionalVal) and old.narrowed and isinstance(old.inner, Scalar):
                    old = old.inner  # checked not None: a number
                if not isinstance(old, Scalar):
                    raise self.undefined(target, name) if old is None else self.err(
                        target, f"`{op.__class__.__name__}=` needs a number, {name} is {describe(old)}")
                operand = self.scalar(value_node)
                self.refuse_float_into_int(operand, old.type, name, value_node)
                result = self.binary(binop, old, operand, s)
                self.record(s, result)
                self.env[name] = self.materialize(self.convert(result, old.type, s))
            case ast.Attribute(value=base, attr="value"):
                obj = self.lower_expr(base)
                if not isinstance(obj, StateVal) or not isinstance(obj.obj, Global):
                    raise self.err(target, f"cannot assign to `{ast.unparse(target)}`")
                self.global_aug(obj.obj, binop, value_node, s)
            case ast.Subscript(value=base, slice=index):
                self.map_aug(self.map_of(base), index, binop, value_node, s)
            case _:
                raise self.err(target, f"cannot update `{ast.unparse(target)}` in place")

    def refuse_float_into_int(self, operand: Scalar, target: ScalarType, name: str, node: ast.expr) -> None:
        """`x += 0.5` on an integer target would truncate silently (and differently for atomic adds,
        which convert the operand first): the user says which conversion they mean."""
        if operand.type.is_fixed and not target.is_fixed:
            raise self.err(node, f"adding a float to {name}, a {target}, would truncate silently",
                           f"convert explicitly (`{target}(...)`), or make {name} a float")

    def global_aug(self, g: Global, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        assert g.name is not None
        operand = self.scalar(value_node)
        self.refuse_float_into_int(operand, g.type, f"{g.name}.value", value_node)
        if op in (BinOp.ADD, BinOp.SUB) and (g.type.bits in (32, 64) or g.type.is_fixed):
            delta = self.convert(operand, g.type, value_node, implicit=False)
            if op is BinOp.SUB:
                delta = self.negate(delta, s)
            self.b.append(n.StoreGlobal(g.name, self.scalar_value(delta), atomic_add=True, line=self.line))
            return
        old = Scalar(g.type, self.b.emit(n.LoadGlobal(self.new(g.type), g.name, line=self.line)))
        new = self.convert(self.binary(op, old, operand, s), g.type, s)
        self.b.append(n.StoreGlobal(g.name, self.scalar_value(new), line=self.line))

    def lower_delete(self, t: ast.expr) -> None:
        if not isinstance(t, ast.Subscript):
            raise self.err(t, "only map entries can be deleted: `del m[key]`")
        m = self.map_of(t.value)
        if isinstance(m, Array):
            raise self.err(t, f"elements of the {m.kind_name} {m.name} cannot be deleted",
                           "store a zero value instead")
        key = self.map_key(m, t.slice)
        assert m.name is not None
        self.b.emit(n.MapDelete(self.new(i64), m.name, key, line=self.line))

    # --- control flow
    def lower_if(self, s: ast.If) -> None:
        true_flows, false_flows = self.condition(s.test)
        exits: list[Flow] = []
        for flows, body in ((true_flows, s.body), (false_flows, s.orelse)):
            env = self.flow.merge(flows, self.line, "if")
            if env is None:
                continue
            self.env = env
            self.lower_body(body)
            if not self.b.terminated:
                assert self.b.current is not None
                exits.append(Flow(self.b.current, self.env))
        self.resume(exits, "endif")

    def resume(self, flows: list[Flow], hint: str) -> None:
        env = self.flow.merge(flows, self.line, hint)
        self.env = env if env is not None else {}

    def assigned_names(self, body: list[ast.stmt]) -> list[str]:
        names: list[str] = []
        for stmt in body:
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in names:
                    names.append(node.id)
        return names

    def lower_loop(self, node: ast.stmt, body: list[ast.stmt], setup: Callable[[], list[str]],
                   test: Callable[[], tuple[list[Flow], list[Flow]]], step: Callable[[], None]) -> None:
        """A real loop: header with the carried locals as parameters, body, latch that steps and jumps back."""
        hidden = setup()
        carried = [k for k in self.assigned_names(body) if k in self.env] + hidden
        for k in carried:
            v = self.env[k]
            if not isinstance(v, Scalar):
                raise self.err(node, f"{k} holds {describe(v)} and is reassigned inside the loop",
                               "only numbers can be reassigned inside a loop")
            self.env[k] = self.materialize(v)
        header = self.b.new_block("loop")
        params = {k: self.new(self.env[k].type, k) for k in carried}  # type: ignore[union-attr]
        header.params.extend(params.values())
        self.b.terminate(n.Jump(n.Edge(header.name, tuple(self.scalar_value(self.env[k]) for k in carried)),  # type: ignore[arg-type]
                                line=self.line))
        self.b.set_block(header)
        header_env = dict(self.env)
        for k in carried:
            header_env[k] = Scalar(self.env[k].type, params[k])  # type: ignore[union-attr]
        self.env = header_env
        body_flows, exit_flows = test()
        ctx = LoopContext(carried, header.name)
        self.scope.loops.append(ctx)
        env = self.flow.merge(body_flows, self.line, "body")
        if env is not None:
            self.env = env
            self.lower_body(body)
            if not self.b.terminated:
                assert self.b.current is not None
                ctx.continue_flows.append(Flow(self.b.current, self.env))
        self.scope.loops.pop()
        latch_env = self.flow.merge(ctx.continue_flows, self.line, "latch")
        if latch_env is not None:
            self.env = latch_env
            step()
            args = []
            for k in carried:
                end_value = self.env.get(k)
                if not isinstance(end_value, Scalar):
                    raise self.err(node, f"{k} must hold a number at the end of every iteration")
                args.append(self.scalar_value(end_value))
            self.b.terminate(n.Jump(n.Edge(header.name, tuple(args)), line=self.line))
        self.resume(exit_flows + ctx.break_flows, "endloop")

    def lower_while(self, s: ast.While) -> None:
        if s.orelse:
            raise self.err(s, "`while ... else` is not supported")
        test = s.test
        bound = self.while_bound(test)
        if bound is None:
            raise self.err(s, "a `while` loop needs a bound the compiler can see (the kernel rejects "
                           "loops it cannot prove to end)",
                           f"write `while bounded({ast.unparse(test)}, 64):` with the most iterations you allow")
        cond_node, limit = bound
        counter = f"$while{id(s)}"

        def setup() -> list[str]:
            self.env[counter] = Scalar(u32, self.const(u32, 0))
            return [counter]

        def check() -> tuple[list[Flow], list[Flow]]:
            c = self.env[counter]
            assert isinstance(c, Scalar) and c.value is not None
            within = self.b.emit(n.Compare(self.new(BOOL), CmpOp.LT, c.value, self.const(u32, limit), line=self.line))
            ok, out = self.flow.branch(within, self.env, self.line)
            self.b.set_block(ok.block)
            self.env = ok.env
            t, f = self.condition(cond_node)
            return t, [*f, out]

        def step() -> None:
            c = self.env[counter]
            assert isinstance(c, Scalar) and c.value is not None
            one = self.const(u32, 1)
            self.env[counter] = Scalar(u32, self.op(n.Binary, u32, BinOp.ADD, c.value, one))

        self.lower_loop(s, s.body, setup, check, step)
        self.env.pop(counter, None)

    def while_bound(self, test: ast.expr) -> tuple[ast.expr, int] | None:
        if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Name | ast.Attribute)):
            return None
        callee = self.lower_expr(test.func)
        if not (isinstance(callee, Callee) and callee.kind == "builtin" and callee.target == "bounded"):
            return None
        if len(test.args) != 2 or test.keywords:
            raise self.err(test, "write `bounded(condition, max_iterations)`")
        limit = self.scalar(test.args[1])
        if limit.const is None or not isinstance(limit.const, int) or not 0 < limit.const <= 1 << 20:
            raise self.err(test.args[1], "the bound must be a constant between 1 and 1048576")
        return test.args[0], limit.const

    def lower_for(self, s: ast.For) -> None:
        if s.orelse:
            raise self.err(s, "`for ... else` is not supported")
        if not isinstance(s.target, ast.Name):
            raise self.err(s.target, "the loop variable must be a single name")
        var = s.target.id
        it = s.iter
        if isinstance(it, ast.Call) and isinstance(self.lower_expr(it.func), Callee) and \
                self.lower_expr(it.func) == Callee("builtin", "range"):
            self.lower_range_loop(s, var, it)
            return
        seq = self.lower_expr(it)
        if isinstance(seq, ConstTuple):
            self.lower_unrolled(s, var, seq)
            return
        raise self.err(it, f"cannot loop over {describe(seq)}",
                       "loop over `range(...)` with constant bounds or over a constant tuple")

    def lower_range_loop(self, s: ast.For, var: str, call: ast.Call) -> None:
        if call.keywords or not 1 <= len(call.args) <= 3:
            raise self.err(call, "write range(stop), range(start, stop) or range(start, stop, step)")
        bounds = [self.scalar(a) for a in call.args]
        for a, node in zip(bounds, call.args):
            if a.const is None or not isinstance(a.const, int):
                raise self.err(node, "range bounds must be integer constants",
                               "use a constant bound and `break` when a runtime condition is met")
        values = [int(b.const) for b in bounds]  # type: ignore[arg-type]
        start, stop, step_by = (0, values[0], 1) if len(values) == 1 else (
            values[0], values[1], values[2] if len(values) == 3 else 1)
        if step_by == 0:
            raise self.err(call, "range() step cannot be zero")
        count = len(range(start, stop, step_by))
        if count > MAX_LOOP_ITERATIONS:
            raise self.err(call, f"this loop runs {count} times: the kernel verifies every iteration and stops "
                           f"at {KERNEL_INSN_LIMIT:,} instructions, so it can never load",
                           "use a smaller range (a few hundred iterations at most for a body with branches), "
                           "or spread the work over several packets with state in a map")
        t = self.scope.var_types.get(var) or common_type(common_type(literal_type(start), literal_type(stop)),
                                                         literal_type(step_by))
        last = start + (count - 1) * step_by if count else start
        if count and not all(t.min <= v <= t.max for v in (start, last, last + step_by)):
            # The counter is the loop variable: stepping past `last` must not wrap, or the loop never ends.
            raise self.err(call, f"the loop variable {var} is {t}, too narrow to count from {start} past {last}",
                           f"declare it wider before the loop (`{var}: i64 = 0`) or use a smaller range")
        self.scope.var_types[var] = t
        counter = f"$for{id(s)}"

        def setup() -> list[str]:
            self.env[counter] = Scalar(t, self.const(t, start))
            return [counter]

        def check() -> tuple[list[Flow], list[Flow]]:
            c = self.env[counter]
            assert isinstance(c, Scalar) and c.value is not None
            op = CmpOp.LE if step_by > 0 else CmpOp.GE
            more = self.b.emit(n.Compare(self.new(BOOL), op, c.value, self.const(t, last), line=self.line))
            if count == 0:
                more = self.const(BOOL, 0)
            body, out = self.flow.branch(more, self.env, self.line)
            body.env[var] = c
            return [body], [out]

        def step() -> None:
            c = self.env[counter]
            assert isinstance(c, Scalar) and c.value is not None
            inc = self.const(t, t.wrap(step_by))
            self.env[counter] = Scalar(t, self.b.emit(n.Binary(self.new(t), BinOp.ADD, c.value, inc, line=self.line)))

        self.lower_loop(s, s.body, setup, check, step)
        self.env.pop(counter, None)
        self.env.pop(var, None)

    def lower_unrolled(self, s: ast.For, var: str, seq: ConstTuple) -> None:
        if len(seq.items) > MAX_UNROLL:
            raise self.err(s.iter, f"a constant tuple of {len(seq.items)} items is too long to unroll")
        ctx = LoopContext([], None)
        self.scope.loops.append(ctx)
        outer = self.ctx
        for index, item in enumerate(seq.items):
            if self.b.terminated:
                break
            self.env[var] = self.const_scalar(item, s.iter)
            self.ctx = (*outer, (s, index))
            try:
                self.lower_body(s.body)
            finally:
                self.ctx = outer
            if not self.b.terminated:
                assert self.b.current is not None
                ctx.continue_flows.append(Flow(self.b.current, self.env))
            self.resume(ctx.continue_flows, "next")
            ctx.continue_flows = []
        self.scope.loops.pop()
        if not self.b.terminated:
            assert self.b.current is not None
            ctx.break_flows.append(Flow(self.b.current, self.env))
        self.resume(ctx.break_flows, "endfor")
        self.env.pop(var, None)

    def lower_break(self, s: ast.stmt) -> None:
        if not self.scope.loops:
            raise self.err(s, "`break` outside a loop")
        assert self.b.current is not None
        self.scope.loops[-1].break_flows.append(Flow(self.b.current, self.env))
        self.b.set_block(None)

    def lower_continue(self, s: ast.stmt) -> None:
        if not self.scope.loops:
            raise self.err(s, "`continue` outside a loop")
        assert self.b.current is not None
        self.scope.loops[-1].continue_flows.append(Flow(self.b.current, self.env))
        self.b.set_block(None)

    def lower_match(self, s: ast.Match) -> None:
        subject = self.scalar(s.subject)
        if not (subject.type.is_int or subject.type.is_bool):
            raise self.err(s.subject, f"`match` works on integers, not {describe(subject)}")
        subject = self.materialize(subject)  # type: ignore[assignment]
        exits: list[Flow] = []
        for case in s.cases:
            if self.b.terminated:
                break
            self.set_line(case.pattern)
            constants = self.case_constants(case.pattern)
            if constants is None:
                true_flows: list[Flow] = [Flow(self.b.current, self.env)]  # type: ignore[arg-type]
                false_flows: list[Flow] = []
                self.b.set_block(None)
            else:
                assert isinstance(subject, Scalar)
                cond = self.membership(subject, constants, case.pattern)
                t, f = self.flow.branch(self.scalar_value(cond), self.env, self.line)
                true_flows, false_flows = [t], [f]
            if case.guard is not None:
                env = self.flow.merge(true_flows, self.line, "case")
                assert env is not None
                self.env = env
                gt, gf = self.condition(case.guard)
                true_flows, false_flows = gt, false_flows + gf
            env = self.flow.merge(true_flows, self.line, "case")
            if env is not None:
                self.env = env
                self.lower_body(case.body)
                if not self.b.terminated:
                    assert self.b.current is not None
                    exits.append(Flow(self.b.current, self.env))
            env = self.flow.merge(false_flows, self.line, "nextcase")
            if env is not None:
                self.env = env
        if not self.b.terminated:
            assert self.b.current is not None
            exits.append(Flow(self.b.current, self.env))
        self.resume(exits, "endmatch")

    def case_constants(self, p: ast.pattern) -> list[int] | None:
        """The constants a case matches; None for the wildcard `case _:`."""
        match p:
            case ast.MatchAs(pattern=None, name=None):
                return None
            case ast.MatchValue(value=v):
                c = self.scalar(v)
                if c.const is None or not isinstance(c.const, int):
                    raise self.err(p, "a case value must be an integer constant")
                return [c.const]
            case ast.MatchSingleton(value=v) if isinstance(v, bool):
                return [int(v)]
            case ast.MatchOr(patterns=ps):
                out: list[int] = []
                for q in ps:
                    alternative = self.case_constants(q)
                    if alternative is None:
                        raise self.err(q, "`_` cannot be part of an alternative")
                    out.extend(alternative)
                return out
        raise self.err(p, "only integer constants, `|` alternatives and `_` are supported as case patterns",
                       "write `case 80 | 443:` or `case _:`")

    # ----------------------------------------------------------------- conditions
    def condition(self, node: ast.expr) -> tuple[list[Flow], list[Flow]]:
        """Lower a test as jumps: the flows where it holds and where it does not, with locals narrowed."""
        self.set_line_expr(node)
        match node:
            case ast.BoolOp(op=ast.And(), values=values):
                true_flows, false_flows = self.condition(values[0])
                for v in values[1:]:
                    env = self.flow.merge(true_flows, self.line, "and")
                    if env is None:
                        return [], false_flows
                    self.env = env
                    t, f = self.condition(v)
                    true_flows, false_flows = t, false_flows + f
                return true_flows, false_flows
            case ast.BoolOp(op=ast.Or(), values=values):
                true_flows, false_flows = self.condition(values[0])
                for v in values[1:]:
                    env = self.flow.merge(false_flows, self.line, "or")
                    if env is None:
                        return true_flows, []
                    self.env = env
                    t, f = self.condition(v)
                    true_flows, false_flows = true_flows + t, f
                return true_flows, false_flows
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                t, f = self.condition(operand)
                return f, t
            case ast.Compare(left=left, ops=[ast.Is() | ast.IsNot() as op], comparators=[ast.Constant(value=None)]):
                return self.none_test(left, isinstance(op, ast.Is))
        value = self.lower_expr(node)
        if isinstance(value, OptionalVal) and isinstance(value.inner, HeaderVal):
            return self.narrow_flows(node, value, is_none=False)
        cond = self.truth(value, node)
        assert self.b.current is not None
        if cond.const is not None:
            here = Flow(self.b.current, self.env)
            return ([here], []) if cond.const else ([], [here])
        yes, no = self.flow.branch(self.scalar_value(cond), self.env, self.line)
        return [yes], [no]

    def none_test(self, node: ast.expr, is_none: bool) -> tuple[list[Flow], list[Flow]]:
        value = self.lower_expr(node)
        if isinstance(value, NoneVal):
            raise self.err(node, "comparing None with None")
        if not isinstance(value, OptionalVal):
            assert self.b.current is not None
            here = Flow(self.b.current, self.env)  # never None: the test is constant
            return ([], [here]) if is_none else ([here], [])
        return self.narrow_flows(node, value, is_none)

    def narrow_flows(self, node: ast.expr, value: OptionalVal, is_none: bool) -> tuple[list[Flow], list[Flow]]:
        key = self.narrow_key(node)
        present_env = dict(self.env)
        if key is not None:
            present_env[key] = value.narrow()
        if value.narrowed:
            assert self.b.current is not None
            here = Flow(self.b.current, present_env)
            return ([], [here]) if is_none else ([here], [])
        present, absent = self.flow.branch(value.present, self.env, self.line, env_true=present_env)
        return ([absent], [present]) if is_none else ([present], [absent])

    def narrow_key(self, node: ast.expr) -> str | None:
        """The local (or packet pseudo-local) a None test narrows."""
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                isinstance(self.env.get(node.value.id), PacketVal):
            return packet_access.pseudo_local(node.attr)
        return None

    def truth(self, v: DslValue, node: ast.expr) -> Scalar:
        if isinstance(v, OptionalVal) and v.narrowed and isinstance(v.inner, Scalar):
            v = v.inner  # checked not None: a number
        if isinstance(v, Scalar):
            if v.type.is_bool:
                return v
            return self.compare(CmpOp.NE, v, Scalar(literal_type(0), const=0), node)
        if isinstance(v, OptionalVal):
            raise self.err(node, f"the truth of {describe(v)} is ambiguous",
                           f"write `{ast.unparse(node)} is not None`")
        raise self.err(node, f"{describe(v)} cannot be used as a condition")

    def set_line_expr(self, node: ast.AST) -> None:
        if self.scope.call_line is None and hasattr(node, "lineno"):
            self.line = node.lineno

    # ----------------------------------------------------------------- expressions
    def scalar(self, node: ast.expr) -> Scalar:
        return self.as_scalar(self.lower_expr(node), node)

    def as_scalar(self, v: DslValue, node: ast.expr) -> Scalar:
        if isinstance(v, Scalar):
            return v
        if isinstance(v, OptionalVal) and v.narrowed and isinstance(v.inner, Scalar):
            return v.inner
        if isinstance(v, OptionalVal) and isinstance(v.inner, Scalar):
            raise self.err(node, f"`{ast.unparse(node)}` may be None here",
                           f"check first: `if {ast.unparse(node)} is None: return XDP_PASS`, or store it in a "
                           "variable and test that")
        raise self.err(node, f"expected a number, but `{ast.unparse(node)}` is {describe(v)}")

    def lower_expr(self, node: ast.expr) -> DslValue:
        self.set_line_expr(node)
        return self.record(node, self.lower_expr_inner(node))

    def lower_expr_inner(self, node: ast.expr) -> DslValue:
        match node:
            case ast.Constant(value=value):
                return self.constant(value, node)
            case ast.Name(id=name):
                return self.lookup_name(node, name)
            case ast.Attribute():
                return self.attribute(node)
            case ast.BinOp(left=left, op=op, right=right):
                if isinstance(op, ast.Div):
                    return self.true_divide(self.scalar(left), self.scalar(right), node)
                if isinstance(op, ast.Pow):
                    return self.power(node)
                return self.binary(self.binop_of(op, node), self.scalar(left), self.scalar(right), node)
            case ast.UnaryOp(op=op, operand=operand):
                return self.unary(op, operand, node)
            case ast.Compare():
                return self.comparison(node)
            case ast.BoolOp() | ast.IfExp():
                return self.branchy_value(node)
            case ast.Call():
                return self.call(node)
            case ast.Subscript(value=base, slice=index):
                return self.subscript(node, base, index)
            case ast.Tuple(elts=elts):
                items = [self.scalar(e) for e in elts]
                if all(i.const is not None for i in items):
                    return ConstTuple(tuple(i.const for i in items))  # type: ignore[misc]
                raise self.err(node, "tuples must be constant", "tuples of runtime values are not supported")
            case ast.JoinedStr():
                raise self.err(node, "strings are not supported in a DSL function")
            case ast.List() | ast.Dict() | ast.Set() | ast.ListComp() | ast.DictComp() | ast.SetComp() | \
                    ast.GeneratorExp():
                raise self.err(node, f"{type(node).__name__} values are not supported in a DSL function",
                               "use a map (HashMap, Array) for collections")
            case ast.Lambda():
                raise self.err(node, "lambda is not supported", "define an @inline helper at module level")
            case ast.NamedExpr():
                raise self.err(node, "the walrus operator `:=` is not supported", "assign on its own line")
            case ast.Await() | ast.Yield() | ast.YieldFrom():
                raise self.err(node, "generators and coroutines are not supported")
        raise self.err(node, f"`{ast.unparse(node)}` is not supported in a DSL function")

    def constant(self, value: object, node: ast.expr) -> DslValue:
        if value is None:
            return NoneVal()
        if isinstance(value, str):
            return StringVal(value)
        return self.const_scalar(value, node)

    def const_scalar(self, value: object, node: ast.AST) -> Scalar:
        if isinstance(value, bool):
            return Scalar(BOOL, const=int(value))
        if isinstance(value, int):
            try:
                return Scalar(literal_type(value), const=value, literal=True)
            except OverflowError:
                raise self.err(node, f"{value} does not fit in 64 bits") from None
        if isinstance(value, float):
            try:
                fixed.from_float(value)
            except (OverflowError, ValueError):
                raise self.err(node, f"{value} is outside the float range [-2**31, 2**31)",
                               "DSL floats are Q32.32 fixed-point numbers; see docs/language.md") from None
            return Scalar(FLOAT, const=value, literal=True)
        raise self.err(node, f"the constant {value!r} is not supported", "use integers, floats and bools")

    def undefined(self, node: ast.expr, name: str) -> DslError:
        if name in self.scope.var_types:
            return self.err(node, f"{name} is not defined on every path that reaches here",
                            f"give {name} a value before the branch or loop that sets it")
        return self.err(node, f"unknown name `{name}`")

    def lookup_name(self, node: ast.expr, name: str) -> DslValue:
        if name in self.env:
            return self.env[name]
        if name in self.scope.var_types:
            raise self.undefined(node, name)
        value = resolve_global(self.scope.source.function, name, lambda m: self.err(node, m))
        return self.from_python(value, name, node)

    def from_python(self, value: object, name: str, node: ast.expr) -> DslValue:
        from pybpfdsl.frontend.resolve import classify

        kind, value = classify(value)
        match kind:
            case "state":
                assert isinstance(value, StateObject)
                return StateVal(self.register_state(value, name, node))
            case "constant":
                return self.const_scalar(value, node)
            case "tuple":
                assert isinstance(value, tuple)
                for item in value:
                    if not isinstance(item, int | float | bool):
                        raise self.err(node, f"{name} is a tuple with non-numeric items",
                                       "constant tuples may hold only ints, floats and bools")
                return ConstTuple(value)
            case "module":
                return ModuleVal(value)  # type: ignore[arg-type]
            case "string":
                assert isinstance(value, str)
                return StringVal(value)
            case "builtin" | "type" | "struct" | "inline":
                return Callee(kind, value)
            case "program":
                raise self.err(node, f"{name} is an @xdp program; programs cannot call each other",
                               "move the shared code into an @inline helper")
        raise self.err(node, f"{name} is a {type(value).__name__}, which a DSL function cannot use",
                       "use constants, state objects (Global, HashMap, ...), DSL types and @inline helpers")

    def register_state(self, obj: StateObject, name: str, node: ast.expr) -> StateObject:
        if obj.name is None:
            obj.name = name
        existing = self.state.get(obj.name)
        if existing is not None and existing is not obj:
            raise self.err(node, f"two different state objects are both called {obj.name}",
                           "give each Global or map a distinct module-level name")
        self.state[obj.name] = obj
        return obj

    def attribute(self, node: ast.Attribute) -> DslValue:
        base = self.lower_expr(node.value)
        attr = node.attr
        match base:
            case PacketVal():
                return packet_access.packet_attribute(self, node, attr)
            case HeaderVal():
                return packet_access.header_field(self, node, base, attr)
            case OptionalVal(inner=HeaderVal() as h, narrowed=True):
                return packet_access.header_field(self, node, h, attr)
            case OptionalVal(inner=HeaderVal(spec=spec)):
                raise self.err(node, f"`{ast.unparse(node.value)}` may be None here (the packet may have no "
                               f"{spec.name} header)",
                               f"check first: `if {ast.unparse(node.value)} is None: return XDP_PASS`")
            case StateVal(obj=Global() as g) if attr == "value":
                assert g.name is not None
                return Scalar(g.type, self.b.emit(n.LoadGlobal(self.new(g.type, g.name), g.name, line=self.line)))
            case StructVal(cls=cls, value=v):
                for f in cls.fields():
                    if f.name == attr:
                        return Scalar(f.type, self.b.emit(n.ExtractField(self.new(f.type), v, attr, line=self.line)))
                raise self.err(node, f"{cls.__name__} has no field `{attr}`",
                               "fields: " + ", ".join(f.name for f in cls.fields()))
            case OptionalVal(inner=StructVal() as sv, narrowed=True):
                return self.attribute_of_struct(node, sv)
            case OptionalVal(inner=StructVal()):
                raise self.err(node, f"`{ast.unparse(node.value)}` may be None here",
                               f"check first: `if {ast.unparse(node.value)} is None: ...`")
            case ModuleVal(module=m):
                if not hasattr(m, attr):
                    raise self.err(node, f"module {m.__name__} has no attribute {attr}")
                return self.from_python(getattr(m, attr), attr, node)
            case StateVal(obj=Global() as g):
                raise self.err(node, f"the Global {g.name} has no attribute `{attr}`",
                               f"read and write its value as `{g.name}.value`")
            case PayloadVal() if attr != "read":
                raise self.err(node, f"the payload has no attribute `{attr}`",
                               "use pkt.payload[i] or pkt.payload.read(T, offset)")
            case Callee() | StateVal() | PayloadVal():
                return Callee("method", (base, attr))
        raise self.err(node, f"{describe(base)} has no attribute `{attr}`")

    def attribute_of_struct(self, node: ast.Attribute, sv: StructVal) -> DslValue:
        for f in sv.cls.fields():
            if f.name == node.attr:
                return Scalar(f.type, self.op(n.ExtractField, f.type, sv.value, node.attr))
        raise self.err(node, f"{sv.cls.__name__} has no field `{node.attr}`")

    # --- arithmetic
    def binop_of(self, op: ast.operator, node: ast.AST) -> BinOp:
        if type(op) in _BINOPS:
            return _BINOPS[type(op)]
        if isinstance(op, ast.Div):
            raise self.err(node, "`/=` is not supported", "write `x = x / y` with x a float")
        raise self.err(node, f"the operator {type(op).__name__} is not supported")

    def convert(self, v: Scalar, t: ScalarType, node: ast.AST, implicit: bool = False) -> Scalar:
        """Convert to `t`. Implicit conversions (assignments to typed variables) refuse to lose information
        silently: a float into an integer, or a constant that does not fit."""
        if v.type == t:
            return v
        if implicit:
            if v.type.is_fixed and not t.is_fixed:
                raise self.err(node, f"a float cannot be stored in a {t} silently",
                               f"convert explicitly: `{t}(...)` truncates toward zero")
            if v.const is not None and t.is_int and isinstance(v.const, int) and not t.min <= v.const <= t.max:
                raise self.err(node, f"{v.const} does not fit in {t}",
                               f"use a wider type, or write `{t}({v.const})` to wrap it on purpose")
        if v.const is not None:
            if t.is_fixed:
                if isinstance(v.const, float):
                    return Scalar(FLOAT, const=v.const)
                if v.literal:  # an untyped constant converts exactly, and must fit
                    if not -(1 << 31) <= v.const < 1 << 31:
                        raise self.err(node, f"{v.const} is outside the float range [-2**31, 2**31)",
                                       "DSL floats are Q32.32 fixed-point numbers; see docs/language.md")
                    return Scalar(FLOAT, const=float(v.const))
                # A typed constant converts as the code would at run time: outside the range it wraps.
                return Scalar(FLOAT, const=fixed.to_float(arith.convert(int(v.const), v.type, FLOAT)))
            if isinstance(v.const, float):
                raw = fixed.from_float(v.const)
                return Scalar(t, const=arith.convert(raw, FLOAT, t))
            return Scalar(t, const=t.wrap(int(v.const)) if not t.is_bool else int(v.const != 0))
        value = self.scalar_value(v)
        return Scalar(t, self.b.emit(n.Convert(self.new(t), value, line=self.line)))

    def binary(self, op: BinOp, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        if a.type.is_fixed or b.type.is_fixed:
            return self.float_binary(op, a, b, node)
        if a.const is not None and b.const is not None and _untyped(a) and _untyped(b):
            r = arith.fold_untyped(op, int(a.const), int(b.const))
            try:
                return Scalar(literal_type(r), const=r, literal=True)
            except OverflowError:
                raise self.err(node, f"the constant {r} does not fit in 64 bits") from None
        if op in (BinOp.SHL, BinOp.SHR):
            t = promote(a.type)
        else:
            t = common_type(a.type, b.type)
        ca, cb = self.convert(a, t, node), self.convert(b, t, node)
        if ca.const is not None and cb.const is not None:
            return Scalar(t, const=arith.binary(op, t, int(ca.const), int(cb.const)))
        out = self.b.emit(n.Binary(self.new(t), op, self.scalar_value(ca), self.scalar_value(cb), line=self.line))
        return Scalar(t, out)

    def float_binary(self, op: BinOp, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        if op not in arith.FIXED_BINOPS:
            raise self.err(node, f"`{_SYMBOL[op]}` is not defined on floats",
                           "use +, -, * and / on floats; convert to an integer type for the others")
        if a.const is not None and b.const is not None and _untyped(a) and _untyped(b):
            r = {BinOp.ADD: float(a.const) + float(b.const), BinOp.SUB: float(a.const) - float(b.const),
                 BinOp.MUL: float(a.const) * float(b.const)}[op]
            return self.const_scalar(r, node)
        ca, cb = self.convert(a, FLOAT, node), self.convert(b, FLOAT, node)
        if ca.const is not None and cb.const is not None:
            # Typed constants fold as the code computes: in Q32.32, wrapping (not in double precision).
            ra, rb = self.fixed_raw(ca, node), self.fixed_raw(cb, node)
            folded = _exact_float({BinOp.ADD: fixed.wrap64(ra + rb), BinOp.SUB: fixed.wrap64(ra - rb),
                                   BinOp.MUL: fixed.mul(ra, rb)}[op])
            if folded is not None:
                return Scalar(FLOAT, const=folded)
        out = self.b.emit(n.Binary(self.new(FLOAT), op, self.scalar_value(ca), self.scalar_value(cb), line=self.line))
        return Scalar(FLOAT, out)

    def fixed_raw(self, v: Scalar, node: ast.AST) -> int:
        """The Q32.32 raw value of a float constant."""
        assert v.const is not None
        try:
            return fixed.from_float(float(v.const))
        except (OverflowError, ValueError):
            raise self.err(node, f"{v.const} is outside the float range [-2**31, 2**31)",
                           "DSL floats are Q32.32 fixed-point numbers; see docs/language.md") from None

    def true_divide(self, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        if a.const is not None and b.const is not None and _untyped(a) and _untyped(b):
            if float(b.const) == 0:
                raise self.err(node, "division by zero in a constant expression")
            return self.const_scalar(float(a.const) / float(b.const), node)
        if a.const is not None and b.const is not None and not b.type.is_fixed:
            # Typed constants fold as the code computes (a quotient truncated to Q32.32; x / 0 == 0).
            const_divisor = self.convert(b, i64, node).const
            assert isinstance(const_divisor, int)
            if a.type.is_fixed:
                folded = _exact_float(fixed.div_int(self.fixed_raw(a, node), const_divisor))
            else:
                const_dividend = self.convert(a, i64, node).const
                assert isinstance(const_dividend, int)
                folded = _exact_float(fixed.quotient(const_dividend, const_divisor))
            if folded is not None:
                return Scalar(FLOAT, const=folded)
        if b.type.is_fixed:
            if b.const is None:
                raise self.err(node, "dividing by a float computed at run time is not supported",
                               "divide by a constant or by an integer, or multiply by a precomputed reciprocal")
            if float(b.const) == 0:
                raise self.err(node, "division by zero")
            return self.float_binary(BinOp.MUL, a, self.const_scalar(1.0 / float(b.const), node), node)
        divisor = self.convert(b, i64, node)
        if not a.type.is_fixed:
            # Integer over integer: whole part plus scaled remainder, so a large dividend (a nanosecond
            # clock) does not overflow the way converting it to float first would.
            dividend = self.convert(a, i64, node)
            out = self.op(n.IntQuotient, FLOAT, self.scalar_value(dividend), self.scalar_value(divisor))
            return Scalar(FLOAT, out)
        out = self.op(n.FixedDivInt, FLOAT, self.scalar_value(a), self.scalar_value(divisor))
        return Scalar(FLOAT, out)

    def power(self, node: ast.BinOp) -> Scalar:
        a, b = self.scalar(node.left), self.scalar(node.right)
        if a.const is not None and b.const is not None and _untyped(a) and _untyped(b):
            if isinstance(a.const, int) and isinstance(b.const, int) and b.const >= 0:
                return self.const_scalar(a.const ** b.const, node)
            try:
                return self.const_scalar(float(a.const) ** float(b.const), node)
            except (ZeroDivisionError, OverflowError):
                raise self.err(node, f"{a.const} ** {b.const} has no value in the DSL") from None
        raise self.err(node, "`**` works only on constants", "multiply explicitly: `x * x`")

    def negate(self, v: Scalar, node: ast.AST) -> Scalar:
        if v.const is not None and _untyped(v):
            return self.const_scalar(-v.const, node)
        t = v.type if v.type.is_fixed else promote(v.type)
        cv = self.convert(v, t, node)
        zero = Scalar(t, const=0.0 if t.is_fixed else 0)
        if t.is_fixed:
            return self.float_binary(BinOp.SUB, zero, cv, node)
        return self.binary(BinOp.SUB, zero, cv, node)

    def unary(self, op: ast.unaryop, operand: ast.expr, node: ast.expr) -> DslValue:
        if isinstance(op, ast.Not):
            return self.branchy_value(node)
        v = self.scalar(operand)
        if isinstance(op, ast.UAdd):
            return v
        if isinstance(op, ast.USub):
            return self.negate(v, node)
        if v.type.is_fixed:
            raise self.err(node, "`~` is not defined on floats")
        t = promote(v.type)
        if v.const is not None and _untyped(v):
            return self.const_scalar(~int(v.const), node)
        return self.binary(BinOp.XOR, self.convert(v, t, node), Scalar(t, const=t.wrap(-1)), node)

    def compare(self, op: CmpOp, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        if a.type.is_fixed or b.type.is_fixed:
            t = FLOAT
        else:
            t = common_type(a.type, b.type)
        if a.const is not None and b.const is not None:
            if t.is_fixed and _untyped(a) and _untyped(b):
                return Scalar(BOOL, const=int(arith.compare(op, float(a.const), float(b.const))))  # type: ignore[arg-type]
            if t.is_fixed:  # typed constants compare as the code would: converted (wrapping) first
                fa, fb = self.convert(a, t, node).const, self.convert(b, t, node).const
                assert fa is not None and fb is not None
                return Scalar(BOOL, const=int(arith.compare(op, float(fa), float(fb))))  # type: ignore[arg-type]
            if _untyped(a) and _untyped(b):
                return Scalar(BOOL, const=int(arith.compare(op, int(a.const), int(b.const))))
        ca, cb = self.convert(a, t, node), self.convert(b, t, node)
        out = self.b.emit(n.Compare(self.new(BOOL), op, self.scalar_value(ca), self.scalar_value(cb), line=self.line))
        return Scalar(BOOL, out)

    def comparison(self, node: ast.Compare) -> DslValue:
        ops, rights = node.ops, node.comparators
        if len(ops) == 1 and isinstance(ops[0], ast.In | ast.NotIn):
            result = self.contains(node.left, rights[0], node)
            return self.logical_not(result, node) if isinstance(ops[0], ast.NotIn) else result
        if any(isinstance(o, ast.Is | ast.IsNot | ast.In | ast.NotIn) for o in ops):
            if len(ops) == 1 and isinstance(rights[0], ast.Constant) and rights[0].value is None:
                return self.branchy_value(node)
            raise self.err(node, "`is` compares only with None, and `in` cannot be chained",
                           "use `==` to compare numbers")
        if len(ops) > 1:
            return self.branchy_value(node)
        left = self.scalar(node.left)
        right = self.scalar(rights[0])
        op = _CMPOPS[type(ops[0])]
        special = self.random_threshold(node.left, rights[0], left, right, op, node)
        return special if special is not None else self.compare(op, left, right, node)

    def random_threshold(self, lnode: ast.expr, rnode: ast.expr, left: Scalar, right: Scalar, op: CmpOp,
                         node: ast.AST) -> Scalar | None:
        """`random() < p` with a constant p compares the raw 32 random bits with ceil(p·2**32): exact."""
        if op is not CmpOp.LT or not self.is_random_call(lnode) or right.const is None:
            return None
        threshold = fixed.ceil_from_float(float(right.const))
        clamped = max(min(threshold, (1 << 63) - 1), -(1 << 63))
        return self.compare(op, left, Scalar(FLOAT, self.const(FLOAT, clamped)), node)

    def is_random_call(self, node: ast.expr) -> bool:
        if not (isinstance(node, ast.Call) and not node.args and isinstance(node.func, ast.Name | ast.Attribute)):
            return False
        try:
            return self.lower_callee_static(node.func) == Callee("builtin", "random")
        except DslError:
            return False

    def lower_callee_static(self, node: ast.expr) -> object:
        if isinstance(node, ast.Name) and node.id not in self.env:
            from pybpfdsl.frontend.resolve import classify

            value = resolve_global(self.scope.source.function, node.id, lambda m: self.err(node, m))
            kind, target = classify(value)
            if kind == "builtin":
                return Callee("builtin", target)
        return None

    def logical_not(self, v: Scalar, node: ast.AST) -> Scalar:
        if v.const is not None:
            return Scalar(BOOL, const=int(not v.const))
        return Scalar(BOOL, self.op(n.Binary, BOOL, BinOp.XOR, self.scalar_value(v), self.const(BOOL, 1)))

    def membership(self, v: Scalar, constants: list[int], node: ast.AST) -> Scalar:
        result: Scalar | None = None
        for c in constants:
            eq = self.compare(CmpOp.EQ, v, self.const_scalar(c, node), node)
            if result is None:
                result = eq
            elif result.const is not None or eq.const is not None:
                result = eq if result.const == 0 else result if eq.const == 0 else Scalar(BOOL, const=1)
            else:
                result = Scalar(BOOL, self.b.emit(n.Binary(self.new(BOOL), BinOp.OR, self.scalar_value(result),
                                                           self.scalar_value(eq), line=self.line)))
        return result if result is not None else Scalar(BOOL, const=0)

    def contains(self, item_node: ast.expr, container_node: ast.expr, node: ast.AST) -> Scalar:
        container = self.lower_expr(container_node)
        if isinstance(container, ConstTuple):
            item = self.scalar(item_node)
            return self.membership(item, [int(x) for x in container.items], node)
        if isinstance(container, StateVal) and isinstance(container.obj, BpfMap):
            m = container.obj
            key = self.map_key(m, item_node)
            ref = self.lookup(m, key)
            is_null = self.b.emit(n.IsNull(self.new(BOOL), ref, line=self.line))
            return self.logical_not(Scalar(BOOL, is_null), node)
        raise self.err(container_node, f"`in` needs a map or a constant tuple, not {describe(container)}")

    def branchy_value(self, node: ast.expr) -> DslValue:
        """A value computed with control flow: and/or/not, chained comparisons, `a if c else b`."""
        if isinstance(node, ast.IfExp):
            t_flows, f_flows = self.condition(node.test)
            results: list[tuple[Flow, DslValue]] = []
            for flows, arm in ((t_flows, node.body), (f_flows, node.orelse)):
                env = self.flow.merge(flows, self.line, "arm")
                if env is None:
                    continue
                self.env = env
                v = self.lower_expr(arm)
                assert self.b.current is not None
                results.append((Flow(self.b.current, self.env), v))
            return self.join_values(results, node)
        if isinstance(node, ast.Compare) and len(node.ops) > 1:
            t_flows, f_flows = self.chained_condition(node)
        else:
            t_flows, f_flows = self.condition(node)
        results = []
        for flows, truth in ((t_flows, 1), (f_flows, 0)):
            env = self.flow.merge(flows, self.line, "bool")
            if env is None:
                continue
            self.env = env
            assert self.b.current is not None
            results.append((Flow(self.b.current, self.env), Scalar(BOOL, const=truth)))
        return self.join_values(results, node)

    def chained_condition(self, node: ast.Compare) -> tuple[list[Flow], list[Flow]]:
        left = self.materialize(self.scalar(node.left))
        assert isinstance(left, Scalar)
        false_flows: list[Flow] = []
        true_flows: list[Flow] = []
        for index, (op, right_node) in enumerate(zip(node.ops, node.comparators)):
            if type(op) not in _CMPOPS:
                raise self.err(node, "only <, <=, >, >=, ==, != can be chained")
            right = self.materialize(self.scalar(right_node))
            assert isinstance(right, Scalar)
            c = self.compare(_CMPOPS[type(op)], left, right, node)
            t, f = self.flow.branch(self.scalar_value(c), self.env, self.line)
            false_flows.append(f)
            if index == len(node.ops) - 1:
                true_flows = [t]
            else:
                self.b.set_block(t.block)
                self.env = t.env
            left = right
        return true_flows, false_flows

    def join_values(self, results: list[tuple[Flow, DslValue]], node: ast.expr) -> DslValue:
        # A number checked not None is a number (`x if c else b` after `if b is None: return ...`).
        results = [(f, v.inner if isinstance(v, OptionalVal) and v.narrowed and isinstance(v.inner, Scalar) else v)
                   for f, v in results]
        if not results:
            self.b.set_block(None)
            return Scalar(BOOL, const=0)
        if len(results) == 1:
            self.b.set_block(results[0][0].block)
            self.env = results[0][0].env
            return results[0][1]
        values = [v for _, v in results]
        if all(isinstance(v, Scalar) for v in values):
            t = values[0].type  # type: ignore[union-attr]
            for v in values[1:]:
                assert isinstance(v, Scalar)
                if t.is_fixed or v.type.is_fixed:
                    t = FLOAT
                elif not (t == v.type and t.is_bool):
                    t = common_type(t, v.type)
            if all(isinstance(v, Scalar) and v.const is not None and v.const == values[0].const for v in values):  # type: ignore[union-attr]
                pass
            flows = []
            for flow, v in results:
                self.b.set_block(flow.block)
                assert isinstance(v, Scalar)
                cv = self.convert(v, t, node)
                flow.env = dict(flow.env)
                flow.env["$value"] = Scalar(t, self.scalar_value(cv))
                flows.append(flow)
            env = self.flow.merge(flows, self.line, "value")
            assert env is not None
            result = env.pop("$value")
            self.env = env
            return result
        if all(isinstance(v, StructVal) and v.cls is values[0].cls for v in values):  # type: ignore[union-attr]
            flows = []
            for flow, v in results:
                assert isinstance(v, StructVal)
                flow.env = dict(flow.env)
                flow.env["$value"] = v
                flows.append(flow)
            env = self.flow.merge(flows, self.line, "value")
            assert env is not None
            out = env.pop("$value")
            self.env = env
            return out
        raise self.err(node, "both branches of this expression must give numbers (or the same record type)")

    # ----------------------------------------------------------------- calls
    def call(self, node: ast.Call) -> DslValue:
        callee = self.lower_expr(node.func)
        if not isinstance(callee, Callee):
            raise self.err(node, f"{describe(callee)} is not callable")
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise self.err(node, "`*args` and `**kwargs` are not supported in calls")
        match callee.kind:
            case "builtin":
                from pybpfdsl.frontend import builtin_calls

                return builtin_calls.call_builtin(self, node, str(callee.target))
            case "type":
                return self.type_call(node, callee.target)
            case "struct":
                assert isinstance(callee.target, type)
                return self.struct_call(node, callee.target)
            case "inline":
                assert isinstance(callee.target, FunctionType)
                return self.inline_call(node, callee.target)
            case "method":
                base, attr = cast(tuple[DslValue, str], callee.target)
                return self.method_call(node, base, attr)
        raise self.err(node, f"cannot call {describe(callee)}")

    def type_call(self, node: ast.Call, target: object) -> Scalar:
        if len(node.args) != 1 or node.keywords:
            raise self.err(node, "a type conversion takes exactly one argument")
        t = FLOAT if target is float else BOOL if target is bool else target
        if target is int:
            raise self.err(node, "`int(...)` has no fixed width in the DSL", "write u32(x), i64(x), ...")
        assert isinstance(t, ScalarType)
        v = self.lower_expr(node.args[0])
        if t is BOOL and not isinstance(v, Scalar):
            return self.truth(v, node.args[0])
        s = self.as_scalar(v, node.args[0])
        if t is BOOL:
            return self.truth(s, node.args[0])
        # An explicit conversion gives a typed value, even of a literal that already had this type.
        return replace(self.convert(s, t, node), literal=False)

    def struct_call(self, node: ast.Call, cls: type[Struct]) -> StructVal:
        fields = cls.fields()
        given: dict[str, ast.expr] = {}
        if len(node.args) > len(fields):
            raise self.err(node, f"{cls.__name__} has {len(fields)} fields, {len(node.args)} values given")
        for f, a in zip(fields, node.args):
            given[f.name] = a
        for k in node.keywords:
            assert k.arg is not None
            if k.arg not in {f.name for f in fields}:
                raise self.err(k.value, f"{cls.__name__} has no field `{k.arg}`",
                               "fields: " + ", ".join(f.name for f in fields))
            if k.arg in given:
                raise self.err(k.value, f"field `{k.arg}` given twice")
            given[k.arg] = k.value
        values = []
        for f in fields:
            if f.name in given:
                v = self.convert(self.scalar(given[f.name]), f.type, given[f.name], implicit=True)
            else:
                v = Scalar(f.type, const=0)
            values.append(self.scalar_value(v))
        out = self.b.emit(n.MakeStruct(self.new(StructType(cls)), tuple(values), line=self.line))
        return StructVal(cls, out)

    def inline_call(self, node: ast.Call, fn: FunctionType) -> DslValue:
        if fn in self.inline_stack or fn is self.main.function:
            raise self.err(node, f"{fn.__name__} calls itself; recursion cannot be inlined",
                           "rewrite it as a loop with a constant bound")
        if len(self.inline_stack) > 16:
            raise self.err(node, "helpers nest more than 16 deep")
        source = read_function(fn)
        self.inline_sources[(self.ctx, node)] = source
        tree = source.tree
        params = tree.args
        if params.vararg or params.kwarg or params.kwonlyargs or params.defaults:
            raise self.err(node, f"{fn.__name__}: helpers take plain positional parameters only")
        if len(node.args) + len(node.keywords) != len(params.args):
            raise self.err(node, f"{fn.__name__} takes {len(params.args)} arguments, "
                           f"{len(node.args) + len(node.keywords)} given")
        by_name = {p.arg: p for p in params.args}
        arg_nodes: dict[str, ast.expr] = {p.arg: a for p, a in zip(params.args, node.args)}
        for k in node.keywords:
            assert k.arg is not None
            if k.arg not in by_name:
                raise self.err(k.value, f"{fn.__name__} has no parameter `{k.arg}`")
            arg_nodes[k.arg] = k.value
        new_env: Env = {}
        callee_scope = Scope(source, new_env, self.var_types.setdefault(fn, {}), returns=[],
                             call_line=None if source.file == self.main.file else self.line)
        for p in params.args:
            value = self.lower_expr(arg_nodes[p.arg])
            if p.annotation is None:
                raise source.error(p, f"parameter `{p.arg}` of helper {fn.__name__} needs a type annotation",
                                   f"write `{p.arg}: u32` (or Packet, or a header, or a Struct)")
            new_env[p.arg] = self.bind_param(p, value, arg_nodes[p.arg], source, callee_scope)
        if any(isinstance(v, PacketVal) for v in new_env.values()):
            # The headers parsed so far (up front, in the entry block) dominate the call: the helper reads
            # them instead of parsing again.
            new_env.update({k: v for k, v in self.env.items() if k.startswith(packet_access.pseudo_local(""))})
        ret_ann = tree.returns
        if ret_ann is None:
            raise source.error(tree, f"helper {fn.__name__} needs a return annotation",
                               "write `-> u32` (or `-> None`)")
        caller_scope, caller_env = self.scope, self.env
        self.scope = callee_scope
        callee_scope.return_type = None if isinstance(ret_ann, ast.Constant) and ret_ann.value is None \
            else self.annotation_type(ret_ann)
        self.inline_stack.append(fn)
        try:
            self.lower_body(tree.body)
            if not self.b.terminated:
                if callee_scope.return_type is not None:
                    raise source.error(tree.body[-1], f"helper {fn.__name__} can reach its end without returning")
                assert self.b.current is not None
                callee_scope.returns.append(Flow(self.b.current, {}))  # type: ignore[union-attr]
                self.b.set_block(None)
        finally:
            self.inline_stack.pop()
            self.scope = caller_scope
        flows = callee_scope.returns or []
        for f in flows:
            f.env = {**caller_env, **f.env}
        env = self.flow.merge(flows, self.line, "ret")
        if env is None:
            self.env = dict(caller_env)
            return Scalar(BOOL, const=0)
        result = env.pop("$ret", None)
        self.env = env
        if callee_scope.return_type is None:
            return NoneVal()
        assert isinstance(result, Scalar)
        return result

    def bind_param(self, p: ast.arg, value: DslValue, node: ast.expr, source: FunctionSource,
                   scope: Scope) -> LocalValue:
        assert p.annotation is not None
        saved = self.scope
        self.scope = scope
        try:
            ann = self.eval_static(p.annotation)
        finally:
            self.scope = saved
        from pybpfdsl.lang.packet import Packet

        if ann is Packet:
            if not isinstance(value, PacketVal):
                raise self.err(node, f"parameter `{p.arg}` expects the packet, got {describe(value)}")
            return value
        if isinstance(ann, type) and issubclass(ann, Struct):
            if not isinstance(value, StructVal) or value.cls is not ann:
                raise self.err(node, f"parameter `{p.arg}` expects a {ann.__name__}, got {describe(value)}")
            return value
        if isinstance(value, HeaderVal | OptionalVal | PayloadVal) and not isinstance(ann, ScalarType):
            return value
        t = FLOAT if ann is float else BOOL if ann is bool else ann
        if not isinstance(t, ScalarType):
            raise source.error(p, f"`{ast.unparse(p.annotation)}` is not a type a helper parameter can have")
        scope.var_types[p.arg] = t
        converted = self.materialize(replace(self.convert(self.as_scalar(value, node), t, node, implicit=True),
                                             literal=False))
        assert isinstance(converted, Scalar)
        return converted

    def method_call(self, node: ast.Call, base: DslValue, attr: str) -> DslValue:
        if isinstance(base, StateVal) and isinstance(base.obj, BpfMap):
            return self.map_method(node, base.obj, attr)
        if isinstance(base, PayloadVal):
            return packet_access.payload_method(self, node, base, attr)
        if isinstance(base, StateVal) and isinstance(base.obj, RingBuf):
            return self.ringbuf_method(node, base.obj, attr)
        raise self.err(node, f"{describe(base)} has no method `{attr}`")

    def ringbuf_method(self, node: ast.Call, rb: RingBuf[Struct], attr: str) -> Scalar:
        """`events.output(Record(...))`: True when the record was written, False when the buffer was full."""
        name, cls = rb.name, rb.record.__name__
        if attr != "output":
            raise self.err(node, f"RingBuf has no method `{attr}` in a DSL function",
                           f"write `{name}.output({cls}(...))`; read records from Python with `{name}.poll()`")
        if len(node.args) != 1 or node.keywords:
            raise self.err(node, f"`{name}.output` takes exactly one {cls} record",
                           f"write `{name}.output({cls}(field=..., ...))`")
        record = self.lower_expr(node.args[0])
        if not isinstance(record, StructVal) or record.cls is not rb.record:
            raise self.err(node.args[0], f"{name} holds {cls} records, not {describe(record)}",
                           f"build one: `{name}.output({cls}(...))`")
        assert name is not None
        return Scalar(BOOL, self.op(n.RingbufOutput, BOOL, name, record.value, hint="written"))

    # ----------------------------------------------------------------- maps
    def map_of(self, node: ast.expr) -> BpfMap:
        v = self.lower_expr(node)
        if isinstance(v, StateVal) and isinstance(v.obj, BpfMap):
            return v.obj
        raise self.err(node, f"`{ast.unparse(node)}` is {describe(v)}, not a map")

    def map_key(self, m: BpfMap, node: ast.expr) -> n.Value:
        v = self.lower_expr(node)
        kt = m.key_type
        if isinstance(kt, ScalarType):
            s = self.as_scalar(v, node)
            if s.type.is_fixed:
                raise self.err(node, f"the keys of {m.name} are {kt}, not floats")
            return self.scalar_value(self.convert(s, kt, node, implicit=True))
        if isinstance(v, StructVal) and v.cls is kt:
            return v.value
        raise self.err(node, f"the keys of {m.name} are {kt.__name__} records, not {describe(v)}",
                       f"build one: `{kt.__name__}(...)`")

    def map_value(self, m: BpfMap, node: ast.expr) -> n.Value:
        v = self.lower_expr(node)
        vt = m.value_type
        if isinstance(vt, ScalarType):
            return self.scalar_value(self.convert(self.as_scalar(v, node), vt, node, implicit=True))
        if isinstance(v, StructVal) and v.cls is vt:
            return v.value
        raise self.err(node, f"the values of {m.name} are {vt.__name__} records, not {describe(v)}")

    def lookup(self, m: BpfMap, key: n.Value) -> n.Value:
        assert m.name is not None
        return self.b.emit(n.MapLookup(self.new(MapValueRef(m.name), m.name), m.name, key, line=self.line))

    def load_map_value(self, m: BpfMap, ref: n.Value) -> Scalar | StructVal:
        vt = value_ir_type(m.value_type)
        out = self.b.emit(n.LoadValue(self.new(vt), ref, line=self.line))
        if isinstance(vt, StructType):
            return StructVal(vt.cls, out)
        return Scalar(vt, out)

    def optional_lookup(self, m: BpfMap, key: n.Value) -> OptionalVal:
        """m.get(k) without a default: the value, or None."""
        ref = self.lookup(m, key)
        is_null = self.b.emit(n.IsNull(self.new(BOOL), ref, line=self.line))
        vt = value_ir_type(m.value_type)
        join = self.b.new_block("got")
        present = self.new(BOOL, "found")
        value = self.new(vt, "value")
        join.params.extend([present, value])
        zero = self.zero_of(vt)
        false = self.const(BOOL, 0)
        hit = self.b.new_block("hit")
        self.b.terminate(n.Branch(is_null, n.Edge(join.name, (false, zero)), n.Edge(hit.name), line=self.line))
        self.b.set_block(hit)
        loaded = self.load_map_value(m, ref)
        loaded_value = loaded.value
        assert loaded_value is not None
        self.b.terminate(n.Jump(n.Edge(join.name, (self.const(BOOL, 1), loaded_value)), line=self.line))
        self.b.set_block(join)
        inner: Scalar | StructVal = StructVal(vt.cls, value) if isinstance(vt, StructType) else Scalar(vt, value)
        return OptionalVal(inner, present)

    def zero_of(self, t: ScalarType | StructType) -> n.Value:
        if isinstance(t, StructType):
            zeros = tuple(self.const(f.type, 0) for f in t.cls.fields())
            return self.b.emit(n.MakeStruct(self.new(t), zeros, line=self.line))
        return self.const(t, 0)

    def map_method(self, node: ast.Call, m: BpfMap, attr: str) -> DslValue:
        if attr == "get":
            if not 1 <= len(node.args) <= 2 or node.keywords:
                raise self.err(node, "write `m.get(key)` or `m.get(key, default)`")
            key = self.map_key(m, node.args[0])
            found = self.optional_lookup(m, key)
            if len(node.args) == 1:
                return found
            default_node = node.args[1]
            vt = value_ir_type(m.value_type)
            if isinstance(vt, StructType):
                default = self.lower_expr(default_node)
                if not isinstance(default, StructVal) or default.cls is not vt.cls:
                    raise self.err(default_node, f"the default must be a {vt.cls.__name__} record")
                found_record = found.inner
                assert isinstance(found_record, StructVal)
                out = self.op(n.Select, vt, found.present, found_record.value, default.value)
                return StructVal(vt.cls, out)
            d = self.convert(self.scalar(default_node), vt, default_node, implicit=True)
            inner = found.inner
            assert isinstance(inner, Scalar) and inner.value is not None
            out = self.b.emit(n.Select(self.new(vt), found.present, inner.value, self.scalar_value(d), line=self.line))
            return Scalar(vt, out)
        if attr in ("items", "keys", "values"):
            raise self.err(node, "iterating a map inside the program is not supported",
                           "read maps from Python (the control plane) instead")
        raise self.err(node, f"{m.kind_name} has no method `{attr}` in a DSL function",
                       "use m[k], m.get(k, default), m[k] = v, del m[k], k in m")

    def subscript(self, node: ast.Subscript, base_node: ast.expr, index: ast.expr) -> DslValue:
        base = self.lower_expr(base_node)
        if isinstance(base, StateVal) and isinstance(base.obj, BpfMap):
            m = base.obj
            if isinstance(m, HashMap | LruHashMap):
                raise self.err(node, f"`{m.name}[key]` on a hash map has no value when the key is missing",
                               f"write `{m.name}.get(key, 0)` (or `.get(key)` and test for None)")
            key = self.map_key(m, index)
            found = self.optional_lookup(m, key)
            inner = found.inner
            if isinstance(inner, Scalar):
                assert inner.value is not None
                zero = self.const(inner.type, 0)
                return Scalar(inner.type, self.op(n.Select, inner.type, found.present, inner.value, zero))
            return inner
        if isinstance(base, PayloadVal):
            return packet_access.payload_byte(self, node, base, index)
        if isinstance(base, ConstTuple):
            i = self.scalar(index)
            if i.const is None or not isinstance(i.const, int) or not -len(base.items) <= i.const < len(base.items):
                raise self.err(index, "a constant tuple needs a constant index within its length")
            return self.const_scalar(base.items[i.const], node)
        raise self.err(node, f"{describe(base)} cannot be indexed")

    def map_aug(self, m: BpfMap, index: ast.expr, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        """`m[k] += n`: add in place (atomically when the kernel allows); a missing hash key starts at 0."""
        vt = m.value_type
        if not isinstance(vt, ScalarType):
            raise self.err(s, f"the values of {m.name} are records; `{_SYMBOL[op]}=` needs numbers",
                           "read the record, build a new one and store it")
        key = self.map_key(m, index)
        operand = self.scalar(value_node)
        self.refuse_float_into_int(operand, vt, f"a value of {m.name}", value_node)
        ref = self.lookup(m, key)
        is_null = self.b.emit(n.IsNull(self.new(BOOL), ref, line=self.line))
        hit, miss, done = self.b.new_block("hit"), self.b.new_block("miss"), self.b.new_block("updated")
        self.b.terminate(n.Branch(is_null, n.Edge(miss.name), n.Edge(hit.name), line=self.line))
        self.b.set_block(hit)
        env = dict(self.env)
        if op is BinOp.ADD and (vt.bits in (32, 64) or vt.is_fixed):
            delta = self.convert(operand, vt, s)
            self.b.append(n.StoreValue(ref, self.scalar_value(delta), atomic_add=True, line=self.line))
        else:
            old = Scalar(vt, self.b.emit(n.LoadValue(self.new(vt), ref, line=self.line)))
            new = self.convert(self.binary(op, old, operand, s), vt, s)
            self.b.append(n.StoreValue(ref, self.scalar_value(new), line=self.line))
        self.b.terminate(n.Jump(n.Edge(done.name), line=self.line))
        self.b.set_block(miss)
        if isinstance(m, HashMap | LruHashMap):
            zero = Scalar(vt, const=0.0 if vt.is_fixed else 0)
            first = self.convert(self.binary(op, zero, operand, s), vt, s)
            assert m.name is not None
            self.b.emit(n.MapUpdate(self.new(i64), m.name, key, self.scalar_value(first), line=self.line))
        self.b.terminate(n.Jump(n.Edge(done.name), line=self.line))
        self.b.set_block(done)
        self.env = env


def _remember(key: _K, v: Scalar, types: dict[_K, ScalarType], consts: dict[_K, int | float],
              not_const: set[_K]) -> None:
    """Record a scalar's type, and its constant while it is the same one every time `key` is lowered."""
    types[key] = v.type
    if v.const is not None and key not in not_const:
        if key in consts and consts[key] != v.const:
            not_const.add(key)
            del consts[key]
        else:
            consts[key] = v.const
    elif v.const is None:
        not_const.add(key)
        consts.pop(key, None)


def _exact_float(raw: int) -> float | None:
    """The Python float equal to a Q32.32 raw value, or None when a double cannot hold it exactly."""
    value = fixed.to_float(raw)
    return value if fixed.from_float(value) == raw else None


def _untyped(s: Scalar) -> bool:
    """Untyped constants fold exactly; explicitly typed ones (u8(3), typed locals) fold in their type."""
    return s.const is not None and s.literal


def lower_function(fn: FunctionType, program_name: str) -> Lowered:
    """Lower an @xdp function to a checked IR program."""
    from pybpfdsl.ir.check import IRError, check_program

    lowerer = Lowerer(fn, program_name)
    try:
        lowered = lowerer.lower()
        check_program(lowered.program)
    except DslError:
        raise
    except (IRError, Exception) as exc:  # a compiler bug: say where, never a bare traceback
        where = lowerer.scope.source.location(ast.Constant(value=None, lineno=lowerer.line, col_offset=0))
        raise InternalCompilerError(
            f"{where}: internal compiler error while compiling {program_name} ({type(exc).__name__}: {exc}). "
            "This is a pybpfdsl bug; please report it with this function's source.") from exc
    return lowered


__all__ = ["Lowered", "Lowerer", "lower_function", "components", "u64"]
