"""bpf_redirect_map (helper 51) as the kernel runs it: the map's element under the key's low 32 bits
decides. A key the map holds redirects there (XDP_REDIRECT); a missing one returns the flags' low two
bits; a flag the map type does not take aborts. The elements are inputs, as any map's contents: equal
programs prove whatever the map holds, a changed key or fallback is a counterexample the interpreter
replays and the kernel confirms (BPF_PROG_TEST_RUN reports the action, not the target)."""

from __future__ import annotations

from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.verify.equivalence.bytecode_program import load_program
from pybpfdsl.verify.equivalence.counterexample import Counterexample, run_bytecode
from pybpfdsl.verify.equivalence.prove import ProofResult, prove_objects
from pybpfdsl.verify.equivalence.report import render_text
from tests.verify.equivalence.assembled import c_object, kernel, needs_clang, needs_kernel

pytestmark = needs_clang

PROGRAM = r"""
static long (*bpf_redirect_map)(void *map, unsigned long long key, unsigned long long flags) = (void *) 51;
static long (*bpf_redirect)(unsigned int ifindex, unsigned long long flags) = (void *) 23;
struct { __uint(type, TYPE); __uint(max_entries, 4); __type(key, unsigned int);
         __type(value, unsigned int); } tx SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned char *d = (unsigned char *)(long)ctx->data, *e = (unsigned char *)(long)ctx->data_end;
    if (d + 1 > e) return XDP_ABORTED;
    BODY
}
"""
DEVMAP, CPUMAP = 14, 16
LOOPBACK = (1).to_bytes(4, "little")
"""A devmap element the kernel accepts in a test: the loopback device (ifindex 1)."""


def _object(body: str, map_type: int = DEVMAP, **defines: int) -> bytes:
    head = "".join(f"#define {k} {v}\n" for k, v in defines.items())
    return c_object(head + PROGRAM.replace("TYPE", str(map_type)).replace("BODY", body))


# The action tells whether the key was found (XDP_TX) or which fallback came back.
FOUND = "long r = bpf_redirect_map(&tx, KEY, FLAGS); return r == XDP_REDIRECT ? XDP_TX : (int)r;"
DIRECT = "return bpf_redirect_map(&tx, KEY, FLAGS);"
BY_PACKET = "return bpf_redirect_map(&tx, d[0] & 7, FLAGS);"


def _counterexample(a: bytes, b: bytes) -> Counterexample:
    result = prove_objects(a, b, "prog")
    assert result.status == "counterexample", result.summary()
    cex = result.counterexample
    assert cex is not None and cex.reproduced, result.report()
    return cex


def _kernel_action(elf: bytes, cex: Counterexample) -> int:
    """The action in the kernel on the counterexample's packet, the map holding the keys it holds (each
    element the loopback device: the action depends on presence alone)."""
    with kernel(elf) as obj:
        tx = obj.kernel_map("tx")
        for key in cex.maps.get("tx", {}):
            tx.update(key, LOOPBACK)
        return run_xdp(obj.program_fd("prog"), cex.packet).action


def _proves(a: bytes, b: bytes) -> ProofResult:
    result = prove_objects(a, b, "prog")
    assert result.status == "proven", result.report()
    return result


def test_equal_redirects_through_a_map_prove() -> None:
    for body in (FOUND, DIRECT, BY_PACKET):
        _proves(_object(body, KEY=1, FLAGS=2), _object(body, KEY=1, FLAGS=2))
    # The helper takes the key's low 32 bits, and an action the same whatever the map holds proves.
    _proves(_object(DIRECT, KEY=1, FLAGS=2), _object(DIRECT, KEY=0x100000001, FLAGS=2))
    _proves(_object(DIRECT, CPUMAP, KEY=3, FLAGS=1), _object(DIRECT, CPUMAP, KEY=3, FLAGS=1))


