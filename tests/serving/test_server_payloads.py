"""Request ids, payload logs and feedback: rows written as Parquet to a real MinIO and read back, what
happens when storage is unreachable, and the flush on SIGTERM."""

from __future__ import annotations

import asyncio
import io
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from server_helpers import FEATURES, Client, ServerProcess

from marina import storage
from marina.model.artifact import ModelArtifact
from marina.serving import payloads
from marina.serving.app import ServingApp
from marina.serving.model import ServedModel
from marina.serving.payloads import LogSettings
from minio_server import MinioServer, free_port

INFER = "/v2/models/diabetes/infer"
PREDICT = "/v1/models/diabetes:predict"
FEEDBACK = "/v2/models/diabetes/feedback"
NEVER = 3600.0  # a flush age no test waits for: parts are written when a test flushes


def _prefix(name: str) -> str:
    return f"s3://marina-logs/logs/ns/{name}/"


def _read(prefix: str, stream: str) -> pa.Table:
    """Every part of one stream under `prefix`, as one table (empty: no part, or no bucket yet: nothing
    was ever written there, which depends on the tests that ran before in this process's MinIO)."""
    try:
        parts = [o.uri for o in storage.list_objects(f"{prefix}{stream}/")]
    except storage.StorageNotFound:
        return pa.table({})
    tables = [pq.read_table(io.BytesIO(storage.read_bytes(uri))) for uri in parts]
    return pa.concat_tables(tables) if tables else pa.table({})


def _v2(rows: np.ndarray, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": list(rows.shape), "data": rows.ravel().tolist()}
        ]
    }
    if request_id is not None:
        body["id"] = request_id
    return body


def _answered(response: httpx.Response) -> list[float]:
    body = response.json()
    predictions: list[float] = body["predictions"] if "predictions" in body else body["outputs"][0]["data"]
    return predictions


