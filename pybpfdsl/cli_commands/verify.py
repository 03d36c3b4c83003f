"""`pybpfdsl verify`: the userspace safety verifier on a DSL program or on any BPF object (clang's too)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pybpfdsl.cli_commands.common import CliError, load_target
from pybpfdsl.cli_output import print_json, style_for

__all__ = ["cmd_verify"]


def _report(args: argparse.Namespace) -> tuple[str, Any]:
    from pybpfdsl.verify.analysis.api import verify_object, verify_program

    spec: str = args.target
    path = Path(spec.split(":", 1)[0])
    if path.suffix == ".py" or (":" in spec and not path.is_file()):
        if args.section:
            raise CliError("--section applies to object files; name a DSL program as FILE.py:FUNC")
        target = load_target(spec)
        # Only the safety verifier's verdict is asked for: no proof, and no second verification here.
        compiled = target.program.compile(prove=False, verify=False)
        return target.label, verify_program(compiled, check_division=args.check_division)
    try:
        data = Path(spec).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {spec}: {exc.strerror or exc}", code=2) from None
    try:
        return f"{Path(spec).name}" + (f":{args.section}" if args.section else ""), verify_object(
            data, args.section, check_division=args.check_division)
    except KeyError as exc:
        raise CliError(f"{spec}: no program {args.section or ''} in the object ({exc})", code=2) from None
    except ValueError as exc:  # not an ELF / not BPF
        raise CliError(f"{spec}: not a BPF object: {exc}", code=2) from None


def cmd_verify(args: argparse.Namespace) -> int:
    label, report = _report(args)
    if args.json:
        print_json({
            "program": label, "ok": report.ok, "instructions": len(report.instructions),
            "processed": report.processed, "seconds": round(report.seconds, 6),
            "findings": [{"code": f.code.value, "instruction": f.insn, "message": f.message,
                          "error": f.is_error} for f in report.findings],
        })
        return 0 if report.ok else 1
    st = style_for()
    if args.explain:
        print(report.explain())
    if report.ok:
        warnings = len(report.findings)
        print(f"{st.ok('verified')} {label}: {len(report.instructions)} instructions, "
              f"{report.processed} states processed in {report.seconds * 1000:.1f} ms"
              + (f", {warnings} warnings" if warnings else ""))
        if warnings:
            print(report.format())
        return 0
    print(report.format())
    print(f"{st.error('rejected')} {label}: {len(report.errors)} errors")
    return 1
