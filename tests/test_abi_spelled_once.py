"""The ABI numbers are written once (issue 14 §3): helper ids, map types, XDP actions, the `xdp_md` offsets,
update flags and the stack size live in `pybpfdsl/bpf/abi.py`; every other module imports them.

The check reads each module with `ast` and reports three shapes of a number written out by hand:

* a definition: a name that spells an ABI member (``_RINGBUF_OUTPUT = 130``, ``BPF_MAP_TYPE_ARRAY = 2``,
  ``STACK_SIZE = 512``, an enum member ``LRU_HASH = 9``) bound to that member's number;
* a comparison of a helper id or a map type with a number (``helper == 130``, ``map_type in (0, 2)``);
* a table of such numbers (``_HELPER_ARGUMENTS = {1: ...}``, ``_DEVICE_MAPS = frozenset({14, 25})``).

`lang` and `ir` may not import `bpf`, so they keep their own user-facing copies (MIRRORED); a test below
checks those agree with the abi. The other findings are listed in KNOWN: the test fails when a new one
appears and when a listed one is gone, so the list only shrinks and stays true.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from pybpfdsl.bpf import abi
from pybpfdsl.ir import nodes
from pybpfdsl.lang import actions, state

PACKAGE = Path(__file__).resolve().parents[1] / "pybpfdsl"
ABI_MODULE = "bpf/abi.py"

_PREFIXES = ("BPF_MAP_TYPE_", "BPF_FUNC_", "BPF_", "XDP_MD_", "XDP_", "CTX_", "MAP_TYPE_")
_CONSTANTS: dict[str, int] = {
    "STACK_SIZE": abi.STACK_SIZE, "MAX_BPF_STACK": abi.STACK_SIZE, "COMBINED_STACK": abi.STACK_SIZE,
    "MAXINSNS": abi.BPF_MAXINSNS, "COMPLEXITY_LIMIT_INSNS": abi.BPF_COMPLEXITY_LIMIT_INSNS,
    "CTX_SIZE": abi.XDP_MD_SIZE, "XDP_MD_SIZE": abi.XDP_MD_SIZE,
}
_NAMED: list[tuple[str, int]] = [
    *((m.name, int(m)) for enum in (abi.Helper, abi.MapType, abi.XdpAction, abi.XdpMd, abi.UpdateFlag)
      for m in enum),
    *_CONSTANTS.items(),
]
_HELPER_OR_MAP_TYPE = re.compile(r"helper|func_id|map_type|map_kind", re.IGNORECASE)
_TABLE_NAME = re.compile(r"HELPER|MAP|(ARRAY|LRU|HASH|PERCPU|KEYLESS|BOUNDED_KEY|REDIRECT|RINGBUF)_TYPES?\b",
                         re.IGNORECASE)


def _abi_values(name: str) -> set[int]:
    """The ABI numbers a name may spell (``_BPF_MAP_TYPE_ARRAY`` → {2}, ``PRANDOM_U32`` → {7}, ``REDIRECT`` →
    {4, 23}: an action and a helper)."""
    bare = name.lstrip("_").upper()
    if bare in _CONSTANTS:
        return {_CONSTANTS[bare]}
    for prefix in _PREFIXES:
        if bare.startswith(prefix):
            bare = bare[len(prefix):]
            break
    exact = {value for member, value in _NAMED if member == bare}
    return exact or {value for member, value in _NAMED if member.endswith("_" + bare) and len(bare) > 4}


def _int_literals(node: ast.expr) -> list[int]:
    """The int constants a literal number, tuple, list, set, frozenset(...) or dict's keys spell."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for e in node.elts for v in _int_literals(e)]
    if isinstance(node, ast.Dict):
        return [v for k in node.keys if k is not None for v in _int_literals(k)]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args \
            and node.func.id in ("frozenset", "set", "MappingProxyType", "tuple"):
        return _int_literals(node.args[0])
    return []


