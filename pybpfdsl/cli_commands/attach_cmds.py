"""`pybpfdsl attach`, `pybpfdsl detach` and `pybpfdsl status`: programs on real interfaces.

`attach` without --pin stays in the foreground and shows the program's state every second until Ctrl-C
(or SIGTERM), then detaches. With --pin the link is pinned at PATH and the program's maps under
PATH_maps/ (bpffs names cannot contain dots, so `counter.bss` is pinned as `counter_bss`), and the
command exits; `pybpfdsl detach DEV` removes the program and both kinds of pins.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from types import FrameType
from typing import Any

from pybpfdsl.cli_commands.common import EXIT_USAGE, CliError, load_target
from pybpfdsl.cli_commands.kernel_query import KernelQueryError, xdp_status
from pybpfdsl.cli_commands.state_view import snapshot, state_table
from pybpfdsl.cli_output import Style, Table, print_json, style_for

__all__ = ["cmd_attach", "cmd_detach", "cmd_status", "maps_pin_dir"]

_CLEAR = "\x1b[H\x1b[2J"


def maps_pin_dir(pin: str) -> str:
    """Where `attach --pin PATH` pins the program's maps."""
    return os.path.abspath(pin).rstrip("/") + "_maps"


@contextlib.contextmanager
def _attach_errors() -> Iterator[None]:
    """AttachError (and its subclasses: no such interface, busy, no privilege, refused by a gate, ...)
    carry a message saying what to do; show it as a user error."""
    from pybpfdsl.runtime.attach_errors import AttachError

    try:
        yield
    except AttachError as exc:
        raise CliError(str(exc)) from exc


def _pin_maps(attachment: Any, directory: str) -> list[str]:
    """Pin every map of the attached program under `directory`; returns the paths."""
    from pybpfdsl.runtime import links

    os.makedirs(directory, exist_ok=True)
    pinned: list[str] = []
    for name, info in sorted(attachment.loaded.bpf_object.maps.items()):
        path = os.path.join(directory, name.replace(".", "_"))
        try:
            links.obj_pin(info.fd, path)
        except OSError as exc:
            raise CliError(f"attached and pinned the link, but cannot pin map {name!r} at {path}: {exc}") from exc
        pinned.append(path)
    return pinned


def _program_name(att: Any) -> str:
    program = att.program if att.program is not None else att.loaded.program
    return str(program.name)


def _describe(att: Any, st: Style) -> str:
    mode = att.mode + (f" (auto: {att.fallback_reason})" if att.fallback_reason else "")
    return (f"attached {st.bold(_program_name(att))} to {st.bold(att.ifname)}: {mode} mode, program id {att.prog_id}, "
            f"link id {att.link_id}")


class _Stop(Exception):
    """SIGTERM arrived: leave the live loop and detach, as for Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def cmd_attach(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise CliError("--interval must be positive", EXIT_USAGE)
    from pybpfdsl.deploy import attach

    target = load_target(args.target)
    program = target.program
    program.compile(prove=False)  # compile errors before touching the interface; the proof gate proves
    st = style_for()
    with _attach_errors():
        att = attach(program, args.dev, mode=args.mode, pin=args.pin)
    if args.pin:
        try:
            maps = _pin_maps(att, maps_pin_dir(args.pin))
        except BaseException:
            with _attach_errors():
                att.detach()
            raise
        print(_describe(att, st))
        print(f"pinned the link at {att.pin}")
        for path in maps:
            print(f"pinned map at {path}")
        print(f"it stays attached after this command; remove it with `pybpfdsl detach {args.dev}`")
        # The link is pinned, so closing our fds (at exit) leaves the program on the interface.
        return 0
    return _live(att, program, args, st)


def _live(att: Any, program: Any, args: argparse.Namespace, st: Style) -> int:
    state = program.lower().state
    tty = st.enabled
    header = _describe(att, st) + "\npress Ctrl-C to detach"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        if not tty:
            print(header, flush=True)
        while True:
            snap = snapshot(state, show_all=args.all)
            stamp = datetime.now().strftime("%H:%M:%S")
            body = state_table(snap.entries).render(st) if snap.entries else "(the program uses no state)"
            if tty:
                sys.stdout.write(f"{_CLEAR}{header}\n\n{st.dim(stamp)}\n{body}\n")
            else:
                sys.stdout.write(f"--- {stamp}\n{body}\n\n")
            sys.stdout.flush()
            time.sleep(args.interval)
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        # A second Ctrl-C must not interrupt the detach itself.
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            with _attach_errors():
                att.detach()
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, previous)
    print(f"\ndetached {_program_name(att)} from {att.ifname}", flush=True)
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    from pybpfdsl.runtime.attachment import detach

    with _attach_errors():
        done = detach(args.dev)
    if done is None:
        print(f"{args.dev}: no XDP program attached; nothing to do")
        return 0
    link = f", link {done.link_id}" if done.link_id is not None else " (attached without a link)"
    print(f"detached program {done.prog_name!r} (id {done.prog_id}{link}) from {done.ifname}")
    for path in done.unpinned:
        print(f"removed pin {path}")
        maps_dir = maps_pin_dir(path)
        if os.path.isdir(maps_dir):
            shutil.rmtree(maps_dir, ignore_errors=True)
            print(f"removed map pins under {maps_dir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        found, how = xdp_status(args.dev)
    except KernelQueryError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json([a.to_json() for a in found])
        return 0
    if not found:
        where = args.dev if args.dev else "any interface"
        print(f"no XDP program attached to {where}")
        return 0
    st = style_for()
    table = Table(["INTERFACE", "MODE", "PROG ID", "NAME", "LINK ID", "PINNED"], ["<", "<", ">", "<", ">", "<"])
    for a in found:
        table.add(a.ifname, a.mode, a.prog_id, a.prog_name or "?",
                  a.link_id if a.link_id is not None else "-", "\n".join(a.pinned) or "-")
    print(table.render(st))
    if how == "ip":
        print(st.dim("(from `ip -j link`: link ids and pins unknown without libbpf)"))
    return 0
