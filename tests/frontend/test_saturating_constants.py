"""Saturation is for conversions that may overflow; one that always does is a compile error (issue 16 §1,
docs/language.md "Floats"). A typed integer constant (or a local holding one) outside the float range
converted to float would saturate every time it runs: a `DslError` at its line with the fix
(tests/frontend/bad_programs/always_saturating.py has one case per way to write it). The same values
known only at run time saturate, the same in every execution, without an error or a warning; the fixes the
hint suggests compute the intended number."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from pybpfdsl import XDP_PASS, Array, DslError, Global, Packet, i64, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang import fixed
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
FRAME = bytes(12) + b"\x88\xb5"

seconds = Array(float, 6)
clock = Global(u64, 0)
offset = Global(i64, 0)


@xdp
def clock_as_seconds(pkt: Packet) -> int:
    seconds[0] = float(clock.value)                # may saturate: known at run time only
    seconds[1] = 0.5 + offset.value                # may saturate, below
    seconds[2] = clock.value / 1e9                 # the fix: an exact integer quotient
    timeout = u64(30_000_000_000)
    seconds[3] = timeout / 1_000_000_000           # the fix for a constant: divide first (30.0)
    seconds[4] = float(u64(2_000_000_000))         # a typed constant that fits
    seconds[5] = float(pkt.len)
    return XDP_PASS


def test_conversions_that_may_saturate_compile_without_an_error_or_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xdp(clock_as_seconds.function).lower()


@pytest.mark.parametrize(("ns", "off"), [(5_000_000_000, -3_000_000_000), (1_500_000_000, -7), (2**64 - 1, -(2**63))])
def test_run_time_saturation_is_the_same_in_every_execution(ns: int, off: int) -> None:
    reset_state(seconds, clock, offset)
    clock.value, offset.value = ns, off
    assert compare(clock_as_seconds, [FRAME], executions=EXECUTIONS) is None
    clock_as_seconds(FRAME)
    clamp = lambda x: min(max(x, -(2.0**31)), fixed.to_float(fixed.RAW_MAX))  # noqa: E731
    assert seconds[0] == clamp(ns)
    assert seconds[1] == clamp(off) + 0.5
    signed_ns = ns - (1 << 64) if ns >> 63 else ns  # the dividend is an i64
    assert seconds[2] == fixed.to_float(fixed.quotient(signed_ns, 10**9))
    assert seconds[3] == 30.0 and seconds[4] == 2_000_000_000.0 and seconds[5] == 14.0


def test_an_always_saturating_conversion_is_an_error_at_its_line_with_the_fix(tmp_path: Path) -> None:
    source = tmp_path / "token_bucket.py"
    source.write_text("from pybpfdsl import *\n\ntokens = Global(float, 0.0)\n\n@xdp\n"
                      "def bucket(pkt: Packet) -> int:\n"
                      "    burst = u64(10_000_000_000)\n"
                      "    tokens.value = min(burst, tokens.value + 0.5)\n"
                      "    return XDP_PASS\n")
    namespace: dict[str, object] = {}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    with pytest.raises(DslError) as info:
        namespace["bucket"].lower()  # type: ignore[attr-defined]
    err = info.value
    assert err.location is not None and (err.location.file, err.location.line) == (str(source), 8)
    assert "the u64 value 10000000000 is outside the float range" in err.message
    assert "always gives the largest float" in err.message
    assert err.hint is not None and "divide first" in err.hint and "wider integer type" in err.hint
    assert "hint: divide first" in err.render()
