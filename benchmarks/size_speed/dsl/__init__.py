"""DSL versions of SimpleBPF's three Table 1 programs (AppNet logging and fault injection), one module each."""
