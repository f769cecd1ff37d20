"""Payload logs on the cluster: a ModelDeployment with spec.logging at sampleRate 1 answers 50,000 requests
while its model is switched to another TrainingJob's in the middle (a rolling update: the old pods drain
and write what they hold on SIGTERM). Exactly 50,000 rows land as Parquet in its namespace's logs area
within the flush age of the last answer, each request once, each row naming the model that answered it
(the v2 response's model_version) and holding what the client sent and was told, to the bit. Feedback
sent by request id for 10,000 of them lands beside them, and the live rmse the operator reports for the
serving model is the one computed by hand from the logs joined with that feedback.

The run's figures (requests per second, the rollout, the time from the last answer to the last row) are
printed (`pytest -s`)."""

from __future__ import annotations

import io
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tests.e2e.test_e2e_canary import training_job
from tests.e2e.test_e2e_pipeline import first_answer

from bounds import EPS, SAFETY
from marina import storage

NAME = "logged"
OTHER = "other"  # a second TrainingJob on the same Dataset (another alpha): the model switched to
REQUESTS = 50_000
SWITCH_AFTER = 15_000  # answered requests before the switch
#: The last requests wait until the rolling update is done, so that some are always answered after it (a
#: slow update once outlasted all 35,000 requests after the switch in CI).
AFTER_ROLLOUT = 5_000
LABELLED = 10_000
WORKERS = 8
FLUSH_SECONDS = 5
FLUSH_ROWS = 1_000
CHECK_SECONDS = 10  # the performance check's interval (the contract's least)
POLL_SECONDS = 0.5
#: A pod's own time to build one part and put it into MinIO, beyond the flush age (a part of 1,000 rows
#: is about 60 kB; writing one took well under a second on the loaded 2-core test machine).
WRITE_SECONDS = 2.0
FIXED_COLUMNS = ("id", "row", "time", "model", "track", "prediction")


class Answer(NamedTuple):
    id: str  # the id the server said it answered (body and header)
    prediction: float
    version: str  # model_version: the answering model's short content address
    done: float  # time.monotonic() when the answer was read


