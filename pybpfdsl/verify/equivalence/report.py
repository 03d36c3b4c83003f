"""A counterexample as a person reads it (text) and as a script reads it (JSON).

The text form shows the inputs, then both runs side by side, one row per output, `*` where they
differ. A map shows only the keys the counterexample reads or writes (and those where the runs
differ) and counts the rest: a 65,536-element array is one row for its untouched elements, not
65,536 entries. By default the text is a screenful (`SCREEN_LINES`, values cut at `CELL`
characters), which is what `AttachRefused` and the command line print; `full=True` (the command
line's `--report FILE`) cuts nothing, and its long values run past the column instead of widening it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

from pybpfdsl.bpf.abi import STACK_SIZE
from pybpfdsl.bpf.interpreter import XdpContext

if TYPE_CHECKING:
    from pybpfdsl.verify.equivalence.counterexample import Counterexample, Run

SCREEN_LINES: Final = 40
"""Most lines of the short report."""
CELL: Final = 64
"""Widest value column; in the short report, longer values are cut to it."""
KEYS_SHOWN: Final = 8
"""Map entries listed per map in the short report (those where the runs differ first)."""
FULL_REPORT_HINT: Final = "all of it: the proof's `.report(full=True)`, or `pybpfdsl prove A.o B.o --report FILE`"


def _cut(text: str, full: bool, limit: int = CELL) -> str:
    if full or len(text) <= limit:
        return text
    return f"{text[:limit - 16]}… ({len(text):,} chars)"


def _hex(data: bytes, full: bool, limit: int = CELL) -> str:
    text = data.hex()
    if full or len(text) <= limit:
        return text
    return f"{text[:limit - 16]}… ({len(data):,} bytes)"


def _key(key: bytes) -> str:
    """A map key as a person writes it: an integer for scalar widths (little-endian), else hex."""
    return str(int.from_bytes(key, "little")) if len(key) in (1, 2, 4, 8) else key.hex()


def _first_difference(x: bytes, y: bytes) -> int:
    for i, (p, q) in enumerate(zip(x, y)):
        if p != q:
            return i
    return min(len(x), len(y))


# -- which map entries to show ---------------------------------------------------------------------


def map_keys(cex: Counterexample, name: str) -> tuple[list[bytes], int]:
    """The keys of map `name` worth showing: those the counterexample's inputs give (the keys the
    programs read), those a run changed, and those where the runs differ, the last first; and how
    many other keys either run holds (each unchanged, the same in both)."""
    initial = cex.maps.get(name, {})
    filler = cex.filled.get(name, frozenset())
    runs = [r.maps.get(name, {}) for r in cex.runs or () if not r.error]
    array = name in cex.arrays

    def changed(entries: dict[bytes, bytes], k: bytes) -> bool:
        before, after = initial.get(k), entries.get(k)
        if array and before is None:  # an element not in the inputs starts as zero
            return after is not None and any(after)
        return before != after

    held = set(initial).union(*runs)
    differ = [k for k in held if len(runs) == 2 and runs[0].get(k) != runs[1].get(k)]
    touched = [k for k in held if (k in initial and k not in filler) or any(changed(r, k) for r in runs)]
    shown = sorted(differ, key=lambda k: k[::-1]) + sorted(set(touched) - set(differ), key=lambda k: k[::-1])
    others = (cex.arrays[name] if array else len(held)) - len(shown)
    return shown, max(others, 0)


# -- text ------------------------------------------------------------------------------------------


def _inputs(cex: Counterexample, full: bool) -> Iterator[str]:
    yield f"  packet ({len(cex.packet)} bytes): {_hex(cex.packet, full, 2 * CELL) or '(empty)'}"
    for name, all_entries in cex.maps.items():
        filler = cex.filled.get(name, frozenset())
        entries = {k: v for k, v in all_entries.items() if k not in filler}
        if filler:
            yield f"  initial map {name}: {len(filler):,} entries fill it (zero values under keys not looked at)"
        if not entries:
            continue
        items = sorted(entries.items(), key=lambda kv: kv[0][::-1])
        listed = items if full else items[:KEYS_SHOWN]
        text = ", ".join(f"[{_key(k)}] = {_hex(v, full)}" for k, v in listed)
        if len(listed) < len(items):
            text += f", … {len(items) - len(listed)} more"
        rest = (f"the other {cex.arrays[name] - len(items):,} elements zero" if name in cex.arrays
                else "no other keys")
        yield f"  initial map {name}: {text} ({rest})"
    for name, data in cex.sections.items():
        if name in cex.sections_b:  # the two objects start apart here
            yield f"  initial {name} ({cex.labels[0]}): {_hex(data, full, 2 * CELL)}"
            yield f"  initial {name} ({cex.labels[1]}): {_hex(cex.sections_b[name], full, 2 * CELL)}"
        else:
            yield f"  initial {name}: {_hex(data, full, 2 * CELL)}"
    for side, frames in cex.stacks.items():
        for frame, data in enumerate(frames):
            shown = ", ".join(f"r10{i - STACK_SIZE}: {b:02x}" for i, b in enumerate(data) if b)
            who = "bytecode" if cex.labels[0] == "IR" else cex.labels[side]
            yield f"  never-written stack ({who}, frame {frame}): {_cut(shown, full, 2 * CELL) or 'zeros'}"
    if cex.prandom or cex.ktime:
        yield f"  helper results: prandom={cex.prandom} ktime={cex.ktime} cpu={cex.cpu}"
    if cex.ctx != XdpContext():
        yield (f"  xdp_md: ingress_ifindex={cex.ctx.ingress_ifindex} rx_queue_index={cex.ctx.rx_queue_index}"
               f" egress_ifindex={cex.ctx.egress_ifindex}")


def _rows(cex: Counterexample, full: bool) -> list[tuple[str, str, str]]:
    """(output, side A, side B) for every output, as text."""
    from pybpfdsl.verify.equivalence.counterexample import action_name

    assert cex.runs is not None
    a, b = cex.runs
    rows = [("action", action_name(a), action_name(b))]
    if a.error or b.error:
        return rows
    if a.packet == b.packet:
        same = "(as received)" if a.packet == cex.packet else _hex(a.packet, full)
        rows.append(("packet", same, same))
    else:
        at = _first_difference(a.packet, b.packet)
        rows.append((f"packet from byte {at}", _hex(a.packet[at:], full), _hex(b.packet[at:], full)))
    for name in dict.fromkeys([*a.maps, *b.maps]):
        keys, others = map_keys(cex, name)
        if not full and len(keys) > KEYS_SHOWN:
            note = f"… {len(keys) - KEYS_SHOWN} more keys read or written"
            rows.append((f"map {name}", note, note))
            keys = keys[:KEYS_SHOWN]
        for k in keys:
            va, vb = a.maps.get(name, {}).get(k), b.maps.get(name, {}).get(k)
            rows.append((f"map {name}[{_key(k)}]", "(absent)" if va is None else _hex(va, full),
                         "(absent)" if vb is None else _hex(vb, full)))
        if others:
            what = "elements unchanged (zero)" if name in cex.arrays else "entries unchanged"
            note = f"{others:,} other {what}"
            rows.append((f"map {name}", note, note))
        elif not keys:
            rows.append((f"map {name}", "(empty)", "(empty)"))
    for name in dict.fromkeys([*a.sections, *b.sections]):
        x, y = a.sections.get(name, b""), b.sections.get(name, b"")
        if name in cex.sections_b:  # started apart: `..` where neither program changed its byte
            sx, sy = cex.sections.get(name, x), cex.sections_b[name]
            kept = {i for i in range(min(len(x), len(y), len(sx), len(sy))) if x[i] != sx[i] or y[i] != sy[i]}
            text = ["".join(f"{d[i]:02x}" if i in kept else ".." for i in range(len(d))) for d in (x, y)]
            rows.append((f"{name} (changed bytes)", _cut(text[0], full), _cut(text[1], full)))
            continue
        at = _first_difference(x, y) if x != y and not full else 0
        label = f"{name} from byte {at}" if at else name
        rows.append((label, _hex(x[at:], full), _hex(y[at:], full)))
    for name in dict.fromkeys([*a.rings, *b.rings]):
        ra, rb = a.rings.get(name, []), b.rings.get(name, [])
        for i in range(max(len(ra), len(rb))):
            rows.append((f"ring buffer {name}[{i}]", _hex(ra[i], full) if i < len(ra) else "(none)",
                         _hex(rb[i], full) if i < len(rb) else "(none)"))
        if not ra and not rb:
            rows.append((f"ring buffer {name}", "(no records)", "(no records)"))
    return rows


def _table(cex: Counterexample, full: bool, room: int) -> list[str]:
    rows = _rows(cex, full)
    dropped = 0
    if not full and len(rows) + 1 > room:
        # Keep the rows that differ (and the action) ahead of those that agree, in their order.
        first = [i for i, r in enumerate(rows) if r[1] != r[2] or r[0] == "action"]
        later = [i for i in range(len(rows)) if i not in set(first)]
        keep = set((first + later)[:max(room - 2, 1)])
        dropped = len(rows) - len(keep)
        rows = [r for i, r in enumerate(rows) if i in keep]
    name_width = min(max([len(r[0]) for r in rows] + [20]), 36)
    width = min(max([len(r[1]) for r in rows] + [len(cex.labels[0]), 10]), CELL)
    out = [f"  {'':{name_width}} {cex.labels[0]:<{width}} | {cex.labels[1]}"]
    for name, x, y in rows:
        out.append(f"{' ' if x == y else '*'} {name:<{name_width}} {x:<{width}} | {y}".rstrip())
    if dropped:
        out.append(f"  … {dropped} more rows ({FULL_REPORT_HINT})")
    return out


def render_text(cex: Counterexample, full: bool) -> str:
    """The report; at most `SCREEN_LINES` lines of at most a few hundred characters unless `full`."""
    said = ", ".join(cex.differing) or "see below"
    if cex.runs is not None and cex.reproduced:
        head = [f"counterexample ({cex.kind}): {_cut(said, full, 2 * CELL)}"]
    else:
        head = [f"the solver's candidate ({cex.kind}: {_cut(said, full, 2 * CELL)}) is not a counterexample: "
                f"{cex.replay_note()}"]
    inputs = list(_inputs(cex, full))
    tail = []
    if cex.runs is not None:
        tail.append(f"  replay {'reproduces' if cex.reproduced else 'does NOT reproduce'} the difference")
    tail.append(f"  diverges at {_cut(cex.source_line(), full, 3 * CELL)}")
    if not full and len(inputs) > SCREEN_LINES // 3:
        dropped = len(inputs) - SCREEN_LINES // 3 + 1
        inputs = [*inputs[:SCREEN_LINES // 3 - 1], f"  … {dropped} more input lines ({FULL_REPORT_HINT})"]
    table = _table(cex, full, SCREEN_LINES - len(head) - len(inputs) - len(tail)) if cex.runs is not None else []
    return "\n".join([*head, *inputs, *table, *tail])


# -- JSON ------------------------------------------------------------------------------------------


def _run_json(cex: Counterexample, label: str, run: Run) -> dict[str, Any]:
    from pybpfdsl.verify.equivalence.counterexample import action_name

    out: dict[str, Any] = {"label": label, "action": run.action, "action_name": action_name(run),
                           "error": run.error or None, "replayed": run.replayed}
    if run.error:
        return out
    out["packet"] = run.packet.hex()
    maps: dict[str, Any] = {}
    for name, entries in run.maps.items():
        keys, others = map_keys(cex, name)
        maps[name] = {"entries": {k.hex(): entries[k].hex() for k in keys if k in entries},
                      "other_entries_unchanged": others}
    out["maps"] = maps
    out["globals"] = {name: data.hex() for name, data in run.sections.items()}
    out["ring_buffers"] = {name: [r.hex() for r in records] for name, records in run.rings.items()}
    return out


def as_json(cex: Counterexample) -> dict[str, Any]:
    """The counterexample as JSON-ready data (bytes as hex; map keys as hex of their bytes)."""
    line = cex.diverging_line
    return {
        "kind": cex.kind,
        "reproduced": cex.reproduced,
        "replay": cex.replay_note(),
        "differing": cex.differing,
        "differing_outputs": cex.differing_outputs(),
        "inputs": {
            "packet": cex.packet.hex(),
            "maps": {name: {"entries": {k.hex(): v.hex() for k, v in entries.items()
                                        if k not in cex.filled.get(name, ())},
                            "other_keys": "zero" if name in cex.arrays else "absent",
                            "filler_entries": len(cex.filled.get(name, ())),
                            **({"elements": cex.arrays[name]} if name in cex.arrays else {})}
                     for name, entries in cex.maps.items()},
            "globals": {name: data.hex() for name, data in cex.sections.items()},
            **({"globals_b": {name: data.hex() for name, data in cex.sections_b.items()}} if cex.sections_b else {}),
            "stacks": {cex.labels[side] if cex.labels[0] != "IR" else "bytecode": [f.hex() for f in frames]
                       for side, frames in cex.stacks.items()},
            "helpers": {"prandom": cex.prandom, "ktime": cex.ktime, "cpu": cex.cpu},
            "xdp_md": {"ingress_ifindex": cex.ctx.ingress_ifindex, "rx_queue_index": cex.ctx.rx_queue_index,
                       "egress_ifindex": cex.ctx.egress_ifindex},
        },
        "runs": [] if cex.runs is None else [_run_json(cex, label, run) for label, run in zip(cex.labels, cex.runs)],
        "diverges_at": {"file": cex.source_file, "line": line, "text": cex.source_text(line) if line else ""},
    }
