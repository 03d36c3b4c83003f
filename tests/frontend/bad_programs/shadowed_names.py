"""Wrong programs: a DSL built-in imported over a Python module of the same name (`import random`, then
`from pybpfdsl import random`), used as the module. The message says which `random` it is and what to call.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

import random

from pybpfdsl import XDP_DROP, XDP_PASS, Packet, randint, random, xdp


@xdp
def module_function_of_a_builtin(pkt: Packet) -> int:
    if random.random() < 0.5:  # error: `random` here is the DSL's random(), which has no method `random` | hint: call `random(...)`
        return XDP_DROP
    return XDP_PASS


@xdp
def module_randint_of_a_builtin(pkt: Packet) -> int:
    n = random.randint(0, 3)  # error: has no method `randint` | hint: call `randint(...)`
    return XDP_PASS
