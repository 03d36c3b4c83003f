"""How a bytecode run fails: the program did something the kernel's verifier would have prevented, called a
helper the interpreter does not model, or ran longer than its step limit. Each names the instruction."""

from __future__ import annotations

from pybpfdsl.bpf.instruction import HELPERS

__all__ = ["BytecodeFault", "StepLimitExceeded", "UnsupportedHelper"]


class BytecodeFault(Exception):
    """The program did something the kernel's verifier would have prevented (or the model lacks)."""

    def __init__(self, pc: int, message: str) -> None:
        super().__init__(f"insn {pc}: {message}")
        self.pc = pc
        self.message = message


class UnsupportedHelper(BytecodeFault):
    """A call of a helper the interpreter does not model."""

    def __init__(self, pc: int, helper_id: int) -> None:
        name = HELPERS.get(helper_id, "?")
        super().__init__(pc, f"helper {helper_id} (bpf_{name}) is not supported by the interpreter")
        self.helper_id = helper_id


class StepLimitExceeded(BytecodeFault):
    """More instructions executed than the step limit allows."""
