"""Seeded row hashes: the split, folds and samples are the same whatever the chunks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marina.data import sampling


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5])
def test_hash_split_fraction_is_binomial(fraction: float) -> None:
    """Each row is in test independently with probability f: the count is within 6 binomial sigmas."""
    rows = 200_000
    chosen = int(sampling.in_test_split(0, rows, seed=7, fraction=fraction).sum())
    sigma = math.sqrt(rows * fraction * (1 - fraction))
    assert abs(chosen - rows * fraction) <= 6 * sigma


def test_decisions_depend_on_the_row_not_the_chunk() -> None:
    whole = sampling.in_test_split(0, 10_000, seed=3, fraction=0.3)
    pieces = np.concatenate(
        [sampling.in_test_split(s, 1_000, seed=3, fraction=0.3) for s in range(0, 10_000, 1_000)]
    )
    assert np.array_equal(whole, pieces)
    assert not np.array_equal(whole, sampling.in_test_split(0, 10_000, seed=4, fraction=0.3))


def test_folds_are_balanced_and_independent_of_the_split() -> None:
    folds = sampling.folds(0, 100_000, seed=1, k=5)
    counts = np.bincount(folds, minlength=5)
    assert counts.sum() == 100_000 and abs(counts - 20_000).max() <= 6 * math.sqrt(100_000 * 0.2 * 0.8)
    test = sampling.in_test_split(0, 100_000, seed=1, fraction=0.2)
    # Independent salts: the folds of test rows are as balanced as everyone's.
    share_sigma = math.sqrt(0.2 * 0.8 / test.sum())  # a fold's share among the test rows, if independent
    assert abs(np.bincount(folds[test], minlength=5) / test.sum() - 0.2).max() <= 6 * share_sigma


def test_bottom_sample_is_the_same_whatever_the_chunking() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5_000, 3))
    whole = sampling.BottomSample(3, seed=9, size=300)
    whole.add(np.arange(5_000), values)
    chunked = sampling.BottomSample(3, seed=9, size=300)
    for start in range(0, 5_000, 777):
        stop = min(start + 777, 5_000)
        chunked.add(np.arange(start, stop), values[start:stop])
    assert whole.values().shape == (300, 3)
    assert np.array_equal(whole.values(), chunked.values())


def test_a_sample_of_fewer_rows_than_its_size_keeps_them_all() -> None:
    sample = sampling.BottomSample(2, seed=1, size=100)
    sample.add(np.arange(10), np.arange(20.0).reshape(10, 2))
    assert sorted(sample.values()[:, 0].tolist()) == list(np.arange(0.0, 20.0, 2.0))
