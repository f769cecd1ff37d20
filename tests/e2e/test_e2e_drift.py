"""Drift on the real cluster: rows drawn from the training data leave Drifted False; one feature moved by
one training standard deviation turns it True, naming that feature, within two check intervals.

The rows are drawn (with replacement) from scikit-learn's diabetes data, which the builtin source
prepares; its train split, 80 % of those rows, is the model's reference. Drawing from the source
rather than reading the prepared split back keeps this test independent of the storage layout.

The diabetes pipeline serves on two replicas, so each check adds up the counts of both pods. The time
from the shift to the decision, and every Drifted status seen while in-distribution rows were served,
are printed for the note (`pytest -s`)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_pipeline import first_answer, predict

NAME = "drift"
INTERVAL_SECONDS = 10
MIN_ROWS = 1000
BATCH_ROWS = 1000
SHIFTED_FEATURE = "bmi"


def resources(marina: Any) -> list[dict[str, Any]]:
    return list(marina.pipeline(NAME, monitoring={"intervalSeconds": INTERVAL_SECONDS, "minRows": MIN_ROWS}))


@pytest.fixture(scope="module")
def served(marina: Any) -> Any:
    marina.apply_ready(*resources(marina))
    return marina


def drifted(marina: Any) -> dict[str, Any]:
    return dict(marina.condition("modeldeployment", NAME, "Drifted"))


def send(url: str, rows: np.ndarray, seen: list[str], marina: Any) -> None:
    """Predict `rows` in batches, noting the Drifted status after each batch."""
    for start in range(0, len(rows), BATCH_ROWS):
        predict(url, NAME, rows[start : start + BATCH_ROWS].tolist(), timeout=30)
        seen.append(drifted(marina).get("status", "absent"))


def test_no_false_alarm_then_a_shifted_feature_is_detected(served: Any) -> None:
    marina = served
    dataset = marina.status("dataset", NAME)
    source = load_diabetes()
    columns = list(source.feature_names)
    assert columns == [c for c in dataset["columns"] if c != dataset["target"]]
    x_train = np.asarray(source.data, dtype=np.float64)
    rng = np.random.default_rng(2026)
    url = marina.service_url(NAME)
    first_answer(marina, url, NAME, x_train[0].tolist(), timeout=60)

    seen: list[str] = []
    send(url, x_train[rng.integers(0, len(x_train), 20_000)], seen, marina)
    sent = time.time()
    for _ in range(2):  # two whole checks judge the 20k in-distribution rows
        monitoring = marina.wait_for(
            "a check after the rows", lambda after=sent: marina.checked_after(NAME, after), timeout=60
        )
        sent = time.time()
        seen.append(drifted(marina)["status"])
    print(f"\nin-distribution: Drifted seen {seen}; last check {monitoring}")
    assert "True" not in seen
    assert drifted(marina)["status"] == "False" and monitoring["level"] in ("Stable", "Moderate")
    assert monitoring["rows"] >= MIN_ROWS and monitoring["pods"] == 2

    column = columns.index(SHIFTED_FEATURE)
    shifted = x_train[rng.integers(0, len(x_train), 5000)].copy()
    shifted[:, column] += x_train[:, column].std()
    shift_started = time.time()
    send(url, shifted, [], marina)
    shift_sent = time.time()
    condition = marina.wait_for(
        "Drifted True",
        lambda: (c := drifted(marina)).get("status") == "True" and c,
        timeout=4 * INTERVAL_SECONDS,
        every=0.25,
    )
    decided = time.time()
    print(
        f"shift to Drifted: {decided - shift_started:.1f}s from the first shifted request, "
        f"{decided - shift_sent:.1f}s after the last (interval {INTERVAL_SECONDS}s)"
    )
    assert decided - shift_sent <= 2 * INTERVAL_SECONDS
    status = marina.status("modeldeployment", NAME)["monitoring"]
    named = [f["name"] for f in status["topFeatures"] if f["drifted"]]
    assert named == [SHIFTED_FEATURE] and SHIFTED_FEATURE in condition["message"]
    assert condition["reason"] == "DriftDetected" and status["level"] == "Drifted"
    assert marina.condition("modeldeployment", NAME)["status"] == "True"  # still Ready: it still serves
    events = marina.events_including(NAME, ("Warning", "DriftDetected"))
    assert events.count(("Normal", "NoDrift")) == 1
