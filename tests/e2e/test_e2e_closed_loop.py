"""The whole loop on the real cluster, while a client sends requests throughout and counts failures.

A Dataset reads a CSV from the namespace's raw area, a TrainingJob follows it (ridge, alpha 100), and a
ModelDeployment serves the model with `onDrift: Retrain`, the IfBetter gate and a two-step canary. Then
the world changes: the source CSV gains as many rows again whose first input is moved by SHIFT training
standard deviations (the relation y = 3·x1 + 2·x2 + 1 + noise still holds), and the client's requests
come from the new data, with extra shifted batches so a window fills quickly. The loop must run by
itself: Drifted → a Retrain (status.retraining, event) → a new Dataset version → a new model → the gate
promotes it → the canary steps → the new model serves, with no failed request.

Why the challenger wins the gate: with alpha 100 on 320 train rows the champion's slopes are shrunk by
about a fifth, and the shifted rows lie far from the inputs it saw; the challenger has twice the rows
and a wider x1, so it is shrunk much less. Its rmse on the new test split is about 1.1 against the
champion's 2.0 (all seeds fixed, so the outcome is deterministic). Its predictions' mean differs from the
champion's by about 0.26 of the champion's prediction standard deviation on the new data, inside the
canary's maxPredictionShift of 1.

The time from the first shifted request to each stage is printed for the note (`pytest -s`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from tests.e2e import test_e2e_promotion as promotion
from tests.e2e.test_e2e_canary import canary_pods
from tests.e2e.test_e2e_pipeline import first_answer, predict
from tests.e2e.traffic import Traffic

from marina import storage

NAME = "loop"
ROWS = 400
SHIFT = 3.0  # x1 is drawn from N(0, 1); the new rows' x1 from N(SHIFT, 1)
ALPHA = 100.0
INTERVAL_SECONDS = 10
MIN_ROWS = 500
SHIFTED_BATCHES, BATCH_ROWS = 3, 1000
STEPS = [{"weight": 50, "pauseSeconds": 5}, {"weight": 100, "pauseSeconds": 5}]
# Each step waits for this many canary answers (the stable answers as many): the difference of the two
# means then varies by about sqrt(2 / 100) = 0.14 sd, so 0.26 + 5 x 0.14 stays under the shift limit 1.
MIN_REQUESTS = 100
STAGE_TIMEOUT = 600  # seconds from one stage to the next, on the shared, busy cluster


def inputs(seed: int, shift: float = 0.0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0.0, 1.0, (ROWS, 2))
    x[:, 0] += shift
    return x


def targets(x: np.ndarray, seed: int) -> np.ndarray:
    y: np.ndarray = 3 * x[:, 0] + 2 * x[:, 1] + 1 + np.random.default_rng(seed).normal(0.0, 1.0, len(x))
    return y


def resources(uri: str) -> list[dict[str, Any]]:
    """The promotion test's Dataset on a CSV, TrainingJob and ModelDeployment, renamed, with the loop's
    model and serving spec."""
    bodies = promotion.resources(uri)
    for body in bodies:
        body["metadata"]["name"] = NAME
    dataset, training, serving = bodies
    training["spec"] = {"dataset": {"name": NAME}, "model": {"penalty": "l2", "alpha": ALPHA}}
    serving["spec"] = {
        "model": {"trainingJob": NAME},
        "replicas": 2,
        "monitoring": {"intervalSeconds": INTERVAL_SECONDS, "minRows": MIN_ROWS, "onDrift": "Retrain"},
        # long enough that the drift going on during the canary refreshes nothing more
        "retraining": {"cooldownSeconds": 900, "maxPerDay": 2},
        "promotion": {"policy": "IfBetter", "metric": "rmse", "tolerance": 0.0},
        "rollout": {
            "strategy": "Canary",
            "progressDeadlineSeconds": 180,
            "steps": STEPS,
            "analysis": {"maxPredictionShift": 1.0, "minRequests": MIN_REQUESTS},
        },
    }
    return [dataset, training, serving]


@pytest.fixture
def looped(marina: Any, storage_env: None) -> Iterator[tuple[Any, str, Traffic]]:
    uri = f"s3://marina/raw/{marina.namespace}/loop.csv"
    storage.write_bytes(uri, promotion.csv_of(first := inputs(1), targets(first, 2)), "text/csv")
    marina.apply_ready(*resources(uri), timeout=STAGE_TIMEOUT)
    url = marina.service_url(NAME)
    first_answer(marina, url, NAME, first[0].tolist(), timeout=60)
    with Traffic(url, NAME, first, limit_seconds=2400) as client:
        yield marina, uri, client


Snapshot = dict[str, dict[str, Any]]  # kind -> the object


def snapshot(marina: Any) -> Snapshot:
    """The Dataset, TrainingJob and ModelDeployment in one read."""
    items = json.loads(
        marina.kubectl(
            "get", f"dataset/{NAME}", f"trainingjob/{NAME}", f"modeldeployment/{NAME}", "-o", "json"
        )
    )["items"]
    return {item["kind"]: item for item in items}


def status_of(seen: Snapshot, kind: str) -> dict[str, Any]:
    return dict(seen[kind].get("status") or {})


def drifted(seen: Snapshot) -> bool:
    conditions = status_of(seen, "ModelDeployment").get("conditions") or []
    return any(c["type"] == "Drifted" and c["status"] == "True" for c in conditions)


class Stages:
    """The loop's stages, each a check on one snapshot, in the order they must happen; `follow` notes
    when each is first seen (seconds after the shift) and also every canary step it sees."""

    def __init__(self, champion: str, first_version: str) -> None:
        self.champion, self.first_version = champion, first_version
        self.at: dict[str, float] = {}
        self.steps: dict[int, float] = {}
        self.challenger = ""

    def checks(self) -> list[tuple[str, Callable[[Snapshot], bool]]]:
        def model(seen: Snapshot) -> str:
            return str((status_of(seen, "ModelDeployment").get("model") or {}).get("sha256", ""))

        def trained(seen: Snapshot) -> bool:
            status = status_of(seen, "TrainingJob")
            sha = (status.get("model") or {}).get("sha256", "")
            fresh = status.get("datasetVersion") == status_of(seen, "Dataset").get("version")
            if status.get("phase") == "Succeeded" and fresh and sha and sha != self.champion:
                self.challenger = str(sha)
                return True
            return False

        def rollout(seen: Snapshot) -> dict[str, Any]:
            state = status_of(seen, "ModelDeployment").get("rollout") or {}
            ours = (state.get("canaryModel") or {}).get("sha256") == self.challenger
            return dict(state) if self.challenger and ours else {}

        return [
            ("Drifted", drifted),
            ("Retrain triggered", lambda s: bool(status_of(s, "ModelDeployment").get("retraining"))),
            (
                "new Dataset version",
                lambda s: status_of(s, "Dataset").get("version") not in (None, self.first_version),
            ),
            ("retrained", trained),
            ("gate decision", lambda s: decision(s, self.challenger) is not None),
            ("canary started", lambda s: bool(rollout(s))),
            ("rollout Promoted", lambda s: rollout(s).get("phase") == "Promoted"),
            ("serving the challenger", lambda s: bool(self.challenger) and model(s) == self.challenger),
        ]

    def follow(self, marina: Any, shifted: float) -> Snapshot:
        """Poll until every stage is reached, in order; fail naming the stage that took too long."""
        checks = self.checks()
        last = time.monotonic()
        while True:
            seen = snapshot(marina)
            moment = time.monotonic()
            state = status_of(seen, "ModelDeployment").get("rollout") or {}
            if self.challenger and state.get("phase") == "Progressing":
                self.steps.setdefault(int(state.get("step", 0)), moment - shifted)
            while len(self.at) < len(checks) and checks[len(self.at)][1](seen):
                self.at[checks[len(self.at)][0]] = moment - shifted
                last = moment
            if len(self.at) == len(checks):
                return seen
            if moment - last > STAGE_TIMEOUT:
                pending = checks[len(self.at)][0]
                pytest.fail(
                    f"no '{pending}' {STAGE_TIMEOUT}s after the previous stage ({self.at}); status: "
                    f"{json.dumps(status_of(seen, 'ModelDeployment'), indent=1)}",
                    pytrace=False,
                )
            time.sleep(0.5)


def decision(seen: Snapshot, challenger: str) -> dict[str, Any] | None:
    decisions = (status_of(seen, "ModelDeployment").get("promotion") or {}).get("decisions") or []
    return next((dict(d) for d in decisions if challenger and d["challenger"] == challenger), None)


def test_drift_retrains_gates_canaries_and_promotes_without_a_failed_request(
    looped: tuple[Any, str, Traffic],
) -> None:
    marina, uri, client = looped
    before = snapshot(marina)
    champion = status_of(before, "ModelDeployment")["model"]["sha256"]
    stages = Stages(champion, status_of(before, "Dataset")["version"])
    assert not drifted(before)

    old = inputs(1)
    new_rows = inputs(3, SHIFT)
    x = np.vstack([old, new_rows])
    storage.write_bytes(
        uri, promotion.csv_of(x, np.concatenate([targets(old, 2), targets(new_rows, 4)])), "text/csv"
    )
    shifted = time.monotonic()
    client.rows = x  # the client's requests now come from the new data
    rng = np.random.default_rng(5)
    for _ in range(SHIFTED_BATCHES):
        predict(client.url, NAME, new_rows[rng.integers(0, ROWS, BATCH_ROWS)].tolist(), timeout=30)
    seen = stages.follow(marina, shifted)
    marina.wait_for("the canary's pods to go", lambda: not canary_pods(marina), timeout=120)
    client.end()

    timings = ", ".join(f"{name} {at:.1f}s" for name, at in stages.at.items())
    steps = ", ".join(f"step {step} {at:.1f}s" for step, at in sorted(stages.steps.items()))
    gate = decision(seen, stages.challenger) or {}
    rmse = {side: gate.get(f"{side}Metrics", {}).get("rmse") for side in ("champion", "challenger")}
    print(
        f"\nfrom the first shifted request: {timings}; canary seen at {steps}; gate rmse {rmse}; "
        f"{client.summary()}"
    )
    status = status_of(seen, "ModelDeployment")
    retraining = status["retraining"]
    assert retraining["reason"] == "Drift" and retraining["dataset"] == NAME and retraining["total"] == 1
    assert "x1" in retraining["message"]
    assert status_of(seen, "TrainingJob")["datasetVersion"] == status_of(seen, "Dataset")["version"]
    assert gate.get("verdict") == "Promoted" and gate["champion"] == champion
    assert gate["challengerMetrics"]["rmse"] <= gate["championMetrics"]["rmse"], gate
    assert gate["datasetVersion"] == status_of(seen, "Dataset")["version"]
    rollout = status["rollout"]
    assert rollout["analysis"]["step"] == len(STEPS) and "failed" not in rollout["analysis"], rollout
    assert status["model"]["sha256"] == stages.challenger and "rejectedModel" not in status
    assert marina.condition("modeldeployment", NAME)["status"] == "True"
    events = marina.events_including(
        NAME,
        ("Normal", "RetrainTriggered"),
        ("Normal", "ChallengerPromoted"),
        ("Normal", "CanaryPassed"),
        ("Warning", "DriftDetected"),
    )
    for expected in ("RetrainTriggered", "ChallengerPromoted", "CanaryPassed"):
        assert [reason for _, reason in events].count(expected) == 1, (expected, events)
    assert ("Warning", "DriftDetected") in events
    client.assert_none_failed()
    assert client.answers >= MIN_REQUESTS * len(STEPS)  # the canary waited for that many
