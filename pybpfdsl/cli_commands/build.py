"""`pybpfdsl compile`, `pybpfdsl disasm` and `pybpfdsl ir`: the compiler's products, no kernel needed."""

from __future__ import annotations

import argparse
import linecache
import sys
from pathlib import Path
from typing import Any

from pybpfdsl.bpf.disasm import disassemble
from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import slot_offsets
from pybpfdsl.cli_commands.common import EXIT_FAILURE, CliError, load_target
from pybpfdsl.cli_commands.verify import finding_json
from pybpfdsl.cli_output import Style, Table, print_json, style_for
from pybpfdsl.program import CompiledProgram

__all__ = ["cmd_compile", "cmd_disasm", "cmd_ir", "disasm_records"]

CPUS = ("v1", "v2", "v3", "v4")


def _compile(args: argparse.Namespace, *, checks: bool = False) -> tuple[Any, CompiledProgram]:
    """Compile FILE[:FUNC]; with `checks` (the `compile` command) also run the safety verifier and the
    proof (unless --no-prove). `disasm` and `ir` show the compiler's products and check nothing."""
    target = load_target(args.target)
    prove = checks and not args.no_prove
    compiled = target.program.compile(cpu=getattr(args, "cpu", None), prove=prove, verify=checks)
    return target, compiled


def _failed_checks(compiled: CompiledProgram, args: argparse.Namespace) -> list[str]:
    """The checks that failed and are not allowed to (`--allow-unverified`, `--allow-unproven`)."""
    failed = []
    if compiled.verified is False and not args.allow_unverified:
        failed.append("our safety verifier rejected it (--allow-unverified accepts that)")
    proof = compiled.proof
    if proof is not None and proof.status not in ("proven", "skipped") and not args.allow_unproven:
        failed.append(f"the equivalence proof is {proof.status} (--allow-unproven accepts that)")
    return failed


def _checks_json(compiled: CompiledProgram) -> dict[str, Any]:
    report, proof = compiled.verification, compiled.proof
    verification = None if report is None else {
        "ok": report.ok, "errors": len(report.errors),
        "findings": [finding_json(report, f) for f in report.findings]}
    return {"verification": verification,
            "proof": {"status": proof.status, "seconds": round(proof.seconds, 4), "reason": proof.reason,
                      "stats": proof.stats, "cached": proof.stats.get("cache") == "hit",
                      "counterexample": None if proof.counterexample is None else proof.counterexample.to_json()}}


def cmd_compile(args: argparse.Namespace) -> int:
    """Write the object, show the sizes and both verdicts; exit 1 when a check failed that is not allowed.
    The object is written either way (to inspect it with `pybpfdsl verify OUT.o --explain`)."""
    target, compiled = _compile(args, checks=True)
    out = Path(args.output) if args.output else Path(f"{compiled.name}.o")
    try:
        compiled.save(out)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    stats = dict(compiled.stats)
    failed = _failed_checks(compiled, args)
    if args.json:
        print_json({"program": compiled.name, "source": str(target.path), "output": str(out), "stats": stats,
                    **_checks_json(compiled), "ok": not failed})
        return EXIT_FAILURE if failed else 0
    st = style_for()
    print(f"{st.ok('compiled') if not failed else st.warn('compiled')} {target.label} -> {st.bold(str(out))}")
    table = Table(["STAT", "VALUE"], ["<", ">"])
    labels = {
        "dsl_loc": "source lines",
        "ir_insns": "IR instructions",
        "bpf_insns": "BPF instructions",
        "elf_bytes": "object bytes",
        "cpu": "BPF ISA (-mcpu)",
        "compile_seconds": "compile time (s)",
    }
    for key, value in stats.items():
        table.add(labels.get(key, key), value)
    print(table.render(st))
    print()
    _print_checks(compiled, st)
    if failed:
        _print_refusal(failed, str(out))
        return EXIT_FAILURE
    return 0


def _print_checks(compiled: CompiledProgram, st: Style) -> None:
    verdict = compiled.verification_summary()
    good = compiled.verified is not False
    print(f"verifier: {st.ok(verdict) if good else st.error(verdict)}")
    if not good:
        print(compiled.verification.format())
    proof = compiled.proof
    status = compiled.proof_summary()
    shown = st.ok(status) if compiled.proven else (st.dim(status) if proof.status == "skipped" else st.warn(status))
    print(f"proof:    {shown}")
    if proof.counterexample is not None:
        print(proof.report())


def _print_refusal(failed: list[str], out: str) -> None:
    est = style_for(sys.stderr)
    print(f"{est.error('error:')} {out} is written, but not fit to attach: " + "; ".join(failed), file=sys.stderr)


def disasm_records(compiled: CompiledProgram) -> list[dict[str, Any]]:
    """One record per instruction: slot index, text, opcode, and the Python line it came from (or None)."""
    elf = BpfElf.from_bytes(compiled.elf)
    prog = elf.program(compiled.name)
    texts = disassemble(prog.instructions, prog.relocations)
    infos = sorted(prog.line_info, key=lambda li: li.insn_index)
    file_lines = {i + 1: t for i, t in enumerate(compiled.lowered.source.file_lines)}
    records: list[dict[str, Any]] = []
    k = 0
    current: Any = None
    for index, (slot, insn, text) in enumerate(zip(slot_offsets(prog.instructions), prog.instructions, texts)):
        new_line = None
        while k < len(infos) and infos[k].insn_index <= index:
            current = infos[k]
            if infos[k].insn_index == index:
                new_line = infos[k]
            k += 1
        rec: dict[str, Any] = {
            "index": slot,
            "opcode": f"{insn.opcode:02x}",
            "text": text,
            "line": current.line if current is not None else None,
            "file": current.file if current is not None else None,
        }
        if new_line is not None:
            src = new_line.text or file_lines.get(new_line.line) or linecache.getline(new_line.file, new_line.line)
            rec["source"] = src.strip()
        records.append(rec)
    return records


def cmd_disasm(args: argparse.Namespace) -> int:
    _, compiled = _compile(args)
    records = disasm_records(compiled)
    if args.json:
        print_json([{"index": r["index"], "text": r["text"], "line": r["line"], "opcode": r["opcode"]}
                    for r in records])
        return 0
    st = style_for()
    width = len(str(records[-1]["index"])) if records else 1
    out: list[str] = []
    last_line: int | None = None
    for r in records:
        if "source" in r and args.source and r["line"] != last_line:
            where = f"({Path(r['file']).name}:{r['line']})"
            out.append(st(f"; {r['source']}  {where}", "cyan"))
            last_line = r["line"]
        index = str(r["index"]).rjust(width)
        out.append(f"{index}: {st.dim('(' + r['opcode'] + ')')} {r['text']}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def cmd_ir(args: argparse.Namespace) -> int:
    _, compiled = _compile(args)
    if args.llvm:
        kind, text = "llvm", compiled.llvm_ir
    elif args.optimized:
        kind, text = "llvm-optimized", compiled.optimized_llvm_ir
    else:
        kind, text = "ir", compiled.ir
    if args.json:
        print_json({"program": compiled.name, "kind": kind, "text": text,
                    "lines": text.splitlines()})
        return 0
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
