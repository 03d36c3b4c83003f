"""`open_pinned`: typed access, from any process, to the state of a program attached with a pin.

    with pybpfdsl.open_pinned("/sys/fs/bpf/fw", fw) as state:       # the pin and the program
        state.acl["10.0.0.0/8"] = 1
    with pybpfdsl.open_pinned("firewall.py:fw") as state:           # the program; its pin is found
        print(state.drops.value)
    with pybpfdsl.open_pinned("/sys/fs/bpf/fw") as state:           # the pin; the program's BTF names its file
        ...

The program (an `XdpProgram` or FILE[:FUNC]) gives the types: its state objects are copied and bound to
the pinned program's maps and global-data sections, so Python reads and writes the running program's
state as the DSL spells it (floats, Structs, LPM prefixes). Given a program without a path, the pin is
found among the links pinned on bpffs whose program has the program's name.
"""

from __future__ import annotations

import os
from pathlib import Path

from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.errors import StateBindingError
from pybpfdsl.runtime.pinned_program import (
    PinnedState,
    find_pinned_programs,
    open_pinned_program,
    program_source,
)

__all__ = ["PinnedState", "open_pinned"]


def _program_of(spec: XdpProgram | str) -> XdpProgram:
    if isinstance(spec, XdpProgram):
        return spec
    from pybpfdsl.cli_commands.common import load_target

    return load_target(spec).program


def _is_source(spec: str | os.PathLike[str]) -> bool:
    text = os.fspath(spec)
    return text.endswith(".py") or ".py:" in text


def open_pinned(path_or_file: str | os.PathLike[str] | XdpProgram,
                program: XdpProgram | str | None = None) -> PinnedState:
    """The state objects of a pinned program, bound to its kernel maps (close it, or use `with`).

    `path_or_file`: the pin (of the link `attach(pin=...)` made, or of the program), or the program
    itself (`XdpProgram` or "FILE[:FUNC]") when exactly one pinned link runs a program of its name.
    `program`: the program's declarations when a path is given (its types; it is compiled, not loaded);
    by default the file and function the pinned program's line information names.
    """
    if isinstance(path_or_file, XdpProgram) or _is_source(path_or_file):
        if program is not None:
            raise TypeError("give the program once: open_pinned(path, program) or open_pinned(program)")
        prog = _program_of(path_or_file if isinstance(path_or_file, XdpProgram) else os.fspath(path_or_file))
        pins = find_pinned_programs(prog.name)
        if len(pins) != 1:
            raise StateBindingError(
                f"{'no' if not pins else len(pins)} pinned links run a program named {prog.name!r}"
                + (f" ({', '.join(pins)})" if pins else "") + "; give the pin path: open_pinned(PATH, program)")
        path = pins[0]
    else:
        path = str(Path(path_or_file))
        if program is None:
            source = program_source(path)
            if source is None:
                raise StateBindingError(f"the program pinned at {path} does not say which Python file it came from "
                                        "(or the file is gone): give it, open_pinned(PATH, 'FILE[:FUNC]')")
            program = f"{source[0]}:{source[1]}"
        prog = _program_of(program)
    elf = prog.compile(prove=False, verify=False).elf
    pinned = open_pinned_program(path)
    try:
        return PinnedState.bind(pinned, prog.lower().state, elf)
    except BaseException:
        pinned.close()
        raise
