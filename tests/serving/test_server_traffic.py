"""The traffic counters a canary's analysis reads (`GET /v2/models/<m>/traffic`): only inference
requests count, server errors apart, and the predictions' sums give their mean and spread back."""

from __future__ import annotations

import numpy as np
import pytest
from server_helpers import Client

from marina.serving.model import ServedModel

TRAFFIC = "/v2/models/diabetes/traffic"
# Sums of squares of a handful of values near their origin: rounding is far below 1e-9 of them.
RELATIVE = 1e-9


def test_inference_requests_and_their_predictions_are_counted(client: Client, served: ServedModel) -> None:
    rows = [[0.1, 0.2, 0.3], [1.0, -1.0, 2.0], [0.0, 0.0, 0.0]]
    predictions = client.post("/v1/models/diabetes:predict", json={"instances": rows}).json()["predictions"]
    client.post("/v1/models/diabetes:predict", json={"instances": [[1.0, 2.0]]})  # 400: the client's fault
    client.get("/v2/models/diabetes")  # not an inference: not counted
    document = client.get(TRAFFIC).json()
    assert (document["name"], document["version"]) == ("diabetes", served.version)
    assert (document["requests"], document["errors"]) == (2, 0)
    assert sum(document["latency"]) == 2 and len(document["latency"]) == len(document["latencyBounds"]) + 1
    counted = document["predictions"]
    assert counted["count"] == 3 and counted["origin"] == predictions[0]
    values = np.array(predictions)
    mean = counted["origin"] + counted["sum"] / counted["count"]
    assert mean == pytest.approx(values.mean(), rel=RELATIVE)
    variance = counted["sumSquares"] / 3 - (counted["sum"] / 3) ** 2
    assert variance == pytest.approx(values.var(), rel=RELATIVE)


def test_server_errors_count_as_errors(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: ServedModel, features: np.ndarray) -> np.ndarray:
        raise RuntimeError("a bug")

    monkeypatch.setattr(ServedModel, "predict", broken)
    assert (
        client.post("/v1/models/diabetes:predict", json={"instances": [[0.1, 0.2, 0.3]]}).status_code == 500
    )
    document = client.get(TRAFFIC).json()
    assert (document["requests"], document["errors"], document["predictions"]["count"]) == (1, 1, 0)
