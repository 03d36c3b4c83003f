"""Checking writes to the packet: header fields (`ip4.ttl -= 1`, `udp.dport = 8080`, a swap
`eth.src, eth.dst = eth.dst, eth.src`) and payload bytes (`pkt.payload[i] = b`).

A field is written through a header checked present (as it is read); the value converts implicitly to
the field's type and a constant must fit the field's bits (`ipv4.flags` has 3). The fields that decide
where the headers are (`lang.checksum.PARSING_FIELDS`) are refused: the program parsed the packet once.
"""

from __future__ import annotations

import ast

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.typecheck.arithmetic import computed
from pybpfdsl.frontend.typecheck.calls import CallChecker
from pybpfdsl.frontend.typecheck.kinds import Header, Maybe, Payload, Record, describe
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.checksum import OFFLOAD_NAME, PARSING_FIELDS, offloaded
from pybpfdsl.lang.headers import FieldSpec
from pybpfdsl.lang.types import u8


class PacketWriteChecker(CallChecker):
    """Assignments whose target is a header field or a payload byte."""

    def written_field(self, target: ast.Attribute) -> FieldSpec:
        """The field `target` names, after checking it may be written here."""
        self.offload_declared(target)
        base = self.expr(target.value)
        header = base.inner if isinstance(base, Maybe) and base.narrowed else base
        if not isinstance(header, Header):
            if isinstance(base, Maybe) and isinstance(base.inner, Header):
                self.expr(target)  # the read's message: "may be None here", with its hint
            record = base.inner if isinstance(base, Maybe) else base
            if isinstance(record, Record):
                base_text = ast.unparse(target.value)
                fields = ", ".join(f"{f.name}=..." if f.name == target.attr else f"{f.name}={base_text}.{f.name}"
                                   for f in record.cls.fields())
                raise self.err(target, f"`{ast.unparse(target)}` cannot be changed in place: a record is a value "
                               "(a copy of the map entry or packet bytes it was read from)",
                               f"build a new one and store it where it came from: `m[key] = {record.cls.__name__}"
                               f"({fields})`")
            raise self.err(target, f"cannot assign to `{ast.unparse(target)}`",
                           "header fields (`ip4.ttl = 63`), Global values, map entries and local variables "
                           "can be assigned; records are built anew")
        self.expr(target)  # the field exists (the read's message otherwise); its type is recorded
        spec = header.spec.field(target.attr)
        assert spec is not None
        if (header.spec.name, spec.name) in PARSING_FIELDS:
            raise self.err(target, f"{header.spec.name}.{spec.name} decides where the packet's headers are, "
                           "and cannot be assigned", "the program parses the packet once, at its start; "
                           "build a new packet with adjust_head instead")
        return spec

    def offload_declared(self, node: ast.AST) -> None:
        """The module's `CHECKSUM_OFFLOAD`, if any, names headers with checksums."""
        try:
            offloaded(self.main.function.__globals__)
        except ValueError as exc:
            raise self.err(node, str(exc), f'write `{OFFLOAD_NAME} = ("tcp", "udp")` at module level') from None

    def fits(self, v: Scalar[object], spec: FieldSpec, target: ast.Attribute, node: ast.expr) -> None:
        """A constant for a field narrower than its type (`ipv4.flags`, `eth.src`) must fit its bits."""
        bits = spec.mask.bit_length() if spec.mask is not None else 8 * spec.size
        if v.const is not None and isinstance(v.const, int) and not 0 <= v.const < 1 << bits:
            raise self.err(node, f"{v.const} does not fit `{ast.unparse(target)}`, a {bits}-bit field",
                           f"use a value from 0 to {(1 << bits) - 1}")

    def field_assign(self, target: ast.Attribute, value_node: ast.expr) -> None:
        spec = self.written_field(target)
        value = self.scalar(value_node)
        converted = self.convert(value, spec.type, value_node, implicit=True)
        self.fits(converted, spec, target, value_node)

    def field_aug(self, target: ast.Attribute, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        spec = self.written_field(target)
        operand = self.scalar(value_node)
        if operand.type.is_fixed:
            raise self.err(value_node, f"`{ast.unparse(target)}` is an integer field; "
                           f"`{fold.SYMBOL[op]}=` with a float would truncate silently",
                           f"convert explicitly: `{spec.type}(...)`")
        result = self.binary(op, computed(spec.type), operand, s)
        self.record(s, result)
        self.convert(result, spec.type, s)

    def swap(self, targets: ast.Tuple | ast.List, value: ast.expr, s: ast.stmt) -> None:
        """`a, b = x, y` where every target is a header field: the values are read first, then written."""
        if not targets.elts or not all(isinstance(t, ast.Attribute) for t in targets.elts):
            raise self.err(targets, "an unpacking assignment assigns either local variables (`a, b = b, a`) or "
                           "header fields (`eth.src, eth.dst = eth.dst, eth.src`), not a mix or other targets",
                           "assign these one per line")
        if not isinstance(value, ast.Tuple | ast.List) or len(value.elts) != len(targets.elts):
            raise self.err(s, "assigning header fields together needs as many values as fields, as a tuple",
                           "swap fields like this: `eth.src, eth.dst = eth.dst, eth.src`")
        for t, v in zip(targets.elts, value.elts):
            assert isinstance(t, ast.Attribute)
            self.field_assign(t, v)

    def payload_store(self, target: ast.Subscript, value_node: ast.expr) -> None:
        """`pkt.payload[i] = b`: a byte; a position outside the packet writes nothing."""
        self.offload_declared(target)
        index = self.scalar(target.slice)
        if not index.type.is_int:
            raise self.err(target.slice, f"a payload index must be an integer, not {describe(index)}")
        converted = self.convert(self.scalar(value_node), u8, value_node, implicit=True)
        del converted

    def payload_write(self, call: ast.Call) -> None:
        """`pkt.payload.write(offset, record)`: a record of integer fields, written big-endian."""
        if len(call.args) != 2 or call.keywords:
            raise self.err(call, "write `pkt.payload.write(offset, record)`")
        self.offload_declared(call)
        index = self.scalar(call.args[0])
        if not index.type.is_int:
            raise self.err(call.args[0], f"a payload offset must be an integer, not {describe(index)}")
        record = self.expr(call.args[1])
        if isinstance(record, Maybe) and record.narrowed:
            record = record.inner
        if not isinstance(record, Record):
            raise self.err(call.args[1], f"payload.write writes a record, not {describe(record)}",
                           "build one: `Rec(a=1, b=2)`")
        if any(f.type.is_fixed for f in record.cls.fields()):
            raise self.err(call.args[1], f"{record.cls.__name__} has float fields; payload.write writes "
                           "integer fields only", "convert the floats to integers in a record of their own")

    def is_payload(self, node: ast.expr) -> bool:
        """Whether `node` is the packet's payload (`pkt.payload`, or a local holding it)."""
        return isinstance(self.expr(node), Payload)
