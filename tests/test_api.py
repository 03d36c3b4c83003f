"""The public API is a contract: code outside the repository imports these names and uses these attributes."""

from __future__ import annotations

import pybpfdsl
from pybpfdsl import XDP_PASS, Global, Packet, u64, xdp

CONTRACT = [
    "xdp", "Packet", "Struct", "Global", "HashMap", "LruHashMap", "Array", "PerCpuArray",
    "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64",
    "ip", "random", "randint", "prandom_u32", "now_ns", "cpu_id",
    "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", "DslError",
    "attach", "detach", "RingBuf",
]

seen = Global(u64, 0)


@xdp
def count_everything(pkt: Packet) -> int:
    seen.value += 1
    return XDP_PASS


@xdp(name="renamed")
def named(pkt: Packet) -> int:
    return XDP_PASS


def test_every_contract_name_is_exported() -> None:
    missing = [name for name in CONTRACT if not hasattr(pybpfdsl, name)]
    assert missing == []
    assert set(CONTRACT) <= set(pybpfdsl.__all__)


def test_actions_have_the_kernels_values() -> None:
    assert (pybpfdsl.XDP_ABORTED, pybpfdsl.XDP_DROP, pybpfdsl.XDP_PASS, pybpfdsl.XDP_TX,
            pybpfdsl.XDP_REDIRECT) == (0, 1, 2, 3, 4)


def test_compile_gives_every_documented_attribute(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prog = count_everything.compile()
    assert prog.elf.startswith(b"\x7fELF")
    assert prog.instructions and prog.disasm().startswith("0: ")
    assert "program count_everything" in prog.ir
    assert "define" in prog.llvm_ir
    last_slot = int(prog.disasm().splitlines()[-1].split(":")[0])
    # bpf_insns counts instruction slots, as the kernel does: a 64-bit immediate load takes two.
    assert prog.stats["dsl_loc"] == 3 and prog.stats["bpf_insns"] == last_slot + 1
    assert prog.save(tmp_path / "p.o").read_bytes() == prog.elf


def test_the_name_option_names_the_program() -> None:
    assert named.name == "renamed"
    assert "program renamed" in named.compile().ir
