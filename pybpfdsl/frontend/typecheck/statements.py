"""Checking statements: assignments (locals, Globals, map entries, `op=`), returns, `if`, `match`,
loops, `break`/`continue`, `del`, and the refusal of every statement the DSL does not have.

Takes a function body; checks each statement on the paths the emitter will emit (nothing after a
`return`, no branch a constant test never takes), keeping each path's locals: a local keeps its declared
type across assignments, paths join at merges (`kinds.join`), a `for` over a constant tuple is checked
once per item in its own lowering context, a range or `while` loop's body once, with the locals it
reassigns as values of their entry types. Records the type each `op=` computes in under its statement
(it has no expression node of its own), and the `op=` on state that is an atomic add.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.inline_forms import InlineForms
from pybpfdsl.frontend.typecheck.arithmetic import computed
from pybpfdsl.frontend.typecheck.base import Loop
from pybpfdsl.frontend.typecheck.kinds import Env, Kind, Local, Maybe, Payload, describe, fresh, materialize
from pybpfdsl.frontend.typecheck.packet_writes import PacketWriteChecker
from pybpfdsl.frontend.values import Callee, ConstTuple, Scalar
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.errors import DslWarning
from pybpfdsl.lang.lpm_trie import LpmTrie
from pybpfdsl.lang.state import Array, BpfMap, Global, HashMap, LruHashMap, StateObject
from pybpfdsl.lang.types import ScalarType, common_type, literal_type, u32

MAX_UNROLL = 256
KERNEL_INSN_LIMIT = 1_000_000
"""The kernel verifier's BPF_COMPLEXITY_LIMIT_INSNS (the frontend may not import the verifier's copy)."""
MAX_LOOP_ITERATIONS = KERNEL_INSN_LIMIT // 3
"""A range loop the kernel can never accept: it follows every iteration, and each runs at least the
counter's increment, its comparison and one instruction of the body. Refused here, at once, rather
than after the verifier has unrolled it for minutes."""


class StatementChecker(PacketWriteChecker, InlineForms[Kind, Scalar[object], Env]):
    """Statements, assignments, `if`, `match`, loops, `break`/`continue`."""

    def body(self, stmts: list[ast.stmt]) -> None:
        for s in stmts:
            if not self.reachable:
                return  # code after return/break/continue never runs, and is not emitted
            self.statement(s)

    def jump(self, s: ast.Break | ast.Continue) -> None:
        if not self.scope.loops:
            raise self.err(s, f"`{type(s).__name__.lower()}` outside a loop")
        loop = self.scope.loops[-1]
        (loop.breaks if isinstance(s, ast.Break) else loop.continues).append(self.env)
        self.reachable = False

    def return_(self, s: ast.Return, value: ast.expr | None) -> None:
        returns = self.scope.returns
        if returns is not None:  # inside an inline helper
            ret_type = self.scope.return_type
            env: Env = {}
            if ret_type is not None:
                if value is None:
                    raise self.err(s, f"this helper must return a {ret_type}")
                self.convert(self.scalar(value), ret_type, value, implicit=True)
                env["$ret"] = computed(ret_type)
            elif value is not None:
                raise self.err(s, "this helper is declared `-> None` but returns a value")
            returns.append(env)
            self.reachable = False
            return
        if value is None:
            raise self.err(s, "an @xdp function must return an action", "write `return XDP_PASS`")
        v = self.scalar(value)
        if not v.type.is_int:
            raise self.err(value, f"an action must be an integer, not {describe(v)}")
        if v.const is not None and not 0 <= int(v.const) <= 4:
            raise self.err(value, f"{v.const} is not an XDP action",
                           "return XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX or XDP_REDIRECT")
        self.convert(v, u32, value)
        self.reachable = False

    # --- assignments
    def store_global(self, g: Global, v: Scalar[object]) -> None:
        return  # the conversion was the check

    def map_assign(self, m: BpfMap, index: ast.expr, value_node: ast.expr) -> None:
        self.map_key(m, index)
        self.map_value(m, value_node)

    def materialized(self, v: Scalar[object]) -> Local:
        return materialize(v)

    def update_local(self, name: str, result: Scalar[object], t: ScalarType, s: ast.stmt) -> None:
        self.record(s, result)
        self.env[name] = materialize(self.convert(result, t, s))

    def first_assignment(self, name: str, s: ast.stmt) -> None:
        """`hits = 5` with a module-level `hits = Global(...)`: by Python's rule the function now has a local
        `hits` that hides the Global, and the Global never changes, which is almost always a slip for
        `hits.value = 5`. Python's meaning is kept (a local), with a `DslWarning` at the line."""
        state = self.scope.source.function.__globals__.get(name)
        if not isinstance(state, StateObject):
            return
        change = f"`{name}.value = ...`" if isinstance(state, Global) else f"`{name}[key] = ...`"
        location = self.scope.source.location(s)
        warnings.warn_explicit(f"this assignment makes {name} a local variable of the function, hiding the "
                               f"module's {type(state).__name__} {name}, which it does not change; to change "
                               f"it, write {change} (or use another name for the local)",
                               DslWarning, location.file, location.line)

    def global_aug(self, g: Global, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        operand = self.scalar(value_node)
        self.refuse_float_into_int(operand, g.type, f"{g.name}.value", value_node)
        if op in (BinOp.ADD, BinOp.SUB) and (g.type.bits in (32, 64) or g.type.is_fixed):
            self.facts.atomic_add(self.ctx, s)  # an atomic add of the (negated) converted operand
            delta = self.convert(operand, g.type, value_node)
            if op is BinOp.SUB:  # the negated operand's type, for the emitter to read under the statement
                self.record_aug(s, self.negate(delta, s))
            return
        self.convert(self.record_aug(s, self.binary(op, computed(g.type), operand, s)), g.type, s)

    def record_aug(self, s: ast.stmt, result: Scalar[object]) -> Scalar[object]:
        self.facts.record(self.ctx, s, result)
        return result

    def map_aug(self, m: BpfMap, index: ast.expr, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        """`m[k] op= n`: in place (an atomic add where the kernel allows); a missing hash key starts at 0."""
        vt = m.value_type
        if not isinstance(vt, ScalarType):
            raise self.err(s, f"the values of {m.name} are records; `{fold.SYMBOL[op]}=` needs numbers",
                           "read the record, build a new one and store it")
        if isinstance(m, LpmTrie):
            v6 = m.max_prefixlen == 128
            example = "Ip6Prefix(16, 0x20, 0x01, 0, ..., 0)" if v6 else "Ip4Prefix(8, 10, 0, 0, 0)"
            cidr = "2001::/16" if v6 else "10.0.0.0/8"
            # Python's meaning (`t[k] = t[k] + n`) reads the longest matching prefix and writes an exact
            # /32 (or /128) entry; an in-place update changes the matching prefix's entry instead. The two
            # differ whenever a shorter prefix matches, so neither is a safe reading of the statement.
            raise self.err(s, f"`{fold.SYMBOL[op]}=` on the LpmTrie {m.name} is ambiguous: its read finds the longest "
                              "matching prefix, its write stores the exact key",
                           f"store to the prefix you mean, as a record: `{m.name}[{example}] = "
                           f"{m.name}.get({ast.unparse(index)}, 0) {fold.SYMBOL[op]} n` ({cidr}), or count in a "
                           "HashMap keyed by the address")
        self.map_key(m, index)
        operand = self.scalar(value_node)
        self.refuse_float_into_int(operand, vt, f"a value of {m.name}", value_node)
        if op is BinOp.ADD and (vt.bits in (32, 64) or vt.is_fixed):
            self.facts.atomic_add(self.ctx, s)
            self.convert(operand, vt, s)
        else:
            self.convert(self.record_aug(s, self.binary(op, computed(vt), operand, s)), vt, s)
        if isinstance(m, HashMap | LruHashMap):
            zero: Scalar[object] = Scalar(vt, const=0.0 if vt.is_fixed else 0)
            self.convert(self.record_aug(s, self.binary(op, zero, operand, s)), vt, s)

    def delete(self, t: ast.expr) -> None:
        if not isinstance(t, ast.Subscript):
            raise self.err(t, "only map entries can be deleted: `del m[key]`")
        m = self.map_of(t.value)
        if isinstance(m, Array) and m.kind_name not in ("DevMap", "CpuMap"):  # those: map_key says why
            raise self.err(t, f"elements of the {m.kind_name} {m.name} cannot be deleted",
                           "store a zero value instead")
        self.map_key(m, t.slice)

    # --- if and match
    def if_(self, s: ast.If) -> None:
        true_envs, false_envs = self.condition(s.test)
        exits: list[Env] = []
        for envs, body in ((true_envs, s.body), (false_envs, s.orelse)):
            if not self.enter(envs):
                continue
            self.body(body)
            if self.reachable:
                exits.append(self.env)
        self.resume(exits)

    def match(self, s: ast.Match) -> None:
        held = self.expr(s.subject)
        # A number that may be None: Python compares it with each case's constants, and None equals none of
        # them, so only `case _:` (and what falls through) takes it (the emitter tests presence too).
        subject = held.inner if isinstance(held, Maybe) and not held.narrowed and isinstance(held.inner, Scalar) \
            else self.as_scalar(held, s.subject)
        if not (subject.type.is_int or subject.type.is_bool):
            raise self.err(s.subject, f"`match` works on integers, not {describe(subject)}")
        subject = materialize(subject)  # type: ignore[assignment]
        exits: list[Env] = []
        for case in s.cases:
            if not self.reachable:
                break
            constants = self.case_constants(case.pattern)
            if constants is None:
                true_envs, false_envs = [self.env], []
                self.reachable = False
            else:
                self.membership(subject, constants, case.pattern)
                true_envs, false_envs = [dict(self.env)], [dict(self.env)]
            if case.guard is not None:
                self.enter(true_envs)
                gt, gf = self.condition(case.guard)
                true_envs, false_envs = gt, false_envs + gf
            if self.enter(true_envs):
                self.body(case.body)
                if self.reachable:
                    exits.append(self.env)
            self.enter(false_envs)
        if self.reachable:
            exits.append(self.env)
        self.resume(exits)

    # --- loops
    def loop(self, node: ast.stmt, body: list[ast.stmt], counter: str, start: Scalar[object],
             test: Callable[[], tuple[list[Env], list[Env]]]) -> None:
        """A real loop: the locals the body reassigns are values of their entry types at its head."""
        self.env[counter] = start
        assigned: list[str] = []
        for stmt in body:
            for n in ast.walk(stmt):
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id not in assigned:
                    assigned.append(n.id)
        carried = [k for k in assigned if k in self.env] + [counter]
        for k in carried:
            v = self.env[k]
            if not isinstance(v, Scalar):
                raise self.err(node, f"{k} holds {describe(v)} and is reassigned inside the loop",
                               "only numbers can be reassigned inside a loop")
        self.env = {**self.env, **{k: fresh(self.env[k]) for k in carried}}  # type: ignore[arg-type]
        body_envs, exit_envs = test()
        loop = Loop()
        self.scope.loops.append(loop)
        if self.enter(body_envs):
            self.body(body)
            if self.reachable:
                loop.continues.append(self.env)
        self.scope.loops.pop()
        if self.enter(loop.continues):
            step = self.env[counter]
            assert isinstance(step, Scalar)
            self.env[counter] = fresh(step)
            for k in carried:
                if not isinstance(self.env.get(k), Scalar):
                    raise self.err(node, f"{k} must hold a number at the end of every iteration")
        self.resume(exit_envs + loop.breaks)
        self.env.pop(counter, None)

    def while_(self, s: ast.While) -> None:
        if s.orelse:
            raise self.err(s, "`while ... else` is not supported")
        bound = self.while_bound(s.test)
        if bound is None:
            counted = self.counted_iterations(s)
            if counted is None:
                written = ast.unparse(s.test)
                raise self.err(s, "a `while` loop needs a bound the compiler can see (the kernel rejects "
                               "loops it cannot prove to end); it counts the iterations only of a loop like "
                               "`while i < 10:` whose body steps `i` by a constant once per iteration",
                               f"write `while bounded({written}, N):` with N the most iterations you allow "
                               f"(after N the loop ends as if `{written}` were false)")
            self.facts.while_bound(self.ctx, s, counted)
            bound = s.test

        def test() -> tuple[list[Env], list[Env]]:
            out = dict(self.env)
            self.env = dict(self.env)
            t, f = self.condition(bound)
            return t, [*f, out]

        self.loop(s, s.body, f"$while{id(s)}", computed(u32), test)

    def counted_iterations(self, s: ast.While) -> int | None:
        """How often `while i < C:` (or `<=`, `>`, `>=`, `!=`; C a constant) can run, where the body steps
        `i` by a constant exactly once per iteration (`i += k`, `i -= k` or `i = i + k` among its top-level
        statements, with no `continue` before it and no other assignment to `i`), and `i` cannot wrap before
        the test fails: from `i`'s constant value at the loop (else the end of its type's range) to C.
        Python's loop runs exactly so often, so `bounded(test, count)` means the same. None when the loop is
        not of that shape (or runs more than 1048576 times)."""
        test = s.test
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
            return None
        mirrored = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE, ast.NotEq: ast.NotEq}
        op_type, limit_node = type(test.ops[0]), test.comparators[0]
        if isinstance(test.left, ast.Name):
            var = test.left.id
        elif isinstance(limit_node, ast.Name) and op_type in mirrored:
            var = limit_node.id
            op_type, limit_node = mirrored[op_type], test.left
        else:
            return None
        held = self.env.get(var)
        if not isinstance(held, Scalar) or not held.type.is_int or op_type not in mirrored:
            return None
        step = _single_step(s.body, var)
        assigned = {n.id for stmt in s.body for n in ast.walk(stmt) if isinstance(n, ast.Name)
                    and isinstance(n.ctx, ast.Store)}
        pure = all(isinstance(n, ast.Constant | ast.Name | ast.Attribute | ast.UnaryOp | ast.BinOp | ast.operator
                              | ast.unaryop | ast.Load) for n in ast.walk(limit_node))
        if step is None or not pure or any(isinstance(n, ast.Name) and n.id in assigned
                                           for n in ast.walk(limit_node)):
            return None
        limit = self.scalar(limit_node)
        if not isinstance(limit.const, int) or isinstance(limit.const, bool):
            return None
        t, c = held.type, limit.const
        ct = fold.compare_type(t, limit.type)
        if not (ct.min <= t.min and t.max <= ct.max and ct.min <= c <= ct.max):
            return None  # compared in a type that does not hold every value of i (u32 against -1)
        start = held.const if isinstance(held.const, int) else None
        count: int | None = None
        if step > 0 and op_type in (ast.Lt, ast.LtE):
            below = c + 1 if op_type is ast.LtE else c  # while i < below
            first = t.min if start is None else start
            count = max(0, -(-(below - first) // step))
            highest = below - 1 + step if start is None else first + count * step  # i after the last step
            if highest > t.max:
                count = None
        elif step < 0 and op_type in (ast.Gt, ast.GtE):
            above = c - 1 if op_type is ast.GtE else c  # while i > above
            first = t.max if start is None else start
            count = max(0, -(-(first - above) // -step))
            lowest = above + 1 + step if start is None else first + count * step
            if lowest < t.min:
                count = None
        elif op_type is ast.NotEq and start is not None and (c - start) % step == 0 and (c - start) // step >= 0:
            count = (c - start) // step
        if count is None or count > 1 << 20:
            return None
        return max(count, 1)

    def while_bound(self, test: ast.expr) -> ast.expr | None:
        if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Name | ast.Attribute)):
            return None
        if self.expr(test.func) != Callee("builtin", "bounded"):
            return None
        if len(test.args) != 2 or test.keywords:
            raise self.err(test, "write `bounded(condition, max_iterations)`")
        limit = self.scalar(test.args[1])
        if limit.const is None or not isinstance(limit.const, int) or not 0 < limit.const <= 1 << 20:
            raise self.err(test.args[1], "the bound must be a constant between 1 and 1048576")
        return test.args[0]

    def for_(self, s: ast.For) -> None:
        if s.orelse:
            raise self.err(s, "`for ... else` is not supported")
        if not isinstance(s.target, ast.Name):
            raise self.err(s.target, "the loop variable must be a single name",
                           "loop over one thing: `for port in PORTS:` (each item of a constant tuple in turn); "
                           "for pairs, two tuples and `for i in (0, 1, 2):` with `PORTS[i]`, `WEIGHTS[i]`")
        var, it = s.target.id, s.iter
        if isinstance(it, ast.Call) and isinstance(self.expr(it.func), Callee) and \
                self.expr(it.func) == Callee("builtin", "range"):
            self.range_loop(s, var, it)
            return
        seq = self.expr(it)
        if not isinstance(seq, ConstTuple):
            if isinstance(seq, Payload):
                raise self.err(it, "cannot loop over the payload",
                               "loop over positions: `for i in range(64):` with `b = pkt.payload[i]` and "
                               "`if b is None: break`")
            raise self.err(it, f"cannot loop over {describe(seq)}",
                           "loop over `range(...)` with constant bounds or over a constant tuple")
        self.unrolled(s, var, seq)

    def range_loop(self, s: ast.For, var: str, call: ast.Call) -> None:
        if call.keywords or not 1 <= len(call.args) <= 3:
            raise self.err(call, "write range(stop), range(start, stop) or range(start, stop, step)")
        bounds = [self.scalar(a) for a in call.args]
        values: list[int] = []
        for b, node in zip(bounds, call.args):
            if b.const is None or not isinstance(b.const, int):
                raise self.err(node, "range bounds must be integer constants",
                               "use a constant bound and `break` when a runtime condition is met")
            values.append(b.const)
        start, stop, step = (0, values[0], 1) if len(values) == 1 else (
            values[0], values[1], values[2] if len(values) == 3 else 1)
        if step == 0:
            raise self.err(call, "range() step cannot be zero")
        count = len(range(start, stop, step))
        if count > MAX_LOOP_ITERATIONS:
            raise self.err(call, f"this loop runs {count} times: the kernel verifies every iteration and stops "
                           f"at {KERNEL_INSN_LIMIT:,} instructions, so it can never load",
                           "use a smaller range (a few hundred iterations at most for a body with branches), "
                           "or spread the work over several packets with state in a map")
        t = self.scope.var_types.get(var) or common_type(common_type(literal_type(start), literal_type(stop)),
                                                         literal_type(step))
        last = start + (count - 1) * step if count else start
        if count and not all(t.min <= v <= t.max for v in (start, last, last + step)):
            raise self.err(call, f"the loop variable {var} is {t}, too narrow to count from {start} past {last}",
                           f"declare it wider before the loop (`{var}: i64 = 0`) or use a smaller range")
        self.scope.var_types[var] = t
        counter = f"$for{id(s)}"

        def test() -> tuple[list[Env], list[Env]]:
            body = {**self.env, var: self.env[counter]}
            return [body], [dict(self.env)]

        self.loop(s, s.body, counter, computed(t), test)
        self.env.pop(var, None)

    def unrolled(self, s: ast.For, var: str, seq: ConstTuple) -> None:
        if len(seq.items) > MAX_UNROLL:
            raise self.err(s.iter, f"a constant tuple of {len(seq.items)} items is too long to unroll")
        loop = Loop()
        self.scope.loops.append(loop)
        outer = self.ctx
        for index, item in enumerate(seq.items):
            if not self.reachable:
                break
            self.env[var] = fold.constant(item, self.complaint(s.iter))
            self.ctx = (*outer, (s, index))
            try:
                self.body(s.body)
            finally:
                self.ctx = outer
            if self.reachable:
                loop.continues.append(self.env)
            self.resume(loop.continues)
            loop.continues = []
        self.scope.loops.pop()
        if self.reachable:
            loop.breaks.append(self.env)
        self.resume(loop.breaks)
        self.env.pop(var, None)


def _single_step(body: list[ast.stmt], var: str) -> int | None:
    """The constant `k` by which `body` steps `var` once per iteration (`var += k`, `var -= k`,
    `var = var + k`, `var = var - k` as a top-level statement, no `continue` of this loop before it, no
    other assignment of `var` anywhere in the body); None otherwise."""
    stores = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
              and n.id == var]
    if len(stores) != 1:
        return None
    for index, stmt in enumerate(body):
        step: int | None = None
        match stmt:
            case ast.AugAssign(target=ast.Name(id=name), op=ast.Add() | ast.Sub() as op,
                               value=ast.Constant(value=int() as k)) if name == var and not isinstance(k, bool):
                step = k if isinstance(op, ast.Add) else -k
            case ast.Assign(targets=[ast.Name(id=name)],
                            value=ast.BinOp(left=ast.Name(id=same), op=ast.Add() | ast.Sub() as op,
                                            right=ast.Constant(value=int() as k))) \
                    if name == var and same == var and not isinstance(k, bool):
                step = k if isinstance(op, ast.Add) else -k
        if step is not None:
            if step == 0 or any(_continues(before) for before in body[:index]):
                return None
            return step
    return None


def _continues(stmt: ast.stmt) -> bool:
    """Whether `stmt` holds a `continue` of the loop around it (not of a loop inside it)."""
    if isinstance(stmt, ast.Continue):
        return True
    if isinstance(stmt, ast.For | ast.While | ast.AsyncFor):
        return False
    return any(_continues(child) for child in ast.iter_child_nodes(stmt) if isinstance(child, ast.stmt)) or any(
        _continues(inner) for child in ast.iter_child_nodes(stmt) if isinstance(child, ast.match_case)
        for inner in child.body)
