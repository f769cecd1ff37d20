"""One fixed binary tree over numbered leaves, folded by whoever holds which leaves.

A value per leaf (its moments, its hash) is combined along the binary tree of the leaf numbers: node
(level L, index i) covers leaves [i·2^L, (i+1)·2^L) and is `merge(left child, right child)`; a leaf
without rows is `None`, and merging with `None` gives the other side unchanged. The root therefore does
not depend on who folded which range: one pod pushing every leaf, or shards each pushing a contiguous
range of leaves and handing their unfinished nodes (at most two per level) to a reduce that pushes them
in order, reach the same root with the same rounding, since the merges happen in the same order on the
same operands. This is what makes a dataset's statistics and version independent of chunks, parts and
parallelism.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Value = TypeVar("Value")


@dataclass
class DyadicFold(Generic[Value]):
    """Nodes pushed in order of their position, siblings merged as soon as both are there."""

    merge: Callable[[Value, Value], Value]
    stack: list[tuple[int, int, Value | None]] = field(default_factory=list)

    def push(self, level: int, index: int, value: Value | None) -> None:
        """The node covering leaves [index·2^level, (index+1)·2^level): it must start where the last one
        ended (leaves without rows are pushed too, as None)."""
        if self.stack:
            last_level, last_index, _ = self.stack[-1]
            if (last_index + 1) << last_level != index << level:
                raise ValueError(f"node ({level}, {index}) does not follow node ({last_level}, {last_index})")
        self.stack.append((level, index, value))
        while len(self.stack) >= 2:
            (left_level, left_index, left), (right_level, right_index, right) = self.stack[-2:]
            if left_level != right_level or left_index % 2 or right_index != left_index + 1:
                break
            del self.stack[-2:]
            self.stack.append((left_level + 1, left_index // 2, self._merged(left, right)))

    def push_all(self, nodes: Iterable[tuple[int, int, Value | None]]) -> None:
        for level, index, value in nodes:
            self.push(level, index, value)

    @property
    def end(self) -> int:
        """The leaf after the last one pushed (0 when nothing was)."""
        if not self.stack:
            return 0
        level, index, _ = self.stack[-1]
        return (index + 1) << level

    def root(self) -> Value | None:
        """The whole tree's value: the unfinished nodes folded from the right (their right neighbours are
        leaves without rows, so each still merges with everything to its right as the full tree would)."""
        result: Value | None = None
        for _, _, value in reversed(self.stack):
            result = self._merged(value, result)
        return result

    def _merged(self, left: Value | None, right: Value | None) -> Value | None:
        if left is None:
            return right
        if right is None:
            return left
        return self.merge(left, right)
