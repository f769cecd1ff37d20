"""Column moments merged across chunks: the same as numpy on the whole column, to summation rounding."""

from __future__ import annotations

import numpy as np
import pytest

from bounds import sum_tolerance
from marina.data.moments import BlockSums, ColumnMoments


@pytest.mark.parametrize("chunk", [1, 7, 100, 10_000])
def test_merged_moments_match_numpy(chunk: int) -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(loc=[0.0, 1e6, -3.0], scale=[1.0, 1e-2, 5.0], size=(2_000, 3))
    values[rng.random(values.shape) < 0.1] = np.nan
    moments = ColumnMoments(3)
    for start in range(0, len(values), chunk):
        moments.add(values[start : start + chunk])
    present = ~np.isnan(values)
    assert moments.count.tolist() == present.sum(axis=0).tolist()
    assert moments.missing.tolist() == (~present).sum(axis=0).tolist()
    for j in range(3):
        column = values[present[:, j], j]
        bound = sum_tolerance(column.size) * (abs(column.mean()) + column.std())
        assert abs(moments.mean[j] - column.mean()) <= bound
        assert abs(np.sqrt(moments.m2[j] / column.size) - column.std()) <= bound
        assert (moments.minimum[j], moments.maximum[j]) == (column.min(), column.max())


def test_filled_moments_equal_the_moments_of_the_filled_column() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(500, 2))
    values[rng.random(values.shape) < 0.2] = np.nan
    moments = ColumnMoments(2)
    moments.add(values)
    fills = np.array([10.0, -1.0])
    filled = moments.filled(fills, moments.missing)
    expected = np.where(np.isnan(values), fills, values)
    bound = sum_tolerance(500) * (np.abs(expected).mean(axis=0) + expected.std(axis=0))
    assert np.all(np.abs(filled.mean - expected.mean(axis=0)) <= bound)
    assert np.all(np.abs(np.sqrt(filled.m2 / 500) - expected.std(axis=0)) <= bound)
    assert filled.maximum[0] == 10.0 and filled.count.tolist() == [500, 500]


def test_block_sums_give_the_same_bits_whatever_the_chunks() -> None:
    rng = np.random.default_rng(4)
    values = rng.normal(size=(10_000, 2)) * 1e3 + 0.1
    values[rng.random(values.shape) < 0.05] = np.nan
    results = set()
    for chunk in (1, 333, 4096, 10_000):
        sums = BlockSums(2)
        for start in range(0, len(values), chunk):
            sums.add(values[start : start + chunk])
        results.add(sums.means().tobytes())
    assert len(results) == 1
    # Two summation orders of the same present values: each within the rounding of a sum of 10,000 terms.
    present = ~np.isnan(values)
    bound = 2 * sum_tolerance(10_000) * np.array([np.abs(values[present[:, j], j]).mean() for j in range(2)])
    assert np.all(np.abs(np.frombuffer(results.pop()) - np.nanmean(values, axis=0)) <= bound)
