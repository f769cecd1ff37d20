"""Streaming fits: chunked statistics equal the in-memory fit, shards merge exactly, JSON round trip."""

from __future__ import annotations

import itertools
import json
import tracemalloc

import numpy as np
import pytest
from solver_data import Dataset, synthetic

from bounds import (
    condition,
    duality_gap_tolerance,
    intercept_tolerance,
    normal_equations_tolerance,
    product_tolerance,
    scaled_error,
)
from marina.solver import LinearRegressor, SufficientStatistics, _threads

PENALTIES = [
    {"penalty": "none"},
    {"penalty": "l2", "alpha": 2.0},
    {"penalty": "l1", "alpha": 0.05, "tol": 1e-12, "max_iter": 100_000},
    {"penalty": "elasticnet", "alpha": 0.05, "l1_ratio": 0.3, "tol": 1e-12, "max_iter": 100_000},
]


def gram_tolerance(X: np.ndarray, params: dict) -> float:
    """Two fits from differently accumulated statistics: the Gram's rounding (n·eps, scaled) times κ²,
    plus twice what the duality-gap stopping rule leaves for the coordinate-descent penalties."""
    kappa, (n, d) = condition(X), X.shape
    tolerance = normal_equations_tolerance(kappa, n, d)
    if "tol" in params:
        tolerance += 2 * duality_gap_tolerance(params["tol"], kappa)
    return tolerance


def assert_same_fit(X: np.ndarray, a: LinearRegressor, b: LinearRegressor, tolerance: float) -> None:
    assert scaled_error(X, a.coef_, b.coef_) <= tolerance
    assert abs(a.intercept_ - b.intercept_) <= intercept_tolerance(X, b.coef_, b.intercept_, tolerance)


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
    assert_same_fit(X, streamed, whole, gram_tolerance(X, params))


def test_moments_match_numpy(dataset: Dataset) -> None:
    X, y = dataset
    assert_moments(X, y, chunked(X, y, 100))


LAYOUTS = {
    "rows": np.ascontiguousarray,
    "columns": np.asfortranarray,
    "view": lambda X: np.column_stack([X, X[:, :1]])[:, :-1],  # rows of a wider table, as a split's x
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("offset", [0.0, 1e3])
@pytest.mark.parametrize("shares", [1, 3])
def test_moments_every_layout(
    layout: str, offset: float, shares: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row-major, column-major and strided X, with and without shifted columns, over several blocks and
    a partial last one, in the calling thread or in three shared among threads: the same moments within
    the same bounds (they hold for any order of summation)."""
    monkeypatch.setattr(_threads, "share_count", lambda rows, width: shares)
    X, y = synthetic(n=20_000, d=40, offset=offset, seed=3)
    laid_out = LAYOUTS[layout](X)
    assert_moments(X, y, SufficientStatistics.from_arrays(laid_out, y))


def assert_moments(X: np.ndarray, y: np.ndarray, stats: SufficientStatistics) -> None:
    centred, y_centred = X - X.mean(axis=0), y - y.mean()
    # Both sides are computed products: each carries up to the product bound (stats from shifted rows).
    shifted = X - stats.x_shift
    assert np.all(np.abs(stats.xx - centred.T @ centred) <= 2 * product_tolerance(shifted, shifted))
    shifted_y = y - stats.y_shift
    assert np.all(
        np.abs(stats.xy - centred.T @ y_centred) <= 2 * product_tolerance(shifted, shifted_y[:, None])[:, 0]
    )
    assert np.all(np.abs(stats.gram - X.T @ X) <= 2 * product_tolerance(X, X))
    assert np.all(np.abs(stats.xty - X.T @ y) <= 2 * product_tolerance(X, y[:, None])[:, 0])
    ones = np.ones((len(y), 1))
    assert np.all(np.abs(stats.x_sum - X.sum(axis=0)) <= 2 * product_tolerance(X, ones)[:, 0])
    assert abs(stats.yty - float(y @ y)) <= 2 * product_tolerance(y[:, None], y[:, None])[0, 0]
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
    # Chan's merge is exact in exact arithmetic; in floating point each side stays within the
    # product bound of the centred cross-products (shifted by the whole set's shift).
    shifted = np.column_stack([X - whole.x_shift, y - whole.y_shift])
    bound = 2 * product_tolerance(shifted, shifted)
    assert np.all(np.abs(merged.xx - whole.xx) <= bound[:-1, :-1])
    assert np.all(np.abs(merged.xy - whole.xy) <= bound[:-1, -1])
    assert np.all(np.abs(merged.x_mean - whole.x_mean) <= np.diag(bound)[:-1] ** 0.5 / len(y))
    for params in PENALTIES:
        a = LinearRegressor(**params).fit_statistics(merged)
        b = LinearRegressor(**params).fit(X, y)
        assert_same_fit(X, a, b, gram_tolerance(X, params))


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
    # Without the shift the error would be n·eps·|X|ᵀ|X| ≈ n·eps·1e18, far above the spread of 1.
    shifted = X - stats.x_shift
    assert np.all(np.abs(stats.xx - centred.T @ centred) <= 2 * product_tolerance(shifted, shifted))


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
    assert_same_fit(X, model, whole, gram_tolerance(X, params))
