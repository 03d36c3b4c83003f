"""Turn an llvmlite module into a BPF ELF object in-process (no clang / llc).

Uses llvmlite's bundled LLVM: parse + verify the textual IR, run the standard
``default<O{n}>`` pipeline through the new pass manager, then emit with the
``bpfel`` target machine.  If the module carries debug metadata (see
:mod:`pybpfdsl.backend.debuginfo`), the BPF backend also writes ``.BTF`` and
``.BTF.ext``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from llvmlite import binding as llvm
from llvmlite import ir

__all__ = [
    "BPF_CPUS",
    "BPF_DATALAYOUT",
    "BPF_TRIPLE",
    "BpfTargetMissing",
    "emit_bpf_assembly",
    "Emitted",
    "emit_bpf_object",
    "emit_with_ir",
]

BPF_TRIPLE = "bpfel"
BPF_DATALAYOUT = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
BPF_CPUS = ("generic", "probe", "v1", "v2", "v3", "v4")

LLVM_STACK_LIMIT = 32767
"""The frame LLVM may build before it ends the process: the deepest r10 offset an instruction encodes."""

_init_lock = threading.Lock()
_initialized = False


class BpfTargetMissing(RuntimeError):
    """llvmlite was built without the LLVM BPF target."""


def _ensure_initialized() -> None:
    global _initialized
    with _init_lock:
        if not _initialized:
            # llvmlite >= 0.45 initialises the core itself (llvm.initialize()
            # now raises); only targets and asm printers need registering.
            llvm.initialize_all_targets()
            llvm.initialize_all_asmprinters()
            # A frame past LLVM's BPF limit (512) is reported through LLVM's default diagnostic
            # handler, which ends the process; raised to what an instruction's 16-bit offset can
            # address, the frame is emitted and `backend.compile` refuses it with a DslError.
            llvm.set_option("pybpfdsl", f"-bpf-stack-size={LLVM_STACK_LIMIT}")
            _initialized = True


def _target_machine(cpu: str, opt_level: int) -> llvm.TargetMachine:
    if cpu not in BPF_CPUS:
        raise ValueError(f"unknown BPF cpu {cpu!r}; expected one of {BPF_CPUS}")
    _ensure_initialized()
    try:
        target = llvm.Target.from_triple(BPF_TRIPLE)
    except RuntimeError as exc:
        raise BpfTargetMissing(
            "this llvmlite has no BPF target; install one that does: "
            "pip install 'llvmlite==0.50.*'"
        ) from exc
    # Packet fields sit at any byte offset; without this feature LLVM splits every load that is not
    # naturally aligned into byte loads (an 8-byte field costs ~22 instructions instead of 1). The
    # kernel allows misaligned packet access on the architectures it JITs for.
    return target.create_target_machine(
        cpu=cpu, opt=min(opt_level, 3), reloc="static", codemodel="default",
        features="+allows-misaligned-mem-access",
    )


_DEBUG_VERSION_FLAG = '!"Debug Info Version"'
"""The module flag that makes LLVM's parser verify the module itself and end the process (`abort`,
"Broken module found") when it is broken, instead of leaving the verdict to `verify()`."""
_DEBUG_ATTACHMENT = re.compile(r"(,\s*|\s+)!dbg\s+!\d+")
_DEBUG_UNITS = re.compile(r"^!llvm\.dbg\.cu = .*$", re.MULTILINE)


def _without_debug_info(text: str) -> str:
    """The module's text with its debug info cut off (attachments, compile units, the version flag's
    key), so that the parser leaves verifying to `verify()` and has nothing to strip (nor warns)."""
    text = _DEBUG_UNITS.sub("", _DEBUG_ATTACHMENT.sub("", text))
    return text.replace(_DEBUG_VERSION_FLAG, '!"pybpfdsl: debug info cut off"')


def _parse(module: ir.Module | str) -> llvm.ModuleRef:
    text = str(module)
    if _DEBUG_VERSION_FLAG in text:
        # A broken module then raises RuntimeError, as one without debug info does, rather than
        # killing the process inside the parser.
        llvm.parse_assembly(_without_debug_info(text)).verify()
    mod = llvm.parse_assembly(text)
    mod.verify()
    return mod


def _optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine, opt_level: int) -> None:
    if opt_level <= 0:
        return
    pto = llvm.create_pipeline_tuning_options(speed_level=min(opt_level, 3))
    # BPF has no vector unit; keep the pipeline scalar like clang -target bpf.
    pto.loop_vectorization = False
    pto.slp_vectorization = False
    pb = llvm.create_pass_builder(tm, pto)
    mpm = pb.getModulePassManager()
    mpm.run(mod, pb)


def _prepare(
    module: ir.Module | str, cpu: str, opt_level: int
) -> tuple[llvm.ModuleRef, llvm.TargetMachine]:
    tm = _target_machine(cpu, opt_level)
    mod = _parse(module)
    mod.triple = BPF_TRIPLE
    mod.data_layout = str(tm.target_data)
    _optimize(mod, tm, opt_level)
    mod.verify()
    return mod, tm


def emit_bpf_object(
    module: ir.Module | str, cpu: str = "v3", opt_level: int = 2
) -> bytes:
    """Compile ``module`` (llvmlite IR or its text) to a BPF ELF relocatable object."""
    mod, tm = _prepare(module, cpu, opt_level)
    obj: bytes = tm.emit_object(mod)
    return obj


def emit_bpf_assembly(
    module: ir.Module | str, cpu: str = "v3", opt_level: int = 2
) -> str:
    """Same pipeline as :func:`emit_bpf_object`, returning BPF assembly text."""
    mod, tm = _prepare(module, cpu, opt_level)
    tm.set_asm_verbosity(True)
    asm: str = tm.emit_assembly(mod)
    return asm


@dataclass(frozen=True)
class Emitted:
    """One run of the pipeline: the object, and the LLVM IR it was generated from (for inspection)."""

    elf: bytes
    optimized_ir: str


def emit_with_ir(module: ir.Module | str, cpu: str = "v3", opt_level: int = 2) -> Emitted:
    """Compile ``module`` to an object and keep the optimised IR text, running the pipeline once.

    The IR is printed before code generation: the BPF backend's own passes may rewrite the module while
    emitting, and what a reader wants is what the optimiser produced.
    """
    mod, tm = _prepare(module, cpu, opt_level)
    text = str(mod)
    obj: bytes = tm.emit_object(mod)
    return Emitted(obj, text)
