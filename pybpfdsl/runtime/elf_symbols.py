"""Where global variables live in an object: now read by the package's one ELF reader, `pybpfdsl.bpf.elf`.

This module only re-exports its names for the importers not yet moved (runtime/attach.py, runtime/loaded.py,
cli_commands/object_view.py, tests); import them from `pybpfdsl.bpf.elf` instead. `ElfFormatError` is
`pybpfdsl.bpf.elf.ElfError`.
"""

from __future__ import annotations

from pybpfdsl.bpf.elf import ElfError as ElfFormatError
from pybpfdsl.bpf.elf import ElfSymbol, VariableLocation, read_symbols, section_names, variable_locations

__all__ = ["ElfFormatError", "ElfSymbol", "VariableLocation", "read_symbols", "section_names",
           "variable_locations"]
