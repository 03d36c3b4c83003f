"""Tests for the low-level libbpf runtime (pybpfdsl.runtime).

The BPF objects are generated here from LLVM IR with llvmlite (no clang).
Kernel-dependent tests skip, with the probe's reason, only when bpf() is
unusable in this environment.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
from collections.abc import Iterator

import llvmlite.binding as llvm
import pytest

from pybpfdsl.bpf.abi import MapType, XdpAction
from pybpfdsl.runtime.bpf_object import BpfObject, LoadError, MapInfo
from pybpfdsl.runtime.jit_info import jited_instruction_count, xlated_instruction_count
from pybpfdsl.runtime.kernel_map import KernelMap
from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.runtime.libbpf import (
    BpfObjectOpenOpts,
    BpfProgInfo,
    BpfTestRunOpts,
    capture_libbpf_log,
    get_libbpf,
    kernel_bpf_available,
)

_BPF_OK, _BPF_REASON = kernel_bpf_available()
needs_bpf = pytest.mark.skipif(not _BPF_OK, reason=f"bpf() unavailable: {_BPF_REASON}")

_PRELUDE = """
target triple = "bpfel"
target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
@_license = dso_local global [4 x i8] c"GPL\\00", section "license", align 1
attributes #0 = { nounwind }
"""


def _compile(ir: str) -> bytes:
    """Compile LLVM IR text (without prelude) to a BPF ELF relocatable."""
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    target = llvm.Target.from_triple("bpfel")
    tm = target.create_target_machine(cpu="v3", reloc="static", codemodel="default")
    module = llvm.parse_assembly(_PRELUDE + ir)
    module.verify()
    return bytes(tm.emit_object(module))


def _const_prog(action: int, name: str = "prog") -> str:
    return (
        f'define dso_local i32 @{name}(ptr %ctx) #0 section "xdp" {{\n'
        f"  ret i32 {action}\n}}\n"
    )


# Returns the low 32 bits of a .bss global; the global becomes a
# single-entry array map "<object prefix>.bss".
_BSS_PROG = """
@counter = dso_local global i64 0, section ".bss", align 8
define dso_local i32 @read_counter(ptr %ctx) #0 section "xdp" {
  %v = load i64, ptr @counter, align 8
  %t = trunc i64 %v to i32
  ret i32 %t
}
"""

# Dereferences xdp_md->data without comparing against data_end: the verifier
# must reject this with "invalid access to packet".
_UNCHECKED_PACKET_READ = """
define dso_local i32 @bad(ptr %ctx) #0 section "xdp" {
  %d = load i32, ptr %ctx, align 4
  %p64 = zext i32 %d to i64
  %p = inttoptr i64 %p64 to ptr
  %b = load i8, ptr %p, align 1
  %r = zext i8 %b to i32
  ret i32 %r
}
"""

_PACKET = bytes(range(64))


@pytest.fixture
def bss_object() -> Iterator[BpfObject]:
    with BpfObject.load(_compile(_BSS_PROG), "bss_test_object") as obj:
        yield obj


# -- pure Python / layout tests (no kernel needed) ---------------------------


def test_struct_layouts_match_libbpf_1_1() -> None:
    assert ctypes.sizeof(BpfObjectOpenOpts) == 80
    assert BpfObjectOpenOpts.kconfig.offset == 40
    assert BpfObjectOpenOpts.kernel_log_buf.offset == 56
    assert BpfObjectOpenOpts.kernel_log_level.offset == 72
    assert ctypes.sizeof(BpfTestRunOpts) == 80
    assert BpfTestRunOpts.ctx_in.offset == 32
    assert BpfTestRunOpts.duration.offset == 64
    assert BpfTestRunOpts.batch_size.offset == 76
    assert ctypes.sizeof(BpfProgInfo) == 232
    assert BpfProgInfo.jited_prog_insns.offset == 24
    assert BpfProgInfo.name.offset == 64
    assert BpfProgInfo.netns_dev.offset == 88
    assert BpfProgInfo.verified_insns.offset == 216


def test_kernel_map_rejects_wrong_sizes_before_syscall() -> None:
    m = KernelMap(-1, 4, 8, MapType.HASH, name="fake")
    with pytest.raises(ValueError, match="key must be 4 bytes"):
        m.lookup(b"\x00")
    with pytest.raises(ValueError, match="value must be 8 bytes"):
        m.update(bytes(4), b"\x00")
    with pytest.raises(TypeError, match="lookup_percpu"):
        KernelMap(-1, 4, 8, MapType.PERCPU_ARRAY).lookup(bytes(4))


def test_short_packet_raises_value_error() -> None:
    # Checked before any syscall, so an invalid fd is fine.
    with pytest.raises(ValueError, match="at least 14 bytes"):
        run_xdp(-1, bytes(13))


def test_load_error_extracts_verifier_log() -> None:
    err = LoadError(
        "x",
        log="libbpf: a\nlibbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n0: R1=ctx\n"
        "invalid access to packet\n-- END PROG LOAD LOG --\nlibbpf: b",
        errno=13,
    )
    assert err.verifier_log == "0: R1=ctx\ninvalid access to packet"
    assert "invalid access to packet" in str(err)


# -- kernel tests --------------------------------------------------------------


@needs_bpf
def test_load_lists_programs_and_maps() -> None:
    elf = _compile(_const_prog(XdpAction.PASS, "first") + _BSS_PROG)
    with BpfObject.load(elf, "listing") as obj:
        assert set(obj.programs) == {"first", "read_counter"}
        assert all(fd >= 0 for fd in obj.programs.values())
        assert obj.program_sections["first"] == "xdp"
        bss = obj.find_section_map(".bss")
        assert isinstance(bss, MapInfo)
        assert bss.name.endswith(".bss")
        assert bss.name in obj.maps
        assert (bss.type, bss.key_size, bss.value_size, bss.max_entries) == (
            MapType.ARRAY,
            4,
            8,
            1,
        )
        assert obj.find_section_map(".rodata") is None
        with pytest.raises(KeyError, match="no program"):
            obj.program_fd("missing")
    assert obj.closed
    with pytest.raises(ValueError, match="closed"):
        _ = obj.programs


@needs_bpf
@pytest.mark.parametrize("action", [XdpAction.DROP, XdpAction.PASS, XdpAction.TX])
def test_test_run_returns_action_and_unchanged_packet(action: int) -> None:
    with BpfObject.load(_compile(_const_prog(action)), "const_action") as obj:
        result = run_xdp(obj.program_fd("prog"), _PACKET, repeat=3)
    assert result.action == action
    assert result.packet == _PACKET
    assert result.duration_ns >= 0


@needs_bpf
def test_short_packet_raises_even_with_real_program() -> None:
    with BpfObject.load(_compile(_const_prog(XdpAction.PASS)), "short_pkt") as obj:
        with pytest.raises(ValueError, match="Ethernet header"):
            run_xdp(obj.program_fd("prog"), b"\x00" * 10)
        # Exactly ETH_HLEN is accepted by the kernel.
        assert run_xdp(obj.program_fd("prog"), bytes(14)).action == XdpAction.PASS


@needs_bpf
def test_verifier_rejection_raises_load_error_with_log() -> None:
    with pytest.raises(LoadError) as info:
        BpfObject.load(_compile(_UNCHECKED_PACKET_READ), "rejected")
    err = info.value
    assert err.errno == 13  # EACCES from the verifier
    assert "invalid access to packet" in err.log
    assert "invalid access to packet" in err.verifier_log


@needs_bpf
def test_garbage_elf_raises_load_error() -> None:
    with pytest.raises(LoadError) as info:
        BpfObject.load(b"not an ELF file at all", "garbage")
    # libbpf-specific code LIBBPF_ERRNO__FORMAT, with libbpf's own text.
    assert info.value.errno == 4001
    assert "format invalid" in str(info.value)
    assert "not a proper ELF object" in info.value.log


@needs_bpf
def test_bss_map_write_is_seen_by_program(bss_object: BpfObject) -> None:
    info = bss_object.find_section_map(".bss")
    assert info is not None
    bss = KernelMap.from_info(info)
    zero = struct.pack("<I", 0)
    assert bss.lookup(zero) == bytes(8)
    assert list(bss.keys()) == [zero]
    prog = bss_object.program_fd("read_counter")
    assert run_xdp(prog, _PACKET).action == 0
    bss.update(zero, struct.pack("<Q", 3))
    assert bss.lookup(zero) == struct.pack("<Q", 3)
    assert run_xdp(prog, _PACKET).action == 3
    # Same map through the by-section convenience accessor.
    assert bss_object.kernel_map(".bss").lookup(zero) == struct.pack("<Q", 3)


@needs_bpf
def test_reuse_maps_keeps_global_state_across_reload(bss_object: BpfObject) -> None:
    zero = struct.pack("<I", 0)
    bss_object.kernel_map(".bss").update(zero, struct.pack("<Q", 2))  # XdpAction.PASS
    old = bss_object.find_section_map(".bss")
    assert old is not None
    with BpfObject.load(
        _compile(_BSS_PROG), "bss_test_object", reuse_maps={".bss": old.fd}
    ) as new:
        assert run_xdp(new.program_fd("read_counter"), _PACKET).action == XdpAction.PASS
        new.kernel_map(".bss").update(zero, struct.pack("<Q", 1))
    # The original object sees the write made through the reused map.
    assert bss_object.kernel_map(".bss").lookup(zero) == struct.pack("<Q", 1)
    with pytest.raises(KeyError):
        BpfObject.load(_compile(_BSS_PROG), "bad_reuse", reuse_maps={"nope": old.fd})


@needs_bpf
def test_hash_and_percpu_maps() -> None:
    lib = get_libbpf()
    fd = lib.map_create(MapType.HASH, "t_hash", 4, 8, 16)
    try:
        m = KernelMap(fd, 4, 8, MapType.HASH, name="t_hash")
        assert m.lookup(b"aaaa") is None
        m.update(b"aaaa", b"12345678")
        m.update(b"bbbb", b"abcdefgh")
        assert sorted(m.keys()) == [b"aaaa", b"bbbb"]
        assert m.lookup(b"bbbb") == b"abcdefgh"
        assert m.delete(b"aaaa") is True
        assert m.delete(b"aaaa") is False
        with pytest.raises(FileExistsError):
            m.update(b"bbbb", b"xxxxxxxx", flags=1)  # BPF_NOEXIST
    finally:
        os.close(fd)

    ncpus = lib.num_possible_cpus()
    assert ncpus >= 1
    # value_size 4 exercises the rounding of each CPU slot to 8 bytes.
    fd = lib.map_create(MapType.PERCPU_ARRAY, "t_percpu", 4, 4, 2)
    try:
        m = KernelMap(fd, 4, 4, MapType.PERCPU_ARRAY)
        key = struct.pack("<I", 1)
        assert m.lookup_percpu(key) == [bytes(4)] * ncpus
        values = [struct.pack("<I", i + 7) for i in range(ncpus)]
        m.update_percpu(key, values)
        assert m.lookup_percpu(key) == values
        with pytest.raises(ValueError, match="per-CPU values"):
            m.update_percpu(key, [*values, bytes(4)])
    finally:
        os.close(fd)


@needs_bpf
def test_jit_and_xlated_counts(bss_object: BpfObject) -> None:
    fd = bss_object.program_fd("read_counter")
    assert xlated_instruction_count(fd) >= 3
    count = jited_instruction_count(fd)
    # None only when the JIT is off (net.core.bpf_jit_enable=0).
    if count is None:
        pytest.skip("BPF JIT disabled on this kernel")
    assert isinstance(count, int)
    assert count > 0


@needs_bpf
def test_log_capture_and_logging_forwarding(caplog: pytest.LogCaptureFixture) -> None:
    with capture_libbpf_log() as lines:
        BpfObject.load(_compile(_const_prog(XdpAction.PASS)), "captured", log_level=1).close()
    # libbpf prints debug lines during load; all levels land in the capture.
    assert lines
    assert all(isinstance(line, str) and "\n" not in line for line in lines)
    caplog.set_level(logging.INFO, logger="pybpfdsl.libbpf")
    with pytest.raises(LoadError):
        BpfObject.load(_compile(_UNCHECKED_PACKET_READ), "uncaptured_check")
    # Inside load() the log went to the capture, not to logging.
    assert not any("invalid access to packet" in r.getMessage() for r in caplog.records)
    # Outside any capture, libbpf warnings are forwarded to logging.
    opts = BpfObjectOpenOpts()
    opts.sz = ctypes.sizeof(BpfObjectOpenOpts)
    with pytest.raises(OSError):
        get_libbpf().object_open_mem(ctypes.create_string_buffer(b"junk" * 8), opts)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not a proper ELF object" in r.getMessage() for r in warnings)
