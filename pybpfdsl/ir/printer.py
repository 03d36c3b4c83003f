"""The IR's stable textual form, for tests (golden text), `prog.ir` and debugging."""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.lang import fixed
from pybpfdsl.lang.types import ScalarType


def _typed(v: n.Value) -> str:
    return f"{v}: {v.type}"


def _const_text(value: int, type_: object) -> str:
    if isinstance(type_, ScalarType) and type_.is_fixed:
        return f"{fixed.to_float(value)!r} (raw {value})"
    return str(value)


def format_instr(i: n.Instr) -> str:
    """One instruction as text, without its line annotation."""
    match i:
        case n.Const(out=o, value=v):
            return f"{_typed(o)} = const {_const_text(v, o.type)}"
        case n.Binary(out=o, op=op, lhs=a, rhs=b):
            return f"{_typed(o)} = {op.value} {a}, {b}"
        case n.FixedDivInt(out=o, lhs=a, rhs=b):
            return f"{_typed(o)} = fixed_div_int {a}, {b}"
        case n.IntQuotient(out=o, lhs=a, rhs=b):
            return f"{_typed(o)} = int_quotient {a}, {b}"
        case n.Compare(out=o, op=op, lhs=a, rhs=b):
            return f"{_typed(o)} = cmp {op.value} {a}, {b}"
        case n.Convert(out=o, value=v):
            return f"{_typed(o)} = convert {v}: {v.type}"
        case n.Reinterpret(out=o, value=v):
            return f"{_typed(o)} = reinterpret {v}: {v.type}"
        case n.Select(out=o, cond=c, if_true=a, if_false=b):
            return f"{_typed(o)} = select {c}, {a}, {b}"
        case n.PacketLen(out=o):
            return f"{_typed(o)} = packet_len"
        case n.InBounds(out=o, offset=off, width=w):
            return f"{_typed(o)} = in_bounds {off}, {w}"
        case n.LoadPacket(out=o, offset=off, width=w, big_endian=be):
            return f"{_typed(o)} = load_packet {'be' if be else 'le'}{w * 8} {off}"
        case n.MapLookup(out=o, map_name=m, key=k):
            return f"{_typed(o)} = map_lookup @{m}, {k}"
        case n.IsNull(out=o, ref=r):
            return f"{_typed(o)} = is_null {r}"
        case n.LoadValue(out=o, ref=r, field_name=f):
            return f"{_typed(o)} = load_value {r}" + (f".{f}" if f else "")
        case n.StoreValue(ref=r, value=v, field_name=f, atomic_add=add):
            return f"{'atomic_add' if add else 'store_value'} {r}" + (f".{f}" if f else "") + f", {v}"
        case n.MapUpdate(out=o, map_name=m, key=k, value=v):
            return f"{_typed(o)} = map_update @{m}, {k}, {v}"
        case n.MapDelete(out=o, map_name=m, key=k):
            return f"{_typed(o)} = map_delete @{m}, {k}"
        case n.LoadGlobal(out=o, name=g):
            return f"{_typed(o)} = load_global @{g}"
        case n.StoreGlobal(name=g, value=v, atomic_add=add):
            return f"{'atomic_add_global' if add else 'store_global'} @{g}, {v}"
        case n.MakeStruct(out=o, fields=fs):
            return f"{_typed(o)} = make_struct " + ", ".join(str(f) for f in fs)
        case n.ExtractField(out=o, aggregate=a, field_name=f):
            return f"{_typed(o)} = extract {a}.{f}"
        case n.CallHelper(out=o, helper=h):
            return f"{_typed(o)} = call {h.name.lower()}"
        case n.RingbufOutput(out=o, map_name=m, record=r):
            return f"{_typed(o)} = ringbuf_output @{m}, {r}"
    raise TypeError(f"unknown instruction {i!r}")


def format_terminator(t: n.Terminator) -> str:
    match t:
        case n.Jump(to=e):
            return f"jump {e}"
        case n.Branch(cond=c, if_true=a, if_false=b):
            return f"branch {c}, {a}, {b}"
        case n.Return(value=v):
            return f"return {v}"
    raise TypeError(f"unknown terminator {t!r}")


def _with_line(text: str, line: int) -> str:
    return f"  {text:<60} ; line {line}" if line else f"  {text}"


def format_program(p: n.Program) -> str:
    """The whole program: declarations, then each block."""
    out = [f"program {p.name}  ; {p.source_file}:{p.first_line}"]
    for m in p.maps:
        out.append(f"map @{m.name}: {m.kind.name.lower()}<{m.key_type}, {m.value_type}>[{m.max_entries}]")
    for r in p.ringbufs:
        out.append(f"ringbuf @{r.name}: {r.record} ({r.size} bytes)")
    for g in p.globals:
        out.append(f"global @{g.name}: {g.type} = {_const_text(g.init, g.type)}")
    for b in p.blocks:
        params = "(" + ", ".join(_typed(v) for v in b.params) + ")" if b.params else ""
        out.append(f"^{b.name}{params}:")
        for i in b.instrs:
            out.append(_with_line(format_instr(i), i.line))
        if b.terminator is not None:
            out.append(_with_line(format_terminator(b.terminator), b.terminator.line))
    return "\n".join(out) + "\n"
