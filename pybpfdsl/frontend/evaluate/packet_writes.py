"""Pure-Python mode's packet writes: header fields (`ip4.ttl -= 1`, swaps) and payload bytes.

A field is set on the header view (`lang.packet.HeaderView`), which writes the packet's bytes and
updates the checksums covering the field (`lang.checksum`), as the compiled program does."""

from __future__ import annotations

import ast

from pybpfdsl.frontend.evaluate.calls import CallEvaluator
from pybpfdsl.frontend.evaluate.running import EvaluationError, Frame, binary_in, convert, raw_of, source_text
from pybpfdsl.frontend.field_moves import keeps_checksums
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.checksum import offloaded
from pybpfdsl.lang.packet import HeaderView, Payload
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import u8


class PacketWriteEvaluator(CallEvaluator):
    """Assignments to header fields and payload bytes."""

    def _offload(self) -> None:
        """The program's `CHECKSUM_OFFLOAD`, on the packet its writes go through."""
        self.pkt.offloaded_checksums = offloaded(self.lw.source.function.__globals__)

    def _field(self, target: ast.Attribute, fr: Frame) -> tuple[HeaderView, Scalar[int]]:
        self._offload()
        view = self.expr(target.value, fr)
        if not isinstance(view, HeaderView):
            raise EvaluationError(f"`{source_text(target.value)}` is not a present header")
        spec = view._spec.field(target.attr)
        if spec is None:
            raise EvaluationError(f"no field `{source_text(target)}`")
        return view, Scalar(spec.type, getattr(view, target.attr))

    def field_assign(self, target: ast.Attribute, value_node: ast.expr, fr: Frame) -> None:
        view, old = self._field(target, fr)
        setattr(view, target.attr, raw_of(convert(self.scalar(value_node, fr), old.type)))

    def field_aug(self, s: ast.AugAssign, target: ast.Attribute, op: BinOp, value_node: ast.expr,
                  fr: Frame) -> None:
        view, old = self._field(target, fr)
        result = binary_in(op, self.type_of(s), old, self.scalar(value_node, fr))
        setattr(view, target.attr, raw_of(convert(result, old.type)))

    def swap(self, targets: ast.Tuple | ast.List, value: ast.expr, fr: Frame) -> None:
        """Every value first, then every field, left to right; a move that keeps the checksums' sums
        updates none (`frontend.field_moves`)."""
        if not isinstance(value, ast.Tuple | ast.List):
            raise EvaluationError("unpacking needs a tuple of values")
        pending: list[tuple[HeaderView, str, int]] = []
        for t, v in zip(targets.elts, value.elts):
            if not isinstance(t, ast.Attribute):
                raise EvaluationError(f"cannot assign to `{source_text(t)}`")
            view, old = self._field(t, fr)
            pending.append((view, t.attr, raw_of(convert(self.scalar(v, fr), old.type))))
        keep = bool(pending) and keeps_checksums(pending[0][0]._spec, targets, value)
        for view, attr, raw in pending:
            self.pkt.write_field(view, attr, raw, update_checksums=not keep)

    def payload_write(self, call: ast.Call, fr: Frame) -> None:
        self._offload()
        payload = self.expr(call.func.value, fr)  # type: ignore[attr-defined]
        if not isinstance(payload, Payload):
            raise EvaluationError("payload.write on something not the payload")
        index = self.payload_index(call.args[0], fr)
        record = self.expr(call.args[1], fr)
        if not isinstance(record, Struct):
            raise EvaluationError(f"`{source_text(call.args[1])}` is not a record")
        payload.write(index, record)  # negative: from the end (`lang.packet.payload_position`)

    def payload_store(self, target: ast.Subscript, value_node: ast.expr, fr: Frame) -> None:
        payload = self.expr(target.value, fr)
        if not isinstance(payload, Payload):
            raise EvaluationError(f"`{source_text(target.value)}` is not the payload")
        self._offload()
        index = self.payload_index(target.slice, fr)
        byte = raw_of(convert(self.scalar(value_node, fr), u8))
        payload[index] = byte  # negative: from the end (`lang.packet.payload_position`)
