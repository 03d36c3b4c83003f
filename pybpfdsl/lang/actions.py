"""XDP return actions (the kernel's values, as bcc names them).

These are the names users write; `lang` imports nothing, so they are not taken from `pybpfdsl.bpf.abi`,
whose `XdpAction` the rest of the package uses. tests/test_abi_spelled_once.py checks the two agree.
"""

from __future__ import annotations

import enum
from typing import Final


class XdpAction(enum.IntEnum):
    """What the kernel does with the packet after the program returns."""

    ABORTED = 0
    DROP = 1
    PASS = 2
    TX = 3
    REDIRECT = 4


XDP_ABORTED: Final = int(XdpAction.ABORTED)
XDP_DROP: Final = int(XdpAction.DROP)
XDP_PASS: Final = int(XdpAction.PASS)
XDP_TX: Final = int(XdpAction.TX)
XDP_REDIRECT: Final = int(XdpAction.REDIRECT)
