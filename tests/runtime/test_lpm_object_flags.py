"""An LpmTrie's map definition in the object carries BPF_F_NO_PREALLOC, so that loaders other than
pybpfdsl's (ip link, bpftool, a C program's libbpf) can create it; pybpfdsl's own runtime adds the flag
where an object lacks it (`REQUIRED_MAP_FLAGS`)."""

from __future__ import annotations

from pybpfdsl.bpf.abi import REQUIRED_MAP_FLAGS, MapFlag, MapType
from pybpfdsl.bpf.elf import BpfElf
from tests.differential.test_lpm_and_percpu_hash import cidr_policy


def test_the_kernel_needs_no_prealloc_for_lpm_tries() -> None:
    assert REQUIRED_MAP_FLAGS == {MapType.LPM_TRIE: MapFlag.NO_PREALLOC}


def test_the_object_declares_no_prealloc_on_lpm_tries() -> None:
    maps = BpfElf(cidr_policy.compile(prove=False, verify=False).elf).maps
    assert {name: m.map_flags for name, m in maps.items() if m.map_type == MapType.LPM_TRIE} == {
        "acl": MapFlag.NO_PREALLOC, "acl6": MapFlag.NO_PREALLOC}
