"""The size and speed benchmark (issue 15 §3, `make bench`): every example and SimpleBPF's three Table 1
programs, compiled by pybpfdsl and written by hand in C for clang, compared on size (BPF slots, JIT
instructions), work (instructions executed on the hot-path packet) and time (ns per packet in the kernel).

Rooms: `programs` (what is measured: the DSL program, its C twin, its packets), `clang_build` (the twins
at each clang configuration), `state` (reading and seeding the maps and globals of either object),
`agreement` (the twins against the DSL program, action for action and state for state), `measure`
(the numbers), `report` (table, JSON, chart). `benchmarks/size_speed.py` runs it all.
"""
