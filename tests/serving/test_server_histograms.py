"""Serving rows counted into the reference bins per window, over the endpoint and in /metrics."""

from __future__ import annotations

import numpy as np
import pytest
from server_helpers import FEATURES, Client

from marina.data.distribution import Reference, bin_counts
from marina.model.artifact import ModelArtifact
from marina.serving.app import ServingApp
from marina.serving.histograms import WindowedHistograms
from marina.serving.model import ServedModel

COEFFICIENTS = np.array([1.5, -2.0, 0.25])


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reference() -> Reference:
    x = np.random.default_rng(5).normal(size=(400, 3))
    return Reference.of(x, x @ COEFFICIENTS + 3.0, bins=5)


def test_counts_equal_binning_all_rows_at_once_whatever_the_batches(reference: Reference) -> None:
    rng = np.random.default_rng(6)
    batches = [rng.normal(size=(n, 3)) for n in (1, 7, 5000, 4000, 2)]  # crosses FLUSH_ROWS
    counter = WindowedHistograms(reference, clock=Clock(1000.0))
    for batch in batches:
        counter.add(batch, batch @ COEFFICIENTS)
    everything = np.concatenate(batches)
    (window,) = counter.windows()
    assert window.rows == len(everything)
    for j, histogram in enumerate(reference.features):
        np.testing.assert_array_equal(window.features[j], bin_counts(histogram.edge_array, everything[:, j]))
    predicted = bin_counts(reference.prediction.edge_array, everything @ COEFFICIENTS)
    np.testing.assert_array_equal(window.prediction, predicted)


def test_windows_align_to_the_clock_and_rotate_keeping_the_last_ones(reference: Reference) -> None:
    clock = Clock(119.0)
    counter = WindowedHistograms(reference, window_seconds=60.0, keep=2, clock=clock)
    row = np.zeros((1, 3))
    counter.add(row, row @ COEFFICIENTS)  # window [60, 120)
    clock.now = 121.0
    counter.add(row, row @ COEFFICIENTS)  # [120, 180): the pending row of [60, 120) stays there
    counter.add(row, row @ COEFFICIENTS)
    clock.now = 300.5  # [180, 240) and [240, 300) had no rows: no empty windows are made up
    counter.add(row, row @ COEFFICIENTS)
    clock.now = 365.0
    windows = counter.windows()
    assert [(w.start, w.end, w.rows) for w in windows] == [
        (120.0, 180.0, 2),
        (300.0, 360.0, 1),
        (360.0, 420.0, 0),
    ]
    assert counter.total.rows == 4


def test_the_distribution_endpoint_reports_windows_beside_the_reference(
    artifact: ModelArtifact, reference: Reference
) -> None:
    with_reference = ModelArtifact(**{**artifact.__dict__, "reference": reference.to_dict(FEATURES)})
    client = Client(ServingApp(ServedModel.from_artifact(with_reference, "diabetes", "memory")))
    rows = [[0.1, 0.2, 0.3], [5.0, -5.0, 0.0]]
    assert client.post("/v1/models/diabetes:predict", json={"instances": rows}).status_code == 200
    body = client.get("/v2/models/diabetes/distribution").json()
    assert body["reference"] == reference.to_dict(FEATURES) and body["windowSeconds"] == 60.0
    (window,) = body["windows"]
    assert window["rows"] == 2 and window["complete"] is False
    assert window["start"] % 60 == 0 and window["end"] == window["start"] + 60
    for j, name in enumerate(FEATURES):
        expected = bin_counts(reference.features[j].edge_array, np.array(rows)[:, j])
        assert window["features"][name] == expected.tolist()
    metrics = client.get("/metrics").text
    assert 'marina_feature_bin_rows_total{bin="0",feature="age",model="diabetes"}' in metrics
    top = len(reference.prediction.counts) - 1
    assert f'marina_prediction_bin_rows_total{{bin="{top}",model="diabetes"}}' in metrics


def test_a_model_without_a_reference_says_so(client: Client) -> None:
    response = client.get("/v2/models/diabetes/distribution")
    assert response.status_code == 404
    assert "has no reference distribution" in response.json()["error"]
