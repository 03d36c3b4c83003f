"""`compare_statistically`: programs that call `random()` compared with the kernel by action frequencies.

A correct program is never reported; a program whose drop rate differs from what runs beside it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, random, u64, xdp
from pybpfdsl.differential import EXECUTIONS, Step, compare_statistically
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, WHY = kernel_bpf_available()

dropped = Global(u64, 0)

FRAME = bytes.fromhex("ffffffffffff0200000000010800") + bytes([0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0,
                                                                 10, 0, 0, 1, 10, 0, 0, 2]) + bytes(8)


@xdp
def drop_a_fifth(pkt: Packet) -> int:
    if pkt.udp is None:
        return XDP_PASS
    if random() < 0.2:
        dropped.value += 1
        return XDP_DROP
    return XDP_PASS


@pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")
def test_a_correct_random_program_agrees_with_the_kernel() -> None:
    reset_state(dropped)
    assert compare_statistically(drop_a_fifth, [FRAME, FRAME[:14]], rounds=200) is None
    assert dropped.value == 0  # the state is left as it was


def _always(action: int) -> object:
    def run(prog: object, packets: Sequence[bytes], helpers: object) -> list[Step]:
        return [Step(action, p, {}) for p in packets]

    return run


def test_a_drop_rate_far_from_the_others_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in execution that drops every packet: the program drops a fifth in pure Python.
    monkeypatch.setitem(EXECUTIONS, "drops_all", _always(XDP_DROP))  # type: ignore[arg-type]
    mismatch = compare_statistically(drop_a_fifth, [FRAME], rounds=200, executions=("python", "drops_all"))
    assert mismatch is not None
    assert mismatch.index == 0 and mismatch.rounds == 200 and mismatch.right == "drops_all"
    assert mismatch.action in (XDP_DROP, XDP_PASS)
    assert "of 200 rounds" in str(mismatch)


def test_equal_executions_are_never_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EXECUTIONS, "passes_all", _always(XDP_PASS))  # type: ignore[arg-type]
    assert compare_statistically(drop_a_fifth, [FRAME[:14]], rounds=50, executions=("python", "passes_all")) is None


def test_rounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rounds"):
        compare_statistically(drop_a_fifth, [FRAME], rounds=0)
