"""The typed SSA IR between the frontend and the backend.

`nodes` declares the values, operations (each with its text form and type rule), blocks and programs;
`syntax` reads and writes one record's text by its declaration; `printer` and `parser` turn a whole
program into text and back; `check` and `rules` enforce well-formedness; `builder` is what frontends
append with; `interpret` runs a program; `types` holds the struct and map-reference types.
"""
