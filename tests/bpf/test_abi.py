"""pybpfdsl.bpf.abi against the kernel's own header, `linux/bpf.h` of the system (package linux-libc-dev).

The header is the definition: helper ids are positions in `__BPF_FUNC_MAPPER` (newer headers also write
each id out), map types and XDP actions are C enums, `struct xdp_md` is six `__u32`, and the helper
descriptions give each helper's C prototype. A header older than the abi lacks its newest members: those
are checked only where the header has them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pybpfdsl.bpf import abi
from pybpfdsl.verify.analysis.helper_signatures import HELPER_SIGNATURES

INCLUDE = Path("/usr/include/linux")  # the C compiler's system include directory
HEADER = INCLUDE / "bpf.h"

needs_header = pytest.mark.skipif(not HEADER.exists(),
                                  reason=f"{HEADER} is missing: install linux-libc-dev to check the abi against it")


def _header() -> str:
    return HEADER.read_text()


def _value(expr: str, known: dict[str, int]) -> int:
    """A C enumerator's value: a number, ``(1ULL << n)`` or an earlier enumerator's name."""
    expr = expr.strip().strip("()").replace("ULL", "").replace("UL", "")
    if expr in known:
        return known[expr]
    if "<<" in expr:
        base, shift = expr.split("<<")
        return int(base, 0) << int(shift, 0)
    return int(expr, 0)


def _enum(body: str, prefix: str) -> dict[str, int]:
    """Enumerators of a C enum body whose names start with `prefix` (the prefix removed), with C's
    counting: an enumerator without a value is one more than the previous one."""
    values: dict[str, int] = {}
    next_value = 0
    for line in re.sub(r"/\*.*?\*/", "", body, flags=re.S).splitlines():
        m = re.match(r"\s*(\w+)\s*(?:=\s*([^,]+))?,?\s*$", line)
        if m is None or line.lstrip().startswith("#"):
            continue
        name, expr = m.groups()
        value = next_value if expr is None else _value(expr, values)
        values[name] = value
        next_value = value + 1
    return {name.removeprefix(prefix): v for name, v in values.items() if name.startswith(prefix)}


def _named_enum(text: str, name: str) -> str:
    m = re.search(r"enum " + name + r" \{(.*?)\n\};", text, re.S)
    assert m is not None, f"enum {name} not in {HEADER}"
    return m.group(1)


def _anonymous_enum_with(text: str, member: str) -> str:
    for body in re.findall(r"enum \{(.*?)\n\};", text, re.S):
        if re.search(r"^\s*" + member + r"\b", body, re.M):
            return str(body)
    raise AssertionError(f"no enum with {member} in {HEADER}")


@needs_header
def test_helper_ids_and_names_are_the_func_mappers() -> None:
    # ``__BPF_FUNC_MAPPER(FN)`` listing ``FN(name)``, or in newer headers ``___BPF_FUNC_MAPPER(FN, ctx...)`` listing
    # ``FN(name, id, ##ctx)``
    m = re.search(r"#define _{2,3}BPF_FUNC_MAPPER\(FN(?:, ctx\.\.\.)?\)\s*\\\n(.*?)\n\n", _header(), re.S)
    assert m is not None
    ids: dict[str, int] = {}
    for position, entry in enumerate(re.findall(r"FN\(([^)]*)\)", m.group(1))):
        parts = [p.strip() for p in entry.split(",")]
        ids[parts[0]] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else position
    assert ids["unspec"] == 0 and len(ids) > max(abi.Helper)
    for helper in abi.Helper:
        assert ids.get(helper.name.lower()) == helper, helper


@needs_header
def test_helper_prototypes_are_the_headers() -> None:
    described = {" ".join(line.split()) for line in re.findall(r"^ \* (\S.*\bbpf_\w+\(.*\))\s*$", _header(), re.M)}
    for helper, proto in abi.HELPER_PROTOTYPES.items():
        assert proto.text(helper) in described, proto.text(helper)


@needs_header
def test_map_types_are_enum_bpf_map_type() -> None:
    header = _enum(_named_enum(_header(), "bpf_map_type"), "BPF_MAP_TYPE_")
    for name, value in header.items():
        if name not in abi.MapType.__members__:  # an alias kept for old names (..._DEPRECATED)
            assert value in set(abi.MapType), name
            continue
        assert abi.MapType[name] == value, name
    newest = max(header.values())
    assert {t.name for t in abi.MapType if t <= newest} <= set(header)


@needs_header
def test_xdp_actions_are_enum_xdp_action() -> None:
    header = _enum(_named_enum(_header(), "xdp_action"), "XDP_")
    assert header == {a.name: int(a) for a in abi.XdpAction}


@needs_header
def test_xdp_md_fields_are_the_structs() -> None:
    m = re.search(r"struct xdp_md \{(.*?)\n\};", _header(), re.S)
    assert m is not None
    fields = re.findall(r"^\s*(\w+)\s+(\w+);", m.group(1), re.M)
    assert {t for t, _ in fields} == {"__u32"}
    assert abi.XDP_MD_FIELD_SIZE == 4
    assert {name.upper(): 4 * i for i, (_, name) in enumerate(fields)} == {f.name: int(f) for f in abi.XdpMd}
    assert 4 * len(fields) == abi.XDP_MD_SIZE


@needs_header
@pytest.mark.parametrize(("enum", "first", "prefix"), [
    (abi.UpdateFlag, "BPF_ANY", "BPF_"),
    (abi.RingbufFlag, "BPF_RB_NO_WAKEUP", "BPF_RB_"),
    (abi.RedirectFlag, "BPF_F_INGRESS", "BPF_F_"),
])
def test_flags_are_the_headers(enum: type[abi.UpdateFlag | abi.RingbufFlag | abi.RedirectFlag], first: str,
                               prefix: str) -> None:
    header = _enum(_anonymous_enum_with(_header(), first), prefix)
    for member in enum:
        assert header[member.name] == member, member


@pytest.mark.skipif(not (INCLUDE / "bpf_common.h").exists(), reason="linux/bpf_common.h is missing")
def test_max_instructions_is_the_headers() -> None:
    m = re.search(r"#define BPF_MAXINSNS (\d+)", (INCLUDE / "bpf_common.h").read_text())
    assert m is not None and int(m.group(1)) == abi.BPF_MAXINSNS


def test_verifier_signatures_refine_the_prototypes() -> None:
    """The verifier's argument kinds are one per argument of the helper's C prototype."""
    for helper, sig in HELPER_SIGNATURES.items():
        assert sig.name == abi.Helper(helper).kernel_name
        assert len(sig.args) == abi.helper_arity(abi.Helper(helper)), sig.name


def test_names_print_with_their_numbers() -> None:
    assert repr(abi.Helper(130)) == "<Helper.RINGBUF_OUTPUT: 130>"
    assert abi.map_type_name(9) == "lru_hash" and abi.map_type_name(99) == "type 99"
    assert abi.HELPER_PROTOTYPES[abi.Helper.RINGBUF_OUTPUT].text(abi.Helper.RINGBUF_OUTPUT) == \
        "long bpf_ringbuf_output(void *ringbuf, void *data, u64 size, u64 flags)"