def _names(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Tuple):
        return [n for e in node.elts for n in _names(e)]
    return []


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def findings_in(source: str) -> Iterator[str]:
    """What the source spells by hand, each as its unparsed text."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names = _names(target)
                value = node.value
                values = value.elts if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) else [value]
                if len(values) != len(names):
                    continue
                for name, v in zip(names, values, strict=True):
                    lits = _int_literals(v)
                    if (isinstance(v, ast.Constant) and lits and lits[0] in _abi_values(name)) \
                            or (lits and not isinstance(v, ast.Constant) and _TABLE_NAME.search(name)):
                        yield _short(f"{name} = {ast.unparse(v)}")
        elif isinstance(node, ast.Compare):
            subject = ast.unparse(node.left)
            if _HELPER_OR_MAP_TYPE.search(subject) and any(_int_literals(c) for c in node.comparators):
                yield _short(ast.unparse(node))


def findings() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel != ABI_MODULE:
            found.update((rel, text) for text in findings_in(path.read_text()))
    return found


MIRRORED: frozenset[tuple[str, str]] = frozenset({
    ('ir/nodes.py', 'KTIME_GET_NS = 5'),
    ('ir/nodes.py', 'PRANDOM_U32 = 7'),
    ('ir/nodes.py', 'SMP_PROCESSOR_ID = 8'),
    ('lang/actions.py', 'ABORTED = 0'),
    ('lang/actions.py', 'DROP = 1'),
    ('lang/actions.py', 'PASS = 2'),
    ('lang/actions.py', 'REDIRECT = 4'),
    ('lang/actions.py', 'TX = 3'),
    ('lang/state.py', 'ARRAY = 2'),
    ('lang/state.py', 'CPUMAP = 16'),
    ('lang/state.py', 'DEVMAP = 14'),
    ('lang/state.py', 'HASH = 1'),
    ('lang/state.py', 'LPM_TRIE = 11'),
    ('lang/state.py', 'LRU_PERCPU_HASH = 10'),
    ('lang/state.py', 'PERCPU_HASH = 5'),
    ('lang/state.py', 'LRU_HASH = 9'),
    ('lang/state.py', 'PERCPU_ARRAY = 6'),
    ('lang/state.py', 'RINGBUF = 27'),
})
"""Copies in rooms that may not import `bpf`, checked against it by the tests below."""

KNOWN: frozenset[tuple[str, str]] = frozenset({
})
"""Numbers still spelled outside the abi (in modules other sessions own today); to be emptied."""


def test_abi_numbers_are_spelled_only_in_the_abi() -> None:
    found = findings() - MIRRORED
    new = sorted(found - KNOWN)
    gone = sorted(KNOWN - found)
    assert not new, "ABI numbers spelled outside pybpfdsl/bpf/abi.py (import them from there):\n" + \
        "\n".join(f"  {f}: {t}" for f, t in new)
    assert not gone, "no longer found, remove from KNOWN:\n" + "\n".join(f"  {f}: {t}" for f, t in gone)


def test_the_check_finds_each_shape() -> None:
    spelled = "\n".join([
        "_RINGBUF_OUTPUT = 130",
        "BPF_MAP_TYPE_ARRAY = 2",
        "XDP_ABORTED, XDP_REDIRECT = 0, 4",
        "class K:\n    LRU_HASH = 9",
        "_STATE_HELPERS = frozenset({2, 3, 130})",
        "_DEVICE_MAPS = frozenset({14, 25})",
        "if helper == 130: pass",
        "if m.map_type in (0, 2): pass",
    ])
    assert len(list(findings_in(spelled))) == 9
    imported = "\n".join([
        "_RINGBUF_OUTPUT = Helper.RINGBUF_OUTPUT",
        "XDP_REDIRECT = XdpAction.REDIRECT",
        "STEPS = 512",
        "HASH = 2",  # not the map type's number: some other hash
        "if helper == Helper.LOOP: pass",
        "if count == 4: pass",
    ])
    assert list(findings_in(imported)) == []


def test_lang_actions_agree_with_the_abi() -> None:
    assert {a.name: int(a) for a in actions.XdpAction} == {a.name: int(a) for a in abi.XdpAction}
    for name in ("ABORTED", "DROP", "PASS", "TX", "REDIRECT"):
        assert getattr(actions, f"XDP_{name}") == abi.XdpAction[name]


def test_lang_map_kinds_agree_with_the_abi() -> None:
    for kind in state.MapKind:
        assert kind.value == abi.MapType[kind.name], kind


def test_ir_helpers_agree_with_the_abi() -> None:
    for helper in nodes.Helper:
        assert abi.Helper(helper.value).name.endswith(helper.name), helper
