"""Generated LRU maps never come near the point where the kernel's approximate LRU evicts (seeds 444 and
610 made 22 and 23 keys in 16-entry maps, and the kernel's state differed from pure Python's). The
regime the generator keeps to, at most 8 scalar or 16 struct keys in maps of 16 or 64 entries, is
checked against the kernel in tests/differential/test_lru_within_room.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pybpfdsl import LruHashMap
from pybpfdsl.lang.structs import Struct
from pybpfdsl.testing import deterministic
from tests.generated.checks import load_module
from tests.generated.program_strategy import RandomChooser, generate_program, packet_batch

SEEDS = [*range(80), 444, 610]


def test_an_lru_map_in_a_generated_program_holds_few_keys() -> None:
    """Every key each LRU map holds after any of the benchmark's 24 packets, in pure Python: at most 8
    values of a scalar key (maps of 16 entries or more), 16 of a Struct key (64 entries or more)."""
    crowded = []
    with tempfile.TemporaryDirectory(prefix="pybpfdsl-generated-") as path:
        for seed in SEEDS:
            gen = generate_program(RandomChooser(seed))
            if "LruHashMap" not in gen.constructs:
                continue
            module, _ = load_module(gen.source, Path(path), f"lru_{seed}")
            maps = {name: m for name, m in vars(module).items() if isinstance(m, LruHashMap)}
            keys: dict[str, set[object]] = {name: set() for name in maps}
            with deterministic(seed, clock_ns=seed * 1_000_003, clock_step_ns=977):
                for packet in packet_batch(RandomChooser(10**9 + seed), 24):  # as generated_corpus.py
                    getattr(module, gen.function)(packet)
                    for name, m in maps.items():
                        keys[name] |= set(m.raw_keys())
            for name, m in maps.items():
                struct = isinstance(m.key_type, type) and issubclass(m.key_type, Struct)
                most, room = (16, 64) if struct else (8, 16)
                if len(keys[name]) > most or m.max_entries < room:
                    crowded.append(f"seed {seed}: {name}: {len(keys[name])} keys in {m.max_entries} entries")
    assert not crowded, "\n".join(crowded)
