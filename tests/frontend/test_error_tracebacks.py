"""A DslError raised through the API shows the user's line, not the compiler's internal frames (issue 16
§6): the traceback stops at the API call (`lower`, `compile`, calling the program), and a Struct the DSL
cannot lay out shows the user's class statement and the one frame that raises it."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from pybpfdsl import XDP_PASS, DslError, Packet, Struct, u32, xdp
from pybpfdsl.lang.structs import StructLayoutError

PACKAGE = Path(__file__).resolve().parents[2] / "pybpfdsl"


def _frames(exc: BaseException) -> list[Path]:
    return [Path(f.filename).resolve() for f in traceback.extract_tb(exc.__traceback__)]


def _compiler_frames(exc: BaseException) -> list[Path]:
    return [f for f in _frames(exc) if f.is_relative_to(PACKAGE) and f.name != "program.py"]


@xdp
def sliced(pkt: Packet) -> int:
    head = pkt.payload[0:4]  # noqa: F841 - the refused line
    return XDP_PASS


@pytest.mark.parametrize("call", ["lower", "compile", "run"])
def test_a_dsl_error_carries_no_compiler_frames(call: str) -> None:
    with pytest.raises(DslError) as caught:
        if call == "lower":
            sliced.lower()
        elif call == "compile":
            sliced.compile()
        else:
            sliced(bytes(60))
    err = caught.value
    assert _compiler_frames(err) == []
    assert _frames(err)[0] == Path(__file__).resolve()  # the user's call first
    assert err.__cause__ is None and err.__suppress_context__
    assert err.location is not None and err.location.text.strip().startswith("head = pkt.payload[0:4]")


def test_a_struct_layout_error_stops_at_the_class_statement() -> None:
    with pytest.raises(StructLayoutError) as caught:
        class Bad(Struct):
            a: u32
            b: list[int]
    frames = _frames(caught.value)
    assert frames[0] == Path(__file__).resolve()
    assert [f.name for f in frames[1:]] == ["structs.py"]  # the class statement, then the one raise
