"""`@xdp`: a typed Python function that is also an XDP program.

The decorated object is callable (pure-Python mode: `fn(packet)` runs the function's source with the
DSL's semantics), compilable (`fn.compile()` → a BPF object) and loadable (`fn.load()` → a program in
the kernel, runnable with BPF_PROG_TEST_RUN, its state objects bound to the kernel maps).
"""

from __future__ import annotations

import functools
import hashlib
import keyword
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType
from typing import Any, overload

from pybpfdsl.frontend.likelihood import BranchProfile
from pybpfdsl.frontend.lower import Lowered, lower_function, lower_with_expectations
from pybpfdsl.ir.printer import format_program
from pybpfdsl.lang.errors import DslError, InternalCompilerError
from pybpfdsl.lang.packet import Packet, PacketLike
from pybpfdsl.verify.subject import Subject

DEFAULT_CPU = "v3"
SECTION = "xdp"
"""The object section the backend puts every program's code in."""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, repr=False)
class CompiledProgram:
    """The result of `fn.compile()`: the BPF object and every intermediate form, with the verdicts of
    the checks compile ran (`verification`, `proof`); `summary()` (and the repr) shows both."""

    name: str
    elf: bytes
    ir: str
    llvm_ir: str
    optimized_llvm_ir: str
    cpu: str
    lowered: Lowered = field(repr=False)
    compile_seconds: float = 0.0
    # -- translation validation (pybpfdsl.verify.equivalence) --
    proof: Any = field(default=None, repr=False, compare=False)
    """The equivalence proof of bytecode against IR: a `ProofResult` (status proven / counterexample /
    unknown / skipped, `.seconds`, `.stats`)."""
    verification: Any = field(default=None, repr=False, compare=False)
    """The userspace safety verifier's report (`.ok`, `.format()`, `.explain()`), None when skipped."""

    @property
    def subject(self) -> Subject:
        """What the verifier and the prover check: the IR, the object, the section, the state objects."""
        return Subject(self.lowered.program, self.elf, SECTION, self.lowered.state)

    def source_lines(self) -> dict[int, str]:
        """The function's file by line number: the kernel verifier's complaints quote the Python lines."""
        return {i + 1: text for i, text in enumerate(self.lowered.source.file_lines)}

    @functools.cached_property
    def instructions(self) -> list[Any]:
        """The program's BPF instructions, decoded from the object's `xdp` section."""
        from pybpfdsl.bpf.elf import BpfElf

        return list(BpfElf.from_bytes(self.elf).program(self.name).instructions)

    def disasm(self) -> str:
        """The bytecode in the kernel's syntax, one instruction per line."""
        from pybpfdsl.bpf.disasm import format_listing
        from pybpfdsl.bpf.elf import BpfElf

        prog = BpfElf.from_bytes(self.elf).program(self.name)
        return "\n".join(format_listing(prog.instructions, prog.relocations)) + "\n"

    @property
    def stats(self) -> dict[str, int | float | str]:
        """Sizes at each stage: source lines of the function, IR instructions, BPF instruction slots."""
        slots = sum(2 if getattr(i, "is_wide", False) else 1 for i in self.instructions)
        return {
            "dsl_loc": self.lowered.dsl_loc,
            "ir_insns": self.lowered.program.instruction_count(),
            "bpf_insns": slots,
            "elf_bytes": len(self.elf),
            "cpu": self.cpu,
            "compile_seconds": round(self.compile_seconds, 4),
        }

    @property
    def verified(self) -> bool | None:
        """Whether pybpfdsl's safety verifier accepted the program; None when it did not run."""
        return None if self.verification is None else bool(self.verification.ok)

    @property
    def proven(self) -> bool:
        """Whether the bytecode is proven equivalent to the IR (False when unproven or not proved)."""
        return self.proof is not None and self.proof.status == "proven"

    def verification_summary(self) -> str:
        """One line: the safety verifier's verdict ("safe", "rejected: N errors", or "not run")."""
        report = self.verification
        if report is None:
            return "not run (compile(verify=False))"
        if report.ok:
            slots = sum(i.slots for i in report.instructions)  # lddw counts twice, as in the kernel's count
            return f"safe ({slots} instructions, {report.processed} states)"
        from pybpfdsl.verify.analysis.report import instruction_slot

        first = report.errors[0]
        more = f" (and {len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        at = instruction_slot(report, first.insn)  # the slot, as `pybpfdsl disasm` and the kernel log count
        return f"rejected: {first.code.value} at instruction {at}: {first.message}{more}"

    def proof_summary(self) -> str:
        """One line: the equivalence proof's verdict ("proven in 0.31 s", "unknown ...: why", "skipped")."""
        proof = self.proof
        if proof is None or proof.status == "skipped":
            reason = proof.reason if proof is not None and proof.reason else "compile(prove=False)"
            return f"skipped ({reason}); attach proves before attaching"
        line = f"{proof.status} in {proof.seconds:.2f} s"
        if proof.stats.get("cache") == "hit":
            line += " (cached)"
        return line + (f": {proof.reason}" if proof.reason else "")

    def summary(self) -> str:
        """The program's sizes and the verdicts of the checks compile ran, on three lines."""
        st = self.stats
        return (f"{self.name}: {st['dsl_loc']} Python lines -> {st['ir_insns']} IR instructions -> "
                f"{st['bpf_insns']} BPF instructions (-mcpu={self.cpu})\n"
                f"  verifier: {self.verification_summary()}\n"
                f"  proof:    {self.proof_summary()}")

    def __repr__(self) -> str:
        verifier = "not verified" if self.verified is None else ("safe" if self.verified else "REJECTED")
        proof = "not proved" if self.proof is None else self.proof.status
        return f"<CompiledProgram {self.name}: {len(self.elf)} bytes, verifier: {verifier}, proof: {proof}>"

    def save(self, path: str | Path) -> Path:
        """Write the object file (loadable by libbpf, bpftool and `ip link ... xdp obj`)."""
        out = Path(path)
        out.write_bytes(self.elf)
        return out


