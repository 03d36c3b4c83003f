"""The trace-pipe reader (`pybpfdsl trace`): lines of bpf_trace_printk parsed, followed as they come, and,
with the kernel, a program's printed text read back after BPF_PROG_TEST_RUN (tracefs mounted in a
temporary directory for the test)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pybpfdsl.bpf.instruction import Instruction as I
from pybpfdsl.bpf.opcode import AluOp, InsnClass, JmpOp, Mode, Size, Source, make
from pybpfdsl.runtime.kernel_run import run_xdp
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.runtime.raw_load import RawProgram
from pybpfdsl.runtime.trace_pipe import TracePipeBusy, TracePipeMissing, drain, follow, parse_line, trace_pipe_path

KERNEL, _ = kernel_bpf_available()
LINE = "          <idle>-0       [003] d.s3. 12345.678901: bpf_trace_printk: seen 42 packets"
REPO = Path(__file__).resolve().parents[2]


def test_a_printk_line_is_parsed() -> None:
    line = parse_line(LINE)
    assert (line.text, line.task, line.pid, line.cpu) == ("seen 42 packets", "<idle>", 0, 3)
    assert parse_line("# tracer: nop").text is None


def test_a_missing_tracefs_is_named(tmp_path: Path) -> None:
    with pytest.raises(TracePipeMissing, match="mount -t tracefs"):
        trace_pipe_path(tmp_path)


def test_follow_yields_lines_as_they_come(tmp_path: Path) -> None:
    fifo = tmp_path / "trace_pipe"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w") as f:  # opens once the reader has
            f.write(LINE + "\n" + LINE.replace("42", "43"))
            f.flush()
            f.write("\n")

    writer = threading.Thread(target=write)
    writer.start()
    texts = []
    for line in follow(fifo, poll_seconds=0.05):
        texts.append(line.text)
        if len(texts) == 2:
            break
    writer.join()
    assert texts == ["seen 42 packets", "seen 43 packets"]


def _printing_program(nonce: int) -> list[I]:
    """`bpf_trace_printk("pbdtrace %d", 12, nonce); return XDP_PASS`, the format on the stack."""
    fmt = b"pbdtrace %d\0"
    words = [int.from_bytes(fmt[i:i + 4], "little") for i in range(0, 12, 4)]
    stores = [I(make(InsnClass.ST, Mode.MEM, Size.W), 10, 0, -16 + 4 * i, w - (1 << 32) * (w >> 31))
              for i, w in enumerate(words)]
    mov = lambda dst, imm: I(make(InsnClass.ALU64, AluOp.MOV, Source.K), dst, 0, 0, imm)  # noqa: E731
    return [*stores,
            I(make(InsnClass.ALU64, AluOp.MOV, Source.X), 1, 10),
            I(make(InsnClass.ALU64, AluOp.ADD, Source.K), 1, 0, 0, -16),
            mov(2, 12), mov(3, nonce), I(make(InsnClass.JMP, JmpOp.CALL), 0, 0, 0, 6),
            mov(0, 2), I(make(InsnClass.JMP, JmpOp.EXIT))]


def test_kernel_printk_text_is_read_back(tracefs: Path) -> None:
    nonce = random.randrange(1, 1 << 30)
    drain(tracefs / "trace_pipe", quiet_seconds=0.05)  # what others left
    with RawProgram(_printing_program(nonce)) as prog:
        assert run_xdp(prog.fd, bytes(64)).action == 2
    texts = [line.text for line in drain(tracefs / "trace_pipe")]
    assert f"pbdtrace {nonce}" in texts


def test_cli_trace_prints_the_text(tracefs: Path) -> None:
    nonce = random.randrange(1, 1 << 30)
    drain(tracefs / "trace_pipe", quiet_seconds=0.05)
    # The command's handler, as `pybpfdsl trace --tracefs DIR --count 1` runs it.
    script = ("import argparse, sys; from pybpfdsl.cli_commands.trace import add_arguments, cmd_trace; "
              "p = argparse.ArgumentParser(); add_arguments(p); sys.exit(cmd_trace(p.parse_args(sys.argv[1:])))")
    cli = subprocess.Popen([sys.executable, "-c", script, "--tracefs", str(tracefs), "--count", "1"],
                           stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        with RawProgram(_printing_program(nonce)) as prog:
            run_xdp(prog.fd, bytes(64))
        out, _ = cli.communicate(timeout=30)
    finally:
        cli.kill()
    assert out.strip() == f"pbdtrace {nonce}"


def test_a_second_reader_is_told_the_pipe_is_busy(tracefs: Path) -> None:
    """Since Linux 6.5 one process at a time may read trace_pipe; the second hears who to stop, not EBUSY."""
    held = os.open(tracefs / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
    try:
        try:
            os.close(os.open(tracefs / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK))
            pytest.skip("this kernel lets several processes read trace_pipe")  # before 6.5: nothing to report
        except OSError:
            pass
        with pytest.raises(TracePipeBusy, match=r"another process.*stop that reader"):
            drain(tracefs / "trace_pipe", quiet_seconds=0.01)
    finally:
        os.close(held)
