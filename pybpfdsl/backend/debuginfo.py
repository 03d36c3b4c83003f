"""DWARF debug metadata for llvmlite modules, shaped so LLVM's BPF backend emits BTF.

The LLVM BPF backend turns DWARF debug metadata into ``.BTF`` / ``.BTF.ext``:

* ``DIGlobalVariableExpression`` on globals -> BTF VAR entries in the ``.maps``,
  ``.bss``, ``.data``, ``.rodata`` DATASECs (libbpf needs these for BTF-defined
  maps and for global-data maps),
* ``DISubprogram`` on functions -> BTF FUNC / FUNC_PROTO and ``func_info``,
* ``DILocation`` on instructions -> ``line_info`` (file name, line, column and
  the text of the source line, which the kernel prints in the verifier log).

The source line text comes from the ``DIFile``: LLVM uses the embedded
``source:`` field when present, otherwise it tries to read ``directory/filename``
from disk at object-emission time.  :class:`DebugInfoBuilder` embeds the Python
source (given explicitly, or read from ``source_file`` if it is readable) so the
object is self-contained and does not depend on the current directory.

BTF-defined maps follow libbpf's conventions (``bpf_helpers.h``)::

    __uint(name, val)  ==  int (*name)[val]
    __type(name, T)    ==  T *name

so a map is an anonymous struct global in section ``.maps`` whose members are
pointers; only the debug type carries the information.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from llvmlite import ir

__all__ = [
    "CHAR",
    "S32",
    "S64",
    "U8",
    "U16",
    "U32",
    "U64",
    "ArrayTypeDesc",
    "DebugInfoBuilder",
    "DebugScope",
    "FieldDesc",
    "ScalarTypeDesc",
    "StructTypeDesc",
    "TypeDesc",
]


# --------------------------------------------------------------------------- #
# Type descriptions
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ScalarTypeDesc:
    """An integer type. ``name`` becomes a typedef (e.g. ``__u32``) over the
    matching C base type (``unsigned int``) unless it already is that name."""

    name: str
    bits: int
    signed: bool

    def __post_init__(self) -> None:
        if self.bits not in (8, 16, 32, 64, 128):
            raise ValueError(f"unsupported scalar width {self.bits}")


@dataclass(frozen=True)
class FieldDesc:
    name: str
    type: TypeDesc
    offset_bytes: int


@dataclass(frozen=True)
class StructTypeDesc:
    name: str
    fields: tuple[FieldDesc, ...]
    size_bytes: int


@dataclass(frozen=True)
class ArrayTypeDesc:
    element: TypeDesc
    count: int


TypeDesc: TypeAlias = ScalarTypeDesc | StructTypeDesc | ArrayTypeDesc

U8 = ScalarTypeDesc("__u8", 8, False)
U16 = ScalarTypeDesc("__u16", 16, False)
U32 = ScalarTypeDesc("__u32", 32, False)
U64 = ScalarTypeDesc("__u64", 64, False)
S32 = ScalarTypeDesc("__s32", 32, True)
S64 = ScalarTypeDesc("__s64", 64, True)
CHAR = ScalarTypeDesc("char", 8, True)


def size_in_bytes(t: TypeDesc) -> int:
    """Byte size of a described type."""
    if isinstance(t, ScalarTypeDesc):
        return t.bits // 8
    if isinstance(t, StructTypeDesc):
        return t.size_bytes
    return size_in_bytes(t.element) * t.count


@dataclass(frozen=True)
class DebugScope:
    """The debug scope of one function (its ``DISubprogram``)."""

    subprogram: ir.DIValue
    name: str


# C base types: (bits, signed) -> (name, DWARF encoding)
_BASE_TYPES: dict[tuple[int, bool], tuple[str, str]] = {
    (8, False): ("unsigned char", "DW_ATE_unsigned_char"),
    (8, True): ("char", "DW_ATE_signed_char"),
    (16, False): ("unsigned short", "DW_ATE_unsigned"),
    (16, True): ("short", "DW_ATE_signed"),
    (32, False): ("unsigned int", "DW_ATE_unsigned"),
    (32, True): ("int", "DW_ATE_signed"),
    (64, False): ("unsigned long long", "DW_ATE_unsigned"),
    (64, True): ("long long", "DW_ATE_signed"),
    (128, False): ("unsigned __int128", "DW_ATE_unsigned"),
    (128, True): ("__int128", "DW_ATE_signed"),
}

_XDP_MD_FIELDS = (
    "data",
    "data_end",
    "data_meta",
    "ingress_ifindex",
    "rx_queue_index",
    "egress_ifindex",
)

_I32 = ir.IntType(32)


def _add_operand(node: ir.DIValue, key: str, value: ir.MDValue) -> None:
    """Add an operand to an already created (distinct) node, for back edges."""
    node.operands = tuple(sorted((*node.operands, (key, value)), key=lambda kv: kv[0]))


def _tok(value: str) -> ir.DIToken:
    return ir.DIToken(value)


# --------------------------------------------------------------------------- #
# Builder
# --------------------------------------------------------------------------- #


class DebugInfoBuilder:
    """Builds the debug metadata of one module (one compile unit, one file).

    Call :meth:`finalize` once after all functions, globals and locations are
    created; no debug info may be added through this builder afterwards.
    """

    def __init__(
        self,
        module: ir.Module,
        source_file: str,
        source_text: str | None = None,
        producer: str = "pybpfdsl",
    ) -> None:
        self.module = module
        path = Path(source_file)
        directory = str(path.parent) if str(path.parent) != "." else ""
        if not path.is_absolute() and directory == "":
            directory = os.getcwd()
        if source_text is None:
            try:
                source_text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                source_text = None
        file_ops: dict[str, object] = {"filename": path.name, "directory": directory}
        if source_text is not None:
            # DWARF 5 embedded source; LLVM's BTF emitter takes line texts
            # from here instead of reading the file.
            file_ops["source"] = source_text
        self.has_embedded_source = source_text is not None
        self.file = module.add_debug_info("DIFile", file_ops)
        self.compile_unit = module.add_debug_info(
            "DICompileUnit",
            {
                "language": _tok("DW_LANG_Python"),
                "file": self.file,
                "producer": producer,
                "isOptimized": True,
                "runtimeVersion": 0,
                "emissionKind": _tok("FullDebug"),
                "nameTableKind": _tok("None"),
            },
            is_distinct=True,
        )
        self._globals: list[ir.DIValue] = []
        self._retained: list[tuple[ir.DIValue, ir.DIValue]] = []
        self._types: dict[TypeDesc, ir.DIValue] = {}
        self._int = self._basic("int", 32, "DW_ATE_signed")
        self._finalized = False

    def _check_open(self) -> None:
        if self._finalized:
            raise RuntimeError("DebugInfoBuilder already finalized")

    # -- types -------------------------------------------------------------

    def _basic(self, name: str, bits: int, encoding: str) -> ir.DIValue:
        return self.module.add_debug_info(
            "DIBasicType", {"name": name, "size": bits, "encoding": _tok(encoding)}
        )

    def _pointer(self, base: ir.DIValue | None) -> ir.DIValue:
        return self.module.add_debug_info(
            "DIDerivedType",
            {"tag": _tok("DW_TAG_pointer_type"), "baseType": base, "size": 64},
        )

    def _array(self, base: ir.DIValue, count: int, elem_bits: int) -> ir.DIValue:
        subrange = self.module.add_debug_info("DISubrange", {"count": count})
        return self.module.add_debug_info(
            "DICompositeType",
            {
                "tag": _tok("DW_TAG_array_type"),
                "baseType": base,
                "size": elem_bits * count,
                "elements": self.module.add_metadata([subrange]),
            },
        )

    def _member(
        self, name: str, base: ir.DIValue, bits: int, offset_bits: int
    ) -> ir.DIValue:
        return self.module.add_debug_info(
            "DIDerivedType",
            {
                "tag": _tok("DW_TAG_member"),
                "name": name,
                "file": self.file,
                "baseType": base,
                "size": bits,
                "offset": offset_bits,
            },
        )

    def _struct(
        self, name: str | None, members: list[ir.DIValue], size_bits: int
    ) -> ir.DIValue:
        ops: dict[str, object] = {
            "tag": _tok("DW_TAG_structure_type"),
            "file": self.file,
            "size": size_bits,
            "elements": self.module.add_metadata(members),
        }
        if name:
            ops["name"] = name
        return self.module.add_debug_info("DICompositeType", ops)

    def di_type(self, t: TypeDesc) -> ir.DIValue:
        """The DWARF type node for a description (cached)."""
        cached = self._types.get(t)
        if cached is not None:
            return cached
        node: ir.DIValue
        if isinstance(t, ScalarTypeDesc):
            base_name, encoding = _BASE_TYPES[(t.bits, t.signed)]
            node = self._basic(base_name, t.bits, encoding)
            if t.name != base_name:
                node = self.module.add_debug_info(
                    "DIDerivedType",
                    {
                        "tag": _tok("DW_TAG_typedef"),
                        "name": t.name,
                        "file": self.file,
                        "baseType": node,
                    },
                )
        elif isinstance(t, StructTypeDesc):
            members = [
                self._member(
                    f.name,
                    self.di_type(f.type),
                    size_in_bytes(f.type) * 8,
                    f.offset_bytes * 8,
                )
                for f in t.fields
            ]
            node = self._struct(t.name, members, t.size_bytes * 8)
        else:
            node = self._array(
                self.di_type(t.element), t.count, size_in_bytes(t.element) * 8
            )
        self._types[t] = node
        return node

    # -- globals -----------------------------------------------------------

    def _attach_global(
        self, gv: ir.GlobalVariable, name: str, di_ty: ir.DIValue, line: int
    ) -> None:
        var = self.module.add_debug_info(
            "DIGlobalVariable",
            {
                "name": name,
                "scope": self.compile_unit,
                "file": self.file,
                "line": line,
                "type": di_ty,
                "isLocal": gv.linkage in ("internal", "private"),
                "isDefinition": True,
            },
            is_distinct=True,
        )
        expr = self.module.add_debug_info(
            "DIGlobalVariableExpression",
            {"var": var, "expr": self.module.add_debug_info("DIExpression", {})},
        )
        gv.set_metadata("dbg", expr)
        self._globals.append(expr)

    def map_definition(
        self,
        name: str,
        map_type: int,
        key: TypeDesc | None,
        value: TypeDesc | None,
        max_entries: int,
        map_flags: int = 0,
        line: int = 0,
    ) -> ir.GlobalVariable:
        """Create a libbpf BTF-defined map ``name`` in section ``.maps``.

        Equivalent to the C::

            struct {
                __uint(type, map_type);
                __type(key, K);
                __type(value, V);
                __uint(max_entries, max_entries);
                __uint(map_flags, map_flags);   /* only if non-zero */
            } name SEC(".maps");

        ``key``/``value`` may be None for maps that have neither (a ring buffer); the member is then
        left out.
        """

        self._check_open()

        def uint_member(member: str, val: int, offset: int) -> ir.DIValue:
            arr = self._array(self._int, val, 32)
            return self._member(member, self._pointer(arr), 64, offset * 64)

        def type_member(member: str, t: TypeDesc, offset: int) -> ir.DIValue:
            return self._member(member, self._pointer(self.di_type(t)), 64, offset * 64)

        members = [uint_member("type", map_type, 0)]
        if key is not None:
            members.append(type_member("key", key, len(members)))
        if value is not None:
            members.append(type_member("value", value, len(members)))
        members.append(uint_member("max_entries", max_entries, len(members)))
        if map_flags:
            members.append(uint_member("map_flags", map_flags, len(members)))
        ptr = ir.PointerType(ir.IntType(8))
        llty = ir.LiteralStructType([ptr] * len(members))
        gv = ir.GlobalVariable(self.module, llty, name)
        gv.initializer = ir.Constant(llty, None)
        gv.section = ".maps"
        gv.align = 8
        self._attach_global(
            gv, name, self._struct(None, members, 64 * len(members)), line
        )
        return gv

    def global_variable(
        self, gv: ir.GlobalVariable, type_: TypeDesc, line: int = 0
    ) -> None:
        """Describe an existing global (``.bss`` / ``.data`` / ``.rodata`` /
        ``license``) so it shows up as a VAR in the BTF DATASEC."""
        self._check_open()
        self._attach_global(gv, gv.name, self.di_type(type_), line)

    # -- functions -----------------------------------------------------------

    def xdp_md_type(self) -> ir.DIValue:
        """``struct xdp_md`` as in ``linux/bpf.h`` (six ``__u32`` fields)."""
        u32 = self.di_type(U32)
        members = [
            self._member(n, u32, 32, 32 * i) for i, n in enumerate(_XDP_MD_FIELDS)
        ]
        return self._struct("xdp_md", members, 32 * len(_XDP_MD_FIELDS))

    def function(
        self, fn: ir.Function, name: str, line: int, ctx_name: str = "ctx"
    ) -> DebugScope:
        """Attach a ``DISubprogram`` for ``int name(struct xdp_md *ctx)``.

        Also marks ``fn`` ``nounwind`` (no ``.eh_frame`` in the object).
        """
        self._check_open()
        ctx_ptr = self._pointer(self.xdp_md_type())
        sub_ty = self.module.add_debug_info(
            "DISubroutineType",
            {"types": self.module.add_metadata([self._int, ctx_ptr])},
        )
        sp = self.module.add_debug_info(
            "DISubprogram",
            {
                "name": name,
                "scope": self.file,
                "file": self.file,
                "line": line,
                "type": sub_ty,
                "scopeLine": line,
                "flags": _tok("DIFlagPrototyped"),
                "spFlags": _tok("DISPFlagDefinition | DISPFlagOptimized"),
                "unit": self.compile_unit,
            },
            is_distinct=True,
        )
        # Parameter name for the BTF FUNC_PROTO ("ctx").
        arg = self.module.add_debug_info(
            "DILocalVariable",
            {
                "name": ctx_name,
                "arg": 1,
                "scope": sp,
                "file": self.file,
                "line": line,
                "type": ctx_ptr,
            },
        )
        # sp <-> arg is a reference cycle; llvmlite hashes metadata operands
        # recursively when deduplicating, so the back edge is only added in
        # finalize(), after every other node has been created.
        self._retained.append((sp, arg))
        fn.set_metadata("dbg", sp)
        # BPF has no unwinding; without nounwind LLVM emits .eh_frame, which
        # libbpf then reports as an unrecognized section.
        fn.attributes.add("nounwind")
        return DebugScope(sp, name)

    def location(self, scope: DebugScope, line: int, column: int = 0) -> ir.DIValue:
        """A ``DILocation`` for ``instr.set_metadata("dbg", loc)``."""
        self._check_open()
        return self.module.add_debug_info(
            "DILocation", {"line": line, "column": column, "scope": scope.subprogram}
        )

    # -- module --------------------------------------------------------------

    def finalize(self) -> None:
        """Register the compile unit and the debug-info module flags."""
        if self._finalized:
            raise RuntimeError("DebugInfoBuilder.finalize() called twice")
        self._finalized = True
        for sp, arg in self._retained:
            _add_operand(sp, "retainedNodes", self.module.add_metadata([arg]))
        cu = self.compile_unit
        if self._globals:
            _add_operand(cu, "globals", self.module.add_metadata(self._globals))
        self.module.add_named_metadata("llvm.dbg.cu", cu)
        flags = (
            (7, "Dwarf Version", 5),
            (2, "Debug Info Version", 3),
        )
        for behaviour, key, val in flags:
            self.module.add_named_metadata(
                "llvm.module.flags",
                [ir.Constant(_I32, behaviour), key, ir.Constant(_I32, val)],
            )
