"""Running a compiled program in the bytecode interpreter against the DSL's Python state objects.

The interpreter (:mod:`pybpfdsl.bpf.interpreter`) knows maps and global-data sections as bytes; the DSL
knows `Global`, `HashMap`, `Array`, `RingBuf`... objects holding raw values. This module copies the
objects' values into a run's maps before it and back after it, as a kernel run with the objects bound
would, so the differential harness and tests can compare the bytecode with the other executions.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pybpfdsl.bpf.helper_results import FIB_ROUTES, FibAnswer, HelperResults
from pybpfdsl.bpf.image import BytecodeImage
from pybpfdsl.bpf.interpreter import ExecutionResult, XdpContext
from pybpfdsl.bpf.memory import ArrayElements, InterpMap
from pybpfdsl.lang import fib
from pybpfdsl.lang.helpers import current_helpers
from pybpfdsl.lang.percpu_hash import LruPerCpuHashMap, PerCpuHashMap
from pybpfdsl.lang.redirect import CpuMap, DevMap
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import Array, BpfMap, Global, StateObject, decode, encode, zero_value

if TYPE_CHECKING:
    from pybpfdsl.program import CompiledProgram

__all__ = ["load_state", "run_bytecode", "store_state"]


def _scripted_route(dst: int, ifindex: int) -> FibAnswer:
    return fib.lookup(dst, ifindex).answer()


# The bytecode interpreter's bpf_fib_lookup answers from the table pure Python and the IR interpreter read.
FIB_ROUTES.lookup = _scripted_route


def load_state(image: BytecodeImage, maps: dict[str, InterpMap], state: Mapping[str, StateObject]) -> None:
    """Put the objects' current raw values into a run's fresh maps (`image.fresh_maps()`)."""
    for name, obj in state.items():
        if isinstance(obj, RingBuf) and name in maps:
            # Records still pending in the Python-side buffer take space, as unconsumed kernel records do.
            maps[name].ringbuf_used = len(obj.records) * obj.footprint
        elif isinstance(obj, Global) and name in image.variables:
            sec, off, sz = image.variables[name]
            data = maps[sec].entries[InterpMap.index_key(0)].data
            data[off:off + (sz or obj.type.size)] = encode(obj.raw_get(), obj.type)
        elif isinstance(obj, DevMap | CpuMap) and name in maps:
            for key in obj.raw_keys():
                value = obj.raw_lookup(key)
                if value is not None:
                    maps[name].fill(encode(key, obj.key_type), encode(value, obj.value_type))
        elif isinstance(obj, Array) and name in maps and isinstance(elements := maps[name].entries, ArrayElements):
            # Copied in element by element as the run touches them: a packet costs what it reads.
            elements.initial = functools.partial(_array_element, obj)
        elif isinstance(obj, BpfMap) and name in maps:
            target = maps[name]
            for key in obj.raw_keys():
                value = obj.raw_lookup(key)
                if value is not None:
                    target.update(encode(key, obj.key_type), encode(value, obj.value_type))


def _array_element(obj: Array, index: int) -> bytes:
    value = obj.raw_lookup(index)
    return encode(zero_value(obj.value_type) if value is None else value, obj.value_type)


def store_state(image: BytecodeImage, maps: Mapping[str, InterpMap], state: Mapping[str, StateObject]) -> None:
    """Update the objects from a run's maps: what the program wrote, and the records it emitted."""
    for name, obj in state.items():
        if isinstance(obj, RingBuf) and name in maps:
            for record in maps[name].records:
                obj.raw_output(obj.record.from_bytes(record))
        elif isinstance(obj, Global) and name in image.variables:
            sec, off, sz = image.variables[name]
            data = maps[sec].entries[InterpMap.index_key(0)].data
            raw = decode(bytes(data[off:off + (sz or obj.type.size)]), obj.type)
            assert isinstance(raw, int)
            obj.raw_set(raw)
        elif isinstance(obj, BpfMap) and name in maps:
            source_map = maps[name]
            elements = source_map.entries
            if isinstance(elements, ArrayElements):
                elements = elements.made  # the rest still hold what the object holds
            elif isinstance(obj, PerCpuHashMap | LruPerCpuHashMap):
                # The run held this CPU's copies: the other CPUs' stay, under the keys still present.
                present = {decode(raw, obj.key_type) for raw in elements}
                for gone in obj.raw_keys():
                    if gone not in present:
                        obj.raw_delete(gone)
            elif not isinstance(obj, Array):
                obj.clear()
            for key, region in elements.items():
                obj.raw_update(decode(key, obj.key_type), decode(bytes(region.data), obj.value_type))


def run_bytecode(compiled: CompiledProgram, packet: bytes, state: Mapping[str, StateObject] | None = None,
                 *, ctx: XdpContext | None = None, helpers: HelperResults | None = None) -> tuple[int, bytes]:
    """Run ``compiled`` (from ``fn.compile()``) on ``packet`` against Python state objects.

    The interpreter's maps and global sections start from the objects' current raw values
    (``compiled.lowered.state`` when ``state`` is None) and the objects are updated from them
    afterwards, as a kernel run with the objects bound would. Random numbers, the clock and the CPU
    number come from ``helpers``, by default the DSL's current source (`pybpfdsl.lang.helpers`), as
    in pure Python and the IR interpreter. Returns (action, packet after).
    """
    result = run_bytecode_result(compiled, packet, state, ctx=ctx, helpers=helpers)
    return result.action, result.packet


def run_bytecode_result(compiled: CompiledProgram, packet: bytes, state: Mapping[str, StateObject] | None = None,
                        *, ctx: XdpContext | None = None, helpers: HelperResults | None = None) -> ExecutionResult:
    """`run_bytecode`, giving the interpreter's whole result (the redirect target too)."""
    image = BytecodeImage.from_elf(compiled.elf, compiled.name)
    objects = compiled.lowered.state if state is None else state
    maps = image.fresh_maps()
    load_state(image, maps, objects)
    result = image.run(bytes(packet), maps, ctx=ctx, helpers=current_helpers() if helpers is None else helpers)
    store_state(image, maps, objects)
    return result
