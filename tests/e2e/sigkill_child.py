"""A process that attaches a program and then waits to be killed (used by test_attach.py).

    python sigkill_child.py NETNS IFNAME MODE [PIN]

Enters network namespace NETNS (setns; "-" to stay where it was started), attaches
examples/logging_counters.py to IFNAME in MODE, pinning the link at PIN when given, prints
`READY <prog id> <link id>` and sleeps. With `--expect-error` instead it attaches and prints
`ERROR <exception class>: <message>` (one line, newlines escaped), for the privilege test, which runs
it without capabilities.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "examples"))
sys.path.insert(0, str(HERE.parents[1]))

from tests.e2e.netns import inside  # noqa: E402


def main(argv: list[str]) -> int:
    expect_error = "--expect-error" in argv
    args = [a for a in argv if a != "--expect-error"]
    netns, ifname, mode = args[:3]
    pin = args[3] if len(args) > 3 else None

    import logging_counters

    from pybpfdsl.deploy import attach

    with inside(netns) if netns != "-" else contextlib.nullcontext():
        try:
            att = attach(logging_counters.logging_counters, ifname, mode=mode, pin=pin)  # type: ignore[arg-type]
        except Exception as exc:  # reported to the parent
            if not expect_error:
                raise
            text = str(exc).replace("\n", "\\n")
            print(f"ERROR {type(exc).__name__}: {text}", flush=True)
            return 0
    if expect_error:
        print("ERROR none: attached", flush=True)
        att.detach()
        return 1
    print(f"READY {att.prog_id} {att.link_id}", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
