"""Entry points: verify an ELF object (ours or clang's) or a compiled `@xdp` program.

The report keeps everything an explanation needs — the instructions, BTF line info and the invariant
before each instruction — so ``report.explain()`` and ``str(report)`` need no second analysis.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace

from pybpfdsl.bpf.abi import BPF_MAXINSNS, MapType
from pybpfdsl.bpf.btf_ext import Btf, BtfKind, BtfMapDef, LineInfo
from pybpfdsl.bpf.elf import BpfElf, ElfProgram
from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind, slot_offsets
from pybpfdsl.bpf.linking import link_program
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis.abstract_state import FP, State, entry_state
from pybpfdsl.verify.analysis.calls import Expansion, GlobalFunction, chain_stacks, expand, fold, has_calls
from pybpfdsl.verify.analysis.checks import Code, VerifierFinding, is_read_only_section
from pybpfdsl.verify.analysis.driver import Analysis, analyse
from pybpfdsl.verify.analysis.helper_signatures import CALLBACK_TYPE, HELPER_SIGNATURES
from pybpfdsl.verify.analysis.locks import special_fields
from pybpfdsl.verify.analysis.report import VerifierReport
from pybpfdsl.verify.analysis.transfer import GLOBAL_ARG_MEM, Env
from pybpfdsl.verify.analysis.values import UNINIT, MapInfo, MapValueOrNull, ScalarValue, Unknown, Value
from pybpfdsl.verify.domains.scalar import Scalar
from pybpfdsl.verify.subject import Subject

__all__ = ["XDP_SECTIONS", "VerifierReport", "is_xdp_section", "verify_instructions", "verify_object",
           "verify_object_all", "verify_program"]


def _map_refs(elf: BpfElf, relocations: Iterable[Relocation],
              sizes: dict[str, int]) -> tuple[dict[int, tuple[MapInfo, int | None]], list[VerifierFinding]]:
    refs: dict[int, tuple[MapInfo, int | None]] = {}
    problems: list[VerifierFinding] = []
    maps = elf.maps
    btf_maps: dict[str, BtfMapDef] | None = None
    for rel in relocations:
        if rel.kind == RelocKind.MAP:
            m = maps.get(rel.symbol)
            if m is not None and m.map_type == MapType.RINGBUF and (m.key_size is None or m.value_size is None):
                refs[rel.insn_index] = (MapInfo(m.name, MapType.RINGBUF, 0, 0, m.max_entries or 0), None)
                continue
            if m is not None and m.map_type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS) and m.key_size is not None:
                refs[rel.insn_index] = (MapInfo(m.name, m.map_type, m.key_size, 4, m.max_entries or 0), None)
                continue
            if m is None or m.key_size is None or m.value_size is None:
                problems.append(VerifierFinding(Code.UNSUPPORTED, rel.insn_index,
                                                f"map {rel.symbol} has no key/value sizes in the object"))
                continue
            if btf_maps is None:
                btf_maps = elf.btf.map_definitions() if elf.btf is not None else {}
            d = btf_maps.get(m.name)
            lock, fields = special_fields(elf.btf, d.value_type_id if d is not None else None, m.map_type)
            info = MapInfo(m.name, m.map_type or 0, m.key_size, m.value_size, m.max_entries or 0, lock, fields)
            refs[rel.insn_index] = (info, None)
        elif rel.kind == RelocKind.DATA:
            size = sizes.get(rel.section, 0)
            info = MapInfo(rel.section, MapType.ARRAY, 4, size, 1)
            refs[rel.insn_index] = (info, rel.offset)
        elif rel.kind == RelocKind.CALL:
            problems.append(VerifierFinding(Code.UNSUPPORTED, rel.insn_index,
                                            f"call of {rel.symbol} in section {rel.section}: not linked"))
        else:
            problems.append(VerifierFinding(Code.UNSUPPORTED, rel.insn_index,
                                            f"relocation against {rel.symbol} ({rel.kind.value}) is not supported"))
    return refs, problems


def verify_instructions(insns: tuple[Instruction, ...] | list[Instruction], *, name: str = "prog",
                        section: str = "xdp", map_refs: dict[int, tuple[MapInfo, int | None]] | None = None,
                        line_info: tuple[LineInfo, ...] = (), check_division: bool = False,
                        extra: list[VerifierFinding] | None = None,
                        allow_uninit_stack_reads: bool = False, functions: frozenset[int] = frozenset(),
                        global_functions: dict[int, GlobalFunction] | None = None,
                        inner_maps: dict[str, MapInfo] | None = None,
                        readonly: dict[str, bytes] | None = None) -> VerifierReport:
    """Verify a bare instruction list as an XDP program (``map_refs`` resolves its map lddw's).

    bpf-to-bpf calls are analysed in each caller's context (see ``calls``); ``functions``: the
    instructions where functions start besides the call targets (the object's function symbols),
    ``global_functions`` those the kernel verifies on their own (each analysed once from its prototype).
    ``inner_maps``: for each map of maps (by name), the definition of its inner maps. ``readonly``: the bytes of
    the object's read-only global data (``.rodata`` sections, by name), which the kernel reads as constants.

    ``check_division``: also reject a division or modulo by a register that may be zero (BPF defines
    the result, so the kernel accepts it; this is a lint). ``allow_uninit_stack_reads``: accept reads
    of never-written stack, as the kernel does for privileged (CAP_PERFMON/root) loaders; off by
    default, since such a read is almost always a bug and unprivileged loaders are rejected for it.
    """
    started = time.perf_counter()
    if not is_xdp_section(section):
        return _unmodelled(name, section, tuple(insns), line_info, started)
    code = tuple(insns)
    slots = slot_offsets(code)
    env = Env(code, {s: i for i, s in enumerate(slots)}, slots, dict(map_refs or {}), check_division,
              allow_uninit_stack_reads, inner_maps=dict(inner_maps or {}), readonly=dict(readonly or {}),
              devmap=section.endswith("/devmap"))
    analysis = _analyse_calls(env, functions, global_functions or {}) if has_calls(code) else analyse(env)
    findings = list(extra or []) + analysis.findings
    total_slots = sum(i.slots for i in code)
    if total_slots > BPF_MAXINSNS:
        findings.append(VerifierFinding(Code.PROGRAM_SIZE, -1, f"{total_slots} instructions: above BPF_MAXINSNS "
                                        f"({BPF_MAXINSNS}), fine for root, too large for unprivileged loaders"))
    if not code:
        findings.append(VerifierFinding(Code.INVALID_INSN, -1, "empty program"))
    findings.sort(key=lambda f: (f.insn, f.code.value))
    return VerifierReport(name, section, code, _dedupe(findings), line_info, analysis,
                          time.perf_counter() - started, analysis.processed)


def _global_entry_state(g: GlobalFunction) -> State:
    """How the kernel starts a global function: arguments typed from its prototype, nothing else known."""
    s = entry_state()
    regs: list[Value] = [UNINIT] * len(s.regs)
    regs[FP] = s.regs[FP]
    for i, kind in enumerate((g.args or ())[:5]):
        v: Value = Unknown()
        if kind == "ctx":
            v = s.regs[1]
        elif kind == "scalar":
            v = ScalarValue(Scalar.top())
        elif kind.startswith("mem:"):  # sizeof(*arg) bytes or NULL: to be checked before use
            v = MapValueOrNull(MapInfo(f"argument {i + 1} of {g.name}", GLOBAL_ARG_MEM, 0, int(kind[4:])),
                               Scalar.const(0), -2 - i)
        regs[i + 1] = v
    return replace(s, regs=tuple(regs))


def _function_refs(env: Env) -> dict[int, int]:
    """``lddw`` of a function's address (resolved from the object's relocations to a map reference of type
    CALLBACK_TYPE) → the function's first instruction."""
    out = {}
    for i, insn in enumerate(env.insns):
        ref = env.map_refs.get(i)
        if insn.kind == Kind.LDDW and ref is not None and ref[0].map_type == CALLBACK_TYPE:
            out[i] = ref[0].max_entries  # the resolved target index (see verify_elf_program)
            continue
    # A bare instruction list's lddw of a function stays unresolved (refused): the kernel loads a
    # function's address only with the object's BTF func_info ("missing btf func_info").
    return out


def _analyse_calls(env: Env, functions: frozenset[int], globals_: dict[int, GlobalFunction]) -> Analysis:
    """The program with its bpf-to-bpf calls (see ``calls``): the entry program with a copy of each static
    function per call chain, and each global function called, analysed once on its own as the kernel does."""
    order, todo = [], [0]
    expansions: dict[int, Expansion] = {}
    while todo:
        root = todo.pop()
        if root in expansions:
            continue
        expansions[root] = ex = expand(env.insns, functions, globals_, root, _function_refs(env))
        order.append(root)
        todo.extend(sorted(ex.called_globals))
    analyses: dict[int, Analysis] = {}
    global_depth: dict[int, int] = {}
    moves: dict[int, bool] = {}
    """Global function → whether it may move the packet (unknown, as for recursion: it may)."""
    for root in reversed(order):  # callees first: a caller's stack check adds theirs
        ex = expansions[root]
        big = tuple(ex.insns)
        big_slots = slot_offsets(big)
        refs = {k: env.map_refs[o] for k, o in enumerate(ex.origin) if o in env.map_refs}
        moves[root] = any(i.is_helper_call and (sig := HELPER_SIGNATURES.get(i.imm)) is not None
                          and sig.changes_packet for i in ex.insns) or any(
            moves.get(ex.global_entry[k], True) for k in ex.global_calls)
        calls = {k: (g.name, g.args, moves.get(ex.global_entry[k], True)) for k, g in ex.global_calls.items()}
        big_env = Env(big, {s: i for i, s in enumerate(big_slots)}, big_slots, refs, env.check_division,
                      env.allow_uninit_stack, env.thresholds, call_entry=ex.call_entry, return_to=ex.return_to,
                      global_calls=calls, inner_maps=env.inner_maps, callback_exits=ex.callback_exits,
                      global_root=root != 0, devmap=env.devmap)
        g = globals_.get(root)
        result = analyse(big_env, _global_entry_state(g) if root and g is not None else None)
        chains = chain_stacks(ex, result.pre)
        global_depth[root] = max((t for _, t in chains.values()), default=0) + max(
            (global_depth.get(ex.global_entry[k], 0) for k in ex.global_calls), default=0)
        analyses[root] = fold(result, ex, env, global_depth)
        if root and g is not None and not g.returns_scalar:
            analyses[root].findings.append(VerifierFinding(Code.UNSUPPORTED, root, f"global function {g.name} "
                                                           "does not return a number: the kernel refuses it"))
    main = analyses[0]
    for root in order[1:]:
        other = analyses[root]
        for i, s in other.pre.items():
            joined = st.join(main.pre.get(i), s)
            assert joined is not None
            main.pre[i] = joined
        for i, ps in other.parts.items():
            main.parts[i] = main.parts.get(i, ()) + ps
        main.findings += other.findings
        main.processed += other.processed
    return main


XDP_SECTIONS = ("xdp", "xdp.frags")
"""libbpf's section names of XDP programs (and their ``/...`` forms: ``xdp/devmap``, ``xdp.frags/cpumap``)."""


def is_xdp_section(section: str) -> bool:
    """Whether libbpf loads a program of this section as an XDP program: the only type modelled here."""
    return any(section == s or section.startswith(s + "/") for s in XDP_SECTIONS)


def _unmodelled(name: str, section: str, code: tuple[Instruction, ...], line_info: tuple[LineInfo, ...],
                started: float) -> VerifierReport:
    """The report on a program of a type the analysis does not model: refused, never "verified".

    Context layout, helpers, exit values and packet access all depend on the program type; analysing
    a tracepoint as if it were XDP would answer questions nobody asked."""
    kind = section.split("/", 1)[0] or "(no section)"
    finding = VerifierFinding(Code.UNSUPPORTED, -1,
                              f"section {section!r} is a {kind} program: this verifier models XDP programs "
                              "only (sections 'xdp', 'xdp/...', 'xdp.frags'), so it cannot say this one is safe")
    return VerifierReport(name, section, code, [finding], line_info, None, time.perf_counter() - started, 0)


def _dedupe(findings: list[VerifierFinding]) -> list[VerifierFinding]:
    seen: set[tuple[Code, int, str]] = set()
    out = []
    for f in findings:
        key = (f.code, f.insn, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _inner_maps(elf: BpfElf) -> dict[str, MapInfo]:
    """Each map of maps' inner map definition: libbpf's ``__array(values, struct inner)``, a ``values``
    member that is an array of pointers to the inner definition's struct."""
    btf = elf.btf
    out: dict[str, MapInfo] = {}
    if btf is None:
        return out
    for m in elf.maps.values():
        if m.map_type not in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
            continue
        for var in btf.by_name(m.name, BtfKind.VAR):
            if var.type is None:
                continue
            outer = btf.resolve(var.type)
            values = next((t for n, t, _ in outer.members if n == "values"), None)
            arr = btf.resolve(values) if values is not None else None
            if arr is None or arr.kind != BtfKind.ARRAY or not arr.members:
                continue
            ptr = btf.resolve(arr.members[0][1])
            if ptr.kind != BtfKind.PTR or ptr.type is None:
                continue
            d = btf._map_def(m.name + ".inner", btf.resolve(ptr.type))
            if d.map_type is not None and d.key_size is not None and d.value_size is not None:
                out[m.name] = MapInfo(f"{m.name}.inner", d.map_type, d.key_size, d.value_size, d.max_entries or 0)
    return out


def _sized(btf: Btf, type_id: int) -> bool:
    """A pointee the kernel sizes for a global function's pointer argument: a number or a struct of them."""
    t = btf.resolve(type_id)
    if t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64):
        return True
    return t.kind == BtfKind.STRUCT and all(btf.resolve(m).kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64)
                                            for _, m, _ in t.members)


