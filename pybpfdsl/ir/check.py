"""Well-formedness of IR programs: structure, SSA dominance and the type rules of each instruction.

A frontend or pass that produces malformed IR has a bug; `check_program` finds it before the backend or
an interpreter gives a confusing answer.
"""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import IRType, MapValueRef, StructType
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, i64, int_type, u32, u64


class IRError(Exception):
    """The IR breaks a rule; the message names the block and instruction."""


def _dominators(p: n.Program) -> dict[str, set[str]]:
    names = [b.name for b in p.blocks]
    preds: dict[str, set[str]] = {name: set() for name in names}
    for b in p.blocks:
        if b.terminator is not None:
            for e in b.terminator.edges():
                preds[e.target].add(b.name)
    everything = set(names)
    dom = {name: set(everything) for name in names}
    dom[names[0]] = {names[0]}
    changed = True
    while changed:
        changed = False
        for name in names[1:]:
            incoming = [dom[q] for q in preds[name]]
            new = set.intersection(*incoming) | {name} if incoming else {name}
            if new != dom[name]:
                dom[name] = new
                changed = True
    return dom


def _expect(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise IRError(f"{where}: {message}")


def _check_types(p: n.Program, i: n.Instr, where: str) -> None:
    def scalar(v: n.Value) -> ScalarType:
        _expect(isinstance(v.type, ScalarType), where, f"{v} must be a scalar, is {v.type}")
        assert isinstance(v.type, ScalarType)
        return v.type

    def same(a: IRType, b: IRType, what: str) -> None:
        _expect(a == b, where, f"{what}: {a} vs {b}")

    match i:
        case n.Const(out=o, value=v):
            t = scalar(o)
            ok = (-(1 << 63) <= v < (1 << 63)) if t.is_fixed else t.wrap(v) == v
            _expect(ok, where, f"constant {v} does not fit {t}")
        case n.Binary(out=o, op=op, lhs=a, rhs=b):
            t = scalar(o)
            same(a.type, t, "operand type")
            same(b.type, t, "operand type")
            if t.is_fixed:
                _expect(op in (BinOp.ADD, BinOp.SUB, BinOp.MUL), where, f"{op.value} on float")
            elif t.is_bool:
                _expect(op in (BinOp.AND, BinOp.OR, BinOp.XOR), where, f"{op.value} on bool")
            else:
                _expect(t.bits in (32, 64), where, f"arithmetic on {t}: promote to 32 or 64 bits first")
        case n.IntQuotient(out=o, lhs=a, rhs=b):
            same(o.type, FLOAT, "result")
            same(a.type, i64, "dividend")
            same(b.type, i64, "divisor")
        case n.FixedDivInt(out=o, lhs=a, rhs=b):
            same(o.type, FLOAT, "result")
            same(a.type, FLOAT, "dividend")
            same(b.type, i64, "divisor")
        case n.Compare(out=o, lhs=a, rhs=b):
            same(o.type, BOOL, "comparison result")
            same(a.type, b.type, "compared types")
            scalar(a)
        case n.Convert(out=o, value=v):
            scalar(o)
            scalar(v)
        case n.Reinterpret(out=o, value=v):
            _expect(scalar(o).bits == 64 and scalar(v).bits == 64, where, "reinterpret needs 64-bit types")
        case n.Select(out=o, cond=c, if_true=a, if_false=b):
            same(c.type, BOOL, "select condition")
            same(a.type, o.type, "select arm")
            same(b.type, o.type, "select arm")
        case n.PacketLen(out=o):
            same(o.type, u32, "packet length")
        case n.InBounds(out=o, offset=off, width=w):
            same(o.type, BOOL, "in_bounds result")
            same(off.type, u64, "offset")
            _expect(w > 0, where, "width must be positive")
        case n.LoadPacket(out=o, offset=off, width=w):
            _expect(w in (1, 2, 4, 8), where, f"packet load width {w}")
            same(off.type, u64, "offset")
            same(o.type, int_type(8 * w, False), "packet load result")
        case n.MapLookup(out=o, map_name=m, key=k):
            decl = p.map_decl(m)
            same(k.type, decl.key_type, f"key of {m}")
            same(o.type, MapValueRef(m), "lookup result")
        case n.IsNull(out=o, ref=r):
            same(o.type, BOOL, "is_null result")
            _expect(isinstance(r.type, MapValueRef), where, "is_null of a non-reference")
        case n.LoadValue(out=o, ref=r, field_name=f):
            same(o.type, _value_slot_type(p, r, f, where), "loaded type")
        case n.StoreValue(ref=r, value=v, field_name=f, atomic_add=add):
            slot = _value_slot_type(p, r, f, where)
            same(v.type, slot, "stored type")
            if add:
                _expect(isinstance(slot, ScalarType) and slot.bits in (32, 64), where, "atomic add on 32/64 bits")
        case n.MapUpdate(out=o, map_name=m, key=k, value=v):
            decl = p.map_decl(m)
            same(k.type, decl.key_type, f"key of {m}")
            same(v.type, decl.value_type, f"value of {m}")
            same(o.type, i64, "status")
        case n.MapDelete(out=o, map_name=m, key=k):
            same(k.type, p.map_decl(m).key_type, f"key of {m}")
            same(o.type, i64, "status")
        case n.LoadGlobal(out=o, name=g):
            same(o.type, p.global_decl(g).type, f"global {g}")
        case n.StoreGlobal(name=g, value=v, atomic_add=add):
            gt = p.global_decl(g).type
            same(v.type, gt, f"global {g}")
            if add:
                _expect(gt.bits in (32, 64) or gt.is_fixed, where, "atomic add on 32/64 bits")
        case n.MakeStruct(out=o, fields=fs):
            _expect(isinstance(o.type, StructType), where, "make_struct result")
            assert isinstance(o.type, StructType)
            decl_fields = o.type.cls.fields()
            _expect(len(fs) == len(decl_fields), where, "field count")
            for v, declared in zip(fs, decl_fields):
                same(v.type, declared.type, f"field {declared.name}")
        case n.ExtractField(out=o, aggregate=a, field_name=f):
            _expect(isinstance(a.type, StructType), where, "extract from a non-struct")
            assert isinstance(a.type, StructType)
            found = [x for x in a.type.cls.fields() if x.name == f]
            _expect(bool(found), where, f"no field {f}")
            same(o.type, found[0].type, f"field {f}")
        case n.CallHelper(out=o, helper=h):
            same(o.type, n.HELPER_RESULT[h], f"{h.name} result")
        case n.RingbufOutput(out=o, map_name=m, record=r):
            decls = [d for d in p.ringbufs if d.name == m]
            _expect(bool(decls), where, f"@{m} is not declared as a ring buffer")
            same(r.type, decls[0].record, f"record of ring buffer {m}")
            same(o.type, BOOL, "ringbuf_output result")
        case _:
            raise IRError(f"{where}: unknown instruction {i!r}")


def _value_slot_type(p: n.Program, ref: n.Value, field_name: str | None, where: str) -> IRType:
    _expect(isinstance(ref.type, MapValueRef), where, f"{ref} is not a map value reference")
    assert isinstance(ref.type, MapValueRef)
    vt = p.map_decl(ref.type.map_name).value_type
    if field_name is None:
        return vt
    _expect(isinstance(vt, StructType), where, f"field access on a {vt} value")
    assert isinstance(vt, StructType)
    for f in vt.cls.fields():
        if f.name == field_name:
            return f.type
    raise IRError(f"{where}: {vt} has no field {field_name}")


def check_program(p: n.Program) -> None:
    """Raise IRError at the first broken rule."""
    _expect(bool(p.blocks), p.name, "no blocks")
    names = [b.name for b in p.blocks]
    _expect(len(set(names)) == len(names), p.name, "duplicate block names")
    _expect(not p.entry.params, p.entry.name, "the entry block takes no parameters")
    by_name = {b.name: b for b in p.blocks}
    defined_in: dict[n.Value, str] = {}
    for b in p.blocks:
        _expect(b.terminator is not None, b.name, "block has no terminator")
        for v in b.params:
            _expect(v not in defined_in, b.name, f"{v} defined twice")
            defined_in[v] = b.name
        for i in b.instrs:
            r = i.result
            if r is not None:
                _expect(r not in defined_in, b.name, f"{r} defined twice")
                defined_in[r] = b.name
    dom = _dominators(p)
    for b in p.blocks:
        seen_here: set[n.Value] = set(b.params)
        body: list[n.Instr | n.Terminator] = [*b.instrs]
        assert b.terminator is not None
        body.append(b.terminator)
        for index, item in enumerate(body):
            where = f"^{b.name}[{index}]"
            for v in item.operands():
                _expect(v in defined_in, where, f"{v} is used but never defined")
                home = defined_in[v]
                ok = v in seen_here if home == b.name else home in dom[b.name]
                _expect(ok, where, f"{v} does not dominate its use")
            if isinstance(item, n.Instr):
                _check_types(p, item, where)
                if item.result is not None:
                    seen_here.add(item.result)
        term = b.terminator
        where = f"^{b.name}: terminator"
        for e in term.edges():
            _expect(e.target in by_name, where, f"jump to unknown block {e.target}")
            target = by_name[e.target]
            _expect(len(e.args) == len(target.params), where, f"{e.target} takes {len(target.params)} arguments")
            for a, param in zip(e.args, target.params):
                _expect(a.type == param.type, where, f"argument {a}: {a.type} for {param}: {param.type}")
        if isinstance(term, n.Branch):
            _expect(term.cond.type == BOOL, where, "branch condition must be bool")
        if isinstance(term, n.Return):
            _expect(term.value.type == u32, where, "return value must be u32")
