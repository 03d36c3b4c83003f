"""`pybpfdsl verify`: the userspace safety verifier on a DSL program or on any BPF object (clang's too)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pybpfdsl.cli_commands.common import EXIT_USAGE, CliError, is_object_target, load_object, load_target
from pybpfdsl.cli_output import print_json, style_for

if TYPE_CHECKING:
    from pybpfdsl.verify.analysis.checks import VerifierFinding
    from pybpfdsl.verify.analysis.report import VerifierReport

__all__ = ["cmd_verify", "finding_json"]


def finding_json(report: VerifierReport, f: VerifierFinding) -> dict[str, Any]:
    """A finding for --json: "instruction" is the 8-byte slot (as llvm-objdump and the kernel log count;
    -1 for the whole program), "source" the Python or C line it came from."""
    from pybpfdsl.verify.analysis.report import instruction_slot, source_line

    at = instruction_slot(report, f.insn)
    return {"code": f.code.value, "instruction": at, "message": f.message, "error": f.is_error,
            "source": source_line(report, f.insn) if f.insn >= 0 else None}


def _report(args: argparse.Namespace) -> tuple[str, Any]:
    from pybpfdsl.verify.analysis.api import verify_elf_program, verify_program

    spec: str = args.target
    if not is_object_target(spec):
        if args.section:
            raise CliError("--section applies to object files; name a DSL program as FILE.py:FUNC", EXIT_USAGE)
        target = load_target(spec)
        # Only the safety verifier's verdict is asked for: no proof, and no second verification here.
        compiled = target.program.compile(prove=False, verify=False)
        return target.label, verify_program(compiled.subject, check_division=args.check_division)
    obj = load_object(spec, args.section)
    return obj.label, verify_elf_program(obj.elf, obj.program, check_division=args.check_division)


def cmd_verify(args: argparse.Namespace) -> int:
    label, report = _report(args)
    if args.json:
        print_json({
            "program": label, "ok": report.ok, "instructions": sum(i.slots for i in report.instructions),
            "processed": report.processed, "seconds": round(report.seconds, 6),
            "findings": [finding_json(report, f) for f in report.findings],
        })
        return 0 if report.ok else 1
    st = style_for()
    if args.explain:
        print(report.explain())
    if report.ok:
        warnings = len(report.findings)
        print(f"{st.ok('verified')} {label}: {sum(i.slots for i in report.instructions)} instructions, "
              f"{report.processed} states processed in {report.seconds * 1000:.1f} ms"
              + (f", {warnings} warnings" if warnings else ""))
        if warnings:
            print(report.format())
        return 0
    print(report.format())
    print(f"{st.error('rejected')} {label}: {len(report.errors)} errors")
    return 1
