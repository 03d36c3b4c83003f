"""The bytecode interpreter agrees with the kernel (BPF_PROG_TEST_RUN).

(a) Random verifier-acceptable programs (pybpfdsl.bpf.random_programs), loaded with a raw
    BPF_PROG_LOAD, for the v3 and the v4 instruction set: action and packet bytes after, on
    3,000 (program, packet) pairs per instruction set.
(b) Every example program and every deterministic construct program, compiled by pybpfdsl: action,
    packet after and state after, on a few hundred generated packets each, with state carried from
    packet to packet.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl.bpf.disasm import format_listing
from pybpfdsl.bpf.interpreter import run
from pybpfdsl.bpf.random_programs import generate, random_packet
from pybpfdsl.differential import Step, snapshot
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.runtime.raw_load import RawLoadError, RawProgram
from pybpfdsl.state_transfer import run_bytecode
from pybpfdsl.testing import reset_state
from tests.differential import constructs
from tests.strategies import packets

KERNEL, WHY = kernel_bpf_available()
pytestmark = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

PROGRAMS_PER_CPU = 300
PACKETS_PER_PROGRAM = 10
BASE_SEED = 20240601

# Helpers whose results the kernel does not let a test fix.
NONDETERMINISTIC_HELPERS = frozenset({5, 7, 8})


# --------------------------------------------------------------------------- #
# (a) random programs
# --------------------------------------------------------------------------- #


def _describe(seed: int, cpu: str, packet: bytes) -> str:
    listing = "\n".join(format_listing(generate(seed, cpu).instructions))
    return (f"reproduce: generate({seed}, {cpu!r}) on packet {packet.hex()}\n{listing}")


@pytest.mark.parametrize("cpu", ["v3", "v4"])
def test_random_programs_agree_with_the_kernel(cpu: str) -> None:
    pairs = 0
    for seed in range(BASE_SEED, BASE_SEED + PROGRAMS_PER_CPU):
        prog = generate(seed, cpu)
        try:
            loaded = RawProgram(prog.instructions, name="pybpfdsl_rand")
        except RawLoadError as exc:
            pytest.fail(f"the verifier rejected a generated program: {_describe(seed, cpu, b'')}\n{exc.log}")
        rng = random.Random(seed)
        with loaded:
            for _ in range(PACKETS_PER_PROGRAM):
                packet = random_packet(rng)
                kernel = run_xdp(loaded.fd, packet)
                ours = run(prog.instructions, packet)
                assert (ours.action, ours.packet) == (kernel.action, kernel.packet), _describe(seed, cpu, packet)
                pairs += 1
    assert pairs == PROGRAMS_PER_CPU * PACKETS_PER_PROGRAM


# --------------------------------------------------------------------------- #
# (b) compiled example and construct programs
# --------------------------------------------------------------------------- #


def _example_programs() -> list[XdpProgram]:
    out: list[XdpProgram] = []
    root = Path(__file__).resolve().parents[2] / "examples"
    for path in sorted(root.glob("*.py")):
        if path.name == "__init__.py":
            continue
        module = importlib.import_module(f"examples.{path.stem}")
        out.extend(v for v in vars(module).values() if isinstance(v, XdpProgram) and v.__module__ == module.__name__)
    return out


EXAMPLES = _example_programs()
PROGRAMS = EXAMPLES + list(constructs.DETERMINISTIC)


def _helpers_called(prog: XdpProgram) -> set[int]:
    return {i.imm for i in prog.compile(prove=False).instructions if i.is_helper_call}


def _run_kernel(prog: XdpProgram, pkts: Sequence[bytes]) -> list[Step]:
    state = prog.lower().state
    with prog.load() as loaded:
        return [Step(r.action, r.packet, snapshot(state)) for r in (loaded.run(p) for p in pkts)]


def _run_interpreter(prog: XdpProgram, pkts: Sequence[bytes]) -> list[Step]:
    compiled = prog.compile(prove=False)  # the interpreter against the kernel: no proof needed
    state = prog.lower().state
    steps = []
    for p in pkts:
        action, after = run_bytecode(compiled, p, state)
        steps.append(Step(action, after, snapshot(state)))
    return steps


def _agree(prog: XdpProgram, pkts: Sequence[bytes]) -> None:
    state = prog.lower().state
    saved = {name: obj.save() for name, obj in state.items()}

    def restore() -> None:
        for name, obj in state.items():
            obj.restore(saved[name])

    try:
        kernel = _run_kernel(prog, pkts)
        restore()
        ours = _run_interpreter(prog, pkts)
    finally:
        restore()
    for index, (k, o) in enumerate(zip(kernel, ours)):
        assert o == k, f"packet #{index} ({pkts[index].hex()}): interpreter {o} vs kernel {k}"


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_compiled_programs_agree_with_the_kernel(prog: XdpProgram) -> None:
    used = _helpers_called(prog) & NONDETERMINISTIC_HELPERS
    if used:
        pytest.skip(f"{prog.name} calls helpers {sorted(used)} (time/random/cpu), whose results a test run cannot fix")
    for module in {prog.function.__module__}:
        reset_state(importlib.import_module(module))

    @settings(max_examples=6, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(packets, min_size=50, max_size=50))
    def check(pkts: list[bytes]) -> None:
        _agree(prog, pkts)

    check()


def test_examples_were_found() -> None:
    assert len(EXAMPLES) >= 8


# --------------------------------------------------------------------------- #
# (c) a clang object with bpf-to-bpf calls and global data in .bss and .data
# --------------------------------------------------------------------------- #

SUBPROGRAMS_C = r"""
typedef unsigned int u32; typedef unsigned long long u64; typedef unsigned char u8;
struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };
u64 counter;
u32 table[4] = {3, 1, 4, 1};
static __attribute__((noinline)) u64 mix(u64 a, u64 b) { volatile u64 t = a * 31; return t ^ (b >> 3) ^ table[a & 3]; }
static __attribute__((noinline)) u32 twice(u32 x) { return mix(x, x + 1) + mix(x + 2, x); }
__attribute__((section("xdp"), used)) int prog(struct xdp_md *ctx) {
    u8 *data = (u8 *)(long)ctx->data, *end = (u8 *)(long)ctx->data_end;
    if (data + 16 > end) return 2;
    counter += data[3];
    u64 v = mix(data[0] | (u64)data[1] << 8, counter) + twice(data[2]) + ctx->ingress_ifindex;
    *(u64 *)(data + 8) = v;
    table[data[4] & 3] += (u32)v;
    return v & 3;
}
char _license[] __attribute__((section("license"), used)) = "GPL";
"""


def test_clang_object_with_subprograms_and_globals(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from pybpfdsl.bpf.image import BytecodeImage
    from pybpfdsl.runtime.bpf_object import BpfObject

    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed")
    src = tmp_path / "sub.c"
    src.write_text(SUBPROGRAMS_C)
    obj = tmp_path / "sub.o"
    subprocess.run([clang, "-target", "bpf", "-O2", "-c", str(src), "-o", str(obj)], check=True)
    elf = obj.read_bytes()
    image = BytecodeImage.from_elf(elf, "prog")
    assert any(i.is_pseudo_call for i in image.instructions)
    maps = image.fresh_maps()  # kept across packets, like the kernel's global data
    rng = random.Random(7)
    with BpfObject.load(elf, "sub") as loaded:
        fd = loaded.programs["prog"]
        for _ in range(300):
            packet = bytes(rng.getrandbits(8) for _ in range(rng.randint(14, 40)))
            kernel = run_xdp(fd, packet)
            ours = image.run(packet, maps)
            assert (ours.action, ours.packet) == (kernel.action, kernel.packet), packet.hex()
