"""Payload logs on the cluster: a ModelDeployment with spec.logging at sampleRate 1 writes every answered
row, from both serving pods, as Parquet in its namespace's logs area within the flush age, each row naming
the model that answered and what the client was told; feedback sent by request id lands beside it and
joins back, so the live error computed from the two is the one computed from the client's own records."""

from __future__ import annotations

import io
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tests.e2e.test_e2e_pipeline import first_answer

from bounds import EPS, SAFETY
from marina import storage

NAME = "logged"
REQUESTS = 3_000
LABELLED = 1_000
FLUSH_SECONDS = 5
FIXED_COLUMNS = ("id", "row", "time", "model", "track", "prediction")


def infer(url: str, request_id: str, row: list[float]) -> tuple[str, float]:
    """One v2 request with the client's own id; the id the server says it answered, and the prediction."""
    tensor = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}
    body = {"id": request_id, "inputs": [tensor]}
    request = urllib.request.Request(
        f"{url}/v2/models/{NAME}/infer", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        header = response.headers["X-Request-Id"]
        answer = json.load(response)
    assert answer["id"] == header == request_id
    return header, float(answer["outputs"][0]["data"][0])


def send_feedback(url: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/v2/models/{NAME}/feedback", json.dumps(entries).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
        return dict(json.load(response))


def read_stream(prefix: str) -> pa.Table | None:
    """Every Parquet part under prefix/date=*/, as one table (None before the first part)."""
    tables = [
        pq.read_table(io.BytesIO(storage.read_bytes(storage.join(prefix, day, part))))
        for day in storage.list_folder(prefix)
        for part in storage.list_folder(storage.join(prefix, day))
    ]
    return pa.concat_tables(tables, promote_options="default") if tables else None


def test_every_answered_row_and_its_feedback_are_logged_in_the_namespaces_area(
    marina: Any, storage_env: None
) -> None:
    logging = {"sampleRate": 1.0, "flushSeconds": FLUSH_SECONDS, "flushRows": 1_000}
    marina.apply_ready(*marina.pipeline(NAME, logging=logging), timeout=300)
    served = marina.status("modeldeployment", NAME)
    url = marina.service_url(NAME)
    rng = np.random.default_rng(5)
    rows = rng.normal(0.0, 0.05, size=(REQUESTS, 10))
    first_answer(marina, url, NAME, rows[0].tolist(), timeout=60)

    with ThreadPoolExecutor(4) as pool:
        told = dict(pool.map(lambda i: infer(url, f"req-{i}", rows[i].tolist()), range(REQUESTS)))
    targets = {f"req-{i}": float(150 + 50 * rng.standard_normal()) for i in range(LABELLED)}
    accepted = send_feedback(url, [{"id": key, "target": value} for key, value in targets.items()])
    assert accepted == {"accepted": LABELLED}

    area = f"s3://marina/logs/{marina.namespace}/{NAME}/"

    def logged() -> pa.Table | None:
        table = read_stream(storage.join(area, "predictions"))
        if table is None:
            return None
        ours = table.filter(pc.starts_with(table.column("id"), "req-"))
        return ours if ours.num_rows >= REQUESTS else None

    # Parts are flushed every FLUSH_SECONDS by each pod; a minute is many flush ages.
    predictions = marina.wait_for("all the answered rows in the payload log", logged, timeout=90, every=2)
    ids = predictions.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == REQUESTS  # each request once, whichever pod answered it
    assert set(predictions.column("model").to_pylist()) == {served["model"]["sha256"]}
    assert set(predictions.column("track").to_pylist()) == {"stable"}
    logged_predictions = dict(zip(ids, predictions.column("prediction").to_pylist(), strict=True))
    assert logged_predictions == told  # what the client was told, to the bit
    inputs = [name for name in predictions.column_names if name not in FIXED_COLUMNS]
    assert len(inputs) == rows.shape[1]  # one column per raw input, in the model's order
    sent = np.column_stack([predictions.column(name).to_numpy() for name in inputs])
    order = [int(key.removeprefix("req-")) for key in ids]
    np.testing.assert_array_equal(sent, rows[order])  # the values sent, to the bit

    feedback = marina.wait_for(
        "the feedback in the log", lambda: read_stream(storage.join(area, "feedback")), timeout=90, every=2
    )
    labels = zip(feedback.column("id").to_pylist(), feedback.column("target").to_pylist(), strict=True)
    joined = {key: (logged_predictions[key], target) for key, target in labels}
    assert set(joined) == set(targets)
    live = np.array([prediction - target for prediction, target in joined.values()])
    by_hand = np.array([told[key] - targets[key] for key in targets])
    # The same differences, summed in another order: rmse agrees to the rounding of n squares' sum.
    rmse, expected = float(np.sqrt(np.mean(live**2))), float(np.sqrt(np.mean(by_hand**2)))
    assert abs(rmse - expected) <= SAFETY * LABELLED * EPS * expected