def _same_shape_maps(refs: dict[int, tuple[MapInfo, int | None]],
                     inner: dict[str, MapInfo]) -> tuple[dict[int, tuple[MapInfo, int | None]], dict[str, MapInfo]]:
    """An inner map with the type and sizes of a map the program names gets that map's definition (under
    both names): code picks one or the other (katran: the CPU's LRU from a map of maps, else a fallback
    LRU) and uses them alike, and every check depends on the definition only, never on the name."""
    shape = {(m.map_type, m.key_size, m.value_size, m.max_entries): m for m, off in refs.values() if off is None}
    renamed: dict[str, MapInfo] = {}
    for outer, m in list(inner.items()):
        top = shape.get((m.map_type, m.key_size, m.value_size, m.max_entries))
        if top is not None:
            joint = renamed.get(top.name) or replace(top, name=f"{top.name} (or {m.name})")
            renamed[top.name] = joint
            inner[outer] = joint
    refs = {i: (renamed.get(m.name, m) if off is None else m, off) for i, (m, off) in refs.items()}
    return refs, inner


def _prototype(elf: BpfElf, name: str) -> GlobalFunction:
    """A global function's argument kinds from its BTF prototype (None if the object has none)."""
    btf = elf.btf
    funcs = btf.by_name(name, BtfKind.FUNC) if btf is not None else []
    if btf is None or not funcs or funcs[0].type is None:
        return GlobalFunction(name, None)
    proto = btf.resolve(funcs[0].type)
    args = []
    for _, type_id, _ in proto.members:
        t = btf.resolve(type_id)
        if t.kind in (BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64):
            args.append("scalar")
        elif t.kind == BtfKind.PTR and t.type is not None and btf.resolve(t.type).name == "xdp_md":
            args.append("ctx")
        elif t.kind == BtfKind.PTR and t.type is not None and _sized(btf, t.type):
            args.append(f"mem:{btf.size_of(t.type)}")
        else:
            args.append("other")
    ret = btf.resolve(proto.type) if proto.type else None
    return GlobalFunction(name, tuple(args), ret is not None and ret.kind in (BtfKind.INT, BtfKind.ENUM,
                                                                              BtfKind.ENUM64))


