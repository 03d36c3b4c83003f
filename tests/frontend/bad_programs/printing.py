"""Wrong programs: `print` with what bpf_trace_printk cannot show.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

from pybpfdsl import XDP_PASS, Global, Packet, xdp

ratio = Global(float, 0.5)
LONG = "a rather long explanation of what this program saw in the packet it just looked at, " * 2


@xdp
def print_a_float(pkt: Packet) -> int:
    print("ratio", ratio.value)  # error: print shows integers and constant strings, not floats | hint: i64(x * 1000)
    return XDP_PASS


@xdp
def print_four_values(pkt: Packet) -> int:
    n = pkt.len
    print(n, n + 1, n + 2, n + 3)  # error: at most 3 values that are not constants (4 given) | hint: several print calls
    return XDP_PASS


@xdp
def print_a_long_text(pkt: Packet) -> int:
    print(LONG, pkt.len)  # error: longer than 120 bytes | hint: shorten
    return XDP_PASS


@xdp
def print_end_keyword(pkt: Packet) -> int:
    print(pkt.len, end="")  # error: print takes only the values to show
    return XDP_PASS


@xdp
def print_a_control_character(pkt: Packet) -> int:
    print("bell\x07", pkt.len)  # error: which bpf_trace_printk refuses | hint: printable ASCII
    return XDP_PASS


@xdp
def print_non_ascii_text(pkt: Packet) -> int:
    print("d\u00e9j\u00e0 vu", pkt.len)  # error: which bpf_trace_printk refuses | hint: printable ASCII
    return XDP_PASS
