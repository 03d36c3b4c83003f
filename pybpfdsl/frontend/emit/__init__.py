"""Stage 3 of the frontend, emit: SSA IR from the function's AST, one module per concept over `base`."""
