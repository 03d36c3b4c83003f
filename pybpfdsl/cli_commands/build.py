"""`pybpfdsl compile`, `pybpfdsl disasm` and `pybpfdsl ir`: the compiler's products, no kernel needed."""

from __future__ import annotations

import argparse
import linecache
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pybpfdsl.bpf.disasm import disassemble
from pybpfdsl.bpf.elf import BpfElf, ElfProgram
from pybpfdsl.bpf.instruction import slot_offsets
from pybpfdsl.cli_commands.common import EXIT_FAILURE, EXIT_USAGE, CliError, is_object_target, load_object, load_target
from pybpfdsl.cli_commands.verify import finding_json
from pybpfdsl.cli_output import Style, Table, print_json, style_for
from pybpfdsl.program import CompiledProgram
from pybpfdsl.verify.equivalence.report import as_json

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
                      "counterexample": None if proof.counterexample is None else as_json(proof.counterexample)}}


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
    file_lines = compiled.source_lines()
    return _records(elf.program(compiled.name), file_lines)


def _records(prog: ElfProgram, file_lines: Mapping[int, str]) -> list[dict[str, Any]]:
    """The records of one program's code; `source` is set on the first instruction of each line (from the
    line info's text, or else `file_lines` or the file itself)."""
    texts = disassemble(prog.instructions, prog.relocations)
    infos = sorted(prog.line_info, key=lambda li: li.insn_index)
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


def _object_programs(args: argparse.Namespace) -> list[ElfProgram]:
    """The programs `disasm FILE.o` shows: the one --section names, else every executable section (entry
    programs, then .text with the subprograms), as llvm-objdump -d does."""
    if args.cpu:
        raise CliError("--cpu applies to Python programs; an object file is disassembled as it is", EXIT_USAGE)
    obj = load_object(args.target, args.section)
    if args.section:
        return [obj.program]
    text = obj.elf.text
    return [*obj.elf.programs.values(), *([text] if text is not None and text.instructions else [])]


def _listing(records: list[dict[str, Any]], st: Style, source: bool, labels: Mapping[int, str]) -> list[str]:
    width = len(str(records[-1]["index"])) if records else 1
    out: list[str] = []
    last_line: int | None = None
    for r in records:
        if r["index"] in labels:
            out.append(f"<{labels[r['index']]}>:")
        if "source" in r and source and r["line"] != last_line and r["line"]:  # line 0: made up by the compiler
            where = f"({Path(r['file']).name}:{r['line']})"
            out.append(st(f"; {r['source']}  {where}", "cyan"))
            last_line = r["line"]
        index = str(r["index"]).rjust(width)
        out.append(f"{index}: {st.dim('(' + r['opcode'] + ')')} {r['text']}")
    return out


def cmd_disasm(args: argparse.Namespace) -> int:
    st = style_for()
    if is_object_target(args.target):
        programs = _object_programs(args)
        if args.json:
            print_json([{"section": p.section, "program": p.name, "index": r["index"], "text": r["text"],
                         "line": r["line"], "opcode": r["opcode"]} for p in programs for r in _records(p, {})])
            return 0
        out: list[str] = []
        for n, prog in enumerate(programs):
            # Function labels where a section holds several functions (bpf-to-bpf calls, several programs).
            labels = {f.slot: f.name for f in prog.functions} if len(prog.functions) > 1 else {}
            out += [*([""] if n else []), st.bold(f"section {prog.section}, program {prog.name}:"),
                    *_listing(_records(prog, {}), st, args.source, labels)]
        sys.stdout.write("\n".join(out) + "\n")
        return 0
    if args.section:
        raise CliError("--section applies to object files; name a DSL program as FILE.py:FUNC", EXIT_USAGE)
    _, compiled = _compile(args)
    records = disasm_records(compiled)
    if args.json:
        print_json([{"index": r["index"], "text": r["text"], "line": r["line"], "opcode": r["opcode"]}
                    for r in records])
        return 0
    sys.stdout.write("\n".join(_listing(records, st, args.source, {})) + "\n")
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
