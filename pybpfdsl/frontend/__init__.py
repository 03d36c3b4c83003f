"""The frontend: a typed Python function to checked SSA IR, in named stages (entry: `lower.lower_function`).

    resolve      resolve.py      names, globals, state objects, helpers, annotations → Python objects
    type-check   typecheck/      the typed, folded AST (`type_facts.TypedFunction`), before any IR:
                                 flow-sensitive, by the type rules and constant folding of fold.py
    emit         emit/           SSA IR by concept: statements, loops, conditions, expressions,
                                 arithmetic, calls, state_access, packet_access, builtin_calls
    (shared)     source.py, values.py, flow.py (SSA construction), operators.py, type_facts.py
    pure Python  evaluate/       runs the function from its typed AST with the DSL's semantics (no
                                 type rules of its own, no lowering needed: `lower.typecheck_function`)
"""
