"""Wrong programs: names, types, implicit conversions, constants and arithmetic the DSL rejects.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, Global, HashMap, Packet, i32, u8, u32, u64, xdp


@xdp
def unknown_name(pkt: Packet) -> int:
    n = pkt.len + undefined_limit  # error: unknown name `undefined_limit`
    return XDP_PASS


@xdp
def int_conversion(pkt: Packet) -> int:
    n = int(pkt.len)  # error: `int(...)` has no fixed width | hint: u32(x)
    return XDP_PASS


@xdp
def float_into_integer_variable(pkt: Packet) -> int:
    n: u32 = 0
    n = pkt.len * 0.5  # error: a float cannot be stored in a u32 silently | hint: `u32(...)` truncates toward zero
    return XDP_PASS


@xdp
def float_into_annotated_integer(pkt: Packet) -> int:
    half: u32 = pkt.len / 2  # error: a float cannot be stored in a u32 silently
    return XDP_PASS


@xdp
def constant_does_not_fit(pkt: Packet) -> int:
    small: u8 = 300  # error: 300 does not fit in u8 | hint: u8(300)
    return XDP_PASS


@xdp
def negative_into_unsigned(pkt: Packet) -> int:
    n = pkt.len
    n = -1  # error: -1 does not fit in u32
    return XDP_PASS


@xdp
def power_of_runtime_value(pkt: Packet) -> int:
    square = pkt.len ** 2  # error: `**` works only on constants | hint: x * x
    return XDP_PASS


@xdp
def zero_to_negative_power(pkt: Packet) -> int:
    x = 0 ** -1  # error: has no value in the DSL
    return XDP_PASS


@xdp
def divide_assign(pkt: Packet) -> int:
    n = pkt.len
    n /= 2  # error: `/=` is not supported | hint: x = x / y
    return XDP_PASS


@xdp
def runtime_float_division(pkt: Packet) -> int:
    a = pkt.len * 0.5
    b = pkt.len * 0.25
    ratio = a / b  # error: dividing by a float computed at run time is not supported | hint: reciprocal
    return XDP_PASS


@xdp
def bitwise_on_float(pkt: Packet) -> int:
    a = pkt.len * 0.5
    bits = a & 0xFF  # error: `&` is not defined on floats | hint: convert to an integer type
    return XDP_PASS


@xdp
def modulo_on_float(pkt: Packet) -> int:
    a = pkt.len * 0.5
    rest = a % 2  # error: `%` is not defined on floats
    return XDP_PASS


@xdp
def floor_division_on_float(pkt: Packet) -> int:
    a = pkt.len * 0.5
    whole = a // 2  # error: `//` is not defined on floats
    return XDP_PASS


@xdp
def invert_a_float(pkt: Packet) -> int:
    a = pkt.len * 0.5
    b = ~a  # error: `~` is not defined on floats
    return XDP_PASS


@xdp
def is_with_a_number(pkt: Packet) -> int:
    if pkt.len is True:  # error: `is` compares only with None | hint: `==`
        return XDP_DROP
    return XDP_PASS


@xdp
def string_in_arithmetic(pkt: Packet) -> int:
    n = pkt.len + "1"  # error: expected a number, but `'1'` is a string
    return XDP_PASS


@xdp
def float_literal_out_of_range(pkt: Packet) -> int:
    big = 3e9  # error: is outside the float range [-2**31, 2**31) | hint: Q32.32
    return XDP_PASS


@xdp
def integer_constant_too_large(pkt: Packet) -> int:
    huge = 0xFFFF_FFFF_FFFF_FFFF + 1  # error: the constant 18446744073709551616 does not fit in 64 bits
    return XDP_PASS


@xdp
def constant_division_by_zero(pkt: Packet) -> int:
    rate = 1 / 0  # error: division by zero in a constant expression
    return XDP_PASS


@xdp
def redeclared_with_another_type(pkt: Packet) -> int:
    n: u32 = 0
    n: i32 = 1  # error: n was declared u32 before; it cannot become i32 | hint: new variable name
    return XDP_PASS


@xdp
def annotation_is_not_a_type(pkt: Packet) -> int:
    n: str = 0  # error: `str` is not a DSL scalar type | hint: u8, u16, u32
    return XDP_PASS


@xdp
def declaration_without_value(pkt: Packet) -> int:
    n: u32  # error: a declaration needs a value | hint: n: u32 = 0
    return XDP_PASS


@xdp
def variable_changes_kind(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    ip4 = 0  # error: ip4 held the ipv4 header or None; it cannot now hold | hint: new variable name
    return XDP_PASS


@xdp
def string_stored_in_variable(pkt: Packet) -> int:
    name = "eth0"  # error: a string cannot be stored in a variable
    return XDP_PASS


@xdp
def none_stored_in_variable(pkt: Packet) -> int:
    nothing = None  # error: None cannot be stored in a variable
    return XDP_PASS


@xdp
def conversion_with_two_arguments(pkt: Packet) -> int:
    n = u32(pkt.len, 2)  # error: a type conversion takes exactly one argument
    return XDP_PASS


@xdp
def branches_of_different_kinds(pkt: Packet) -> int:
    x = 0 if pkt.ipv4 is None else pkt.ipv4  # error: both branches of this expression must give numbers
    return XDP_PASS


_float_counter = Global(u64, 0)
_float_hits = HashMap(u32, u32, 16)


@xdp
def float_added_to_an_integer_local(pkt: Packet) -> int:
    n = pkt.len
    n += 0.5  # error: adding a float to n, a u32, would truncate silently | hint: convert explicitly
    return XDP_PASS


@xdp
def float_added_to_an_integer_global(pkt: Packet) -> int:
    _float_counter.value += 1.5  # error: adding a float to _float_counter.value, a u64
    return XDP_PASS


@xdp
def float_added_to_an_integer_map_value(pkt: Packet) -> int:
    _float_hits[1] += 0.25  # error: adding a float to a value of _float_hits, a u32
    return XDP_PASS
