"""Shadow traffic before the canary, on the real cluster with a client sending throughout.

(a) A challenger trained with its target multiplied by 100 disagrees with the serving model on the very
requests the stable pods copy to it: it is aborted (ShadowDisagreed) before any canary step, and no
client request is answered by it (every answer the client gets is the serving model's).
(b) A challenger trained on the same data with another alpha agrees, passes into the canary steps and is
promoted. Every request of both must succeed.
(c) While the stable pods mirror every request to an agreeing challenger, a client's p99 latency is timed
against the same model's served without mirroring (a second ModelDeployment, in alternating blocks). The
issue asks for at most 10 % more; a few thousand requests pin a p99 down to about ±20 % on this shared
machine, so the test fails only when the p99 is shown, at 95 % confidence, to be more than 10 % above (a
mirror on the request's path would be). benchmarks/shadow_latency_bench.py measures it at length, with
an A/A phase for the noise."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_canary import serve_stable_beside_challengers
from tests.e2e.test_e2e_pipeline import first_answer, predict
from tests.e2e.traffic import Traffic, alternate, quantile

from marina.controller.modeldeployments.manifests import SERVER_PORT

NAME = "shadow"
STEPS = [{"weight": 50, "pauseSeconds": 5}, {"weight": 100, "pauseSeconds": 5}]
SHADOW = {"percent": 100, "minRequests": 100, "durationSeconds": 10, "maxDifference": 0.5}
PLAIN = "plain"  # (c): the same model, never mirroring
TIMED = 3_000  # (c): requests timed per Service
#: (c): the client's pause after each answer. Back to back, each request would share this machine's two
#: cores with the challenger answering the copy of the one before (0.35 ms on the median on the local
#: cluster, docs/serving.md): the machine's capacity, not the request's path, which is what (c) is about.
PAUSE = 0.002
#: (c): the issue's bound on p99 with shadowing over p99 without.
P99_RATIO = 1.10


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
    agreed = [e for e in marina.events_with(NAME, "ShadowAgreed") if e["reason"] == "ShadowAgreed"]
    assert agreed and challenger[:12] in agreed[-1]["message"]
    assert marina.condition("modeldeployment", NAME)["status"] == "True"
    print(f"shadow then canary promotion: {client.summary()}")
    client.assert_none_failed()


# A latency comparison, at a client's pace (PAUSE after each answer): in the serial phase, where no other
# test's pods share the two cores with the two arms (beside three other workers it once measured a p99
# ratio whose lower bound was 1.15).
@pytest.mark.serial
def test_mirroring_is_not_shown_to_raise_the_clients_p99_by_more_than_ten_percent(trained: Any) -> None:
    marina = trained
    served = marina.status("modeldeployment", NAME)["model"]["sha256"]  # "stable", or "better" after (b)
    serving, challenger = sorted(
        ("stable", "better"), key=lambda t: marina.status("trainingjob", t)["model"]["sha256"] != served
    )
    plain = marina.sample("ModelDeployment")
    plain["metadata"]["name"] = PLAIN
    plain["spec"]["model"]["trainingJob"] = serving
    marina.apply_ready(plain, timeout=300)
    row = np.asarray(load_diabetes().data, dtype=np.float64)[0].tolist()
    services = {PLAIN: (marina.service_url(PLAIN), PLAIN), NAME: (marina.service_url(NAME), NAME)}
    first_answer(marina, services[PLAIN][0], PLAIN)
    # A shadow phase longer than the test: the stable pods mirror throughout the measurement.
    patch = {"spec": {"model": {"trainingJob": challenger}, "rollout": {"shadow": {"durationSeconds": 3600}}}}
    marina.kubectl("patch", "modeldeployment", NAME, "--type=merge", "-p", json.dumps(patch))
    marina.wait_for("the stable pods to mirror", lambda: mirroring(marina), timeout=300)
    first_answer(marina, services[NAME][0], NAME)
    alternate(services, row, 200, pause=PAUSE)  # warm up both
    times = alternate(services, row, TIMED, pause=PAUSE)
    on, off = quantile(times[NAME], 0.99), quantile(times[PLAIN], 0.99)
    copies = handed(marina)
    print(
        f"p99 {off.value * 1e3:.2f} ms without mirroring (95 % {off.low * 1e3:.2f}-{off.high * 1e3:.2f}), "
        f"{on.value * 1e3:.2f} ms with (95 % {on.low * 1e3:.2f}-{on.high * 1e3:.2f}): ratio "
        f"{on.value / off.value:.3f}, p50 {quantile(times[PLAIN], 0.5).value * 1e3:.2f} and "
        f"{quantile(times[NAME], 0.5).value * 1e3:.2f} ms; copies {copies}"
    )
    # Every timed request was handed to the mirror (sent, queued, or dropped when the challenger lags:
    # never the client's wait), and copies were sent. `mirroring` waits for the pods of the model before
    # the shadow to be gone: one draining once answered 34 of the 200 warm-up requests without mirroring,
    # and another, its network already torn down, could not be asked (a connect timeout in CI).
    assert sum(copies.values()) >= TIMED and copies["mirrored"] > 0
    # The smallest ratio the two intervals allow is at most 1.10: a p99 more than 10 % above (at 95 %
    # confidence each way) fails.
    assert on.low / off.high <= P99_RATIO


def mirroring(marina: Any) -> bool:
    """The shadow phase counts: every stable pod mirrors and is ready (the duration runs from
    status.rollout.stepStartedAt), and the pods of the model before it are gone, not draining: a draining
    pod answers without mirroring, and once its network is torn down `handed` could not ask it."""
    rollout = marina.status("modeldeployment", NAME).get("rollout") or {}
    if rollout.get("phase") != "Shadowing" or not rollout.get("stepStartedAt"):
        return False
    deployment = marina.get("deployment", NAME)
    status, wanted = deployment.get("status") or {}, deployment["spec"]["replicas"]
    selector = f"marina.dev/modeldeployment={NAME}"
    listed = json.loads(marina.kubectl("get", "pods", "-l", selector, "-o", "json"))
    return bool(
        status.get("replicas") == status.get("updatedReplicas") == status.get("readyReplicas") == wanted
        and len(listed["items"]) == wanted
    )


def handed(marina: Any) -> dict[str, int]:
    """What the stable pods did with their copies (mirrored, queued, dropped), summed over their
    GET /v2/models/<name>/shadow."""
    pods = marina.kubectl(
        "get", "pods", "-l", f"marina.dev/modeldeployment={NAME}", "-o", "jsonpath={.items[*].status.podIP}"
    )
    total = dict.fromkeys(("mirrored", "queued", "dropped"), 0)
    for ip in pods.split():
        url = f"http://{ip}:{SERVER_PORT}/v2/models/{NAME}/shadow"
        with urllib.request.urlopen(url, timeout=10) as response:
            document = json.load(response)
        for key in total:
            total[key] += int(document[key])
    return total
