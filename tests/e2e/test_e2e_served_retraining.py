"""Retraining on served data, on the cluster: a model serves with every answer logged, the truth comes back
by request id with a concept shift (the same inputs, a new relation: truth = 100 - the answer), half of it
through the feedback endpoint and half as a CSV uploaded to the namespace's raw area, and

- a Dataset whose source is only `servedLogs` holds exactly the served rows that have a truth (the inputs
  as logged, the truth as posted), and a TrainingJob on it fits the coefficients an independent numpy fit
  on the logged rows gives; the model's lineage names the logs (prefix, rows, the answering model, and a
  digest over the parts, each of which is in MinIO with that content);
- the pipeline's own Dataset reads the diabetes data *and* the served rows (`servedLogs` beside
  `builtin`), so `onDegraded: Retrain` closes the loop: the shift sets Degraded, the Dataset is refreshed
  to a version holding the 442 original rows and the served ones, the model is retrained on it and served;
- the namespace's own storage identity, which the prepare Jobs use, reaches its logs and not another
  namespace's.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_live_accuracy import feedback, infer
from tests.e2e.test_e2e_payload_logs import FIXED_COLUMNS, Stream
from tests.e2e.test_e2e_pipeline import first_answer, read_split

from marina import storage
from marina.data import dataset, served
from marina.model import artifact
from marina.storage import StorageAccessDenied

NAME = "served"
ROWS_NAME = "served-rows"  # the Dataset and TrainingJob of the served rows alone
CHECK_SECONDS = 10
#: The diabetes rows, each answered once and labelled once. Live accuracy needs all of them before it
#: judges, so the refresh it triggers never reads the truth half arrived (one half posted, one uploaded).
LABELLED = 442
TIMEOUT = 300
KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def pipeline(marina: Any, labelled: int = LABELLED) -> list[dict[str, Any]]:
    """The sample pipeline with logging at 1, live accuracy that retrains once `labelled` rows have their
    truth, ordinary least squares, and a Dataset of the diabetes data and the served rows."""
    monitoring = {
        "intervalSeconds": CHECK_SECONDS,
        "minRows": 300,
        "performance": {
            "intervalSeconds": CHECK_SECONDS,
            "minRows": labelled,
            "windowHours": 1,
            "onDegraded": "Retrain",
        },
    }
    logging = {"sampleRate": 1.0, "flushSeconds": 2, "flushRows": 1_000}
    data, training, deployment = marina.pipeline(NAME, monitoring=monitoring, logging=logging)
    data["spec"]["source"] = {
        "builtin": "diabetes",
        "servedLogs": {"modelDeployment": NAME, "windowHours": 1},
    }
    training["spec"]["model"] = {"penalty": "none"}
    return [data, training, deployment]


def served_only() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": ROWS_NAME},
            "spec": {
                "source": {"servedLogs": {"modelDeployment": NAME, "windowHours": 1}},
                "target": "target",
            },
        },
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": ROWS_NAME},
            "spec": {"dataset": {"name": ROWS_NAME}, "model": {"penalty": "none"}},
        },
    ]


def stored_rows(uri: str) -> np.ndarray:
    """Both splits of a prepared version, read back from MinIO, rows in a canonical order."""
    splits = [np.column_stack(read_split(uri, split)) for split in ("train", "test")]
    return canonical(np.vstack(splits))


def canonical(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


def ols(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """numpy's least squares with an intercept: coefficients, then the intercept."""
    solution, *_ = np.linalg.lstsq(np.column_stack([x, np.ones(len(x))]), y, rcond=None)
    return np.asarray(solution)


def assert_fit(model: artifact.ModelArtifact, expected: np.ndarray) -> None:
    # Both solve a well-posed least-squares problem in float64: they agree far inside 1e-6 of the scale.
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(model.coefficients, expected[:-1], rtol=0, atol=1e-6 * scale)
    assert abs(model.intercept - expected[-1]) <= 1e-6 * scale


def trained_model(marina: Any, name: str, version: str) -> artifact.ModelArtifact:
    """The TrainingJob's model once it is trained on the Dataset `version`."""
    status = marina.wait_for(
        f"trainingjob/{name} trained on dataset version {version}",
        lambda: (
            (s := marina.status("trainingjob", name)).get("datasetVersion") == version
            and s.get("phase") == "Succeeded"
            and s
        ),
        timeout=TIMEOUT,
    )
    return artifact.load(status["model"]["uri"], status["model"]["sha256"])


