"""The promotion gate and retraining on the real cluster.

- IfBetter: a source CSV replaced by data of another relationship and a refresh give a challenger that
  beats the champion on its own test split: it is promoted and rolls out. Then a CSV whose *train* rows
  have their targets permuted (the test rows keep theirs, so both models are judged on real data) gives
  a challenger trained on noise: it is rejected, status.rejectedModel holds both models' metrics, and a
  prediction through the Service is still the champion's.
- onDrift Retrain: one feature shifted turns Drifted True, the operator refreshes the Dataset (status,
  event, the Dataset's annotation); further Drifted checks inside the cooldown refresh nothing.

The time from each change (refresh, or first shifted request) to each decision is printed (`pytest -s`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_pipeline import first_answer, predict

from marina import storage
from marina.contract import REFRESH_ANNOTATION
from marina.data.dataset import split_indices

NAME = "promo"
ROWS = 400
TEST_FRACTION, SPLIT_SEED = 0.2, 42  # the Dataset's split (its defaults): which rows the test split holds
NOISE = 1.0
PROBE = [[10.0, 3.0]]


def table(slope: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.arange(ROWS, dtype=np.float64), np.arange(ROWS) % 7]).astype(np.float64)
    return x, slope * x[:, 0] + 2 * x[:, 1] + 1 + rng.normal(0, NOISE, ROWS)


def csv_of(x: np.ndarray, y: np.ndarray) -> bytes:
    lines = ["x1,x2,y"] + [f"{a:g},{b:g},{float(t)!r}" for (a, b), t in zip(x, y, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def shuffled_train_targets(y: np.ndarray, seed: int) -> np.ndarray:
    """The targets with the train split's rows permuted among themselves, the test rows untouched."""
    train, _ = split_indices(len(y), TEST_FRACTION, SPLIT_SEED)
    permuted = y.copy()
    permuted[train] = y[np.random.default_rng(seed).permutation(train)]
    return permuted


def resources(uri: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": NAME},
            "spec": {"source": {"csv": {"uri": uri}}, "target": "y"},
        },
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": NAME},
            "spec": {"dataset": {"name": NAME}},
        },
        {
            "apiVersion": "marina.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": NAME},
            "spec": {
                "model": {"trainingJob": NAME},
                "promotion": {"policy": "IfBetter", "metric": "rmse", "tolerance": 0.0},
            },
        },
    ]


def decision_on(marina: Any, challenger: str) -> dict[str, Any] | None:
    decisions = (marina.status("modeldeployment", NAME).get("promotion") or {}).get("decisions") or []
    return next((d for d in decisions if d["challenger"] == challenger), None)


def refresh(marina: Any, uri: str, content: bytes, value: str) -> tuple[float, str]:
    """Replace the source and refresh the Dataset; (when, the TrainingJob's next model's sha256)."""
    before = marina.status("trainingjob", NAME)["model"]["sha256"]
    storage.write_bytes(uri, content, "text/csv")
    started = time.time()
    marina.kubectl("annotate", "dataset", NAME, f"{REFRESH_ANNOTATION}={value}", "--overwrite")
    trained = marina.wait_for(
        "the TrainingJob's new model",
        lambda: (
            (s := marina.status("trainingjob", NAME)).get("phase") == "Succeeded"
            and s["model"]["sha256"] != before
            and s["model"]["sha256"]
        ),
        timeout=300,
    )
    return started, str(trained)


@pytest.fixture
def gated(marina: Any, storage_env: None) -> tuple[Any, str]:
    uri = f"s3://marina/raw/{marina.namespace}/promo.csv"
    storage.write_bytes(uri, csv_of(*table(3.0, 1)), "text/csv")
    marina.apply(*resources(uri))
    marina.wait_ready("modeldeployment", NAME, timeout=300)
    return marina, uri


def test_a_better_challenger_is_promoted_then_a_worse_one_is_rejected(gated: tuple[Any, str]) -> None:
    marina, uri = gated
    champion = marina.status("modeldeployment", NAME)["model"]["sha256"]
    x, y = table(5.0, 2)  # the relationship changed: a model of the new data beats the old one on it
    started, better = refresh(marina, uri, csv_of(x, y), "1")
    promoted = marina.wait_for("the gate's decision", lambda: decision_on(marina, better), timeout=300)
    decided = time.time()
    marina.wait_for(
        "the challenger serving",
        lambda: marina.status("modeldeployment", NAME).get("model", {}).get("sha256") == better,
        timeout=300,
    )
    served = time.time()
    print(
        f"\nbetter challenger: refresh to decision {decided - started:.1f}s, "
        f"to serving {served - started:.1f}s; "
        f"rmse {promoted['challengerMetrics']['rmse']:.4g} against {promoted['championMetrics']['rmse']:.4g}"
    )
    assert promoted["verdict"] == "Promoted" and promoted["champion"] == champion
    assert promoted["challengerMetrics"]["rmse"] <= promoted["championMetrics"]["rmse"]
    url = marina.service_url(NAME)
    # Status says the rollout is complete while the old pods may still drain: ask once only its pods serve.
    marina.wait_for("only the challenger's pods", lambda: serving_only(marina, better), timeout=120)
    champion_prediction = marina.wait_for("the Service", lambda: _predicted(url), timeout=60)

    started, worse = refresh(marina, uri, csv_of(x, shuffled_train_targets(y, 3)), "2")
    rejected = marina.wait_for(
        "the rejection", lambda: marina.status("modeldeployment", NAME).get("rejectedModel"), timeout=300
    )
    decided = time.time()
    print(
        f"worse challenger: refresh to rejection {decided - started:.1f}s; rmse "
        f"{rejected['challengerMetrics']['rmse']:.4g} against {rejected['championMetrics']['rmse']:.4g}"
    )
    status = marina.status("modeldeployment", NAME)
    assert rejected["sha256"] == worse and status["model"]["sha256"] == better
    assert rejected["challengerMetrics"]["rmse"] > rejected["championMetrics"]["rmse"]
    assert set(rejected["championMetrics"]) >= {"rmse", "mae", "r2"} <= set(rejected["challengerMetrics"])
    assert rejected["datasetVersion"] == marina.status("dataset", NAME)["version"]
    assert marina.condition("modeldeployment", NAME)["status"] == "True"
    assert _predicted(url) == champion_prediction  # the champion still answers
    marina.events_including(NAME, ("Warning", "ChallengerRejected"), ("Normal", "ChallengerPromoted"))
    jobs = marina.kubectl("get", "jobs", "-l", "app.kubernetes.io/component=evaluate", "-o", "name").split()
    assert len(jobs) == 1  # one Job per pair, the earlier one cleaned up


