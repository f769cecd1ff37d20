"""The samples end to end on the real cluster: prepare, train, serve, roll out, roll back, delete.

The tests of this module share one namespace and run in order: each starts from what the previous
one left (the diabetes pipeline Ready and serving)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from marina import storage
from marina.data import dataset

ROW = [
    0.0380759,
    0.0506801,
    0.0616962,
    0.0218724,
    -0.0442235,
    -0.0348208,
    -0.0434008,
    -0.0025923,
    0.0199075,
    -0.0176461,
]


def predict(url: str, model: str, rows: list[list[float]], timeout: float = 5) -> list[float]:
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(rows[0])],
                "datatype": "FP64",
                "data": [v for row in rows for v in row],
            }
        ]
    }
    request = urllib.request.Request(
        f"{url}/v2/models/{model}/infer", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return [float(v) for v in json.load(response)["outputs"][0]["data"]]


def first_answer(
    marina: Any, url: str, model: str, row: list[float] = ROW, timeout: float = 30
) -> list[float]:
    """The first prediction of a new Service (its rules reach this host's proxy a moment after Ready)."""
    answers: list[list[float]] = []

    def attempt() -> bool:
        try:
            answers.append(predict(url, model, [row]))
        except (urllib.error.URLError, OSError):
            return False
        return True

    marina.wait_for(f"the Service of {model} to answer", attempt, timeout=timeout)
    return answers[-1]


def read_split(uri: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split the Job wrote, read back from MinIO (its Parquet parts, checked against the version)."""
    values = np.vstack(list(dataset.open_stored(uri).chunks(split)))
    return values[:, :-1], values[:, -1]


def local_ridge(dataset_status: dict[str, Any], alpha: float) -> tuple[Ridge, dict[str, float]]:
    """scikit-learn fitted on the very split the operator's Job trained on (read back from MinIO)."""
    uri = dataset_status["uri"]
    x_train, y_train = read_split(uri, "train")
    x_test, y_test = read_split(uri, "test")
    model = Ridge(alpha=alpha).fit(x_train, y_train)
    predicted = model.predict(x_test)
    mse = mean_squared_error(y_test, predicted)
    return model, {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": mean_absolute_error(y_test, predicted),
        "r2": r2_score(y_test, predicted),
    }


def close(a: float, b: float, tolerance: float = 1e-6) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(b))


@pytest.fixture(scope="module")
def pipeline(marina: Any) -> Any:
    """The three samples applied and Ready."""
    marina.apply(*(marina.sample(kind) for kind in ("Dataset", "TrainingJob", "ModelDeployment")))
    marina.wait_ready("dataset", "diabetes", timeout=300)
    marina.wait_ready("trainingjob", "diabetes", timeout=300)
    marina.wait_ready("modeldeployment", "diabetes", timeout=300)
    return marina


def test_samples_train_the_same_model_as_scikit_learn(pipeline: Any, storage_env: None) -> None:
    dataset = pipeline.status("dataset", "diabetes")
    assert (
        len(dataset["version"]) == 16
        and dataset["rows"] == 442
        and dataset["trainRows"] + dataset["testRows"] == 442
    )
    training = pipeline.status("trainingjob", "diabetes")
    assert training["phase"] == "Succeeded" and training["datasetVersion"] == dataset["version"]
    model, metrics = local_ridge(dataset, alpha=0.1)
    for name, value in metrics.items():
        assert close(training["metrics"][name], value), (name, training["metrics"][name], value)
    assert storage.exists(training["model"]["uri"])

    serving = pipeline.status("modeldeployment", "diabetes")
    assert serving["model"]["sha256"] == training["model"]["sha256"]
    assert serving["url"] == f"http://diabetes.{pipeline.namespace}.svc.cluster.local:80"
    assert serving["readyReplicas"] == 2
    (prediction,) = first_answer(pipeline, pipeline.service_url("diabetes"), "diabetes")
    assert close(prediction, float(model.predict(np.array([ROW]))[0]))


def test_new_alpha_rolls_out_while_every_request_succeeds(pipeline: Any, storage_env: None) -> None:
    old_sha = pipeline.status("trainingjob", "diabetes")["model"]["sha256"]
    url = pipeline.service_url("diabetes")
    before = predict(url, "diabetes", [ROW])[0]
    failures: list[str] = []
    answers: list[float] = []
    stop = threading.Event()

    def client() -> None:  # bounded: at most 60,000 requests or 8 minutes
        deadline = time.monotonic() + 480
        while not stop.is_set() and len(answers) + len(failures) < 60_000 and time.monotonic() < deadline:
            try:
                answers.append(predict(url, "diabetes", [ROW])[0])
            except (urllib.error.URLError, OSError, ValueError) as error:
                failures.append(repr(error))

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        pipeline.kubectl(
            "patch",
            "trainingjob",
            "diabetes",
            "--type=merge",
            "-p",
            json.dumps({"spec": {"model": {"alpha": 1.0}}}),
        )
        new_sha = pipeline.wait_for(
            "a new model",
            lambda: (
                (sha := (pipeline.status("trainingjob", "diabetes").get("model") or {}).get("sha256"))
                != old_sha
                and sha
            ),
            timeout=300,
        )
        pipeline.wait_for(
            "the new model served on every ready replica",
            lambda: (
                pipeline.status("modeldeployment", "diabetes").get("model", {}).get("sha256") == new_sha
                and pipeline.condition("modeldeployment", "diabetes")["status"] == "True"
            ),
            timeout=300,
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    print(f"rollout: {len(answers)} requests answered, {len(failures)} failed")
    status = pipeline.status("modeldeployment", "diabetes")
    assert status["previousModel"]["sha256"] == old_sha
    assert failures == [], (
        f"{len(failures)} of {len(failures) + len(answers)} requests failed: {failures[:5]}"
    )
    new_model, metrics = local_ridge(pipeline.status("dataset", "diabetes"), alpha=1.0)
    assert close(pipeline.status("trainingjob", "diabetes")["metrics"]["mse"], metrics["mse"])
    expected = float(new_model.predict(np.array([ROW]))[0])
    # Old pods may answer for the few seconds their endpoints take to leave every proxy.
    pipeline.wait_for(
        "the Service to answer with the new model",
        lambda: close(predict(url, "diabetes", [ROW])[0], expected),
        timeout=60,
    )
    assert not close(before, expected) and before in answers
    assert any(close(answer, expected) for answer in answers)  # both models answered during the rollout
    assert len(answers) > 50


def test_scale_subresource_and_category(pipeline: Any) -> None:
    pipeline.kubectl("scale", "modeldeployment", "diabetes", "--replicas=3")
    pipeline.wait_for(
        "3 ready replicas",
        lambda: (
            (status := pipeline.status("modeldeployment", "diabetes")).get("readyReplicas") == 3
            and status.get("replicas") == 3
        ),
        timeout=120,
    )
    scale = json.loads(
        pipeline.kubectl(
            "get",
            "--raw",
            f"/apis/marina.dev/v1alpha1/namespaces/{pipeline.namespace}/modeldeployments/diabetes/scale",
        )
    )
    assert (
        scale["spec"]["replicas"] == 3
        and scale["status"]["selector"] == "marina.dev/modeldeployment=diabetes"
    )
    listed = pipeline.kubectl("get", "marina", "-o", "name").split()
    assert {
        "dataset.marina.dev/diabetes",
        "trainingjob.marina.dev/diabetes",
        "modeldeployment.marina.dev/diabetes",
    } <= set(listed)
    pipeline.kubectl("scale", "modeldeployment", "diabetes", "--replicas=2")


def test_broken_rollout_keeps_the_old_model_serving_and_says_why(pipeline: Any) -> None:
    model = pipeline.status("trainingjob", "diabetes")["model"]
    pipeline.apply(
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "pinned", "namespace": pipeline.namespace},
            "spec": {
                "model": {"uri": model["uri"], "sha256": model["sha256"]},
                "replicas": 1,
                "rollout": {"progressDeadlineSeconds": 15},
            },
        }
    )
    pipeline.wait_ready("modeldeployment", "pinned", timeout=180)
    url = pipeline.service_url("pinned")
    good = first_answer(pipeline, url, "pinned")
    wrong = "0" * 64
    pipeline.kubectl(
        "patch",
        "modeldeployment",
        "pinned",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"model": {"sha256": wrong}}}),
    )
    ready = pipeline.wait_reason("modeldeployment", "pinned", "RolledBack", timeout=240)
    status = pipeline.status("modeldeployment", "pinned")
    assert status["model"]["sha256"] == model["sha256"]
    assert status["failedModel"]["sha256"] == wrong
    assert "sha256" in status["failedModel"]["reason"], status["failedModel"]
    assert ready["status"] == "True" and wrong[:12] in ready["message"]
    assert predict(url, "pinned", [ROW]) == good
    warnings = [
        e
        for e in pipeline.events_with("pinned", "RolledBack")
        if e["type"] == "Warning" and e["reason"] == "RolledBack"
    ]
    assert warnings and "sha256" in warnings[0]["message"]


def test_deleting_resources_removes_children_but_keeps_stored_objects(
    pipeline: Any, storage_env: None
) -> None:
    dataset_uri = pipeline.status("dataset", "diabetes")["uri"]
    model_uri = pipeline.status("trainingjob", "diabetes")["model"]["uri"]
    pipeline.kubectl("delete", "modeldeployment", "diabetes", "pinned")
    pipeline.kubectl("delete", "trainingjob", "diabetes")
    pipeline.kubectl("delete", "dataset", "diabetes")
    pipeline.wait_for(
        "children to be garbage-collected",
        lambda: (
            not any(
                pipeline.kubectl(
                    "get", kind, "-l", "app.kubernetes.io/managed-by=marina-operator", "-o", "name"
                ).strip()
                for kind in ("deployments", "services", "jobs")
            )
        ),
        timeout=120,
    )
    assert storage.exists(f"{dataset_uri}/dataset.json") and len(dataset.open_stored(dataset_uri).data.train)
    assert storage.exists(model_uri)
