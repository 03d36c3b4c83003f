"""Userspace safety verifier for BPF bytecode: abstract interpretation with typed registers.

Entry points are in :mod:`pybpfdsl.verify.analysis.api`; see its docstring.
"""

from pybpfdsl.verify.analysis.api import (
    VerifierReport,
    verify_instructions,
    verify_object,
    verify_object_all,
    verify_program,
)
from pybpfdsl.verify.analysis.checks import Code, VerifierFinding

__all__ = [
    "Code",
    "VerifierFinding",
    "VerifierReport",
    "verify_instructions",
    "verify_object",
    "verify_object_all",
    "verify_program",
]