def infer(url: str, request_id: str, row: list[float]) -> Answer:
    """One v2 request with the client's own id, each on a new connection (so the Service spreads them
    over the pods, and none is sent on a connection a draining pod closes)."""
    tensor = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}
    body = {"id": request_id, "inputs": [tensor]}
    request = urllib.request.Request(
        f"{url}/v2/models/{NAME}/infer", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        header = response.headers["X-Request-Id"]
        answer = json.load(response)
    assert answer["id"] == header == request_id
    return Answer(header, float(answer["outputs"][0]["data"][0]), answer["model_version"], time.monotonic())


def send_feedback(url: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/v2/models/{NAME}/feedback", json.dumps(entries).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return dict(json.load(response))


class Stream:
    """One stream's Parquet parts under prefix/date=*/, each read once: the table of all read so far."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.parts: dict[str, pa.Table] = {}

    def table(self) -> pa.Table | None:
        for day in storage.list_folder(self.prefix):
            for part in storage.list_folder(storage.join(self.prefix, day)):
                uri = storage.join(self.prefix, day, part)
                if uri not in self.parts:
                    self.parts[uri] = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
        tables = list(self.parts.values())
        return pa.concat_tables(tables, promote_options="default") if tables else None


class Client:
    """WORKERS threads answering ids req-0 .. req-(REQUESTS - 1) in turn; every failure is kept. The last
    AFTER_ROLLOUT are sent once `rolled` is set."""

    def __init__(self, url: str, rows: np.ndarray) -> None:
        self.url, self.rows = url, rows
        self.answers: list[Answer | None] = [None] * len(rows)
        self.failures: list[str] = []
        self._next = itertools.count()
        self._answered = itertools.count()
        self.answered = 0
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(WORKERS)]
        self.rolled = threading.Event()
        self.started = time.monotonic()

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while (index := next(self._next)) < len(self.rows):
            if index >= len(self.rows) - AFTER_ROLLOUT and not self.rolled.wait(timeout=600):
                self.failures.append(f"req-{index}: the rolling update was never seen done")
                continue
            try:
                self.answers[index] = infer(self.url, f"req-{index}", self.rows[index].tolist())
            except (urllib.error.URLError, OSError, ValueError) as error:
                self.failures.append(f"req-{index}: {error!r}")
                continue
            self.answered = next(self._answered) + 1


def rolled_out(marina: Any, sha256: str) -> bool:
    """The ModelDeployment serves `sha256` and its Deployment has only pods of the new template left."""
    if marina.status("modeldeployment", NAME).get("model", {}).get("sha256") != sha256:
        return False
    deployment = marina.get("deployment", NAME)
    status, wanted = deployment.get("status") or {}, deployment["spec"]["replicas"]
    return bool(
        status.get("observedGeneration", 0) >= deployment["metadata"]["generation"]
        and status.get("replicas") == status.get("updatedReplicas") == status.get("readyReplicas") == wanted
    )


def test_every_answered_row_survives_a_rollout_and_its_feedback_gives_the_live_rmse(
    marina: Any, storage_env: None
) -> None:
    logging = {"sampleRate": 1.0, "flushSeconds": FLUSH_SECONDS, "flushRows": FLUSH_ROWS}
    monitoring = {
        "intervalSeconds": 60,
        "performance": {"intervalSeconds": CHECK_SECONDS, "minRows": 100, "windowHours": 1},
    }
    dataset, training, deployment = marina.pipeline(NAME, logging=logging, monitoring=monitoring)
    marina.apply(training_job(marina, OTHER, NAME, 1.0))
    marina.apply_ready(dataset, training, deployment, timeout=300)
    marina.wait_ready("trainingjob", OTHER, timeout=420)
    first = marina.status("modeldeployment", NAME)["model"]["sha256"]
    second = marina.status("trainingjob", OTHER)["model"]["sha256"]
    assert first != second
    url = marina.service_url(NAME)
    rng = np.random.default_rng(5)
    rows = rng.normal(0.0, 0.05, size=(REQUESTS, 10))
    first_answer(marina, url, NAME, rows[0].tolist(), timeout=60)

    client = Client(url, rows)
    client.start()
    marina.wait_for("the first answers", lambda: client.answered >= SWITCH_AFTER, timeout=600, every=0.1)
    patch = json.dumps({"spec": {"model": {"trainingJob": OTHER}}})
    marina.kubectl("patch", "modeldeployment", NAME, "--type=merge", "-p", patch)
    switched, switched_at = client.answered, time.monotonic()
    try:
        marina.wait_for("the rolling update", lambda: rolled_out(marina, second), timeout=300, every=0.5)
        rolled, rolled_at = client.answered, time.monotonic()
    finally:
        client.rolled.set()
    client.join()
    assert client.failures == [], f"{len(client.failures)} failed: {client.failures[:5]}"
    # The rollout ran in the middle: requests were answered before the switch and after it was done.
    assert switched < rolled < REQUESTS, (switched, rolled)
    answers = [answer for answer in client.answers if answer is not None]
    assert len(answers) == REQUESTS
    last = max(answer.done for answer in answers)
    rate = REQUESTS / (last - client.started)

    area = f"s3://marina/logs/{marina.namespace}/{NAME}/"
    stream = Stream(storage.join(area, "predictions"))
    checks: list[float] = []

    def logged() -> pa.Table | None:
        began = time.monotonic()
        table = stream.table()
        checks.append(time.monotonic() - began)
        if table is None:
            return None
        ours = table.filter(pc.starts_with(table.column("id"), "req-"))
        return ours if ours.num_rows >= REQUESTS else None

    predictions = marina.wait_for("every answered row in the log", logged, timeout=120, every=POLL_SECONDS)
    seen = time.monotonic() - last
    print(
        f"payload log: {REQUESTS} requests by {WORKERS} threads at {rate:.0f}/s; switched after {switched}, "
        f"rolled out {rolled_at - switched_at:.1f} s later (after {rolled}); the last row readable "
        f"{seen:.1f} s after the last answer ({len(stream.parts)} parts, a read of them {checks[-1]:.1f} s)"
    )
    # A row waits at most the flush age for its part, then the pod's write; the test sees it at most a
    # poll and two reads later (the read under way when it lands, and the next).
    assert seen <= FLUSH_SECONDS + WRITE_SECONDS + POLL_SECONDS + 2 * max(checks)
    ids = predictions.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == REQUESTS  # each request once, whichever pod answered it
    told = {answer.id: answer for answer in answers}
    assert set(ids) == set(told)
    served = {first[: len(answers[0].version)]: first, second[: len(answers[0].version)]: second}
    models = predictions.column("model").to_pylist()
    assert models == [served[told[key].version] for key in ids]  # the model that answered, row by row
    assert set(models) == {first, second}
    assert set(predictions.column("track").to_pylist()) == {"stable"}
    logged_predictions = dict(zip(ids, predictions.column("prediction").to_pylist(), strict=True))
    assert logged_predictions == {key: answer.prediction for key, answer in told.items()}  # to the bit
    inputs = [name for name in predictions.column_names if name not in FIXED_COLUMNS]
    assert len(inputs) == rows.shape[1]  # one column per raw input, in the model's order
    sent = np.column_stack([predictions.column(name).to_numpy() for name in inputs])
    order = [int(key.removeprefix("req-")) for key in ids]
    np.testing.assert_array_equal(sent, rows[order])  # the values sent, to the bit

    # Feedback for 10,000 of those ids, from both models' answers.
    chosen = rng.choice(REQUESTS, size=LABELLED, replace=False)
    targets = {f"req-{i}": float(150 + 50 * rng.standard_normal()) for i in chosen}
    accepted = send_feedback(url, [{"id": key, "target": value} for key, value in targets.items()])
    assert accepted == {"accepted": LABELLED}
    kept = Stream(storage.join(area, "feedback"))
    feedback = marina.wait_for(
        "the feedback in the log",
        lambda: (table := kept.table()) is not None and table.num_rows >= LABELLED and table,
        timeout=90,
        every=POLL_SECONDS,
    )
    labels = dict(zip(feedback.column("id").to_pylist(), feedback.column("target").to_pylist(), strict=True))
    assert labels == targets  # to the bit

    # By hand: the logs joined with the feedback, the rows the serving model answered.
    logged_models = dict(zip(ids, models, strict=True))
    ours = [key for key in targets if logged_models[key] == second]
    errors = np.array([logged_predictions[key] - labels[key] for key in ours])
    rmse = float(np.sqrt(np.mean(errors**2)))

    def checked() -> dict[str, Any] | None:
        # Every prediction was in storage before the feedback was sent: a check that read all of the
        # feedback read them too.
        monitoring = marina.status("modeldeployment", NAME).get("monitoring") or {}
        performance = dict(monitoring.get("performance") or {})
        return performance if performance.get("feedbackRows") == LABELLED else None

    performance = marina.wait_for("a check of the feedback", checked, timeout=120, every=1)
    # Exactly: more than a flush age since the rows were found, no pod has written another (a part
    # written twice, a retried put) since.
    again = stream.table()
    assert again is not None and pc.sum(pc.starts_with(again.column("id"), "req-")).as_py() == REQUESTS
    print(f"live accuracy: {performance}; by hand rmse {rmse:.9g} over {len(ours)} rows")
    assert performance["modelVersion"] == second[: len(performance["modelVersion"])]
    assert (performance["rows"], performance["otherModels"], performance["unmatched"]) == (
        len(ours),
        LABELLED - len(ours),
        0,
    )
    assert 0 < len(ours) < LABELLED  # both models' answers were labelled
    # The operator summed the same squares in another order (within n·eps of the sum) and wrote six
    # significant digits (half a unit of the sixth: 5e-6 relative).
    assert abs(performance["rmse"] - rmse) <= 5e-6 * rmse + SAFETY * len(ours) * EPS * rmse
