"""`python -m pybpfdsl`: the same command line as the `pybpfdsl` script."""

from pybpfdsl.cli import main

raise SystemExit(main())
