"""bpf_fib_lookup in the proof: an uninterpreted but consistent helper, shared by both encodings.

What the kernel answers depends on its FIB and neighbour tables, which no program controls: the proof
knows nothing of them. It knows only that the helper is a function of what it is given. Call number `i`
of a run (0-based, in call order) answers `answer_i(params, flags)`: the return code and the whole
64-byte `struct bpf_fib_lookup` written back, one unknown function per call number (the tables may
change between two calls of one run, as the clock moves between two ktime reads). Two programs that make
the same calls with the same params and flags in the same order get the same answers; a program that
passes other params, or calls in another order, gets answers the solver may choose apart. So "proven"
holds for every FIB the kernel may hold, and a difference in what a program passes is seen.

The whole struct is an output, not just the fields the documentation lists (`ifindex`, `smac`, `dmac`,
`ipv4_dst` set to the gateway, `rt_metric`, `mtu_result`, `family`, the VLAN fields; `ipv4_src` with
BPF_FIB_LOOKUP_SRC): the model allows more answers than the kernel gives, which keeps a proof sound and
only lets a solver's difference be unreal (the replay, `counterexample`, then says so). A `plen` below
the struct's size is refused (-EINVAL) before anything is read or written, as the kernel does.

The IR's `FibLookup` is the call the backend makes (`backend.fib_lookup`): the struct zeroed, AF_INET
in byte 0, the ingress interface at byte 8 (little-endian), the destination at byte 32 (network order),
flags 0; its result record reads the status from the return code, the egress interface from byte 8 and
the MACs from bytes 52 and 58 (big-endian 48-bit numbers).
"""

from __future__ import annotations

from typing import Final

import z3

from pybpfdsl.verify.equivalence.symbolic_state import FIB_CALL_BITS, Effects, Inputs, Term, bv_to_bytes, bytes_to_bv

PARAMS_SIZE: Final = 64
"""sizeof(struct bpf_fib_lookup) (<linux/bpf.h>)."""
AF_INET: Final = 2
FAMILY, IFINDEX, IPV4_DST, SMAC, DMAC = 0, 8, 32, 52, 58
"""Byte offsets of the fields the DSL's lookup passes and reads."""
STREAM: Final = "fib"
"""The name `Effects.calls` counts the calls under."""


def call(inputs: Inputs, effects: Effects, params: list[Term], flags: Term) -> tuple[Term, list[Term]]:
    """The next call's answer to `params` (the struct's 64 bytes as it is passed) and `flags` (32
    bits): the helper's int result (32 bits) and the struct's 64 bytes afterwards."""
    assert len(params) == PARAMS_SIZE and FIB_CALL_BITS == 32 + 8 * PARAMS_SIZE
    index = effects.calls.get(STREAM, 0)
    effects.calls[STREAM] = index + 1
    question = z3.Concat(flags, bytes_to_bv(params))
    answer = inputs.fib_answer(index)(question)
    inputs.fib_calls.append((question, answer))
    return z3.Extract(31, 0, answer), bv_to_bytes(z3.Extract(32 + 8 * PARAMS_SIZE - 1, 32, answer), PARAMS_SIZE)


def ir_params(dst: Term, ifindex: Term) -> list[Term]:
    """The struct the backend passes for `fib_lookup(dst, ifindex)` (both 32 bits; dst in host order)."""
    out = [z3.BitVecVal(0, 8)] * PARAMS_SIZE
    out[FAMILY] = z3.BitVecVal(AF_INET, 8)
    out[IFINDEX:IFINDEX + 4] = bv_to_bytes(ifindex, 4)
    out[IPV4_DST:IPV4_DST + 4] = list(reversed(bv_to_bytes(dst, 4)))
    return out


def ir_result(status: Term, after: list[Term]) -> tuple[Term, Term, Term, Term]:
    """The `FibResult` fields (status, ifindex, smac, dmac) the backend reads from the call's answer."""

    def mac(at: int) -> Term:
        return z3.ZeroExt(16, bytes_to_bv(list(reversed(after[at:at + 6]))))

    return status, bytes_to_bv(after[IFINDEX:IFINDEX + 4]), mac(SMAC), mac(DMAC)



def routes(model: z3.ModelRef, inputs: Inputs) -> list[tuple[int, int, int, int, int]]:
    """The answers of `model` to the IPv4 lookups the programs may ask, as a scripted routing table
    (`lang.fib.Route`'s fields: destination, status, egress ifindex, smac, dmac), one per destination
    (the first call's answer: a table cannot change between calls)."""
    out: dict[int, tuple[int, int, int, int, int]] = {}
    for question, answer in inputs.fib_calls:
        q = model.eval(question, model_completion=True).as_long().to_bytes(FIB_CALL_BITS // 8, "little")
        a = model.eval(answer, model_completion=True).as_long().to_bytes(FIB_CALL_BITS // 8, "little")
        dst = int.from_bytes(q[IPV4_DST:IPV4_DST + 4], "big")
        after = a[4:]
        out.setdefault(dst, (dst, int.from_bytes(a[:4], "little"), int.from_bytes(after[IFINDEX:IFINDEX + 4], "little"),
                             int.from_bytes(after[SMAC:SMAC + 6], "big"), int.from_bytes(after[DMAC:DMAC + 6], "big")))
    return list(out.values())


def replayable(inputs: Inputs) -> list[Term]:
    """Constraints under which the interpreters' scripted table (`lang.fib.Route`) answers as the
    model does: a status other than 0 with zero MACs, every field but the egress ifindex and the MACs
    written back as it was passed (a model may prefer them, `prove._found`)."""
    out: list[Term] = []
    keep = [i for i in range(PARAMS_SIZE) if not (IFINDEX <= i < IFINDEX + 4 or SMAC <= i < DMAC + 6)]
    for question, answer in inputs.fib_calls:
        status = z3.Extract(31, 0, answer)
        macs = z3.Extract(32 + 8 * (DMAC + 6) - 1, 32 + 8 * SMAC, answer)
        out.append(z3.Or(status == 0, macs == 0))
        out += [z3.Extract(32 + 8 * i + 7, 32 + 8 * i, answer) == z3.Extract(8 * i + 7, 8 * i, question) for i in keep]
    return out
