"""`pybpfdsl maps`: a program's state objects as the kernel holds them, a pinned map's contents, or a
pinned (running) program's Globals and maps."""

from __future__ import annotations

import argparse
from typing import Any

from pybpfdsl.bpf.abi import MapType
from pybpfdsl.cli_commands.common import EXIT_USAGE, CliError, is_object_target, load_object, load_target
from pybpfdsl.cli_commands.kernel_query import KernelQueryError, PinnedMap, read_pinned_map
from pybpfdsl.cli_commands.object_view import loaded_object, object_state
from pybpfdsl.cli_commands.state_view import json_value, snapshot, state_table, text_value
from pybpfdsl.cli_output import Table, print_json, style_for
from pybpfdsl.lang.lpm_trie import Ip4Prefix, Ip6Prefix
from pybpfdsl.lang.state import BpfMap, PerCpuArray, StateObject, decode, type_size

__all__ = ["cmd_maps"]


def cmd_maps(args: argparse.Namespace) -> int:
    if args.pinned:
        return _pinned(args)
    if not args.target:
        raise CliError("maps needs FILE[:FUNC] or --pinned PATH", EXIT_USAGE)
    if is_object_target(args.target):
        return _object_maps(args)
    target = load_target(args.target)
    program = target.program
    state = program.lower().state
    loaded = program.load()
    try:
        snap = snapshot(state, show_all=args.all)
    finally:
        loaded.close()
    if args.json:
        print_json({"program": program.name, "state": snap.to_json()})
        return 0
    st = style_for()
    if not snap.entries:
        print(f"{target.label}: the program uses no Globals or maps")
        return 0
    print(f"{target.label}: state in the kernel after loading")
    print(state_table(snap.entries).render(st))
    return 0


def _object_maps(args: argparse.Namespace) -> int:
    """`maps FILE.o`: load the object and list its global variables and maps as the kernel holds them."""
    obj = load_object(args.target)
    with loaded_object(obj) as loaded:
        entries = object_state(obj, loaded, show_all=args.all)
    if args.json:
        print_json({"program": obj.program.name, "object": str(obj.path), "state": [e.to_json() for e in entries]})
        return 0
    st = style_for()
    if not entries:
        print(f"{obj.path.name}: the object has no global variables or maps")
        return 0
    print(f"{obj.path.name}: state in the kernel after loading (keys and values as stored, little-endian)")
    print(state_table(entries).render(st))
    return 0


def _matching_state(args: argparse.Namespace, pinned: PinnedMap) -> BpfMap | None:
    """The state object of FILE[:FUNC] whose (kernel, 15-character) name matches the pinned map's."""
    if not args.target or is_object_target(args.target):
        return None  # an object file has no Python types: raw hex
    state: dict[str, StateObject] = load_target(args.target).program.lower().state
    for name, obj in state.items():
        if isinstance(obj, BpfMap) and name[:15] == pinned.name and (
                type_size(obj.key_type) == pinned.key_size and type_size(obj.value_type) == pinned.value_size):
            return obj
    return None


def _pinned_program(args: argparse.Namespace) -> int:
    """`maps FILE[:FUNC] --pinned PATH` where PATH is a program's (or its link's) pin: every Global, by
    name, and every map of the running program, typed by FILE's declarations (LPM keys as prefixes)."""
    from pybpfdsl.pinned import open_pinned
    from pybpfdsl.runtime.errors import StateBindingError

    if is_object_target(args.target):
        raise CliError(f"{args.pinned} is a pinned program: give its FILE[:FUNC] for the types of its state",
                       EXIT_USAGE, hint=f"pybpfdsl maps prog.py:func --pinned {args.pinned}")
    try:
        state = open_pinned(args.pinned, args.target)
    except StateBindingError as exc:
        raise CliError(str(exc)) from None
    with state:
        snap = snapshot(state, show_all=args.all)
    for entry in snap.entries:  # LPM keys as prefixes, in JSON too (as the table prints them)
        entry.rows = [(str(k) if isinstance(k, Ip4Prefix | Ip6Prefix) else k, v) for k, v in entry.rows]
    if args.json:
        print_json({"path": args.pinned, "program": state.program.name, "id": state.program.prog_id,
                    "state": snap.to_json()})
        return 0
    print(f"{args.pinned}: program {state.program.name!r} (id {state.program.prog_id}), state in the kernel")
    print(state_table(snap.entries).render(style_for()))
    return 0


def _pinned(args: argparse.Namespace) -> int:
    from pybpfdsl.runtime.pinned_program import pin_kind

    if args.target and pin_kind(args.pinned) in ("link", "program"):  # without FILE: "not a map", as before
        return _pinned_program(args)
    try:
        pinned = read_pinned_map(args.pinned)
    except KernelQueryError as exc:
        raise CliError(str(exc)) from None
    typed = _matching_state(args, pinned)

    def key_of(raw: bytes) -> Any:
        return decode(raw, typed.key_type) if typed is not None else raw.hex()

    def value_of(raws: list[bytes]) -> Any:
        if typed is None:
            return [r.hex() for r in raws] if pinned.percpu else raws[0].hex()
        values = [decode(r, typed.value_type) for r in raws]
        if isinstance(typed, PerCpuArray) or pinned.percpu:
            return values
        return values[0]

    rows = [(key_of(k), value_of(v)) for k, v in pinned.entries]
    if typed is not None and pinned.map_type == MapType.ARRAY and not args.all:  # arrays: skip zero elements
        zero = bytes(pinned.value_size)
        rows = [row for row, (_, raws) in zip(rows, pinned.entries) if any(r != zero for r in raws)]
    if args.json:
        print_json({
            "path": pinned.path, "name": pinned.name, "id": pinned.map_id, "type": pinned.type_name,
            "key_size": pinned.key_size, "value_size": pinned.value_size, "max_entries": pinned.max_entries,
            "decoded": typed is not None,
            "entries": [{"key": json_value(k), "value": json_value(v)} for k, v in rows],
        })
        return 0
    st = style_for()
    how = f"decoded as {typed.name or 'state object'}" if typed is not None else "raw hex, little-endian as stored"
    print(f"{pinned.path}: map {pinned.name!r} (id {pinned.map_id}, {pinned.type_name}, key {pinned.key_size} B, "
          f"value {pinned.value_size} B, max {pinned.max_entries}) — {how}")
    table = Table(["KEY", "VALUE"], [">", ">"] if typed is not None else ["<", "<"])
    for k, v in rows:
        table.add(text_value(k), text_value(v))
    if not rows:
        table.add("", "(empty)")
    print(table.render(st))
    return 0
