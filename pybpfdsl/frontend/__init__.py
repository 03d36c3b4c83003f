"""The frontend: a typed Python function to checked SSA IR, in named stages (entry: `lower.lower_function`).

    resolve      resolve.py      names, globals, state objects, helpers, annotations → Python objects
    type-check   fold.py         type rules and constant folding over scalars (no IR)
                 type_facts.py   what the checker found per expression, for pure-Python mode
    emit         emit/           SSA IR by concept: statements, loops, conditions, expressions,
                                 arithmetic, calls, state_access, packet_access, builtin_calls
    (shared)     source.py, values.py, flow.py (SSA construction), operators.py
    pure Python  evaluate.py     runs the function from its AST with the DSL's semantics, its types
                                 read from type_facts (no type rules of its own)
"""
