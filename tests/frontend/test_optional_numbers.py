"""A number that may be None (a payload byte, a map lookup) becomes a plain number once checked: given a
value on the None path (`if b is None: b = 0`) it is a number of its own type on every path after, and
`+=` works on it after a check. Found by the generated-program tests (tests/generated)."""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, HashMap, Packet, u16, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang.errors import DslError
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
ETH = bytes(12) + b"\x88\xb5"  # an EtherType the parser does not know: the payload starts at byte 14
PACKETS = [ETH, ETH + b"\x05", ETH + b"\x01\x02", ETH + b"\xff"]

seen = HashMap(u16, u64, 16)
last = Global(u64, 0)


@xdp
def default_on_none(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b is None:
        b = 0
    last.value = b
    return XDP_DROP if b > 3 else XDP_PASS


@xdp
def default_wraps_to_the_bytes_type(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b is None:
        b = pkt.len + 250        # a u32 stored into a u8 variable: wraps like any assignment
    last.value = b
    return XDP_PASS


@xdp
def map_default(pkt: Packet) -> int:
    v = seen.get(u16(pkt.len))
    if v is None:
        v = 7
    else:
        v += 1
    seen[u16(pkt.len)] = v
    last.value = v
    return XDP_PASS


@xdp
def add_after_check(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b is None:
        return XDP_PASS
    b += 255                     # a u8: wraps
    last.value = b
    return XDP_DROP if b < 4 else XDP_PASS


@pytest.mark.parametrize("prog", [default_on_none, default_wraps_to_the_bytes_type, map_default, add_after_check],
                         ids=lambda p: p.name)
def test_a_checked_optional_number_joins_as_a_number(prog) -> None:  # type: ignore[no-untyped-def]
    reset_state(seen, last)
    assert compare(prog, PACKETS * 2, executions=EXECUTIONS) is None


def test_values() -> None:
    reset_state(seen, last)
    assert default_on_none(ETH) == XDP_PASS and last.value == 0
    assert default_on_none(ETH + b"\x09") == XDP_DROP and last.value == 9
    assert default_wraps_to_the_bytes_type(ETH) == XDP_PASS and last.value == (14 + 250) % 256
    assert add_after_check(ETH + b"\x02") == XDP_DROP and last.value == 1
    map_default(ETH)
    map_default(ETH)
    assert seen[14] == 8


def test_the_variable_keeps_the_bytes_type(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "too_big.py"
    source.write_text(
        "from pybpfdsl import *\n\n"
        "@xdp\n"
        "def too_big(pkt: Packet) -> int:\n"
        "    b = pkt.payload[0]\n"
        "    if b is None:\n"
        "        b = 1000\n"
        "    return XDP_PASS\n")
    namespace: dict[str, object] = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    with pytest.raises(DslError, match="1000 does not fit in u8") as info:
        namespace["too_big"].lower()  # type: ignore[attr-defined]
    assert info.value.location is not None and info.value.location.line == 7


@xdp
def checked_byte_as_a_number(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b is None:
        return XDP_PASS
    last.value = b if pkt.len > 15 else u64(3)     # an arm of a conditional expression
    if bool(b):                                     # its truth
        return XDP_DROP
    return XDP_PASS


@xdp
def read_again(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b is None:
        b = 0
    total = u64(b)
    b = pkt.payload[1]                              # a number that may be None again, of b's type
    if b is None:
        b = 1
    last.value = total + b
    return XDP_PASS


@pytest.mark.parametrize("prog", [checked_byte_as_a_number, read_again], ids=lambda p: p.name)
def test_a_checked_optional_number_is_a_number_everywhere(prog) -> None:  # type: ignore[no-untyped-def]
    reset_state(seen, last)
    assert compare(prog, PACKETS * 2, executions=EXECUTIONS) is None


def test_checked_values() -> None:
    reset_state(last)
    read_again(ETH + b"\x05")
    assert last.value == 6
    assert checked_byte_as_a_number(ETH + b"\x00\x01") == XDP_PASS and last.value == 0
