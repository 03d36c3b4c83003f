"""Showing a program's state objects (Globals and maps) as table rows or JSON.

Works the same whether the objects are bound to kernel maps (reads go to the kernel) or not.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pybpfdsl.cli_output import Table
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import Array, BpfMap, Global, PerCpuArray, StateObject, ValueType, zero_value
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import ScalarType

__all__ = ["StateEntry", "StateSnapshot", "json_value", "snapshot", "state_table"]

# Arrays are listed without their zero elements unless asked; a hash map this large is cut short.
DEFAULT_ROW_LIMIT = 1000


def _type_name(t: ValueType) -> str:
    return str(t) if isinstance(t, ScalarType) else t.__name__


def json_value(value: object) -> Any:
    """A JSON-friendly form of a state key or value."""
    if isinstance(value, Struct):
        return {f.name: int(getattr(value, f.name)) for f in value.fields()}
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def text_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(text_value(v) for v in value) + "]"
    return str(value)


@dataclass
class StateEntry:
    """One state object: its name, kind and (key, value) rows; `key` is None for a Global."""

    name: str
    kind: str
    rows: list[tuple[object, object]] = field(default_factory=list)
    hidden: int = 0
    """Rows not listed (zero array elements, or entries past the row limit)."""
    note: str = ""
    per_cpu: dict[int, list[object]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind.startswith("Global"):
            out["value"] = json_value(self.rows[0][1]) if self.rows else None
        else:
            out["entries"] = [
                {"key": json_value(k), "value": json_value(v),
                 **({"per_cpu": json_value(self.per_cpu[k])} if isinstance(k, int) and k in self.per_cpu else {})}
                for k, v in self.rows
            ]
            out["hidden"] = self.hidden
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class StateSnapshot:
    entries: list[StateEntry]

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]


def _kind(obj: StateObject) -> str:
    if isinstance(obj, Global):
        return f"Global({obj.type})"
    if isinstance(obj, RingBuf):
        return f"RingBuf({obj.record.__name__}, {obj.size})"
    assert isinstance(obj, BpfMap)
    if isinstance(obj, Array):
        return f"{obj.kind_name}({_type_name(obj.value_type)}, {obj.max_entries})"
    return f"{obj.kind_name}({_type_name(obj.key_type)} -> {_type_name(obj.value_type)}, {obj.max_entries})"


def _entry(name: str, obj: StateObject, show_all: bool, limit: int) -> StateEntry:
    entry = StateEntry(name, _kind(obj))
    if isinstance(obj, Global):
        entry.rows.append((None, obj.value))
        return entry
    if isinstance(obj, RingBuf):
        # Events are read (and consumed) with poll(); the view shows what is pending, by position.
        pending = obj.records
        for index, record in enumerate(pending[:limit]):
            entry.rows.append((index, record))
        entry.hidden = max(0, len(pending) - limit)
        entry.note = f"{len(pending)} pending events (poll() consumes them)"
        return entry
    assert isinstance(obj, BpfMap)
    if isinstance(obj, Array):
        zero = zero_value(obj.value_type)
        for index in range(obj.max_entries):
            if isinstance(obj, PerCpuArray):
                total = obj[index]
                if not show_all and not _nonzero(total):
                    entry.hidden += 1
                    continue
                if len(entry.rows) >= limit:
                    entry.hidden += 1
                    continue
                entry.rows.append((index, total))
                entry.per_cpu[index] = obj.per_cpu(index)
                continue
            if not show_all and obj.raw_lookup(index) == zero:
                entry.hidden += 1
                continue
            if len(entry.rows) >= limit:
                entry.hidden += 1
                continue
            entry.rows.append((index, obj[index]))
        if entry.hidden and not show_all:
            entry.note = f"{entry.hidden} zero elements not shown"
        return entry
    items = list(obj.items())
    with contextlib.suppress(TypeError):
        items.sort(key=lambda kv: _sort_key(kv[0]))
    for key, value in items:
        if len(entry.rows) >= limit:
            entry.hidden += 1
            continue
        entry.rows.append((key, value))
    if entry.hidden:
        entry.note = f"{entry.hidden} more entries not shown"
    return entry


def _nonzero(value: object) -> bool:
    if isinstance(value, list):
        return any(_nonzero(v) for v in value)
    if isinstance(value, Struct):
        return any(value.values())
    return bool(value)


def _sort_key(key: object) -> tuple[int, ...]:
    if isinstance(key, Struct):
        return key.values()
    if isinstance(key, int):
        return (key,)
    raise TypeError


def snapshot(state: Mapping[str, StateObject], show_all: bool = False,
             limit: int = DEFAULT_ROW_LIMIT) -> StateSnapshot:
    """Read every state object (Globals first, then maps, each group by name)."""
    names = sorted(state, key=lambda n: (not isinstance(state[n], Global), n))
    return StateSnapshot([_entry(n, state[n], show_all, limit) for n in names])


def state_table(entries: Iterable[StateEntry]) -> Table:
    """NAME | KIND | KEY | VALUE, one row per Global and per map entry."""
    table = Table(["NAME", "KIND", "KEY", "VALUE"], ["<", "<", ">", ">"])
    for e in entries:
        if e.kind.startswith("Global"):
            value = e.rows[0][1] if e.rows else ""
            table.add(e.name, e.kind, "", text_value(value))
            continue
        if not e.rows:
            table.add(e.name, e.kind, "", "(empty)" if not e.hidden else "(all zero)")
            continue
        for i, (key, value) in enumerate(e.rows):
            first = i == 0
            table.add(e.name if first else "", e.kind if first else "", text_value(key), text_value(value))
        if e.note:
            table.add("", f"({e.note})", "", "")
    return table
