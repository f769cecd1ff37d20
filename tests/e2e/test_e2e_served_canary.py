"""The whole loop of a concept shift on the cluster, with a client sending requests throughout: a model
serves with every answer logged; the truth comes back with a new relation of the same inputs (truth =
100 - what the old model answered); live accuracy sets Degraded while Drifted stays False; `onDegraded:
Retrain` refreshes the Dataset (the diabetes rows and the served ones), retrains, the promotion gate
(IfBetter) compares the challenger with the champion and promotes it, a canary rolls it out step by step,
and on fresh requests whose truth follows the shifted relation the new model's live rmse is far below the
old one's. Not one of the client's requests fails.

Why the new model's error falls, and by how much. The champion f is the least-squares fit of the diabetes
target y on x. Every diabetes row is served COPIES (k) times and labelled 100 - f(x), so the refreshed
Dataset holds each x once with y and k times with 100 - f(x). With the same design rows under both
targets, least squares fits their weighted mean: g = (f + k (100 - f)) / (1 + k) (as y - f is orthogonal
to the design, its share fits to 0), and on the shifted relation g - (100 - f) = (2f - 100) / (1 + k): the
old model's errors over 1 + k. The split (80 % of the rows train, at random) makes the two sets of x
differ a little, so this holds approximately: the test asks for the new live rmse below the old one over
RMSE_FALL = 2, where k = 3 predicts a fall of 4. The gate sees the same: on the test split (a quarter
diabetes rows, three quarters shifted; 53 is f's rmse on the diabetes target, 204 the rms of 2f - 100) the
champion's mean squared error is about (53^2 + 3 * 204^2) / 4, the challenger's about ((3/4 * 204)^2 +
53^2 + 3 * (204 / 4)^2) / 4: rmse about 180 against 92.

The canary's prediction shift is |mean g - mean f| / sd f = k / (1 + k) * |mean(2f - 100)| / sd f, large
for a model of a new relation (about 2.8 here): the test reads f's answers and allows twice that, so the
analysis passes a challenger the gate chose (its other checks, errors and p99, stay at their defaults).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_canary import STEPS, canary_pods, follow
from tests.e2e.test_e2e_live_accuracy import feedback, infer
from tests.e2e.test_e2e_pipeline import first_answer
from tests.e2e.test_e2e_promotion import serving_only
from tests.e2e.test_e2e_served_retraining import NAME, TIMEOUT, pipeline, trained_model
from tests.e2e.traffic import Traffic

from bounds import EPS, SAFETY

COPIES = 3  # each diabetes row served and labelled this many times: the served rows outweigh the originals
RMSE_FALL = 2.0  # the new live rmse is below the old over this (1 + COPIES = 4 predicted, above)
SHIFT_ALLOWANCE = 2.0  # maxPredictionShift over the shift predicted from the champion's answers
CLIENT_PAUSE = 0.02  # the client's pause between requests: enough for each canary step's minRequests


def answer_every_row(url: str, x: np.ndarray, prefix: str) -> dict[str, float]:
    """Each row of `x` answered COPIES times, by id `prefix-copy-row`."""
    return {
        f"{prefix}-{c}-{i}": infer(url, f"{prefix}-{c}-{i}", row.tolist(), NAME)
        for c in range(COPIES)
        for i, row in enumerate(x)
    }


def post_shifted_truth(url: str, prefix: str, answers: np.ndarray) -> dict[str, float]:
    """The shifted relation's truth of each `prefix-copy-row`, 100 - what the old model answered for
    that row, posted a copy at a time; returned."""
    truths: dict[str, float] = {}
    for c in range(COPIES):
        copy = {f"{prefix}-{c}-{i}": 100.0 - float(answer) for i, answer in enumerate(answers)}
        feedback(url, copy, NAME)
        truths |= copy
    return truths


def live(marina: Any) -> dict[str, Any]:
    return dict((marina.status("modeldeployment", NAME).get("monitoring") or {}).get("performance") or {})


def operator_rmse_matches(written: float, told: dict[str, float], truths: dict[str, float]) -> float:
    """The rmse of what the client was told against the truth it sent, checked against the operator's."""
    errors = np.array([told[key] - truths[key] for key in truths])
    rmse = float(np.sqrt(np.mean(errors**2)))
    # The same squares summed in another order (n·eps of the sum), written to six significant digits.
    assert abs(written - rmse) <= 5e-6 * rmse + SAFETY * len(errors) * EPS * rmse
    return rmse


