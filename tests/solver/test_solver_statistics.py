"""Streaming fits: chunked statistics equal the in-memory fit, shards merge exactly, JSON round trip."""

from __future__ import annotations

import itertools
import json
import tracemalloc

import numpy as np
import pytest
from solver_data import Dataset, synthetic

from marina.solver import LinearRegressor, SufficientStatistics

PENALTIES = [
    {"penalty": "none"},
    {"penalty": "l2", "alpha": 2.0},
    {"penalty": "l1", "alpha": 0.05, "tol": 1e-12, "max_iter": 100_000},
    {"penalty": "elasticnet", "alpha": 0.05, "l1_ratio": 0.3, "tol": 1e-12, "max_iter": 100_000},
]


def chunked(X: np.ndarray, y: np.ndarray, size: int) -> SufficientStatistics:
    stats = SufficientStatistics(n_features=X.shape[1])
    for start in range(0, len(y), size):
        stats.update(X[start : start + size], y[start : start + size])
    return stats


@pytest.mark.parametrize("params", PENALTIES, ids=lambda p: p["penalty"])
@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("chunk", [1, 37, 250])
def test_streaming_equals_in_memory(dataset: Dataset, params: dict, standardize: bool, chunk: int) -> None:
    X, y = dataset
    whole = LinearRegressor(standardize=standardize, **params).fit(X, y)
    streamed = LinearRegressor(standardize=standardize, **params).fit_statistics(chunked(X, y, chunk))
    scale = max(1.0, float(np.abs(whole.coef_).max()))
    np.testing.assert_allclose(streamed.coef_, whole.coef_, rtol=0, atol=1e-10 * scale)
    assert streamed.intercept_ == pytest.approx(whole.intercept_, rel=1e-10, abs=1e-10 * scale)


def test_moments_match_numpy(dataset: Dataset) -> None:
    X, y = dataset
    stats = chunked(X, y, 100)
    centred = X - X.mean(axis=0)
    np.testing.assert_allclose(stats.xx, centred.T @ centred, rtol=1e-12, atol=1e-12 * np.abs(stats.xx).max())
    np.testing.assert_allclose(stats.xy, centred.T @ (y - y.mean()), rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(stats.gram, X.T @ X, rtol=1e-12)
    np.testing.assert_allclose(stats.xty, X.T @ y, rtol=1e-12)
    np.testing.assert_allclose(stats.x_sum, X.sum(axis=0), rtol=0, atol=1e-12 * np.abs(X).sum())
    assert stats.yty == pytest.approx(float(y @ y), rel=1e-12)
    assert stats.n_samples == len(y)


@pytest.mark.parametrize("n_shards", [2, 3, 7])
def test_merged_shards_equal_whole(n_shards: int) -> None:
    """Shards of very different sizes and means (sorted data) combine exactly by addition."""
    X, y = synthetic(n=900, d=6, seed=5)
    order = np.argsort(X[:, 0])  # each shard sees a different region: means differ a lot
    X, y = X[order], y[order]
    cuts = np.sort(np.random.default_rng(1).choice(np.arange(1, len(y)), n_shards - 1, replace=False))
    bounds = [0, *cuts.tolist(), len(y)]
    shards = [SufficientStatistics.from_arrays(X[a:b], y[a:b]) for a, b in itertools.pairwise(bounds)]
    merged = shards[0]
    for shard in shards[1:]:
        merged = merged + shard
    whole = SufficientStatistics.from_arrays(X, y)
    assert merged.n_samples == whole.n_samples
    for name in ("x_mean", "xx", "xy"):
        np.testing.assert_allclose(getattr(merged, name), getattr(whole, name), rtol=1e-11, atol=1e-9)
    for params in PENALTIES:
        a = LinearRegressor(**params).fit_statistics(merged)
        b = LinearRegressor(**params).fit(X, y)
        np.testing.assert_allclose(a.coef_, b.coef_, rtol=0, atol=1e-9 * max(1.0, np.abs(b.coef_).max()))


def test_merge_leaves_operands_unchanged_and_accepts_empty() -> None:
    X, y = synthetic(n=100, d=3)
    a = SufficientStatistics.from_arrays(X[:50], y[:50])
    before = a.to_dict()
    empty = SufficientStatistics(n_features=3)
    assert (a + empty).to_dict() == before
    assert (empty + a).to_dict() == before
    a.merge(SufficientStatistics.from_arrays(X[50:], y[50:]))
    assert a.to_dict() == before


def test_json_round_trip_is_exact(dataset: Dataset) -> None:
    X, y = dataset
    stats = chunked(X, y, 64)
    restored = SufficientStatistics.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert restored.to_dict() == stats.to_dict()
    for name in ("x_mean", "xx", "xy"):
        assert np.array_equal(getattr(restored, name), getattr(stats, name))
    assert (restored.n_samples, restored.y_mean, restored.yy) == (stats.n_samples, stats.y_mean, stats.yy)
    a = LinearRegressor(penalty="l2").fit_statistics(stats)
    b = LinearRegressor(penalty="l2").fit_statistics(restored)
    assert np.array_equal(a.coef_, b.coef_) and a.intercept_ == b.intercept_


def test_large_offsets_keep_full_precision() -> None:
    """Features at 1e9 ± 1: the naive XᵀX - n·x̄x̄ᵀ would lose every digit; the shifted update keeps them."""
    rng = np.random.default_rng(7)
    X = 1e9 + rng.standard_normal((4000, 4))
    centred = X - X.mean(axis=0)
    stats = chunked(X, rng.standard_normal(4000), 500)
    np.testing.assert_allclose(stats.xx, centred.T @ centred, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 1e6], ids=["read-in-place", "shifted-blocks"])
@pytest.mark.parametrize("penalty", ["none", "l1"])
def test_fit_never_copies_x(offset: float, penalty: str) -> None:
    """The in-memory fit streams X in small blocks: its extra memory is a small fraction of X."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((40_000, 50)) + offset
    y = rng.standard_normal(40_000)
    tracemalloc.start()
    try:
        LinearRegressor(penalty=penalty, alpha=0.01).fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.2 * X.nbytes


def test_streaming_memory_is_one_chunk_plus_d_squared() -> None:
    rng = np.random.default_rng(9)
    chunk, d = 20_000, 40
    stats = SufficientStatistics(d)
    X_chunk = np.empty((chunk, d))
    tracemalloc.start()
    try:
        for _ in range(5):
            rng.standard_normal(out=X_chunk)
            X_chunk += 1e5  # force the shifted path: the one that needs a buffer
            stats.update(X_chunk, X_chunk[:, 0] * 2.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stats.n_samples == 5 * chunk
    assert peak <= 0.5 * (X_chunk.nbytes + d * d * 8)  # beyond the caller's chunk itself


@pytest.mark.parametrize("params", PENALTIES, ids=lambda p: p["penalty"])
def test_partial_fit_equals_fit(params: dict) -> None:
    X, y = synthetic(n=500, d=5, seed=6)
    model = LinearRegressor(**params)
    for start in range(0, 500, 120):
        model.partial_fit(X[start : start + 120], y[start : start + 120])
    whole = LinearRegressor(**params).fit(X, y)
    assert model.statistics_ is not None and model.statistics_.n_samples == 500
    np.testing.assert_allclose(model.coef_, whole.coef_, rtol=0, atol=1e-10 * np.abs(whole.coef_).max())
