"""Running statistics merged batch by batch equal numpy's over all rows; the exposition is well formed."""

from __future__ import annotations

import numpy as np
import pytest

from bounds import sum_tolerance
from marina.server import metrics


def running_tolerances(batches: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """How far merged running moments may be from numpy's over the concatenation (mean, variance).

    Means: each side sums n values (numpy's axis-0 reduction row by row, Chan's batch means plus
    one rounded update per merge), so each is within E = sum_tolerance(n)·max|x|. Variances: the
    sums of squares round by sum_tolerance(n) relative (deviations from a mean within a factor 2 of
    the values subtract exactly, Sterbenz) and a mean off by E adds E² (Σ(x - m)² is stationary at
    the mean). Chan's merge term δ²·na·nb/n sees δ off by ≤ 2E: ≤ 4E·|δ|·w + 4E²·w per merge, and
    |δ|·√w ≤ √M2 = √n·s (s the standard deviation) with √w ≤ √n, so ≤ 4E·n·s + 4E²·n: (4E·s + 4E²)
    on the variance, per merge after the first (merges ≤ non-empty batches).
    """
    everything = np.concatenate(batches)
    n = len(everything)
    magnitude = np.abs(everything).max(axis=0)
    variance = everything.var(axis=0)
    error = sum_tolerance(n) * magnitude
    merges = max(sum(1 for b in batches if len(b)) - 1, 0)
    mean = 2 * error
    spread = (
        2 * sum_tolerance(n) * variance + error**2 + merges * (4 * error * np.sqrt(variance) + 4 * error**2)
    )
    return mean, spread


@pytest.mark.parametrize(
    ("batch_sizes", "offset", "shift"),
    [
        ([1] * 50, 1e6, 0.0),  # a large offset: summation rounding dominates
        ([1000, 1, 7000, 3, 9000], 1e6, 0.0),
        ([0, 5, 0, 20000], 1e6, 0.0),
        # batches whose means differ by a few standard deviations, no offset: the bound is ~1e-9
        # relative, so a missing merge term δ²·na·nb/n or n - 1 for n (5e-5 here) would fail
        ([3000, 1, 9000, 8000], 0.0, 10.0),
    ],
    ids=["single-rows", "uneven", "empty-batches", "shifted-batches"],
)
def test_running_statistics_equal_numpy(batch_sizes: list[int], offset: float, shift: float) -> None:
    rng = np.random.default_rng(7)
    batches = [rng.normal(offset + shift * (i % 3 - 1), 3.0, size=(n, 4)) for i, n in enumerate(batch_sizes)]
    statistics = metrics.RunningStatistics(4)
    for batch in batches:
        statistics.add(batch)
    everything = np.concatenate(batches)
    summary = statistics.summary()
    assert statistics.count == len(everything)
    mean_tolerance, variance_tolerance = running_tolerances(batches)
    assert np.all(np.abs(summary["mean"] - everything.mean(axis=0)) <= mean_tolerance)
    assert np.all(np.abs(summary["variance"] - everything.var(axis=0)) <= variance_tolerance)
    np.testing.assert_array_equal(summary["min"], everything.min(axis=0))
    np.testing.assert_array_equal(summary["max"], everything.max(axis=0))


def test_statistics_before_any_row_are_nan() -> None:
    summary = metrics.RunningStatistics(2).summary()
    assert all(np.isnan(values).all() for values in summary.values())


def test_latency_histogram_is_cumulative_with_le_upper_bounds() -> None:
    requests = metrics.RequestMetrics()
    for seconds in (0.0001, 0.0003, 0.002, 10.0):
        requests.observe("v2_infer", 200, seconds)
    lines = list(requests.render())
    bucket = 'marina_http_request_duration_seconds_bucket{endpoint="v2_infer",status="200",le="%s"} %d'
    assert bucket % ("0.0001", 1) in lines  # le is inclusive
    assert bucket % ("0.0005", 2) in lines
    assert bucket % ("0.0025", 3) in lines
    assert bucket % ("5.0", 3) in lines
    assert bucket % ("+Inf", 4) in lines
    assert 'marina_http_request_duration_seconds_count{endpoint="v2_infer",status="200"} 4' in lines


def test_label_values_are_escaped() -> None:
    assert metrics.labels(model='a"b\\c\nd') == '{model="a\\"b\\\\c\\nd"}'
