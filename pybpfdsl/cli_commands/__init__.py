"""The commands of the `pybpfdsl` command line (see `pybpfdsl.cli`), one module per group."""
