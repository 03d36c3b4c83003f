"""The `pybpfdsl` command line: compile, inspect, run and attach `@xdp` programs without a Python shell.

    pybpfdsl compile FILE[:FUNC] -o out.o      a standard BPF object (libbpf, bpftool, ip link), verified and proved
    pybpfdsl disasm FILE[:FUNC] | OBJ.o        bytecode, each group under its Python (or C) line
    pybpfdsl ir FILE[:FUNC]                    the DSL's IR (or --llvm)
    pybpfdsl run FILE:FUNC|OBJ.o --packet HEX  run in the kernel (BPF_PROG_TEST_RUN) or --python
    pybpfdsl maps FILE:FUNC | OBJ.o            the program's Globals and maps as loaded into the kernel
    pybpfdsl set FILE NAME=VALUE...            change a pinned, running program's Globals and map entries
    pybpfdsl attach FILE:FUNC DEV              attach to an interface, show live state until Ctrl-C
    pybpfdsl detach DEV                        remove the XDP program from an interface
    pybpfdsl status [DEV]                      which XDP programs are attached where
    pybpfdsl trace                             follow print() output (the kernel's trace pipe)
    pybpfdsl prove A.o B.o [--section S]       Z3 proof that two BPF objects are equivalent
    pybpfdsl optimize IN.o -o OUT.o            superoptimize any BPF object (proven, kernel-checked)
    pybpfdsl verify FILE[:FUNC] | OBJ.o        pybpfdsl's own safety verifier

`disasm`, `run`, `maps`, `verify` and `prove` also take BPF object files (clang's too; `--section`
chooses a program); instruction numbers everywhere are 8-byte slots, as llvm-objdump and the kernel
log count them.

Exit codes: 0 success, 1 the program or an input is wrong (compile error, verifier rejection, a proof
that is not "proven", a pcap that cannot be read), 2 the command line is wrong (unknown program,
malformed argument, a file that is missing or is not a BPF object where one is expected: truncated,
malformed, for another machine, without programs). User errors print a diagnostic, not a traceback;
`--debug` adds the traceback of unexpected errors.

Which commands prove (Z3, bytecode against IR): `compile`, `attach` and `prove`. `ir`, `disasm`,
`verify`, `run` and `maps` only compile (and load, for a test run): they show or run the program and
change nothing on an interface.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence

from pybpfdsl.cli_commands.common import EXIT_FAILURE, CliError, format_exception_chain, positive_int
from pybpfdsl.cli_commands.optimize import add_arguments as optimize_arguments
from pybpfdsl.cli_commands.trace import add_arguments as trace_arguments
from pybpfdsl.cli_output import style_for

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

_TARGET_HELP = ("the Python file and, after a colon, the @xdp function (or program) name; FUNC may be left "
                "out when the file defines exactly one program")
_TARGET_OR_OBJECT_HELP = _TARGET_HELP + "; or a BPF object file (clang's too), with --section to choose a program"
_SECTION_HELP = "in an object file, the program (section or function name; default: {default})"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _command(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, description: str,
             examples: Sequence[str], handler: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=textwrap.dedent(description).strip(),
                       epilog=_examples(*examples), formatter_class=_Formatter)
    p.set_defaults(handler=handler)
    # Also accepted after the command name; SUPPRESS keeps a value given before it.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="print the traceback of internal errors")
    return p


def _json_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON (for scripts)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pybpfdsl",
        description="Compile, inspect, run and attach pybpfdsl @xdp programs (typed Python -> eBPF/XDP).",
        epilog=_examples(
            "pybpfdsl compile examples/port_acl.py -o port_acl.o",
            "pybpfdsl disasm examples/rate_limiter.py",
            "pybpfdsl run filter.py:drop_telnet --packet 'ffffffffffff 000000000000 0800 ...'",
            "pybpfdsl attach filter.py:drop_telnet eth0 --mode skb",
            "pybpfdsl status",
        ) + "\n\nexit codes: 0 ok, 1 program or input error or a refusal (verify/prove/optimize), 2 usage error,"
            " 130 interrupted by Ctrl-C",
        formatter_class=_Formatter,
    )
    parser.add_argument("--debug", action="store_true", default=False,
                        help="print the traceback of internal errors")
    from pybpfdsl import __version__

    parser.add_argument("--version", action="version", version=f"pybpfdsl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True

    p = _command(sub, "compile", "compile a program to a BPF object file and check it", """
        Compile an @xdp program to a BPF ELF object (section "xdp", BTF and line info included) that
        libbpf, bpftool and `ip link set dev DEV xdp obj FILE.o sec xdp` can load. Prints the sizes at
        each stage and the verdicts of the two checks `attach` requires: pybpfdsl's safety verifier
        and the Z3 proof that the bytecode does what the Python (its IR) says. Proof verdicts are
        cached (in $XDG_CACHE_HOME/pybpfdsl; PYBPFDSL_CACHE=0 turns that off), so an unchanged program
        is proved once. The object is written in any case; the exit status is 1 when the verifier
        rejects the program or the proof does not say "proven", unless allowed by the flags below.""", [
        "pybpfdsl compile filter.py -o filter.o",
        "pybpfdsl compile filter.py:drop_telnet -o drop_telnet.o --cpu v2",
        "pybpfdsl compile filter.py:drop_telnet --json",
        "pybpfdsl compile experiment.py --allow-unproven   # exit 0 when the proof is unknown",
    ], "compile")
    p.add_argument("target", metavar="FILE[:FUNC]", help=_TARGET_HELP)
    p.add_argument("-o", "--output", metavar="OUT.o", help="the object file to write (default: PROGRAM.o)")
    p.add_argument("--cpu", choices=("v1", "v2", "v3", "v4"), help="BPF ISA version (default: the program's)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="exit 0 even when pybpfdsl's safety verifier rejects the program")
    p.add_argument("--allow-unproven", action="store_true",
                   help="exit 0 even when the proof finds a counterexample or is unknown")
    p.add_argument("--no-prove", action="store_true",
                   help="skip the equivalence proof (status 'skipped'; `attach` proves before attaching)")
    _json_flag(p, "the sizes and both verdicts")

    p = _command(sub, "disasm", "show the BPF bytecode under the Python lines it came from", """
        Disassemble the compiled program in the kernel verifier's syntax. Before the first instruction
        of each new Python line, that line is shown as `; <source>  (file.py:LINE)`, taken from the
        object's BTF line info. The index is the instruction slot (lddw takes two), as in the verifier
        log and llvm-objdump; a map is shown by name (`r1 = map[counters] ll`). Also disassembles a
        BPF object file (clang's too): every program in it, or the one --section names, under its C
        lines when the object has line info (-g).""", [
        "pybpfdsl disasm filter.py",
        "pybpfdsl disasm filter.py:drop_telnet --no-source",
        "pybpfdsl disasm filter.py --json | jq '.[] | select(.line == 12)'",
        "pybpfdsl disasm prog.o --section xdp",
    ], "disasm")
    p.add_argument("target", metavar="FILE[:FUNC] | OBJECT.o", help=_TARGET_OR_OBJECT_HELP)
    p.add_argument("--section", help=_SECTION_HELP.format(default="every program"))
    p.add_argument("--no-source", dest="source", action="store_false", help="leave out the Python lines")
    p.add_argument("--cpu", choices=("v1", "v2", "v3", "v4"), help="BPF ISA version (default: the program's)")
    _json_flag(p, "a list of {index, text, line} records")

    p = _command(sub, "ir", "show the program's intermediate representation", """
        Print the DSL's SSA IR after lowering (each instruction annotated with its Python line), or the
        LLVM IR the backend generates (--llvm) or optimises (--optimized).""", [
        "pybpfdsl ir filter.py",
        "pybpfdsl ir filter.py:drop_telnet --llvm",
    ], "ir")
    p.add_argument("target", metavar="FILE[:FUNC]", help=_TARGET_HELP)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--llvm", action="store_true", help="LLVM IR as generated")
    which.add_argument("--optimized", action="store_true", help="LLVM IR after optimisation")
    _json_flag(p, "the IR text")

    p = _command(sub, "run", "run a program on packets (kernel test run or pure Python)", """
        Run the program on each packet with BPF_PROG_TEST_RUN: the action and the time come from the
        kernel, and a packet the program changed is reported as modified. With --python the same
        function runs in pure Python with the DSL's semantics instead (no kernel needed). State
        starts from the values the file declares. A BPF object file (clang's too) is loaded as libbpf
        loads it and its XDP program (the first, or the one --section names) runs in the kernel.""", [
        "pybpfdsl run filter.py:drop_telnet --packet 00112233445566778899aabb0800450000...",
        "pybpfdsl run filter.py --pcap capture.pcap --repeat 1000",
        "pybpfdsl run filter.py --pcap capture.pcap --python --state --json",
        "pybpfdsl run prog.o --section xdp --pcap capture.pcap --state",
    ], "run")
    p.add_argument("target", metavar="FILE[:FUNC] | OBJECT.o", help=_TARGET_OR_OBJECT_HELP)
    p.add_argument("--section", help=_SECTION_HELP.format(default="the first XDP program"))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--packet", metavar="HEX", action="append",
                     help="a packet as hex, from the Ethernet header on (spaces and colons allowed); repeatable")
    src.add_argument("--pcap", metavar="FILE", help="run on every packet of a pcap file (read with scapy)")
    p.add_argument("--repeat", type=positive_int, default=1, metavar="N",
                   help="run each packet N times; the time shown is the average (default 1)")
    p.add_argument("--python", action="store_true", help="run in pure Python instead of the kernel")
    p.add_argument("--state", action="store_true", help="also show the Globals and maps after the run")
    _json_flag(p, "a list of per-packet results")

    p = _command(sub, "maps", "show a program's Globals and maps as loaded into the kernel", """
        Compile and load the program, then list its state objects as the kernel holds them: each
        Global's value and each map's entries (zero elements of arrays are left out unless --all).
        With --pinned PATH, read a map pinned in bpffs instead: keys and values are shown as hex,
        or decoded when FILE[:FUNC] is also given and has a map of that name. A BPF object file
        (clang's too) is loaded as libbpf loads it; its global variables (by symbol) and maps are
        shown with keys and values of 1, 2, 4 or 8 bytes as numbers (little-endian), others as hex.""", [
        "pybpfdsl maps examples/per_source_counters.py",
        "pybpfdsl maps prog.o --all",
        "pybpfdsl maps --pinned /sys/fs/bpf/counters",
        "pybpfdsl maps filter.py:drop_telnet --pinned /sys/fs/bpf/drop_telnet/seen --json",
    ], "maps")
    p.add_argument("target", metavar="FILE[:FUNC] | OBJECT.o", nargs="?", help=_TARGET_OR_OBJECT_HELP)
    p.add_argument("--pinned", metavar="PATH", help="read the map pinned at PATH instead")
    p.add_argument("--all", action="store_true", help="list zero array elements too")
    _json_flag(p, "the state")

    p = _command(sub, "set", "change a pinned program's Globals and map entries", """
        Change the state of a running program attached with `attach --pin`: Globals (NAME=VALUE) and
        map entries (NAME[KEY]=VALUE, --delete NAME[KEY]), typed by FILE[:FUNC]'s declarations. The
        pin is --pinned PATH, or found on bpffs by the program's name. A u32 may be written as a dotted
        quad (as the DSL reads an address); an LpmTrie's key is a prefix (10.0.0.0/8) or an address.""", [
        "pybpfdsl set firewall.py limit=100 gateway=10.0.0.1",
        "pybpfdsl set firewall.py:fw --pinned /sys/fs/bpf/fw 'blocked[10.0.0.0/8]=1'",
        "pybpfdsl set firewall.py --delete 'blocked[10.0.0.0/8]'",
    ], "set")
    p.add_argument("target", metavar="FILE[:FUNC]", help=_TARGET_HELP)
    p.add_argument("assignments", metavar="NAME=VALUE", nargs="*",
                   help="a Global (limit=5, gateway=10.0.0.1) or a map entry (blocked[10.0.0.0/8]=1)")
    p.add_argument("--pinned", metavar="PATH", help="the pin of the program's link (attach --pin PATH); by "
                   "default the one pin on bpffs whose program has this name")
    p.add_argument("--delete", metavar="NAME[KEY]", action="append", default=[], help="remove a map entry")

    p = _command(sub, "attach", "attach a program to a network interface", """
        Load the program and attach it to DEV. Without --pin it stays in the foreground showing the
        Globals and map contents, refreshed every second, until Ctrl-C (or SIGTERM); then it
        detaches. With --pin the link is pinned at PATH (on bpffs) and the program's maps under
        PATH_maps/, so that they outlive the command, which prints what it did and exits; read a map
        with `pybpfdsl maps --pinned PATH_maps/NAME`, remove everything with `pybpfdsl detach DEV`.""", [
        "pybpfdsl attach filter.py:drop_telnet eth0",
        "pybpfdsl attach filter.py eth0 --mode skb --interval 5",
        "pybpfdsl attach filter.py:drop_telnet eth0 --pin /sys/fs/bpf/drop_telnet",
    ], "attach")
    p.add_argument("target", metavar="FILE[:FUNC]", help=_TARGET_HELP)
    p.add_argument("dev", metavar="DEV", help="the network interface, e.g. eth0")
    p.add_argument("--mode", choices=("auto", "skb", "native"), default="auto",
                   help="native (driver) or skb (generic) XDP; auto tries native first (default)")
    p.add_argument("--pin", metavar="PATH", help="pin the link at PATH (on bpffs), the maps under PATH_maps/, and exit")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="refresh period of the live table (default 1)")
    p.add_argument("--all", action="store_true", help="list zero array elements too")

    p = _command(sub, "detach", "remove the XDP program from a network interface", """
        Detach whatever XDP program is attached to DEV (also one attached with --pin, whose pins are
        removed).""", ["pybpfdsl detach eth0"], "detach")
    p.add_argument("dev", metavar="DEV", help="the network interface")

    p = _command(sub, "status", "show which XDP programs are attached to which interfaces", """
        List the XDP programs attached to DEV, or to every interface: interface, mode (native, skb,
        hw), program id and name, BPF link id, and the bpffs paths it is pinned at, if any. Asks the
        kernel through libbpf's bpf_xdp_query, or parses `ip -j link` if libbpf is unavailable.""", [
        "pybpfdsl status",
        "pybpfdsl status eth0 --json",
    ], "status")
    p.add_argument("dev", metavar="DEV", nargs="?", help="only this interface")
    _json_flag(p, "the attachments")

    # -- translation validation: `pybpfdsl prove` --
    p = _command(sub, "prove", "prove two BPF objects equivalent with Z3", """
        Check that program SECTION of object A and of object B behave the same for every packet,
        initial map and global state and helper result (for example clang -O1 and -O2 of one C file).
        Prints "proven", or a counterexample replayed in the bytecode interpreter for both objects.
        Exit status 0 when proven, 1 otherwise.""", [
        "pybpfdsl prove prog_O1.o prog_O2.o --section xdp",
    ], "prove")
    p.add_argument("object_a", metavar="A.o", help="the first BPF object")
    p.add_argument("object_b", metavar="B.o", help="the second BPF object")
    p.add_argument("--section", default="xdp", help="program (function or section name) in both (default xdp)")
    p.add_argument("--budget", metavar="UNITS", help="proof budget in Z3 resource units, e.g. 300M (default "
                   "300M); units, not seconds, so the verdict is the same on any machine")
    p.add_argument("--report", metavar="FILE", help="write the whole report to FILE (the terminal gets a "
                   "screenful: large maps as the keys the counterexample touches, long values cut)")
    _json_flag(p, "the verdict")

    p = _command(sub, "trace", "follow print() output (bpf_trace_printk, the kernel's trace pipe) until Ctrl-C", """
        Print the lines that programs write with print() (bpf_trace_printk) as the kernel emits them,
        from the trace pipe of tracefs (/sys/kernel/tracing, or /sys/kernel/debug/tracing), until Ctrl-C.
        Reading the pipe consumes its lines: one reader at a time sees them.""", [
        "pybpfdsl trace",
        "pybpfdsl trace --raw --count 10",
    ], "trace")
    trace_arguments(p)

    p = _command(sub, "optimize", "superoptimize a BPF object (window search, proven, kernel-checked)", """
        Make the code of a BPF object (clang's too) smaller or faster: a K2-style search over windows of
        straight-line code, each rewrite proven by Z3, the whole program by the bytecode prover, the result
        checked by pybpfdsl's verifier and loaded by the kernel. Writes OUT.o (the input's code where a
        check refused). Exit status 0 when OUT.o passed every check that ran.""", [
        "pybpfdsl optimize prog.o -o prog.opt.o",
        "pybpfdsl optimize prog.o -o prog.opt.o --section xdp --budget 2000 --cost latency --json",
    ], "optimize")
    optimize_arguments(p)

    p = _command(sub, "verify", "check a program's safety with pybpfdsl's own verifier", """
        Run the userspace safety verifier (abstract interpretation: packet and map-value bounds, null
        checks, stack initialisation, pointer rules, helper arguments, exit values, loop bounds) on a DSL
        program or on any BPF object, clang-built ones too. Errors name the instruction, the Python (or C)
        source line, the registers with their abstract values and the instructions that produced them;
        instructions are numbered by 8-byte slot (lddw takes two), as llvm-objdump and the kernel log do.
        --explain prints every instruction with the types and ranges of the registers it reads and
        writes. Exit status 0 when safe, 1 when rejected.""", [
        "pybpfdsl verify filter.py:drop_telnet",
        "pybpfdsl verify prog.o --section xdp --explain",
        "pybpfdsl verify filter.py --json",
    ], "verify")
    p.add_argument("target", metavar="FILE[:FUNC] | OBJECT.o", help="a DSL program, or a BPF object file")
    p.add_argument("--section", help="program to check in an object (section or function name; default: the first)")
    p.add_argument("--explain", action="store_true", help="print every instruction with register types and ranges")
    p.add_argument("--check-division", action="store_true",
                   help="also reject divisions by a value that may be zero (BPF defines x/0 = 0)")
    _json_flag(p, "the verdict and findings")
    return parser