def serving_only(marina: Any, sha256: str, name: str = NAME) -> bool:
    """Every pod behind the Service runs model `sha256` and none is terminating."""
    listed = marina.kubectl("get", "pods", "-l", f"marina.dev/modeldeployment={name}", "-o", "json")
    pods = json.loads(listed)["items"]
    return bool(pods) and all(
        not pod["metadata"].get("deletionTimestamp") and sha256 in pod["spec"]["containers"][0]["args"]
        for pod in pods
    )


def _predicted(url: str) -> list[float] | None:
    try:
        return predict(url, NAME, PROBE)
    except OSError:
        return None


# -- onDrift: Retrain ----------------------------------------------------------------------------------

RETRAIN = "retrain"
INTERVAL_SECONDS = 10
SHIFTED_FEATURE = "bmi"


def drift_resources(marina: Any) -> list[dict[str, Any]]:
    monitoring = {"intervalSeconds": INTERVAL_SECONDS, "minRows": 1000, "onDrift": "Retrain"}
    return list(
        marina.pipeline(RETRAIN, monitoring=monitoring, retraining={"cooldownSeconds": 3600, "maxPerDay": 2})
    )


def test_drift_triggers_one_refresh_and_a_drift_inside_the_cooldown_none(marina: Any) -> None:
    marina.apply_ready(*drift_resources(marina))
    prepared = marina.status("dataset", RETRAIN)["jobName"]
    source = load_diabetes()
    x = np.asarray(source.data, dtype=np.float64)
    column = list(source.feature_names).index(SHIFTED_FEATURE)
    rng = np.random.default_rng(7)
    url = marina.service_url(RETRAIN)
    first_answer(marina, url, RETRAIN, x[0].tolist(), timeout=60)

    shifted = x[rng.integers(0, len(x), 3000)].copy()
    shifted[:, column] += x[:, column].std()
    started = time.time()
    for start in range(0, len(shifted), 1000):
        predict(url, RETRAIN, shifted[start : start + 1000].tolist(), timeout=30)
    drifted = marina.wait_for(
        "Drifted True",
        lambda: marina.condition("modeldeployment", RETRAIN, "Drifted").get("status") == "True",
        timeout=4 * INTERVAL_SECONDS,
        every=0.25,
    )
    at_drift = time.time()
    record = marina.wait_for(
        "a refresh",
        lambda: marina.status("modeldeployment", RETRAIN).get("retraining"),
        timeout=30,
        every=0.25,
    )
    at_trigger = time.time()
    print(
        f"\nshift to Drifted {at_drift - started:.1f}s, to the refresh {at_trigger - started:.1f}s "
        f"(interval {INTERVAL_SECONDS}s)"
    )
    assert drifted and record["reason"] == "Drift" and record["dataset"] == RETRAIN
    assert record["countToday"] == 1 and record["total"] == 1 and SHIFTED_FEATURE in record["message"]
    # The record is written first and the Dataset annotated after it (and after the drift event), so that a
    # crash in between never exceeds the limits: the annotation follows the record by a request or two.
    marina.wait_for(
        "the Dataset's refresh annotation",
        lambda: (
            (marina.get("dataset", RETRAIN)["metadata"].get("annotations") or {}).get(REFRESH_ANNOTATION)
            == record["refresh"]
        ),
        timeout=30,
        every=0.25,
    )
    marina.wait_for(  # the Dataset read its source again: a new prepare Job (same data, same version)
        "the Dataset prepared again",
        lambda: (
            marina.status("dataset", RETRAIN).get("jobName") not in (None, prepared)
            and marina.condition("dataset", RETRAIN)["status"] == "True"
        ),
        timeout=180,
    )

    again = time.time()
    for start in range(0, len(shifted), 1000):  # drift goes on inside the cooldown
        predict(url, RETRAIN, shifted[start : start + 1000].tolist(), timeout=30)
    for _ in range(2):
        marina.wait_for("a check", lambda after=again: marina.checked_after(RETRAIN, after), timeout=60)
        again = time.time()
    status = marina.status("modeldeployment", RETRAIN)
    assert marina.condition("modeldeployment", RETRAIN, "Drifted")["status"] == "True"
    assert status["retraining"]["total"] == 1 and status["retraining"]["refresh"] == record["refresh"]
    assert status["retraining"]["held"]["reason"] == "Cooldown"
    reasons = [e["reason"] for e in marina.events_with(RETRAIN, "RetrainTriggered", "RetrainHeld")]
    assert reasons.count("RetrainTriggered") == 1 and reasons.count("RetrainHeld") == 1