@needs_kernel
def test_a_changed_key_is_a_counterexample_the_kernel_confirms() -> None:
    original, mutant = _object(FOUND, KEY=1, FLAGS=2), _object(FOUND, KEY=2, FLAGS=2)
    cex = _counterexample(original, mutant)
    assert _kernel_action(original, cex) != _kernel_action(mutant, cex)
    # Both keys held, a different element is where the packet goes: the target is an output.
    cex = _counterexample(_object(DIRECT, KEY=1, FLAGS=0), _object(DIRECT, KEY=2, FLAGS=0))
    outputs = cex.differing_outputs()
    assert outputs and set(outputs) <= {"action", "redirect target"}, render_text(cex, False)
    assert "fill it" not in render_text(cex, False)  # a device map has slots, not room that other entries take


@needs_kernel
def test_a_changed_fallback_or_a_flag_the_map_refuses_is_a_counterexample_the_kernel_confirms() -> None:
    original = _object(BY_PACKET, FLAGS=2)
    for mutant in (_object(BY_PACKET, FLAGS=1), _object(BY_PACKET, FLAGS=0x22)):
        cex = _counterexample(original, mutant)
        assert _kernel_action(original, cex) != _kernel_action(mutant, cex), render_text(cex, False)
    # A CPU map takes no BPF_F_EXCLUDE_INGRESS (a device map does): XDP_ABORTED in the kernel.
    cex = _counterexample(_object(BY_PACKET, CPUMAP, FLAGS=2), _object(BY_PACKET, CPUMAP, FLAGS=0x12))
    with kernel(_object(BY_PACKET, CPUMAP, FLAGS=0x12)) as obj:
        assert run_xdp(obj.program_fd("prog"), cex.packet).action == 0
    _proves(_object(BY_PACKET, FLAGS=2), _object(BY_PACKET, FLAGS=0x12))


@needs_kernel
def test_the_interpreter_returns_what_the_kernel_returns() -> None:
    for flags in (0, 1, 2, 3, 0x10, 0x40):
        elf = _object(BY_PACKET, FLAGS=flags)
        program = load_program(elf, "prog")
        with kernel(elf) as obj:
            tx = obj.kernel_map("tx")
            for held in ((), (0,), (1, 3), (0, 1, 2, 3)):
                for k in range(4):
                    if k in held:
                        tx.update(k.to_bytes(4, "little"), LOOPBACK)
                    elif tx.lookup(k.to_bytes(4, "little")) is not None:
                        tx.delete(k.to_bytes(4, "little"))
                maps = {"tx": {k.to_bytes(4, "little"): LOOPBACK for k in held}}
                for first in range(8):
                    packet = bytes([first]) + bytes(13)
                    cex = Counterexample("difference", packet, maps, {}, [], [], 0, [], ("A", "B"), [], [])
                    expected = run_xdp(obj.program_fd("prog"), packet).action
                    assert run_bytecode(program, cex).action == expected, (flags, first, held)


def test_a_miss_after_bpf_redirect_leaves_that_device() -> None:
    # The kernel keeps the last index on a miss: XDP_REDIRECT then goes to bpf_redirect's device.
    body = "bpf_redirect(7, 0); bpf_redirect_map(&tx, KEY, 0); return XDP_REDIRECT;"
    same = "bpf_redirect(7, 0); return XDP_REDIRECT;"
    result = prove_objects(_object(body, KEY=1), _object(same, KEY=1), "prog")
    assert result.status == "counterexample" and result.counterexample is not None, result.summary()
    assert result.counterexample.reproduced and result.counterexample.maps.get("tx"), result.report()
    body_other = "bpf_redirect(8, 0); bpf_redirect_map(&tx, KEY, 0); return XDP_REDIRECT;"
    cex = _counterexample(_object(body, KEY=1), _object(body_other, KEY=1))
    assert cex.differing_outputs() == ["redirect target"], render_text(cex, False)
