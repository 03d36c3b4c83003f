"""`pybpfdsl set FILE[:FUNC] NAME=VALUE ...`: change a pinned, running program's Globals and map entries.

The program (FILE[:FUNC]) gives the types; the pin is `--pinned PATH` (what `attach --pin PATH` made)
or found on bpffs by the program's name (`pybpfdsl.open_pinned`). Assignments:

    limit=100                  a Global (an int, 0x.., a float for float Globals, true/false)
    gateway=10.0.0.1           a u32 as a dotted quad: the number the DSL reads `pkt.ipv4.src` as
    blocked[10.0.0.0/8]=1      a map entry; an LpmTrie's key is a prefix or an address
    --delete 'blocked[10.0.0.0/8]'

Each change is printed as `NAME: OLD -> NEW`.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from typing import Any

from pybpfdsl.cli_commands.common import EXIT_USAGE, CliError
from pybpfdsl.cli_commands.state_view import text_value
from pybpfdsl.lang.lpm_trie import LpmTrie
from pybpfdsl.lang.state import BpfMap, Global, StateObject, ValueType
from pybpfdsl.lang.types import FLOAT, ScalarType

__all__ = ["add_set_arguments", "cmd_set", "parse_scalar"]

_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\[(?P<key>[^\]]*)\])?=(?P<value>.*)$")
_ENTRY = re.compile(r"^(?P<name>[A-Za-z_]\w*)\[(?P<key>[^\]]*)\]$")


def parse_scalar(text: str, t: ValueType) -> int | float:
    """A command-line value of DSL type `t`: ints (decimal, 0x, 0b, 0o), floats for float types,
    true/false for bool, and dotted quads for u32 (as the DSL reads an IPv4 address)."""
    if not isinstance(t, ScalarType):
        raise CliError(f"{t.__name__} records cannot be given on the command line", EXIT_USAGE)
    text = text.strip()
    if t is FLOAT:
        try:
            return float(text)
        except ValueError:
            raise CliError(f"{text!r} is not a number", EXIT_USAGE) from None
    if text.lower() in ("true", "false"):
        return int(text.lower() == "true")
    if t.size == 4 and not t.signed and text.count(".") == 3:
        try:
            return int(ipaddress.IPv4Address(text))
        except ValueError:
            raise CliError(f"{text!r} is not an IPv4 address", EXIT_USAGE) from None
    try:
        number = int(text, 0)
    except ValueError:
        raise CliError(f"{text!r} is not an integer (for {t})", EXIT_USAGE) from None
    lo, hi = (-(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1) if t.signed else (0, (1 << t.bits) - 1)
    if not lo <= number <= hi:
        raise CliError(f"{number} does not fit {t} ({lo}..{hi})", EXIT_USAGE)
    return number


def _key(m: BpfMap, text: str) -> object:
    if isinstance(m, LpmTrie):
        return text.strip()  # a prefix or an address; the trie parses it
    return parse_scalar(text, m.key_type)


def _object(state: Any, name: str) -> StateObject:
    try:
        obj: StateObject = state[name]
    except KeyError:
        raise CliError(f"the program has no Global or map named {name!r}; it has: "
                       f"{', '.join(sorted(state)) or 'none'}", EXIT_USAGE) from None
    return obj


def _assign(state: Any, spec: str) -> str:
    match = _ASSIGNMENT.match(spec)
    if match is None:
        raise CliError(f"{spec!r} is not NAME=VALUE or NAME[KEY]=VALUE", EXIT_USAGE)
    name, key_text, value_text = match["name"], match["key"], match["value"]
    obj = _object(state, name)
    if isinstance(obj, Global):
        if key_text is not None:
            raise CliError(f"{name} is a Global: write {name}=VALUE", EXIT_USAGE)
        old = obj.value
        obj.value = parse_scalar(value_text, obj.type)
        return f"{name}: {text_value(old)} -> {text_value(obj.value)}"
    if not isinstance(obj, BpfMap) or key_text is None:
        raise CliError(f"{name} is a {obj.kind_name}: write {name}[KEY]=VALUE", EXIT_USAGE)
    key = _key(obj, key_text)
    old_entry = obj.get(key) if not isinstance(obj, LpmTrie) else _exact(obj, key)
    try:
        obj[key] = parse_scalar(value_text, obj.value_type)
    except (KeyError, TypeError, ValueError) as exc:
        raise CliError(f"cannot store {name}[{key_text}]: {exc}") from None
    shown = "(absent)" if old_entry is None else text_value(old_entry)
    return f"{name}[{key_text}]: {shown} -> {text_value(obj.get(key))}"


def _exact(trie: LpmTrie, key: object) -> object:
    """The value stored under exactly this prefix (a lookup would give a shorter one's)."""
    match = trie.longest_match(key)
    want = trie._stored(trie._raw_key(key))
    return trie.get(key) if match == want else None


def _delete(state: Any, spec: str) -> str:
    match = _ENTRY.match(spec)
    if match is None:
        raise CliError(f"--delete takes NAME[KEY], not {spec!r}", EXIT_USAGE)
    obj = _object(state, match["name"])
    if not isinstance(obj, BpfMap):
        raise CliError(f"{match['name']} is a {obj.kind_name}, not a map", EXIT_USAGE)
    try:
        del obj[_key(obj, match["key"])]
    except KeyError:
        raise CliError(f"{spec} is not in the map") from None
    return f"{spec}: deleted"


def add_set_arguments(p: argparse.ArgumentParser) -> None:
    """The `set` command's arguments (cli.py registers the command)."""
    p.add_argument("target", metavar="FILE[:FUNC]", help="the program, for its Globals' and maps' types")
    p.add_argument("assignments", metavar="NAME=VALUE", nargs="*",
                   help="a Global (limit=5, gateway=10.0.0.1) or a map entry (blocked[10.0.0.0/8]=1)")
    p.add_argument("--pinned", metavar="PATH", help="the pin of the running program's link (attach --pin PATH); "
                   "by default the one pinned link that runs a program of this name")
    p.add_argument("--delete", metavar="NAME[KEY]", action="append", default=[], help="remove a map entry")


def cmd_set(args: argparse.Namespace) -> int:
    from pybpfdsl.pinned import open_pinned
    from pybpfdsl.runtime.errors import StateBindingError

    if not args.assignments and not args.delete:
        raise CliError("set needs NAME=VALUE assignments or --delete NAME[KEY]", EXIT_USAGE)
    try:
        state = open_pinned(args.pinned, args.target) if args.pinned else open_pinned(args.target)
    except StateBindingError as exc:
        raise CliError(str(exc)) from None
    with state:
        for spec in args.assignments:
            print(_assign(state, spec))
        for spec in args.delete:
            print(_delete(state, spec))
    return 0
