"""Shadow traffic before the canary, on the real cluster with a client sending throughout.

(a) A challenger trained with its target multiplied by 100 disagrees with the serving model on the very
requests the stable pods copy to it: it is aborted (ShadowDisagreed) before any canary step, and no
client request is answered by it (every answer the client gets is the serving model's).
(b) A challenger trained on the same data with another alpha agrees, passes into the canary steps and is
promoted. Every request of both must succeed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_canary import serve_stable_beside_challengers
from tests.e2e.test_e2e_pipeline import first_answer, predict
from tests.e2e.traffic import Traffic

NAME = "shadow"
STEPS = [{"weight": 50, "pauseSeconds": 5}, {"weight": 100, "pauseSeconds": 5}]
SHADOW = {"percent": 100, "minRequests": 100, "durationSeconds": 10, "maxDifference": 0.5}


def serving(marina: Any, training: str) -> dict[str, Any]:
    body: dict[str, Any] = marina.sample("ModelDeployment")
    body["metadata"]["name"] = NAME
    body["spec"]["model"]["trainingJob"] = training
    body["spec"]["rollout"] = {
        "progressDeadlineSeconds": 60,
        "strategy": "Canary",
        "steps": STEPS,
        "analysis": {"maxPredictionShift": 1.0, "minRequests": 20},
        "shadow": SHADOW,
    }
    return body


@pytest.fixture(scope="module")
def trained(marina: Any) -> Any:
    return serve_stable_beside_challengers(marina, serving(marina, "stable"))


@pytest.fixture
def client(trained: Any) -> Iterator[Traffic]:
    url = trained.service_url(NAME)
    first_answer(trained, url, NAME)
    with Traffic(url, NAME, np.asarray(load_diabetes().data, dtype=np.float64), workers=2) as running:
        yield running


def switch(marina: Any, training: str) -> None:
    patch = json.dumps({"spec": {"model": {"trainingJob": training}}})
    marina.kubectl("patch", "modeldeployment", NAME, "--type=merge", "-p", patch)


def phase(marina: Any) -> str | None:
    return (marina.status("modeldeployment", NAME).get("rollout") or {}).get("phase")


def shadow_status(marina: Any) -> dict[str, Any]:
    rollout = marina.status("modeldeployment", NAME).get("rollout") or {}
    return dict(rollout.get("shadow") or {})


def test_a_disagreeing_challenger_is_aborted_before_any_user_sees_it(trained: Any, client: Traffic) -> None:
    marina = trained
    stable = marina.status("modeldeployment", NAME)["model"]["sha256"]
    challenger = marina.status("trainingjob", "scaled")["model"]["sha256"]
    url = marina.service_url(NAME)
    rows = np.asarray(load_diabetes().data, dtype=np.float64)
    # The serving model's answers to 50 rows; the same request to the same model is answered to the bit.
    expected = predict(url, NAME, rows[:50].tolist(), timeout=30)
    switch(marina, "scaled")
    marina.wait_for("the shadow phase", lambda: phase(marina) == "Shadowing", timeout=180, every=0.5)
    # While the challenger receives copies, every answer a client gets is still the serving model's.
    checked = 0
    while phase(marina) == "Shadowing":
        assert predict(url, NAME, rows[:50].tolist(), timeout=30) == expected
        checked += 1
    ready = marina.wait_reason("modeldeployment", NAME, "ShadowDisagreed", timeout=120)
    client.end()
    status = marina.status("modeldeployment", NAME)
    assert status["model"]["sha256"] == stable and status["failedModel"]["sha256"] == challenger
    verdict = shadow_status(marina)
    assert verdict["verdict"] == "Disagreed" and verdict["meanDifference"] > SHADOW["maxDifference"]
    assert verdict["rows"] >= SHADOW["minRequests"]
    assert not marina.exists("deployment", f"{NAME}-canary")  # no canary step ever ran
    assert "maxDifference" in ready["message"] or "differ" in ready["message"]
    print(f"shadow abort: {verdict}; {client.summary()}; {checked} requests checked during the phase")
    assert checked > 0
    client.assert_none_failed()


def test_an_agreeing_challenger_passes_into_the_canary_and_is_promoted(trained: Any, client: Traffic) -> None:
    marina = trained
    challenger = marina.status("trainingjob", "better")["model"]["sha256"]
    switch(marina, "better")
    marina.wait_for(
        "promotion",
        lambda: marina.status("modeldeployment", NAME).get("model", {}).get("sha256") == challenger,
        timeout=300,
    )
    client.end()
    agreed = [e for e in marina.events(NAME) if e["reason"] == "ShadowAgreed"]
    assert agreed and challenger[:12] in agreed[-1]["message"]
    assert marina.condition("modeldeployment", NAME)["status"] == "True"
    print(f"shadow then canary promotion: {client.summary()}")
    client.assert_none_failed()
