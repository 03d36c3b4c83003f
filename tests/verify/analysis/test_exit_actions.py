"""The exit check's warning that r0 may not be an XDP action: silent where r0 comes straight from a helper
whose result is always an action (bpf_redirect_map, bpf_redirect), still given for a number that may be
anything (a map value), and the helpers' results stay unknown numbers otherwise (as the kernel types them).
"""

from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, Array, DevMap, Packet, redirect, u32, xdp
from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.opcodes import EXIT, add_imm, mov

routes = DevMap(8)
actions = Array(u32, 4)


def _exit_warnings(fn: object) -> list[str]:
    compiled = fn.compile()  # type: ignore[attr-defined]
    return [f.message for f in compiled.verification.findings if f.code == Code.EXIT_ACTION]


@xdp
def via_devmap(pkt: Packet) -> int:
    return routes.redirect(0, XDP_PASS)


@xdp
def via_devmap_or_drop(pkt: Packet) -> int:
    if pkt.len < 60:
        return XDP_DROP
    return routes.redirect(pkt.len & 7, XDP_PASS)


@xdp
def via_ifindex(pkt: Packet) -> int:
    return redirect(3)


@xdp
def from_a_map(pkt: Packet) -> int:
    return actions[0]


def test_a_devmap_redirect_returned_is_an_action() -> None:
    assert _exit_warnings(via_devmap) == []


def test_a_devmap_redirect_beside_a_constant_action_is_an_action() -> None:
    assert _exit_warnings(via_devmap_or_drop) == []


def test_a_redirect_to_an_ifindex_is_an_action() -> None:
    assert _exit_warnings(via_ifindex) == []


def test_a_map_value_returned_may_not_be_an_action() -> None:
    warnings = _exit_warnings(from_a_map)
    assert len(warnings) == 1 and "outside the XDP actions" in warnings[0]


def _call(helper: Helper) -> Instruction:
    return Instruction(0x85, 0, 0, 0, int(helper))


def test_arithmetic_on_a_redirect_result_is_not_an_action() -> None:
    # r0 = bpf_redirect(1, 0) + 10: no longer the helper's own result
    insns = [mov(1, 1), mov(2, 0), _call(Helper.REDIRECT), add_imm(0, 10), EXIT]
    assert Code.EXIT_ACTION in {f.code for f in verify_instructions(insns).findings}


def test_a_redirect_result_stays_an_unknown_number() -> None:
    # Used as a stack offset, the result is refused as the kernel refuses it (not narrowed to [0, 4]).
    insns = [mov(1, 1), mov(2, 0), _call(Helper.REDIRECT), Instruction(0xBF, 1, 10, 0, 0),
             Instruction(0x07, 1, 0, 0, -8), Instruction(0x0F, 1, 0, 0, 0), Instruction(0x72, 1, 0, 0, 0),
             mov(0, 2), EXIT]
    assert verify_instructions(insns).errors
