"""Names follow Python's scoping rule (docs/language.md, "Local variables"): a name a function assigns
anywhere is local in the whole function, so reading it before an assignment is an error (Python's
UnboundLocalError) even when a module-level name of that spelling exists, and module-level names the
function only reads are constants. Valid programs here run the same in every execution; the wrong ones
are in bad_programs/unbound_locals.py and are refused before any execution, pure Python included."""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Array, Packet, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.lang.errors import DslError
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

from .bad_programs import unbound_locals

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
FRAMES = [bytes(14), bytes(60), bytes(200)]

LIMIT = 100
HALF = 0.5
PORTS = (22, 80)
count = 7  # shadowed by the programs' locals below, never read by them

out = Array(u32, 4)


@xdp
def reads_module_constants(pkt: Packet) -> int:
    out[0] = u32(pkt.len * HALF) + PORTS[1]
    return XDP_DROP if pkt.len > LIMIT else XDP_PASS


@xdp
def local_assigned_on_every_path(pkt: Packet) -> int:
    if pkt.len > LIMIT:
        count = pkt.len
    else:
        count = u32(LIMIT)
    count = count + 1
    out[1] = count
    return XDP_PASS


@xdp
def local_assigned_before_use_shadows_the_module_name(pkt: Packet) -> int:
    count: u32 = 0
    for port in PORTS:
        count += port
    out[2] = count
    return XDP_PASS


@pytest.mark.parametrize("program", [reads_module_constants, local_assigned_on_every_path,
                                     local_assigned_before_use_shadows_the_module_name],
                         ids=lambda p: p.name)
def test_reads_of_module_names_and_locals_assigned_first_work_in_every_execution(program: object) -> None:
    reset_state(out)
    assert compare(program, FRAMES, executions=EXECUTIONS) is None  # type: ignore[arg-type]


def test_values_are_pythons() -> None:
    reset_state(out)
    assert reads_module_constants(bytes(200)) == XDP_DROP
    assert out[0] == 180
    local_assigned_on_every_path(bytes(60))
    assert out[1] == 101
    local_assigned_before_use_shadows_the_module_name(bytes(60))
    assert out[2] == 102


@pytest.mark.parametrize("name", ["module_counter_incremented", "module_counter_augmented"])
def test_python_raises_unbound_local_error_where_the_dsl_refuses_the_program(name: str) -> None:
    """The rule is Python's: the plain function raises UnboundLocalError; the program is refused before it
    runs in any execution (pure Python lowers first), at the line of the read."""
    program = getattr(unbound_locals, name)
    with pytest.raises(UnboundLocalError):
        program.function(None)
    with pytest.raises(DslError, match="count is read before it is assigned") as info:
        program(bytes(64))
    assert info.value.location is not None
    assert info.value.location.line == program.function.__code__.co_firstlineno + 2
