"""The public API is a contract: code outside the repository imports these names and uses these attributes."""

from __future__ import annotations

import pytest

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
    prog = count_everything.compile(prove=False)
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
    assert "program renamed" in named.compile(prove=False).ir


def test_compile_shows_the_verdicts_of_both_checks() -> None:
    prog = count_everything.compile(prove=True)
    assert prog.verified is True and prog.proven is True
    summary = prog.summary()
    assert summary.splitlines()[0].startswith("count_everything: 3 Python lines -> ")
    assert "  verifier: safe (" in summary
    assert "  proof:    proven in " in summary
    assert repr(prog) == f"<CompiledProgram count_everything: {len(prog.elf)} bytes, verifier: safe, proof: proven>"


def test_a_compile_without_the_checks_says_so() -> None:
    prog = count_everything.compile(prove=False, verify=False)
    assert prog.verified is None and prog.proven is False
    assert "verifier: not run" in prog.summary()
    assert "proof:    skipped (compile(prove=False)); attach proves before attaching" in prog.summary()
    assert repr(prog).endswith("verifier: not verified, proof: skipped>")


def test_a_local_test_run_does_not_prove(monkeypatch: pytest.MonkeyPatch) -> None:
    from pybpfdsl.runtime.libbpf import kernel_bpf_available
    from pybpfdsl.verify.equivalence import prove

    available, why = kernel_bpf_available()
    if not available:
        pytest.skip(f"kernel BPF unavailable: {why}")

    def no_proof(*args: object, **kwargs: object) -> object:
        raise AssertionError("fn.load() proved the program")

    monkeypatch.setattr(prove, "prove_on_compile", no_proof)
    with count_everything.load() as loaded:
        assert loaded.run(bytes(14)).action == XDP_PASS
        assert loaded.compiled.proof.status == "skipped"