def test_a_concept_shift_retrains_on_served_rows_and_a_gated_canary_lowers_the_live_error(
    marina: Any, storage_env: None
) -> None:
    source = load_diabetes()
    x = np.asarray(source.data, dtype=np.float64)
    labelled = COPIES * len(x)
    data, training, deployment = pipeline(marina, labelled=labelled)
    deployment["spec"]["rollout"] = {
        "progressDeadlineSeconds": 60,
        "strategy": "Canary",
        "steps": STEPS,
        "analysis": {"minRequests": 20},
    }
    deployment["spec"]["promotion"] = {"policy": "IfBetter", "metric": "rmse", "tolerance": 0.0}
    marina.apply_ready(data, training, deployment, timeout=TIMEOUT)
    champion = marina.status("modeldeployment", NAME)["model"]["sha256"]
    url = marina.service_url(NAME)
    first_answer(marina, url, NAME, x[0].tolist(), timeout=60)
    drifted: list[dict[str, Any]] = []

    def never_drifted() -> None:
        condition = marina.condition("modeldeployment", NAME, "Drifted")
        if condition.get("status") == "True":
            drifted.append(condition)
        assert not drifted, f"Drifted turned True: {drifted[0]}"

    def watched(what: str, check: Any, timeout: float = TIMEOUT, every: float = 1.0) -> Any:
        """marina.wait_for, reading the Drifted condition at each poll too."""
        return marina.wait_for(what, lambda: (never_drifted(), check())[1], timeout=timeout, every=every)

    began = time.monotonic()
    with Traffic(url, NAME, x, pause=CLIENT_PAUSE, limit_seconds=1800) as client:
        # Every diabetes row, COPIES times, answered by the champion.
        told = answer_every_row(url, x, "old")
        answers = np.array([told[f"old-0-{i}"] for i in range(len(x))])
        assert all(told[f"old-{c}-{i}"] == answers[i] for c in range(COPIES) for i in range(len(x)))
        shift = COPIES / (1 + COPIES) * abs(float(np.mean(2 * answers - 100))) / float(np.std(answers))
        allowed = SHIFT_ALLOWANCE * shift
        patch = {"spec": {"rollout": {"analysis": {"maxPredictionShift": allowed}}}}
        marina.kubectl("patch", "modeldeployment", NAME, "--type=merge", "-p", json.dumps(patch))
        started = (time.monotonic(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

        # The concept shift: the same inputs, the truth 100 - the answer.
        truths = post_shifted_truth(url, "old", answers)
        degraded = watched(
            "Degraded True",
            lambda: (
                (c := marina.condition("modeldeployment", NAME, "Degraded")).get("status") == "True" and c
            ),
        )
        seen_degraded = time.monotonic()
        assert degraded["reason"] == "ErrorAboveMargin"
        old = live(marina)
        assert old["rows"] == labelled
        old_rmse = operator_rmse_matches(old["rmse"], told, truths)

        # Retrained on the diabetes rows and the served ones.
        watched(
            "a retrain triggered by Degraded",
            lambda: (
                (marina.status("modeldeployment", NAME).get("retraining") or {}).get("reason") == "Degraded"
            ),
        )
        refreshed = watched(
            "the refreshed Dataset version",
            lambda: (s := marina.status("dataset", NAME)).get("rows") == len(x) + labelled and s,
        )
        retrained = trained_model(marina, NAME, refreshed["version"])
        assert retrained.dataset["logs"]["rows"] == labelled
        trained_at = time.monotonic()

        # The gate compares the two on the refreshed version's test split and promotes the challenger.
        def decision() -> dict[str, Any] | None:
            decisions = (marina.status("modeldeployment", NAME).get("promotion") or {}).get("decisions") or []
            return next((d for d in decisions if d["challenger"] == retrained.sha256), None)

        gate = watched("the gate's decision", decision)
        gated_at = time.monotonic()
        assert gate["verdict"] == "Promoted" and gate["champion"] == champion
        assert gate["datasetVersion"] == refreshed["version"]
        assert gate["challengerMetrics"]["rmse"] < gate["championMetrics"]["rmse"]

        # The canary, step by step.
        never_drifted()
        rollout, seen = follow(marina, started, "Promoted", timeout=TIMEOUT, name=NAME)
        never_drifted()
        assert rollout["canaryModel"]["sha256"] == retrained.sha256
        assert rollout["analysis"]["step"] == len(STEPS) and "failed" not in rollout["analysis"]
        assert rollout["analysis"]["predictionShift"] <= allowed
        watched("the canary's pods to go", lambda: not canary_pods(marina), timeout=90)
        watched(
            "only the new model's pods", lambda: serving_only(marina, retrained.sha256, NAME), timeout=120
        )
        promoted_at = time.monotonic()
        assert marina.status("modeldeployment", NAME)["model"]["sha256"] == retrained.sha256

        # Fresh requests, their truth from the shifted relation (100 - what the old model said of that row).
        fresh = answer_every_row(url, x, "new")
        fresh_truths = post_shifted_truth(url, "new", answers)
        new = watched(
            "the new model's live rmse over its labelled rows",
            lambda: (
                marina.status("modeldeployment", NAME)["model"]["sha256"] == retrained.sha256
                and (p := live(marina)).get("rows") == labelled
                and p.get("otherModels") == labelled  # the old model's rows: a check of the new one's
                and p
            ),
        )
        new_rmse = operator_rmse_matches(new["rmse"], fresh, fresh_truths)
        assert marina.condition("modeldeployment", NAME, "Degraded")["status"] == "False"
        never_drifted()
        client.end()
    ended = time.monotonic()
    gate_rmse = f"{gate['challengerMetrics']['rmse']:.4g} against {gate['championMetrics']['rmse']:.4g}"
    shifted = f"{rollout['analysis']['predictionShift']:.3g}, allowed {allowed:.3g}"
    times = ", ".join(
        f"{what} {moment - began:.1f}s"
        for what, moment in (
            ("Degraded", seen_degraded),
            ("retrained", trained_at),
            ("gate", gated_at),
            ("promoted", promoted_at),
        )
    )
    print(
        f"\nconcept shift, after the first request: {times}; gate rmse {gate_rmse}; canary: {seen}, "
        f"prediction shift {shifted}; live rmse {old_rmse:.4g} -> {new_rmse:.4g} over {labelled} rows each; "
        f"client {client.summary()} in {ended - began:.0f}s"
    )
    client.assert_none_failed()
    assert client.answers > 0
    assert new_rmse < old_rmse / RMSE_FALL
