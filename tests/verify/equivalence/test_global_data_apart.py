"""Two objects whose global data start different (`.data` or `.rodata` initial bytes): loaded as they
are, each program starts from its own. A difference a program reads or changes is a counterexample the
kernel confirms (each object loaded and run as it is); one nobody reads or writes proves."""

from __future__ import annotations

from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.verify.equivalence.counterexample import Counterexample
from pybpfdsl.verify.equivalence.prove import prove_objects
from pybpfdsl.verify.equivalence.report import render_text
from tests.verify.equivalence.assembled import c_object, kernel, needs_clang, needs_kernel

pytestmark = needs_clang

PROGRAM = r"""
int x = X;
int spare = SPARE;
const volatile int limit = LIMIT;
const volatile int unused = UNUSED;
SEC("xdp") int prog(struct xdp_md *ctx) {
    unsigned char *d = (unsigned char *)(long)ctx->data, *e = (unsigned char *)(long)ctx->data_end;
    if (d + 1 > e) return XDP_ABORTED;
    BODY
}
"""
def _object(body: str, x: int = 1, spare: int = 7, limit: int = 100, unused: int = 3) -> bytes:
    head = f"#define X {x}\n#define SPARE {spare}\n#define LIMIT {limit}\n#define UNUSED {unused}\n"
    return c_object(head + PROGRAM.replace("BODY", body))


def _kernel(elf: bytes, cex: Counterexample, side: int) -> tuple[int, bytes]:
    """The action and the `.data` bytes after one run on the counterexample's packet, `.data` holding
    what the counterexample says program `side` starts from (user space may write it; where the two
    objects differ, that is the object's own)."""
    with kernel(elf) as obj:
        data = obj.kernel_map(".data")
        data.update(bytes(4), cex.start(side)[".data"])
        action = run_xdp(obj.program_fd("prog"), cex.packet).action
        after = data.lookup(bytes(4))
        assert after is not None
        return action, bytes(after)


def _differ(a: bytes, b: bytes) -> Counterexample:
    result = prove_objects(a, b, "prog")
    assert result.status == "counterexample", result.summary()
    cex = result.counterexample
    assert cex is not None and cex.reproduced, result.report()
    return cex


READS = "return d[0] < limit + x ? XDP_PASS : XDP_DROP;"
WRITES = "x = d[0]; return XDP_PASS;"
ADDS = "x += d[0]; return XDP_PASS;"


@needs_kernel
def test_a_different_initial_value_a_program_reads_is_a_counterexample_the_kernel_confirms() -> None:
    original = _object(READS)
    for mutant in (_object(READS, x=60), _object(READS, limit=3)):
        cex = _differ(original, mutant)
        assert _kernel(original, cex, 0)[0] != _kernel(mutant, cex, 1)[0], render_text(cex, False)
    # The starting values each object has: only the initial value of x differs.
    cex = _differ(original, _object(READS, x=60))
    assert cex.start(0)[".data"][:4] == (1).to_bytes(4, "little")
    assert cex.start(1)[".data"][:4] == (60).to_bytes(4, "little")


@needs_kernel
def test_a_different_initial_value_a_program_changes_is_a_counterexample_the_kernel_confirms() -> None:
    # Both add the same to different starting values: the globals end different.
    a, b = _object(ADDS), _object(ADDS, x=2)
    cex = _differ(a, b)
    assert _kernel(a, cex, 0)[1] != _kernel(b, cex, 1)[1]
    # One overwrites the value the other leaves as its object had it.
    a, b = _object(WRITES), _object("return XDP_PASS;", x=200)
    cex = _differ(a, b)
    assert _kernel(a, cex, 0)[1] != _kernel(b, cex, 1)[1]


def test_a_difference_nobody_reads_proves() -> None:
    for body in (READS, WRITES, ADDS):
        result = prove_objects(_object(body), _object(body, spare=8, unused=4), "prog")
        assert result.status == "proven", result.report()
    # A value both overwrite before anyone reads it is no difference either.
    assert prove_objects(_object(WRITES), _object(WRITES, x=9), "prog").status == "proven"