_VERIFIED: dict[bytes, Any] = {}


def _verified(compiled: CompiledProgram) -> Any:
    """The userspace verifier's report, cached by the object's bytes (tests compile the same program often)."""
    from pybpfdsl.verify.analysis.api import verify_program

    key = hashlib.sha256(compiled.elf).digest()
    if key not in _VERIFIED:
        _VERIFIED[key] = verify_program(compiled.subject)
    return _VERIFIED[key]


class XdpProgram:
    """An `@xdp` function: call it, compile it, load it."""

    __pybpfdsl_program__ = True

    def __init__(self, fn: FunctionType, name: str | None = None, cpu: str = DEFAULT_CPU,
                 license: str = "GPL") -> None:
        if not isinstance(fn, FunctionType):
            raise TypeError(f"@xdp decorates a plain function, not {type(fn).__name__}")
        self.function = fn
        self.name = name or fn.__name__
        if not _NAME.match(self.name) or keyword.iskeyword(self.name):
            raise DslError(f"{self.name!r} is not a valid program name",
                           hint="use letters, digits and underscores, not starting with a digit")
        self.cpu = cpu
        self.license = license
        self._lowered: Lowered | None = None
        functools.update_wrapper(self, fn)

    def lower(self) -> Lowered:
        """The function lowered to checked IR (cached: the function's source and globals are read once)."""
        __tracebackhide__ = True  # pytest: the error is the user's line, not this frame
        if self._lowered is None:
            try:
                self._lowered = lower_function(self.function, self.name)
            except DslError as exc:
                # The message shows the user's file and line; the compiler's own frames below this call
                # would bury it (the error is a finding about the program, not a crash).
                raise exc.with_traceback(None) from None
        return self._lowered

    @property
    def ir(self) -> str:
        return format_program(self.lower().program)

    def profile(self, packets: Iterable[PacketLike]) -> BranchProfile:
        """Run the function in pure Python on each packet in turn (bytes or anything with `__bytes__`)
        and count how often each of its conditions held: a profile for `compile(profile=...)`. The state
        carries over from packet to packet, as in the kernel, and is put back afterwards; helper calls
        (`random()`, `now_ns()`) are answered by the current helper source (`pybpfdsl.testing`)."""
        from pybpfdsl.frontend.evaluate import run_python

        lowered = self.lower()
        found = BranchProfile(lowered.facts)
        saved = {name: obj.save() for name, obj in lowered.state.items()}
        try:
            for packet in packets:
                run_python(lowered, Packet.from_any(packet), profile=found)
        finally:
            for name, obj in lowered.state.items():
                obj.restore(saved[name])
        return found

    def compile(self, *, cpu: str | None = None, opt_level: int = 2, prove: bool | None = None,
                verify: bool = True, optimize: bool | None = None,
                profile: BranchProfile | Iterable[PacketLike] | None = None) -> CompiledProgram:
        """Compile to a BPF object. Raises DslError for programs the DSL does not accept.

        `verify` runs the userspace safety verifier; its report is `.verification` (a rejection does not
        raise here: `attach` refuses the program and says why). `prove` (default:
        `pybpfdsl.verify.equivalence.prove.PROVE_ON_COMPILE`) checks with Z3 that the bytecode is
        equivalent to the IR; the verdict is `.proof` (status "skipped" when not proved). `.summary()`
        shows both verdicts. `optimize` runs the IR optimiser's passes (`pybpfdsl.ir.passes`; default on,
        `PYBPFDSL_OPTIMIZE=0` turns them off); the proof compares the bytecode with the IR before them.
        `profile` (a `BranchProfile` from `profile(packets)`, or the packets themselves) lays out the
        usual outcome of each condition as the fall-through, as `likely(c)` / `unlikely(c)` would."""
        from pybpfdsl.backend.compile import BackendError, compile_program

        started = time.perf_counter()
        lowered = self.lower()
        if profile is not None:
            found = profile if isinstance(profile, BranchProfile) else self.profile(profile)
            if found.facts is not lowered.facts:
                raise ValueError(f"the profile was not taken of {self.name}: take it with {self.name}.profile(packets)")
            lowered = lower_with_expectations(lowered, found.expectations())
        target = cpu or self.cpu
        try:
            obj = compile_program(lowered.program, cpu=target, opt_level=opt_level, license=self.license,
                                  optimize=optimize)
        except BackendError as exc:
            raise InternalCompilerError(
                f"{lowered.source.file}:{lowered.source.first_line}: the backend failed on {self.name}: {exc}. "
                "This is a pybpfdsl bug; please report it with the function's source") from exc
        compiled = CompiledProgram(self.name, obj.elf, format_program(lowered.program), obj.llvm_ir,
                                   obj.optimized_llvm_ir, target, lowered, time.perf_counter() - started)
        # -- translation validation --
        from pybpfdsl.verify.equivalence import prove as equivalence
        from pybpfdsl.verify.equivalence.proof_result import skipped

        if prove is None:
            prove = equivalence.PROVE_ON_COMPILE
        proof = equivalence.prove_on_compile(compiled.subject) if prove else skipped()
        object.__setattr__(compiled, "proof", proof)  # frozen: set once, here
        if verify:
            object.__setattr__(compiled, "verification", _verified(compiled))
        return compiled

    def load(self, *, cpu: str | None = None) -> Any:
        """Compile and load into the kernel (the kernel verifier runs here); returns a LoadedProgram.

        For local test runs (BPF_PROG_TEST_RUN): the equivalence proof is not run (its status is
        "skipped"); `attach` runs it, for a loaded program too, before anything reaches an interface."""
        from pybpfdsl.runtime.loaded import LoadedProgram

        compiled = self.compile(cpu=cpu, prove=False)
        lowered = compiled.lowered
        loaded = LoadedProgram.load(compiled.elf, lowered.program, lowered.state, source_lines=compiled.source_lines())
        loaded.compiled = compiled
        return loaded

    def attach(self, ifname: str, mode: str = "auto", pin: str | None = None) -> Any:
        """Compile, load (every check runs) and attach to interface `ifname` through a BPF link;
        returns a `pybpfdsl.deploy.Attachment`. See `pybpfdsl.deploy.attach`."""
        from pybpfdsl.deploy import attach

        return attach(self, ifname, mode=mode, pin=pin)  # type: ignore[arg-type]  # checked there

    def __call__(self, packet: object) -> int:
        """Run in pure Python on `packet` (bytes or anything with `__bytes__`), against the Python-side
        state; returns the action. A `Packet` passed in holds the program's writes afterwards."""
        from pybpfdsl.frontend.evaluate import run_python

        action: int = run_python(self.lower(), Packet.from_any(packet))  # type: ignore[arg-type]
        return action

    def __repr__(self) -> str:
        return f"<xdp program {self.name} ({self.function.__module__}.{self.function.__qualname__})>"


@overload
def xdp(fn: FunctionType, /) -> XdpProgram: ...
@overload
def xdp(
    *, name: str | None = None, cpu: str = DEFAULT_CPU, license: str = "GPL"
) -> Callable[[FunctionType], XdpProgram]: ...


def xdp(fn: FunctionType | None = None, /, *, name: str | None = None, cpu: str = DEFAULT_CPU,
        license: str = "GPL") -> XdpProgram | Callable[[FunctionType], XdpProgram]:
    """Mark `def f(pkt: Packet) -> int` as an XDP program: `@xdp` or `@xdp(name="...")`."""
    if fn is not None:
        return XdpProgram(fn)

    def wrap(f: FunctionType) -> XdpProgram:
        return XdpProgram(f, name=name, cpu=cpu, license=license)

    return wrap


setattr(xdp, "__pybpfdsl_decorator__", True)  # noqa: B010 - mypy rejects the attribute on a function