def test_retraining_reads_exactly_the_served_rows_and_names_their_logs(
    marina: Any, minio: Any, storage_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    marina.apply_ready(*pipeline(marina), timeout=TIMEOUT)
    source = load_diabetes()
    x, y = np.asarray(source.data, dtype=np.float64), np.asarray(source.target, dtype=np.float64)
    first = marina.status("dataset", NAME)
    assert first["rows"] == len(y) == LABELLED  # no labelled rows yet: the diabetes data alone
    champion = marina.status("modeldeployment", NAME)["model"]["sha256"]
    url = marina.service_url(NAME)
    first_answer(marina, url, NAME, x[0].tolist(), timeout=60)

    told = {f"shift-{i}": infer(url, f"shift-{i}", x[i].tolist(), NAME) for i in range(len(y))}
    area = f"s3://marina/logs/{marina.namespace}/{NAME}/"

    def logged() -> Any:
        table = Stream(storage.join(area, "predictions")).table()
        ids = set(table.column("id").to_pylist()) if table is not None else set()
        return table if set(told) <= ids else None

    predictions = marina.wait_for("every answer in the payload log", logged, timeout=90, every=2)
    truths = {key: 100.0 - answer for key, answer in told.items()}  # a concept shift, exactly linear in x
    # Half the truth through the endpoint, half as a CSV the team uploads to its raw area: one join.
    keys = sorted(truths)
    posted, uploaded = keys[::2], keys[1::2]
    feedback(url, {key: truths[key] for key in posted}, NAME)
    uploads = f"s3://marina/raw/{marina.namespace}/feedback/{NAME}/"
    rows = "".join(f"{key},0,{truths[key]!r}\n" for key in uploaded)
    storage.write_bytes(f"{uploads}export/truth.csv", f"id,row,target\n{rows}".encode(), "text/csv")
    marina.wait_for(
        "the posted truth in the log",
        lambda: (
            (t := Stream(storage.join(area, "feedback")).table()) is not None and t.num_rows >= len(posted)
        ),
        timeout=90,
        every=2,
    )

    # The logged rows, as the test reads them itself: the inputs the payload log holds, the truth posted.
    ids = predictions.column("id").to_pylist()
    inputs = [name for name in predictions.column_names if name not in FIXED_COLUMNS]
    ours = [index for index, key in enumerate(ids) if key in truths]
    x_logged = np.column_stack([predictions.column(name).to_numpy() for name in inputs])[ours]
    t_logged = np.array([truths[ids[index]] for index in ours])
    assert len(ours) == len(truths)

    # The served rows alone: exactly those rows, and the fit numpy makes of them.
    marina.apply(*served_only())
    rows_status = marina.wait_ready("dataset", ROWS_NAME, timeout=TIMEOUT)
    assert rows_status["rows"] == len(truths) and rows_status["columns"] == [*inputs, "target"]
    np.testing.assert_array_equal(
        stored_rows(rows_status["uri"]), canonical(np.column_stack([x_logged, t_logged]))
    )
    model = trained_model(marina, ROWS_NAME, rows_status["version"])
    assert model.feature_names == inputs
    assert_fit(model, ols(x_logged, t_logged))

    # Its lineage names the logs: the prefix, the rows, the model that answered, the parts and their digest.
    logs = model.dataset["logs"]
    assert (logs["type"], logs["modelDeployment"], logs["logs"]) == ("servedLogs", NAME, area)
    assert logs["uploads"] == uploads
    assert logs["rows"] == len(truths) and logs["models"] == [champion]
    read = dataset.open_stored(rows_status["uri"]).description["source"]["read"]
    parts = [served.Part(**part) for part in read]
    assert logs["sha256"] == served.digest(parts) and logs["parts"] == len(parts)
    assert {part.stream for part in parts} == {served.PREDICTIONS, served.FEEDBACK, served.UPLOADS}
    for part in parts:
        assert part.uri.startswith(uploads if part.stream == served.UPLOADS else area)
        assert hashlib.sha256(storage.read_bytes(part.uri)).hexdigest() == part.sha256

    # The loop: the shift sets Degraded, onDegraded Retrain refreshes the pipeline's Dataset, which now
    # holds the diabetes rows and the served ones; the model retrained on it is served.
    # (status.retraining keeps the trigger: Degraded itself turns Unknown once the new model serves, as it
    # has no labelled rows yet, which may come before this looks.)
    marina.wait_for(
        "a retrain triggered by Degraded",
        lambda: (marina.status("modeldeployment", NAME).get("retraining") or {}).get("reason") == "Degraded",
        timeout=TIMEOUT,
    )
    refreshed = marina.wait_for(
        "the refreshed Dataset version",
        lambda: (
            (s := marina.status("dataset", NAME)).get("version") not in (None, first["version"])
            and marina.condition("dataset", NAME).get("status") == "True"
            and s
        ),
        timeout=TIMEOUT,
    )
    assert refreshed["rows"] == len(y) + len(truths)
    expected = np.vstack([np.column_stack([x, y]), np.column_stack([x_logged, t_logged])])
    np.testing.assert_array_equal(stored_rows(refreshed["uri"]), canonical(expected))
    retrained = trained_model(marina, NAME, refreshed["version"])
    assert retrained.dataset["logs"]["rows"] == len(truths) and retrained.dataset["logs"]["logs"] == area
    assert_fit(retrained, ols(*read_split(refreshed["uri"], "train")))
    marina.wait_for(
        "the retrained model served",
        lambda: marina.status("modeldeployment", NAME)["model"]["sha256"] == retrained.sha256,
        timeout=TIMEOUT,
    )

    # The namespace's own identity (the prepare Jobs') reaches its logs and truth, not another namespace's.
    held = marina.credentials(minio.secret_name)
    for key in KEYS:
        monkeypatch.setenv(key, held[key])
    assert storage.list_folder(area) == ["feedback", "predictions"]
    elsewhere = "marina-e2e-elsewhere"
    for denied in (f"s3://marina/logs/{elsewhere}/{NAME}/", f"s3://marina/raw/{elsewhere}/feedback/{NAME}/"):
        with pytest.raises(StorageAccessDenied):
            storage.list_folder(denied)
