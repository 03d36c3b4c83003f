"""A call of an `@inline` helper, written once for the type checker and the emitter.

Both passes walk a helper's body at each call, in a scope of its own: the arguments matched to the
parameters (positional, then keywords) and bound in the parameters' types, the headers parsed so far
passed on with the packet, the body walked, a path falling off its end refused where the helper
returns a value, and the paths of its `return`s joined into the caller's locals and one value. The
refusals' words live here; each pass gives the steps that differ (its scope, binding a parameter, how
paths join). The emitter's refusals are compiler bugs: the checker ran first.
"""

from __future__ import annotations

import ast
from abc import abstractmethod
from copy import copy
from types import FunctionType
from typing import Any, TypeVar

from pybpfdsl.frontend.function_scope import FunctionScope
from pybpfdsl.frontend.resolve import annotation_type, eval_static, scalar_type
from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.statement_forms import StatementForms
from pybpfdsl.frontend.values import NoneVal, PacketVal, Scalar, pseudo_local
from pybpfdsl.lang.packet import Packet
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import BOOL, ScalarType

_Value = TypeVar("_Value")
_Scalar = TypeVar("_Scalar", bound="Scalar[Any]")
_Env = TypeVar("_Env", bound=dict[str, Any])


class InlineForms(StatementForms[_Value, _Scalar, _Env]):
    """@inline calls over a pass's values, numbers and locals."""

    main: FunctionSource
    """The `@xdp` function."""
    inline_stack: list[FunctionType]
    """The @inline helpers being walked, the innermost last."""

    def inline_call(self, node: ast.Call, fn: FunctionType) -> _Value | _Scalar | Scalar | NoneVal:
        source, arg_nodes = self.inline_arguments(node, fn)
        tree = source.tree
        callee = self.helper_scope(source, fn)
        for p in tree.args.args:  # arguments in parameter order
            value = self.expr(arg_nodes[p.arg])
            self.parameter_annotation(source, fn, p)
            callee.env[p.arg] = self.bind_param(p, value, arg_nodes[p.arg], source, callee)
        if any(isinstance(v, PacketVal) for v in callee.env.values()):
            # The headers parsed so far (up front, in the entry block) dominate the call: the helper reads
            # them instead of parsing again.
            callee.env.update({k: v for k, v in self.env.items() if k.startswith(pseudo_local(""))})
        return_type = self.inline_return_type(source, fn)
        caller, caller_env = self.scope, self.env
        self.scope = callee
        callee.return_type = return_type
        self.inline_stack.append(fn)
        try:
            self.body(tree.body)
            if self.falls_through():
                if callee.return_type is not None:
                    raise self.refusal_in(source, tree.body[-1],
                                          f"helper {fn.__name__} can reach its end without returning")
                self.return_nothing(callee)
        finally:
            self.inline_stack.pop()
            self.scope = caller
        merged = self.join_returns(callee.returns or [], caller_env)
        if merged is None:
            self.env = copy(caller_env)
            return Scalar(BOOL, const=0)
        result = merged.pop("$ret", None)
        self.env = merged
        if callee.return_type is None:
            return NoneVal()
        assert isinstance(result, Scalar)
        return result

    def inline_arguments(self, node: ast.Call, fn: FunctionType) -> tuple[FunctionSource, dict[str, ast.expr]]:
        """The parse of the @inline helper `fn` called at `node`, and the argument given for each of its
        parameters: the positional ones in order, then the keywords. Refused: recursion, helpers nested
        too deep, a parameter that is not plain positional (at the helper's `def`, where the fix goes),
        a count of arguments that differs, a keyword that names no parameter."""
        if fn in self.inline_stack or fn is self.main.function:
            raise self.refusal(node, f"{fn.__name__} calls itself; recursion cannot be inlined",
                               "rewrite it as a loop with a constant bound")
        if len(self.inline_stack) > 16:
            raise self.refusal(node, "helpers nest more than 16 deep")
        source = self.inline_source(node, fn)
        params = source.tree.args
        odd: ast.AST | None = (params.defaults[0] if params.defaults else params.vararg or params.kwarg
                               or (params.kwonlyargs[0] if params.kwonlyargs else None))
        if odd is not None:
            raise self.refusal_in(source, odd, f"{fn.__name__}: an @inline helper takes plain positional parameters "
                                               "only (no default values, *args, keyword-only parameters or **kwargs)",
                                  "remove it from the `def` and pass every argument at each call")
        if len(node.args) + len(node.keywords) != len(params.args):
            raise self.refusal(node, f"{fn.__name__} takes {len(params.args)} arguments, "
                               f"{len(node.args) + len(node.keywords)} given")
        by_name = {p.arg: p for p in params.args}
        arg_nodes: dict[str, ast.expr] = {p.arg: a for p, a in zip(params.args, node.args)}
        for k in node.keywords:
            assert k.arg is not None
            if k.arg not in by_name:
                raise self.refusal(k.value, f"{fn.__name__} has no parameter `{k.arg}`")
            arg_nodes[k.arg] = k.value
        return source, arg_nodes

    def bind_param(self, p: ast.arg, value: _Value, node: ast.expr, source: FunctionSource,
                   scope: FunctionScope[_Env, Any, Any]) -> object:
        """The local a parameter holds: the packet, a record of its Struct, or a header, the payload or an
        optional as given (a parameter not annotated with a number type); a number converted to its
        type (recorded as the local's declared type)."""
        assert p.annotation is not None
        ann = eval_static(scope.source, p.annotation)
        if ann is Packet:
            if not isinstance(value, PacketVal):
                raise self.refusal(node, f"parameter `{p.arg}` expects the packet, got {self.describe(value)}")
            return value
        if isinstance(ann, type) and issubclass(ann, Struct):
            optional = self.optional(value)
            if optional is not None and optional.narrowed and self.record_class(optional.inner) is ann:
                return optional.inner  # a record checked `is not None` (`m.get(k)`, `payload.read(...)`)
            if self.record_class(value) is not ann:
                maybe = optional is not None and self.record_class(optional.inner) is ann
                raise self.refusal(node, f"parameter `{p.arg}` expects a {ann.__name__}, got {self.describe(value)}",
                                   f"check it first: `if {ast.unparse(node)} is None: return XDP_PASS`"
                                   if maybe else None)
            return value
        if self.passed_whole(value) and not isinstance(ann, ScalarType):
            return value
        t = scalar_type(ann)
        if t is None:
            raise self.refusal_in(source, p, f"`{ast.unparse(p.annotation)}` is not a type a helper parameter can have")
        scope.var_types[p.arg] = t
        return self.typed_local(self.as_scalar(value, node), t, node)

    def parameter_annotation(self, source: FunctionSource, fn: FunctionType, p: ast.arg) -> ast.expr:
        """A helper's parameter's annotation (refused at the parameter when there is none)."""
        if p.annotation is None:
            raise self.refusal_in(source, p, f"parameter `{p.arg}` of helper {fn.__name__} needs a type annotation",
                                  f"write `{p.arg}: u32` (or Packet, or a header, or a Struct)")
        return p.annotation

    def inline_return_type(self, source: FunctionSource, fn: FunctionType) -> ScalarType | None:
        """A helper's declared return type (None for `-> None`; refused at the `def` when there is none)."""
        ret_ann = source.tree.returns
        if ret_ann is None:
            raise self.refusal_in(source, source.tree, f"helper {fn.__name__} needs a return annotation",
                                  "write `-> u32` (or `-> None`)")
        return None if isinstance(ret_ann, ast.Constant) and ret_ann.value is None \
            else annotation_type(source, ret_ann)

    # The steps each pass gives.
    @abstractmethod
    def refusal_in(self, source: FunctionSource, node: ast.AST, message: str, hint: str | None = None) -> Exception:
        """`refusal` at a node of `source` (an @inline helper's `def`, say), not of the function walked."""

    @abstractmethod
    def inline_source(self, node: ast.Call, fn: FunctionType) -> FunctionSource:
        """The parse of the @inline helper `fn` called at `node` (the checker reads it; the emitter
        takes the one the checker typed)."""

    @abstractmethod
    def helper_scope(self, source: FunctionSource, fn: FunctionType) -> FunctionScope[_Env, Any, Any]:
        """A new scope for a call of `fn`: no locals yet, the helper's declared types, no returns yet."""

    @abstractmethod
    def body(self, stmts: list[ast.stmt]) -> None:
        """A list of statements, on the paths that reach them."""

    @abstractmethod
    def falls_through(self) -> bool:
        """Whether a path reaches the end of the statements just walked."""

    @abstractmethod
    def return_nothing(self, callee: FunctionScope[_Env, Any, Any]) -> None:
        """The path falling off a `-> None` helper's end returns, with no value."""

    @abstractmethod
    def join_returns(self, returns: list[Any], caller_env: _Env) -> _Env | None:
        """The caller's locals after the helper's `returns` meet (their locals over `caller_env`; None
        when no path returns)."""


__all__ = ["InlineForms"]
