"""A K2-style superoptimizer for BPF bytecode, on any object (ours or clang's).

Windows of straight-line code are searched by MCMC (`search`, `moves`), each candidate tested
concretely and proven equal to its window by Z3 under the window's liveness and known constants
(`window_check`, `window_semantics`, `windows`); regions with jumps inside (clang's boolean diamonds)
are threaded first (`region_threading`), each proven over its merged paths (`region`); proven window
rewrites are cached as rules (`rules`) and the
object is written back with everything that counts slots moved (`elf_rewrite`). The result must then
pass our verifier, the whole-program prover and the kernel (`gate`). Entry point: `api.optimize_object`.

Imports bpf, verify and runtime (the kernel check), never the compiler.
"""

from pybpfdsl.superopt.api import OptimizeResult, optimize_object
from pybpfdsl.superopt.cost import CostModel
from pybpfdsl.superopt.rules import RuleCache

__all__ = ["CostModel", "OptimizeResult", "RuleCache", "optimize_object"]
