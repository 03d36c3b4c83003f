"""Fail early, and say how to fix it, when the installed llvmlite cannot emit BPF."""

from __future__ import annotations

REQUIRED = "llvmlite==0.50.*"


class BpfTargetUnavailable(ImportError):
    """llvmlite is missing or was built without LLVM's BPF target."""


def require_bpf_target() -> None:
    try:
        import llvmlite.binding as llvm
    except ImportError as exc:
        raise BpfTargetUnavailable(f"pybpfdsl needs llvmlite with the BPF target: pip install '{REQUIRED}'") from exc
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    try:
        llvm.Target.from_triple("bpfel")
    except RuntimeError as exc:
        import llvmlite

        raise BpfTargetUnavailable(
            f"the installed llvmlite {llvmlite.__version__} was built without LLVM's BPF target; "
            f"install a wheel that has it: pip install '{REQUIRED}'") from exc