def _read_only_data(elf: BpfElf) -> dict[str, bytes]:
    """The object's read-only global data: each ``.rodata`` section's bytes (libbpf loads them into a map
    it freezes, whose loads the kernel reads as constants)."""
    out = {}
    for name in elf.section_names:
        if is_read_only_section(name) and not elf.is_nobits(name):
            data = elf.section_contents(name)
            if data is not None:
                out[name] = data
    return out


def verify_elf_program(elf: BpfElf, prog: ElfProgram, *, check_division: bool = False,
                       allow_uninit_stack_reads: bool = False) -> VerifierReport:
    readonly = _read_only_data(elf)
    text = elf.text
    if text is None or text is prog or not any(r.kind in (RelocKind.CALL, RelocKind.FUNC) for r in prog.relocations):
        refs, problems = _map_refs(elf, prog.relocations, elf.section_sizes)
        refs, inner = _same_shape_maps(refs, _inner_maps(elf))
        return verify_instructions(prog.instructions, name=prog.name, section=prog.section, map_refs=refs,
                                   line_info=prog.line_info, check_division=check_division, extra=problems,
                                   allow_uninit_stack_reads=allow_uninit_stack_reads, inner_maps=inner,
                                   readonly=readonly)
    # The program followed by .text (its subprograms), as libbpf links it; instructions past the
    # program's own are numbered on from its last.
    insns, relocs = link_program(elf, prog.name)
    base, base_slot = len(prog.instructions), prog.slots
    index_of = {s: i for i, s in enumerate(slot_offsets(insns))}
    callbacks: dict[int, tuple[MapInfo, int | None]] = {}
    has_func_info = elf.btf_ext is not None and bool(elf.btf_ext.func_info.get(text.section))
    for i, r in list(relocs.items()):
        target = index_of.get(base_slot + r.offset // 8) if r.section == text.section else None
        if r.kind == RelocKind.FUNC and target is not None and has_func_info:
            callbacks[i] = (MapInfo(r.symbol, CALLBACK_TYPE, 0, 0, target), None)
            del relocs[i]
    refs, problems = _map_refs(elf, relocs.values(), elf.section_sizes)
    refs, inner = _same_shape_maps(refs, _inner_maps(elf))
    refs.update(callbacks)
    starts = frozenset(base + f.insn_index for f in text.functions)
    globals_ = {base + f.insn_index: _prototype(elf, f.name) for f in text.functions if f.is_global}
    lines = prog.line_info + tuple(replace(li, insn_index=li.insn_index + base, slot=li.slot + base_slot)
                                   for li in text.line_info)
    return verify_instructions(insns, name=prog.name, section=prog.section, map_refs=refs, line_info=lines,
                               check_division=check_division, extra=problems,
                               allow_uninit_stack_reads=allow_uninit_stack_reads, functions=starts,
                               global_functions=globals_, inner_maps=inner, readonly=readonly)


def verify_object(elf_bytes: bytes, section: str | None = None, *, check_division: bool = False,
                  allow_uninit_stack_reads: bool = False) -> VerifierReport:
    """Verify the program in ``section`` (a section or function name), or the object's first entry program."""
    elf = BpfElf.from_bytes(elf_bytes)
    if section is not None:
        prog = elf.program(section)
    else:
        sections = elf.program_sections  # (the first one decoded only)
        if not sections:
            raise KeyError("the object has no entry programs")
        prog = elf.program(sections[0])
    return verify_elf_program(elf, prog, check_division=check_division,
                              allow_uninit_stack_reads=allow_uninit_stack_reads)


def verify_object_all(elf_bytes: bytes, *, check_division: bool = False,
                      allow_uninit_stack_reads: bool = False) -> list[VerifierReport]:
    """Verify every entry program of an object."""
    elf = BpfElf.from_bytes(elf_bytes)
    return [verify_elf_program(elf, p, check_division=check_division,
                               allow_uninit_stack_reads=allow_uninit_stack_reads) for p in elf.programs.values()]


def verify_program(subject: Subject, *, check_division: bool = False,
                   allow_uninit_stack_reads: bool = False) -> VerifierReport:
    """Verify a compiled program (`fn.compile().subject`; options as for :func:`verify_instructions`)."""
    elf = BpfElf.from_bytes(subject.elf)
    return verify_elf_program(elf, elf.program(subject.section), check_division=check_division,
                              allow_uninit_stack_reads=allow_uninit_stack_reads)