async def _send(app: ServingApp, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://marina") as client:
        return [await client.post(path, json=body) for path, body in requests]


@pytest.fixture
def logging_app(served: ServedModel) -> Iterator[ServingApp]:
    app = ServingApp(
        served, logging=LogSettings(_prefix("md"), flush_rows=100_000, flush_seconds=NEVER, pod="p1")
    )
    yield app
    app.close()


# ---------------------------------------------------------------- request ids


def test_v2_echoes_the_clients_id_in_body_and_header(client: Client) -> None:
    response = client.post(INFER, json=_v2(np.array([[1.0, 2.0, 3.0]]), "req-7"))
    assert response.json()["id"] == "req-7" and response.headers["x-request-id"] == "req-7"


def test_without_an_id_the_body_is_unchanged_and_the_header_carries_a_new_one(client: Client) -> None:
    first = client.post(INFER, json=_v2(np.array([[1.0, 2.0, 3.0]])))
    second = client.post(PREDICT, json={"instances": [[1.0, 2.0, 3.0]]})
    assert "id" not in first.json() and set(second.json()) == {"predictions"}
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and ids[0] != ids[1]


@pytest.mark.parametrize("path", [INFER, PREDICT, "/v1/models/diabetes:explain"])
def test_an_incoming_x_request_id_is_honoured(client: Client, path: str) -> None:
    body = _v2(np.array([[1.0, 2.0, 3.0]])) if path == INFER else {"instances": [[1.0, 2.0, 3.0]]}
    response = client.post(path, json=body, headers={"X-Request-Id": "from-the-gateway"})
    assert response.status_code == 200 and response.headers["x-request-id"] == "from-the-gateway"


# ---------------------------------------------------------------- payload logs in real MinIO


def test_every_answered_row_lands_in_parquet_with_its_inputs_and_prediction(
    s3_env: MinioServer, logging_app: ServingApp, served: ServedModel
) -> None:
    rng = np.random.default_rng(11)
    requests: list[tuple[str, dict[str, Any]]] = []
    sent: list[np.ndarray] = []
    for index in range(2000):
        rows = rng.normal(5, 3, size=(1 + index % 3, 3))  # one to three rows a request
        sent.append(rows)
        if index % 2:
            requests.append((INFER, _v2(rows, f"r{index}" if index % 4 == 1 else None)))
        else:
            requests.append((PREDICT, {"instances": rows.tolist()}))
    responses = asyncio.run(_send(logging_app, requests))
    assert {r.status_code for r in responses} == {200}
    logging_app.payloads.flush()  # type: ignore[union-attr]

    table = _read(_prefix("md"), payloads.PREDICTIONS).sort_by([("time", "ascending"), ("row", "ascending")])
    expected_rows = sum(len(rows) for rows in sent)
    assert table.num_rows == expected_rows
    assert table.column_names == ["id", "row", "time", "model", "track", *FEATURES, "prediction"]
    by_id = {r.headers["x-request-id"]: rows for r, rows in zip(responses, sent, strict=True)}
    answered = {r.headers["x-request-id"]: _answered(r) for r in responses}
    assert len(by_id) == 2000 and "r1" in by_id  # the client's id where it sent one
    logged = table.to_pydict()
    for position, (request_id, row) in enumerate(zip(logged["id"], logged["row"], strict=True)):
        values = [logged[name][position] for name in FEATURES]
        assert values == by_id[request_id][row].tolist()  # float64 both ways: exact
        assert logged["prediction"][position] == answered[request_id][row]  # what the client was told
    assert set(logged["model"]) == {served.sha256} and set(logged["track"]) == {"stable"}
    day = time.strftime("%Y-%m-%d", time.gmtime())
    parts = storage.list_folder(f"{_prefix('md')}{payloads.PREDICTIONS}/")
    assert parts == [f"date={day}"]

    # Ground truth for a quarter of the requests, in two posts, joins back on id (and row)
    truth = [{"id": i, "row": 0, "target": float(n)} for n, i in enumerate(list(by_id)[::4])]
    for half in (truth[: len(truth) // 2], {"feedback": truth[len(truth) // 2 :]}):
        answer = Client(logging_app).post(FEEDBACK, json=half)
        assert answer.status_code == 202
    logging_app.payloads.flush()  # type: ignore[union-attr]
    feedback = _read(_prefix("md"), payloads.FEEDBACK)
    assert feedback.column_names == ["id", "row", "time", "target"] and feedback.num_rows == len(truth)
    joined = feedback.join(table, keys=["id", "row"], join_type="inner")
    assert joined.num_rows == len(truth)
    targets = dict(zip(joined.column("id").to_pylist(), joined.column("target").to_pylist(), strict=True))
    assert targets == {item["id"]: item["target"] for item in truth}


def test_sampling_keeps_a_share_of_requests_decided_by_id(s3_env: MinioServer, served: ServedModel) -> None:
    settings = LogSettings(_prefix("sampled"), sample_rate=0.25, flush_rows=100_000, flush_seconds=NEVER)
    app = ServingApp(served, logging=settings)
    ids = [f"q{n}" for n in range(2000)]
    requests = [(INFER, _v2(np.array([[1.0, 2.0, 3.0]] * 2), i)) for i in ids]
    asyncio.run(_send(app, requests))
    app.close()
    table = _read(_prefix("sampled"), payloads.PREDICTIONS)
    kept = set(table.column("id").to_pylist())
    assert kept == {i for i in ids if payloads.sampler(0.25)(i)}  # the same ids on every pod
    assert table.num_rows == 2 * len(kept)  # a request's rows together
    # binomial(2000, 0.25): standard deviation 19.4; six of them either side
    assert abs(len(kept) - 500) < 6 * 19.4


def test_a_model_with_categories_logs_the_raw_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(storage.LOCAL_STORE_ENV, str(tmp_path))
    inputs = [
        {"name": "age", "type": "number"},
        {"name": "colour", "type": "category", "categories": ["blue", "red"]},
        {"name": "time", "type": "number"},  # named like a fixed column
    ]
    artifact = ModelArtifact(
        coefficients=[1.0, 10.0, 20.0, 0.5],
        intercept=1.0,
        feature_names=["age", "colour=blue", "colour=red", "time"],
        dataset={"name": "diabetes"},
        inputs=inputs,
    )
    served = ServedModel.from_artifact(artifact, "diabetes", "memory")
    app = ServingApp(served, logging=LogSettings(_prefix("cat"), flush_rows=1000, flush_seconds=NEVER))
    rows = [[30, "red", 2], [40, "purple", 4], [50, None, 6]]
    client = Client(app)
    assert client.post(PREDICT, json={"instances": rows}).status_code == 200
    app.close()
    table = _read(_prefix("cat"), payloads.PREDICTIONS)
    assert table.column_names == [
        "id",
        "row",
        "time",
        "model",
        "track",
        "age",
        "colour",
        "input.time",
        "prediction",
    ]
    assert table.column("colour").to_pylist() == ["red", "purple", None]  # unseen and missing as sent
    assert table.column("input.time").to_pylist() == [2.0, 4.0, 6.0]
    assert table.column("prediction").to_pylist() == [52.0, 43.0, 54.0]


# ---------------------------------------------------------------- feedback


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([{"target": 1.0}], "feedback[0].id"),
        ([{"id": "a", "target": 1.0}, {"id": "", "target": 2.0}], "feedback[1].id"),
        ([{"id": "a", "target": "1.5"}], "feedback[0].target must be a finite number"),
        ([{"id": "a", "target": True}], "feedback[0].target"),
        ([{"id": "a", "target": 10**400}], "infinity"),  # refused by the JSON codec already
        ([{"id": "a", "target": 1.0, "row": -1}], "feedback[0].row"),
        ([], "no entries"),
        ({"rows": []}, "JSON array"),
        ([{"id": "a", "target": 1.0}] * (payloads.FEEDBACK_MAX_ROWS + 1), "at most 10000"),
    ],
)
def test_bad_feedback_is_a_400_naming_the_entry_and_field(
    logging_app: ServingApp, body: Any, words: str
) -> None:
    response = Client(logging_app).post(FEEDBACK, json=body)
    assert response.status_code == 400 and words in response.json()["error"]
    assert logging_app.payloads is not None and logging_app.payloads.buffers[payloads.FEEDBACK].rows == 0


def test_non_finite_feedback_is_refused(logging_app: ServingApp) -> None:
    response = Client(logging_app).post(FEEDBACK, content=b'[{"id": "a", "target": NaN}]')
    assert response.status_code == 400


def test_feedback_without_a_payload_log_is_a_404_saying_why(client: Client) -> None:
    response = client.post(FEEDBACK, json=[{"id": "a", "target": 1.0}])
    assert response.status_code == 404 and "spec.logging.sampleRate" in response.json()["error"]


def test_feedback_is_refused_not_dropped_when_its_buffer_is_full(served: ServedModel) -> None:
    settings = LogSettings("s3://b/p/", flush_rows=100, flush_seconds=NEVER)
    log = payloads.PayloadLog(settings, served, write=lambda uri, data: None)  # never started: nothing drains
    app = ServingApp(served)
    app.payloads = log
    batch = [{"id": f"f{n}", "target": 1.0} for n in range(payloads.FEEDBACK_MAX_ROWS)]
    client = Client(app)
    assert [client.post(FEEDBACK, json=batch).status_code for _ in range(3)] == [202, 202, 503]
    assert log.buffers[payloads.FEEDBACK].rows == 2 * payloads.FEEDBACK_MAX_ROWS


# ---------------------------------------------------------------- storage down, shutdown


def test_with_storage_unreachable_requests_answer_at_once_and_drops_are_counted(
    served: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(storage.ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv(storage.ACCESS_KEY_ENV, "nobody")
    monkeypatch.setenv(storage.SECRET_KEY_ENV, "nothing-at-all")
    settings = LogSettings(_prefix("down"), flush_rows=100, flush_seconds=NEVER, attempts=1)
    app = ServingApp(served, logging=settings)
    body = _v2(np.array([[1.0, 2.0, 3.0]]))
    durations = []

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://marina") as client:
            for _ in range(1000):
                started = time.perf_counter()
                response = await client.post(INFER, json=body)
                durations.append(time.perf_counter() - started)
                assert response.status_code == 200

    asyncio.run(run())
    log = app.payloads
    assert log is not None
    buffer = log.buffers[payloads.PREDICTIONS]
    counts = buffer.counts
    # Rows that do not fit the buffer (2 x 100 rows, besides the part the writer is trying) are dropped at
    # once, the writer's parts fail: every row is accounted for, as one or the other, and none written
    deadline = time.monotonic() + 60
    while counts[payloads.DROPPED] + counts[payloads.FAILED] + buffer.rows != 1000:
        assert time.monotonic() < deadline, counts
        time.sleep(0.05)
    assert counts[payloads.WRITTEN] == 0
    # No request waited for storage: each within a bound far below one connection attempt's retries
    assert max(durations) < 0.5, max(durations)
    text = Client(app).get("/metrics").text
    for outcome in (payloads.DROPPED, payloads.FAILED):
        shown = f'marina_payload_rows_total{{outcome="{outcome}",stream="predictions"}} {counts[outcome]:.1f}'
        assert shown in text
    app.payloads = None  # its writer may still be trying the closed port; a daemon thread, left behind


def test_a_shutdown_with_storage_down_keeps_to_its_budget_and_counts_the_rows(
    served: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On shutdown each part gets one try, which must be one connection: the storage client's own retries
    took 6.2 s a try, so the writer outlived the 4 s budget and its rows went uncounted."""
    monkeypatch.setenv(storage.ENDPOINT_ENV, f"http://127.0.0.1:{free_port()}")  # nothing listens
    monkeypatch.setenv(storage.ACCESS_KEY_ENV, "nobody")
    monkeypatch.setenv(storage.SECRET_KEY_ENV, "nothing-at-all")
    log = payloads.PayloadLog(LogSettings(_prefix("shutdown"), flush_rows=1000, flush_seconds=NEVER), served)
    log.start()
    for n in range(10):
        log.add(f"request-{n}", np.array([[float(n), 2.0, 3.0]]), np.array([1.0]))
    log.close(payloads.SHUTDOWN_SECONDS)
    assert log._thread is not None and not log._thread.is_alive()
    counts = log.buffers[payloads.PREDICTIONS].counts
    assert (counts[payloads.FAILED], counts[payloads.WRITTEN]) == (10, 0)
    assert log.failed_writes == 1


def test_sigterm_writes_the_pending_rows(
    s3_env: MinioServer, artifact_file: tuple[str, str], artifact: ModelArtifact
) -> None:
    prefix = _prefix("sigterm")
    flags = ["--log-prefix", prefix, "--log-flush-rows", "100000", "--log-flush-seconds", "3600"]
    server = ServerProcess(*artifact_file, *flags, "--track", "canary")
    try:
        server.wait_for_line("Uvicorn running on")
        with httpx.Client(base_url=server.base) as client:
            for n in range(300):
                rows = [[float(n), 2.0, 3.0]]
                assert client.post("/v1/models/dm:predict", json={"instances": rows}).status_code == 200
        assert _read(prefix, payloads.PREDICTIONS).num_rows == 0  # nothing written yet: all pending
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        server.stop()
    table = _read(prefix, payloads.PREDICTIONS)
    assert table.num_rows == 300
    assert sorted(table.column("age").to_pylist()) == [float(n) for n in range(300)]
    assert set(table.column("track").to_pylist()) == {"canary"}
    assert set(table.column("model").to_pylist()) == {artifact_file[1]}
