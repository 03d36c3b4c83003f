"""Optimisation passes over the IR (issue 15): each module is one pass, IR in, equivalent IR out.

`pipeline.optimize` runs them in order; `verify/equivalence/ir_equivalence.py` proves each pass's
output equivalent to its input. Passes may import `ir` and `lang` only.
"""
