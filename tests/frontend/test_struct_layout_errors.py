"""A Struct the DSL cannot lay out is refused where its class body declares the field, with a hint, and
names classes as the user wrote them (issue 16 §6)."""

from __future__ import annotations

import pytest

from pybpfdsl import DslError, Struct, u32
from pybpfdsl.lang.structs import StructLayoutError


class Inner(Struct):
    a: u32




def test_a_field_of_an_unsupported_type_is_refused_at_its_line_with_a_hint() -> None:
    with pytest.raises(StructLayoutError) as caught:
        class Bad(Struct):
            a: u32
            b: list[int]  # the refused field
    err = caught.value
    assert isinstance(err, DslError) and isinstance(err, TypeError)
    assert err.location is not None
    assert err.location.file == __file__
    assert err.location.text.strip() == "b: list[int]  # the refused field"
    assert err.location.column == err.location.text.index("b:")
    assert "Bad.b: a Struct field cannot be" in err.message
    assert err.hint is not None and "u8..u64, i8..i64, bool or float" in err.hint
    assert str(err).splitlines()[0].startswith(f"{__file__}:{err.location.line}:{err.location.column + 1}: error:")


def test_a_struct_field_names_the_class_as_written() -> None:
    with pytest.raises(StructLayoutError) as caught:
        class Outer(Struct):
            inner: Inner
    err = caught.value
    assert "a Struct field cannot be another Struct (Inner)" in err.message
    assert __name__ not in str(err)  # the module's name (the CLI makes one up for a file) is not shown
    assert err.hint is not None and "declare Inner's fields in Outer itself" in err.hint


def test_a_struct_without_fields_is_refused_at_its_class_line() -> None:
    with pytest.raises(StructLayoutError) as caught:
        class Empty(Struct):
            pass
    err = caught.value
    assert err.location is not None and err.location.text.strip() == "class Empty(Struct):"
    assert err.hint is not None and "annotation" in err.hint
