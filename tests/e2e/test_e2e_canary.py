"""Canary rollouts on the real cluster, while a client sends requests throughout and counts failures.

(a) A challenger trained on the diabetes data with its target multiplied by 100 predicts about 100
times the stable's values: its first step's prediction shift is hundreds of stable standard deviations,
far beyond maxPredictionShift 1, so it is rolled back at step 1; the stable keeps serving.
(b) A challenger trained on the same data with another alpha passes both steps and is promoted.
(c) The leading operator pod is deleted during a canary's first pause: the other replica resumes the same
rollout from its status (the same canary Deployment, the same step and pause) and promotes it.
Every request of all three must succeed. The time from the change to each decision is printed for the note
(`pytest -s`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_leader import OPERATOR, SYSTEM, leader
from tests.e2e.test_e2e_pipeline import first_answer
from tests.e2e.traffic import Traffic

NAME = "canary"
PAUSE_SECONDS = 5
#: Step 1's pause in (c): long enough that the other replica takes over inside it (0.5-2.8 s measured, and
#: read by the test within about 5 s of the pause's start).
LONG_PAUSE_SECONDS = 20
STEPS = [{"weight": 50, "pauseSeconds": PAUSE_SECONDS}, {"weight": 100, "pauseSeconds": PAUSE_SECONDS}]
SCALE = 100.0


def training_job(marina: Any, name: str, dataset: str, alpha: float) -> dict[str, Any]:
    body: dict[str, Any] = marina.sample("TrainingJob")
    body["metadata"]["name"] = name
    body["spec"]["dataset"]["name"] = dataset
    body["spec"]["model"]["alpha"] = alpha
    return body


def scaled_dataset(marina: Any) -> dict[str, Any]:
    """The diabetes rows inline, the target multiplied by SCALE (same feature names and order)."""
    source = load_diabetes()
    columns = [*source.feature_names, "target"]
    rows = [[*map(float, x), float(y) * SCALE] for x, y in zip(source.data, source.target, strict=True)]
    body: dict[str, Any] = marina.sample("Dataset")
    body["metadata"]["name"] = "scaled"
    body["spec"]["source"] = {"inline": {"columns": columns, "rows": rows}}
    return body


def serving(marina: Any, training: str) -> dict[str, Any]:
    body: dict[str, Any] = marina.sample("ModelDeployment")
    body["metadata"]["name"] = NAME
    body["spec"]["model"]["trainingJob"] = training
    body["spec"]["rollout"] = {
        "progressDeadlineSeconds": 60,
        "strategy": "Canary",
        "steps": STEPS,
        "analysis": {"maxPredictionShift": 1.0, "minRequests": 20},
    }
    return body


def serve_stable_beside_challengers(marina: Any, deployment: dict[str, Any]) -> Any:
    """Three models (stable; better: another alpha; scaled: a 100-times target), then `deployment` serving
    the stable one, Ready."""
    marina.apply(
        marina.sample("Dataset"),
        scaled_dataset(marina),
        training_job(marina, "stable", "diabetes", 0.1),
        training_job(marina, "better", "diabetes", 0.2),
        training_job(marina, "scaled", "scaled", 0.1),
    )
    for name in ("stable", "better", "scaled"):
        marina.wait_ready("trainingjob", name, timeout=420)
    marina.apply(deployment)
    marina.wait_ready("modeldeployment", deployment["metadata"]["name"], timeout=300)
    return marina


@pytest.fixture(scope="module")
def trained(marina: Any) -> Any:
    return serve_stable_beside_challengers(marina, serving(marina, "stable"))


@pytest.fixture
def client(trained: Any) -> Iterator[Traffic]:
    url = trained.service_url(NAME)
    first_answer(trained, url, NAME)
    with Traffic(url, NAME, np.asarray(load_diabetes().data, dtype=np.float64)) as running:
        yield running


def switch(marina: Any, training: str, steps: list[dict[str, int]] | None = None) -> tuple[float, str]:
    """Point the ModelDeployment at another TrainingJob's model (and new canary steps): (when, monotonic;
    when, as status says)."""
    wall = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    spec: dict[str, Any] = {"model": {"trainingJob": training}}
    if steps is not None:
        spec["rollout"] = {"steps": steps}
    patch = json.dumps({"spec": spec})
    marina.kubectl("patch", "modeldeployment", NAME, "--type=merge", "-p", patch)
    return time.monotonic(), wall


def follow(
    marina: Any, started: tuple[float, str], phase: str, timeout: float, name: str = NAME
) -> tuple[dict[str, Any], str]:
    """Poll status.rollout until the rollout begun at `started` reaches `phase`; also say when (seconds
    after the patch) each step asked for its canary pods, when its pause began, and when it ended."""
    begun = started[0]
    seen: dict[str, float] = {}

    def reached() -> dict[str, Any] | None:
        rollout = rollout_of(marina, started, name)
        if not rollout:
            return None  # the record of an earlier rollout
        at = f"step {rollout.get('step')} " + ("pause" if rollout.get("stepStartedAt") else "pods")
        seen.setdefault(
            at if rollout.get("phase") == "Progressing" else str(rollout["phase"]), time.monotonic()
        )
        return rollout if rollout.get("phase") == phase else None

    rollout = marina.wait_for(f"rollout phase {phase}", reached, timeout=timeout, every=0.5)
    return rollout, ", ".join(f"{what} at {moment - begun:.1f} s" for what, moment in seen.items())


def test_a_shifted_challenger_is_rolled_back_at_the_first_step(trained: Any, client: Traffic) -> None:
    marina = trained
    stable = marina.status("modeldeployment", NAME)["model"]["sha256"]
    challenger = marina.status("trainingjob", "scaled")["model"]["sha256"]
    rolled, seen = follow(marina, switch(marina, "scaled"), "RolledBack", timeout=180)
    # the client keeps sending while the canary's pods drain
    marina.wait_for("the canary's pods to go", lambda: not canary_pods(marina), timeout=90)
    client.end()
    print(f"canary abort, after the patch: {seen}; {client.summary()}")
    assert not marina.exists("deployment", f"{NAME}-canary")
    assert rolled["step"] == 1 and rolled["canaryModel"]["sha256"] == challenger and "step 2" not in seen
    failed = rolled["analysis"]["failed"]
    assert failed["metric"] == "predictionShift" and failed["threshold"] == 1.0
    assert failed["value"] > 10 * failed["threshold"], failed  # far beyond, as a 100-times target is
    status = marina.status("modeldeployment", NAME)
    assert status["model"]["sha256"] == stable and status["failedModel"]["sha256"] == challenger
    ready = marina.condition("modeldeployment", NAME)
    assert (ready["status"], ready["reason"]) == ("True", "RolledBack")
    assert "predictionShift" in ready["message"]
    events = marina.events_with(NAME, "RolledBack")
    warnings = [e for e in events if e["type"] == "Warning" and e["reason"] == "RolledBack"]
    assert warnings and "predictionShift" in warnings[-1]["message"]
    client.assert_none_failed()
    assert client.answers > 20


def test_a_good_challenger_is_promoted(trained: Any, client: Traffic) -> None:
    marina = trained
    challenger = marina.status("trainingjob", "better")["model"]["sha256"]
    rollout, seen = follow(marina, switch(marina, "better"), "Promoted", timeout=300)
    marina.wait_for("the canary's pods to go", lambda: not canary_pods(marina), timeout=90)
    client.end()
    print(f"canary promotion, after the patch: {seen}; {client.summary()}")
    status = marina.status("modeldeployment", NAME)
    assert status["model"]["sha256"] == challenger and rollout["canaryModel"]["sha256"] == challenger
    assert rollout["analysis"]["step"] == len(STEPS) and "failed" not in rollout["analysis"]
    assert marina.condition("modeldeployment", NAME)["status"] == "True"
    client.assert_none_failed()
    assert client.answers > 20


# Runs alone (serial): it deletes the leading operator pod, under every other test's resources too.
@pytest.mark.serial
def test_a_canary_resumes_on_the_other_replica_when_its_leader_is_deleted(
    trained: Any, client: Traffic
) -> None:
    marina = trained
    cluster = marina.cluster
    cluster.kubectl("-n", SYSTEM, "rollout", "status", OPERATOR, "--timeout=180s", timeout=200)
    first = marina.wait_for("a leader among the operator's replicas", lambda: leader(cluster), timeout=60)
    # The model not served now: "better" when this test runs alone (in the serial phase), "stable" after
    # the promotion above.
    served = marina.status("modeldeployment", NAME)["model"]["sha256"]
    target = next(
        t for t in ("better", "stable") if marina.status("trainingjob", t)["model"]["sha256"] != served
    )
    challenger = marina.status("trainingjob", target)["model"]["sha256"]
    steps = [
        {"weight": 50, "pauseSeconds": LONG_PAUSE_SECONDS},
        {"weight": 100, "pauseSeconds": PAUSE_SECONDS},
    ]
    started = switch(marina, target, steps)
    paused = marina.wait_for(
        "step 1's pause",
        lambda: (now := rollout_of(marina, started)).get("step") == 1 and now.get("stepStartedAt") and now,
        timeout=120,
        every=0.5,
    )
    canary = marina.get("deployment", f"{NAME}-canary")["metadata"]["uid"]
    cluster.kubectl("-n", SYSTEM, "delete", "pod", first, "--wait=false")
    deleted = time.monotonic()
    second = marina.wait_for(
        "the other replica to lead", lambda: (now := leader(cluster)) not in (None, first) and now, timeout=90
    )
    takeover = time.monotonic() - deleted
    resumed = rollout_of(marina, started)
    rollout, seen = follow(marina, started, "Promoted", timeout=300)
    marina.wait_for("the canary's pods to go", lambda: not canary_pods(marina), timeout=90)
    cluster.kubectl("-n", SYSTEM, "rollout", "status", OPERATOR, "--timeout=180s", timeout=200)
    client.end()
    print(
        f"leader {first} deleted in step 1's pause, {second} led {takeover:.1f}s later; "
        f"after the patch: {seen}; {client.summary()}"
    )
    assert (resumed["startedAt"], resumed["step"], resumed["stepStartedAt"]) == (
        paused["startedAt"],
        1,
        paused["stepStartedAt"],
    ), resumed  # the same rollout, step and pause, not begun again
    assert rollout["startedAt"] == paused["startedAt"] and rollout["canaryModel"]["sha256"] == challenger
    assert rollout["analysis"]["step"] == len(steps) and "failed" not in rollout["analysis"]
    assert marina.status("modeldeployment", NAME)["model"]["sha256"] == challenger
    # one canary Deployment in this rollout: the new leader scaled the one it found, it made no other
    scaled = {
        e["involvedObject"]["uid"]
        for e in marina.events(f"{NAME}-canary")
        if (e.get("firstTimestamp") or "") >= paused["startedAt"]
    }
    assert scaled == {canary}, scaled
    client.assert_none_failed()


def rollout_of(marina: Any, started: tuple[float, str], name: str = NAME) -> dict[str, Any]:
    """status.rollout when it is the record of the rollout begun at `started`, else {}."""
    rollout = dict(marina.status("modeldeployment", name).get("rollout") or {})
    return rollout if rollout.get("startedAt", "") >= started[1] else {}


def canary_pods(marina: Any) -> list[str]:
    found = marina.kubectl("get", "pods", "-l", "marina.dev/track=canary", "-o", "name").split()
    return list(found)
