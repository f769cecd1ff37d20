"""Running statistics merged batch by batch equal numpy's over all rows; the exposition is well formed."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bounds import sum_tolerance
from marina.data.distribution import Reference
from marina.model.artifact import ModelArtifact
from marina.serving import metrics
from marina.serving.model import ServedModel


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
    (family,) = [
        f
        for f in text_string_to_metric_families(metrics.render(requests, None).decode())
        if f.name == "marina_http_request_duration_seconds"
    ]
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets["0.0001"] == 1  # le is inclusive
    assert buckets["0.0005"] == 2
    assert buckets["0.0025"] == 3
    assert buckets["5.0"] == 3
    assert buckets["+Inf"] == 4
    (count,) = [s.value for s in family.samples if s.name.endswith("_count")]
    assert count == 4


def test_label_values_are_escaped() -> None:
    requests = metrics.RequestMetrics()
    requests.observe('a"b\\c\nd', 200, 0.001)
    text = metrics.render(requests, None).decode()
    assert 'marina_http_requests_total{endpoint="a\\"b\\\\c\\nd",status="200"} 1.0' in text.splitlines()


def test_the_exposition_parses_back_to_the_same_series() -> None:
    """Every family the server exports, read back by the reference parser: names, types, values."""
    reference = Reference.of(np.arange(40.0).reshape(20, 2), np.arange(20.0))
    served = ServedModel.from_artifact(
        ModelArtifact([1.0, 2.0], 0.5, ["a", "b"], reference=reference.to_dict(["a", "b"])), "m", "memory"
    )
    model = metrics.ModelMetrics(served)
    model.record(np.array([[1.0, 2.0], [3.0, 50.0]]), np.array([5.5, 103.5]))
    requests = metrics.RequestMetrics()
    requests.observe("v2_infer", 200, 0.003)
    requests.refuse(408)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render(requests, model).decode())}
    kinds = {name: family.type for name, family in families.items() if name.startswith("marina_")}
    assert kinds["marina_http_requests"] == "counter"
    assert kinds["marina_http_request_duration_seconds"] == "histogram"
    assert kinds["marina_feature_bin_rows"] == "counter"
    assert kinds["marina_feature_mean"] == "gauge"
    assert "process_cpu_seconds" in families  # the process collector rides along
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert values[("marina_http_connections_refused_total", (("status", "408"),))] == 1
    assert values[("marina_feature_max", (("feature", "b"), ("model", "m")))] == 50.0
    top = len(reference.features[1].counts) - 1  # 50 is beyond every training value of b
    assert (
        values[("marina_feature_bin_rows_total", (("bin", str(top)), ("feature", "b"), ("model", "m")))] == 1
    )
    shares = [v for (name, labels), v in values.items() if name == "marina_feature_reference_bin_ratio"]
    assert sum(shares) == pytest.approx(2.0)  # each feature's shares sum to 1