def _handler(name: str) -> Handler:
    if name in ("compile", "disasm", "ir"):
        from pybpfdsl.cli_commands import build

        return {"compile": build.cmd_compile, "disasm": build.cmd_disasm, "ir": build.cmd_ir}[name]
    if name == "run":
        from pybpfdsl.cli_commands.run import cmd_run

        return cmd_run
    if name == "maps":
        from pybpfdsl.cli_commands.maps import cmd_maps

        return cmd_maps
    if name == "set":
        from pybpfdsl.cli_commands.set_state import cmd_set

        return cmd_set
    if name == "prove":  # translation validation
        from pybpfdsl.cli_commands.prove import cmd_prove

        return cmd_prove
    if name == "trace":
        from pybpfdsl.cli_commands.trace import cmd_trace

        return cmd_trace
    if name == "optimize":
        from pybpfdsl.cli_commands.optimize import cmd_optimize

        return cmd_optimize
    if name == "verify":
        from pybpfdsl.cli_commands.verify import cmd_verify

        return cmd_verify
    from pybpfdsl.cli_commands import attach_cmds

    return {"attach": attach_cmds.cmd_attach, "detach": attach_cmds.cmd_detach,
            "status": attach_cmds.cmd_status}[name]


def _print_error(text: str, hint: str | None = None) -> None:
    st = style_for(sys.stderr)
    lines = text.splitlines() or [""]
    first = lines[0]
    # Diagnostics already carrying "error:" (file:line: error: ...) keep their form.
    if "error:" not in first:
        first = f"{st.error('error:')} {first}"
    else:
        head, _, rest = first.partition("error:")
        first = f"{st.bold(head)}{st.error('error:')}{rest}"
    print("\n".join([first, *lines[1:]]), file=sys.stderr)
    if hint:
        print(f"{st.bold('hint:')} {hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    debug = bool(getattr(args, "debug", False))
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 128 + signal.SIGINT  # what a shell reports for a command ended by Ctrl-C
    except BrokenPipeError:
        # The reader went away (`| head`); stop quietly without a second error at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_FAILURE
    except Exception as exc:
        st = style_for(sys.stderr)
        print(f"{st.error('internal error:')} {type(exc).__name__}: {exc}", file=sys.stderr)
        if debug:
            print(format_exception_chain(exc), file=sys.stderr, end="")
        else:
            print("(run with --debug for the traceback; this is probably a pybpfdsl bug)", file=sys.stderr)
        return EXIT_FAILURE


def _dispatch(args: argparse.Namespace) -> int:
    from pybpfdsl import InternalCompilerError
    from pybpfdsl.lang.errors import DslError
    from pybpfdsl.runtime.bpf_object import LoadError
    from pybpfdsl.runtime.errors import StateBindingError
    from pybpfdsl.runtime.libbpf import LibbpfMissing

    debug = bool(getattr(args, "debug", False))
    try:
        return _handler(args.handler)(args)
    except CliError as exc:
        _print_error(exc.message, exc.hint)
        if debug and exc.__cause__ is not None:
            print(format_exception_chain(exc.__cause__), file=sys.stderr, end="")
        return exc.code
    except DslError as exc:
        _print_error(exc.render())
        return EXIT_FAILURE
    except LoadError as exc:
        # KernelVerifierError's message leads with the Python line; other load errors carry libbpf's log.
        _print_error(str(exc))
        return EXIT_FAILURE
    except (StateBindingError, LibbpfMissing) as exc:
        _print_error(str(exc))
        return EXIT_FAILURE
    except InternalCompilerError as exc:
        _print_error(f"internal compiler error: {exc}")
        if debug:
            print(format_exception_chain(exc), file=sys.stderr, end="")
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
