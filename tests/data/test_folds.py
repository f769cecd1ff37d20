"""The fixed binary tree over numbered leaves: the same root whoever folds which leaves."""

from __future__ import annotations

import pytest

from marina.data.folds import DyadicFold


def joined(left: str, right: str) -> str:
    return f"({left}{right})"


def one_pod(leaves: list[str | None]) -> str | None:
    fold: DyadicFold[str] = DyadicFold(joined)
    for index, leaf in enumerate(leaves):
        fold.push(0, index, leaf)
    return fold.root()


@pytest.mark.parametrize("cuts", [[5], [1, 6], [2, 4, 8], [3, 3, 9]])
def test_shards_handing_their_stacks_on_reach_one_pods_root(cuts: list[int]) -> None:
    leaves: list[str | None] = [str(k) if k % 4 != 2 else None for k in range(11)]
    reduce: DyadicFold[str] = DyadicFold(joined)
    for low, high in zip([0, *cuts], [*cuts, len(leaves)], strict=True):
        shard: DyadicFold[str] = DyadicFold(joined)
        for index in range(low, high):
            shard.push(0, index, leaves[index])
        reduce.push_all(shard.stack)
    assert reduce.root() == one_pod(leaves) == "((((01)3)((45)7))(89))"


def test_a_node_out_of_order_is_refused() -> None:
    fold: DyadicFold[str] = DyadicFold(joined)
    fold.push(0, 0, "a")
    with pytest.raises(ValueError, match="does not follow"):
        fold.push(0, 2, "c")
