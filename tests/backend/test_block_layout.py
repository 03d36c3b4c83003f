"""The backend's block order (`backend.block_layout.layout`) and what it does to the bytecode.

- Without hints the order is the plain reverse postorder (`cfg.reverse_postorder`), so unhinted programs
  compile as they did before hints existed.
- With hints, every block still comes after its dominators (the lowering needs operands before uses), a
  hinted branch's hot successor comes right after it when only rare blocks also reach it, and the blocks
  only a cold edge reaches come after all the others.
- The conditional branch carries `__builtin_expect`'s weights, and on the bytecode the usual path runs
  without the `goto` the rare path now takes.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace

import pytest

import examples
from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, likely, u64, unlikely, xdp
from pybpfdsl.backend.block_layout import cold_edge, layout
from pybpfdsl.backend.compile import compile_program
from pybpfdsl.bpf.image import BytecodeImage
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, reverse_postorder
from pybpfdsl.ir.passes.pipeline import optimize
from pybpfdsl.program import XdpProgram
from tests.frontend.test_likelihood import USUAL, everywhere, hinted, plain

count = Global(u64, 0)
big = Global(u64, 0)


@xdp
def two_diamonds(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    if unlikely(udp.sport == 53):
        big.value += 2
    else:
        count.value += 1
    if likely(pkt.len < 1000):
        count.value += 3
    else:
        big.value += 1
        if pkt.len > 1400:
            return XDP_DROP
    return XDP_PASS


def _examples() -> list[XdpProgram]:
    modules = [importlib.import_module(f"examples.{m.name}") for m in pkgutil.iter_modules(examples.__path__)]
    return [v for m in modules for v in vars(m).values() if isinstance(v, XdpProgram)]


HINTED = [everywhere, hinted, two_diamonds]


def _unhinted(program: n.Program) -> n.Program:
    """`program` with every branch's hint dropped (the header parse marks its IPv6 path rare)."""
    for b in program.blocks:
        if isinstance(b.terminator, n.Branch):
            b.terminator = replace(b.terminator, expect=None)
    return program


@pytest.mark.parametrize("prog", [*_examples(), plain], ids=lambda p: p.name)
def test_without_hints_the_order_is_the_plain_reverse_postorder(prog: XdpProgram) -> None:
    for program in (_unhinted(prog.lower().program), _unhinted(optimize(prog.lower().program))):
        assert [b.name for b in layout(program)] == reverse_postorder(program)


def _cold_only(program: n.Program) -> set[str]:
    """Blocks no path from the entry reaches without taking a cold edge."""
    blocks = {b.name: b for b in program.blocks}
    seen, todo = {program.entry.name}, [program.entry]
    while todo:
        b = todo.pop()
        assert b.terminator is not None
        cold = cold_edge(b.terminator)
        for e in b.terminator.edges():
            if e is not cold and e.target not in seen:
                seen.add(e.target)
                todo.append(blocks[e.target])
    return set(reverse_postorder(program)) - seen


@pytest.mark.parametrize("prog", HINTED, ids=lambda p: p.name)
@pytest.mark.parametrize("optimized", [False, True], ids=["frontend", "optimized"])
def test_hinted_order_keeps_dominators_first_and_puts_the_rare_blocks_last(prog: XdpProgram, optimized: bool) -> None:
    program = optimize(prog.lower().program) if optimized else prog.lower().program
    order = [b.name for b in layout(program)]
    assert sorted(order) == sorted(reverse_postorder(program))
    at = {name: i for i, name in enumerate(order)}
    cfg = Cfg.of(program)
    for name in order:
        assert all(at[d] <= at[name] for d in cfg.dominators(name)), name
    rare = _cold_only(program)
    assert rare, "the program has blocks only a rare edge reaches"
    assert set(order[len(order) - len(rare):]) == rare
    hot_follows = 0
    for b in program.blocks:
        cold = cold_edge(b.terminator) if b.terminator is not None and b.name in at else None
        if cold is None:
            continue
        hot = next(e for e in b.terminator.edges() if e is not cold).target  # type: ignore[union-attr]
        if all(p == b.name or p in rare for p in cfg.preds[hot]):  # nothing usual reaches it first
            assert order[at[b.name] + 1] == hot, (b.name, hot)
            hot_follows += 1
    assert hot_follows >= 1


def test_the_branch_carries_the_weights_clang_gives_builtin_expect() -> None:
    obj = compile_program(two_diamonds.lower().program)
    assert '!{ !"branch_weights", i32 1, i32 2000 }' in obj.llvm_ir  # unlikely: the true edge is rare
    assert '!{ !"branch_weights", i32 2000, i32 1 }' in obj.llvm_ir
    assert "branch_weights" not in compile_program(plain.lower().program).llvm_ir


def _steps(prog: XdpProgram, packet: bytes) -> tuple[int, int]:
    """(instructions run on `packet`, instructions up to and including the program's first `exit`)."""
    compiled = prog.compile(prove=False, verify=False)
    image = BytecodeImage.from_elf(compiled.elf, prog.name)
    first_exit = next(i for i, insn in enumerate(image.instructions) if insn.is_exit)
    return image.run(packet, image.fresh_maps()).steps, first_exit + 1


def test_the_usual_path_falls_through() -> None:
    # `plain` lays the DNS count out first and jumps over it; `hinted` runs straight to the common tail:
    # the straight line from the first instruction to the first `exit`, and fewer instructions.
    hinted_steps, straight = _steps(hinted, USUAL)
    assert hinted_steps == straight
    assert hinted_steps < _steps(plain, USUAL)[0]
