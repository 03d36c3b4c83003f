"""Building IR: fresh values, blocks, and an insertion point that frontends append to."""

from __future__ import annotations

from pybpfdsl.ir.nodes import Block, Instr, Terminator, Value
from pybpfdsl.ir.types import IRType


class IRBuilder:
    """Appends instructions to the current block and hands out fresh values and block names."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self._next_value = 0
        self._next_block = 0
        self.current: Block | None = None
        self.line = 0

    def value(self, type_: IRType, hint: str = "") -> Value:
        v = Value(self._next_value, type_, hint)
        self._next_value += 1
        return v

    def new_block(self, hint: str = "bb") -> Block:
        block = Block(f"{hint}{self._next_block}")
        self._next_block += 1
        self.blocks.append(block)
        return block

    def set_block(self, block: Block | None) -> None:
        self.current = block

    @property
    def terminated(self) -> bool:
        """True when there is no open block to append to (code after a return is unreachable)."""
        return self.current is None or self.current.terminator is not None

    def emit(self, instr: Instr) -> Value:
        """Append an instruction that has a result and return it."""
        self.append(instr)
        result = instr.result
        assert result is not None
        return result

    def append(self, instr: Instr) -> None:
        assert self.current is not None and self.current.terminator is None, "append to a closed block"
        self.current.instrs.append(instr)

    def terminate(self, term: Terminator) -> None:
        assert self.current is not None and self.current.terminator is None, "block already terminated"
        self.current.terminator = term
        self.current = None

    def remove_unreachable(self) -> None:
        """Drop blocks no path from the entry reaches (they arise after early returns), and order the rest
        in reverse postorder, so the printed IR reads in execution order."""
        if not self.blocks:
            return
        by_name = {b.name: b for b in self.blocks}
        seen: set[str] = set()
        postorder: list[Block] = []
        stack: list[tuple[Block, int]] = [(self.blocks[0], 0)]
        seen.add(self.blocks[0].name)
        while stack:
            block, index = stack.pop()
            edges = block.terminator.edges() if block.terminator is not None else ()
            if index < len(edges):
                stack.append((block, index + 1))
                target = edges[index].target
                if target not in seen:
                    seen.add(target)
                    stack.append((by_name[target], 0))
            else:
                postorder.append(block)
        self.blocks = list(reversed(postorder))
