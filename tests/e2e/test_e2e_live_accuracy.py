"""Live accuracy on the cluster: the serving pods log every answer, the truth arrives by request id, and
the operator joins the two. Truths like the training data's leave the model within its margin; a concept
shift (the same inputs, a changed relation) sets Degraded while Drifted does not turn True, and the live
rmse the operator reports is the one computed from what the client was told and what it sent back."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_pipeline import first_answer

from bounds import EPS, SAFETY

NAME = "accuracy"
CHECK_SECONDS = 10
MIN_ROWS = 100


def infer(url: str, request_id: str, row: list[float], model: str = NAME) -> float:
    tensor = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}
    request = urllib.request.Request(
        f"{url}/v2/models/{model}/infer",
        json.dumps({"id": request_id, "inputs": [tensor]}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return float(json.load(response)["outputs"][0]["data"][0])


def feedback(url: str, targets: dict[str, float], model: str = NAME) -> None:
    entries = [{"id": key, "target": value} for key, value in targets.items()]
    request = urllib.request.Request(
        f"{url}/v2/models/{model}/feedback",
        json.dumps(entries).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def test_a_concept_shift_is_degraded_not_drifted(marina: Any) -> None:
    monitoring = {
        "intervalSeconds": CHECK_SECONDS,
        "minRows": 300,
        "performance": {"intervalSeconds": CHECK_SECONDS, "minRows": MIN_ROWS, "windowHours": 1},
    }
    logging = {"sampleRate": 1.0, "flushSeconds": 2, "flushRows": 1_000}
    marina.apply_ready(*marina.pipeline(NAME, monitoring=monitoring, logging=logging), timeout=300)
    url = marina.service_url(NAME)
    source = load_diabetes()
    x, y = np.asarray(source.data, dtype=np.float64), np.asarray(source.target, dtype=np.float64)
    first_answer(marina, url, NAME, x[0].tolist(), timeout=60)
    reference = float(marina.status("trainingjob", NAME)["metrics"]["rmse"])

    def performance() -> dict[str, Any]:
        return dict((marina.status("modeldeployment", NAME).get("monitoring") or {}).get("performance") or {})

    # The truth as the training data knows it: the live error is the model's own.
    told = {f"same-{i}": infer(url, f"same-{i}", x[i].tolist()) for i in range(len(y))}
    targets = {f"same-{i}": float(y[i]) for i in range(len(y))}
    feedback(url, targets)
    within = marina.wait_for(
        "a performance check of every labelled row",
        lambda: (p := performance()).get("rows") == len(targets) and p,
        timeout=120,
    )
    assert marina.condition("modeldeployment", NAME, "Degraded")["status"] == "False"

    # A concept shift: the same inputs, their targets moved by twice the model's test rmse.
    shifted = {f"shift-{i}": infer(url, f"shift-{i}", x[i].tolist()) for i in range(len(y))}
    shifted_targets = {f"shift-{i}": float(y[i] + 2 * reference) for i in range(len(y))}
    told |= shifted
    targets |= shifted_targets
    feedback(url, shifted_targets)
    degraded = marina.wait_for(
        "Degraded True",
        lambda: (c := marina.condition("modeldeployment", NAME, "Degraded")).get("status") == "True" and c,
        timeout=120,
    )
    assert degraded["reason"] == "ErrorAboveMargin"
    assert marina.condition("modeldeployment", NAME, "Drifted").get("status") != "True"

    checked = performance()
    assert checked["rows"] == len(targets) and checked["rows"] > within["rows"]
    errors = np.array([told[key] - targets[key] for key in targets])
    rmse = float(np.sqrt(np.mean(errors**2)))
    # The operator summed the same squares in another order (within n·eps of the sum) and wrote six
    # significant digits (half a unit of the sixth: 5e-6 relative).
    written = 5e-6 * rmse + SAFETY * len(errors) * EPS * rmse
    assert abs(checked["rmse"] - rmse) <= written
    assert abs(checked["referenceRmse"] - reference) <= 5e-6 * reference
