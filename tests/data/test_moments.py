"""Column moments merged across chunks: the same as numpy on the whole column, to summation rounding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bounds import sum_tolerance
from marina.data.moments import ColumnMoments, of_columns


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


def test_moments_of_columns_match_numpy_and_round_trip_through_json() -> None:
    rng = np.random.default_rng(4)
    columns = rng.normal(size=(2, 1_000)) * 1e3 + 0.1
    columns[rng.random(columns.shape) < 0.05] = np.nan
    moments = of_columns(columns)
    for j in range(2):
        column = columns[j][~np.isnan(columns[j])]
        bound = sum_tolerance(column.size) * (np.abs(column).mean() + column.std())
        assert abs(moments.mean[j] - column.mean()) <= bound
        assert abs(np.sqrt(moments.m2[j] / column.size) - column.std()) <= bound
        assert (moments.minimum[j], moments.maximum[j]) == (column.min(), column.max())
    back = ColumnMoments.from_dict(json.loads(json.dumps(moments.to_dict())), 2)
    assert all(
        getattr(back, key).tobytes() == getattr(moments, key).tobytes()
        for key in ("count", "mean", "m2", "minimum", "maximum", "missing")
    )
