"""Our objects are standard BPF objects: the system's own tools load them, not only pybpfdsl.

`ip link set dev X xdp obj F sec xdp` (iproute2, through libbpf) attaches a saved object and the kernel
reports the program by name; `bpftool prog load` loads and pins it. Both read the BTF-defined maps in
`.maps` and the global data in `.bss`/`.data`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import logging_counters as LC
import port_acl as ACL
import pytest

from tests.e2e.netns import VethPair, bpffs_fixture, ip, run, veth_fixture, xdp_prog_id  # noqa: F401

EXAMPLES = [ACL.port_acl_filter, LC.logging_counters]


def _saved(prog: object, tmp_path: Path) -> Path:
    path = tmp_path / f"{prog.name}.o"  # type: ignore[attr-defined]
    prog.compile(prove=False).save(path)  # type: ignore[attr-defined]
    return path


@pytest.mark.parametrize("prog", EXAMPLES, ids=lambda p: p.name)
def test_ip_link_attaches_a_saved_object(prog, veth: VethPair, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    obj = _saved(prog, tmp_path)
    ip("link", "set", "dev", veth.rx_if, "xdpgeneric", "obj", str(obj), "sec", "xdp", ns=veth.rx_ns)
    try:
        assert xdp_prog_id(veth.rx_ns, veth.rx_if) is not None
        shown = ip("-d", "link", "show", "dev", veth.rx_if, ns=veth.rx_ns).stdout
        assert f"name {prog.name[:15]}" in shown
    finally:
        ip("link", "set", "dev", veth.rx_if, "xdpgeneric", "off", ns=veth.rx_ns)
    assert xdp_prog_id(veth.rx_ns, veth.rx_if) is None


@pytest.mark.parametrize("prog", EXAMPLES, ids=lambda p: p.name)
def test_bpftool_loads_and_pins_a_saved_object(prog, bpffs: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed (make installs it from the distribution)")
    obj = _saved(prog, tmp_path)
    pin = bpffs / prog.name
    proc = run("bpftool", "prog", "load", str(obj), str(pin), "type", "xdp", check=False)
    assert proc.returncode == 0, proc.stderr
    shown = run("bpftool", "prog", "show", "pinned", str(pin)).stdout
    assert "xdp" in shown and prog.name[:15] in shown
