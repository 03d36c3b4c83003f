"""Global data in a BPF object, read by the package's one ELF reader (`pybpfdsl.bpf.elf`): where each
variable lives, what each data section holds when loaded (zeros for .bss, which takes no room in the
file), and the symbol table the runtime and the prover read it from."""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_PASS, Global, Packet, u32, u64, xdp
from pybpfdsl.bpf.elf import BpfElf, ElfError, VariableLocation, read_symbols, section_names, variable_locations
from pybpfdsl.bpf.image import BytecodeImage

hits = Global(u64, 0)
seed = Global(u32, 7)


@xdp
def adds_seed(pkt: Packet) -> int:
    hits.value += seed.value
    return XDP_PASS


@pytest.fixture(scope="module")
def obj() -> bytes:
    return adds_seed.compile(prove=False, verify=False).elf


def test_variables_are_found_in_their_sections(obj: bytes) -> None:
    elf = BpfElf(obj)
    assert elf.variable_locations() == {"hits": VariableLocation(".bss", 0, 8), "seed": VariableLocation(".data", 0, 4)}
    assert elf.variable_locations((".data",)) == {"seed": VariableLocation(".data", 0, 4)}
    assert variable_locations(obj) == elf.variable_locations()


def test_a_nobits_section_holds_zeros_of_its_size_and_a_data_section_its_bytes(obj: bytes) -> None:
    elf = BpfElf(obj)
    assert elf.is_nobits(".bss") and not elf.is_nobits(".data") and not elf.is_nobits(".nothing")
    assert elf.section_sizes[".bss"] == 8 and elf.section_contents(".bss") == bytes(8)
    assert elf.section_data(".bss") == b""  # what the file holds: nothing
    assert elf.section_contents(".data") == (7).to_bytes(4, "little")
    assert elf.section_contents(".nothing") is None


def test_symbols_name_their_section_kind_and_binding(obj: bytes) -> None:
    by_name = {s.name: s for s in read_symbols(obj)}
    assert (by_name["seed"].section, by_name["seed"].size, by_name["seed"].type, by_name["seed"].bind) == (
        ".data", 4, 1, 1)  # STT_OBJECT, STB_GLOBAL
    assert by_name["adds_seed"].section == "xdp" and by_name["adds_seed"].type == 2  # STT_FUNC
    names = section_names(obj)
    assert names[0] == "" and ".bss" in names and ".data" in names


def test_the_interpreter_image_takes_sections_and_variables_from_the_reader(obj: bytes) -> None:
    image = BytecodeImage.from_elf(obj, "adds_seed")
    assert image.sections == {".bss": bytes(8), ".data": (7).to_bytes(4, "little")}
    assert image.variables == {"hits": (".bss", 0, 8), "seed": (".data", 0, 4)}


def test_not_an_object_is_an_elf_error() -> None:
    with pytest.raises(ElfError, match="not an ELF file"):
        variable_locations(b"not an object at all")

