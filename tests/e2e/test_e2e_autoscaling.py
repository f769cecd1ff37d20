"""Autoscaling on the real cluster: metrics-server (`make monitoring`) measures the serving pods' CPU,
`kubectl top pods` lists them, and a ModelDeployment's HPA scales it from 1 to at least 2 ready
replicas while clients keep its pod busy, then back to 1 once the load drops to a trickle. Every request,
under load and while the extra pods are removed, must be answered.

The serving pod requests 100m CPU and the HPA targets 50 % of it, so a pod answering requests back to
back (hundreds of millicores) is far above the target, and a trickle of a request every half second far
below it. The times from the load's start to the scale-up and from its end to the scale-down are
printed for the note (`pytest -s`)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from tests.e2e.test_e2e_pipeline import first_answer
from tests.e2e.traffic import Traffic

# Runs alone (serial): four clients keep a serving pod busy (the whole machine's CPU), and the HPA's timing
# is measured.
pytestmark = pytest.mark.serial

NAME = "autoscaled"
SELECTOR = f"marina.dev/modeldeployment={NAME}"
MAX_REPLICAS = 3
TARGET_CPU_PERCENT = 50
SCALE_DOWN_STABILIZATION_SECONDS = 15
LOAD_WORKERS = 4
TRICKLE_PAUSE_SECONDS = 0.5
#: metrics-server's resolution (15 s is usual; 10 s on the local cluster), the HPA controller's sync period
#: (15 s by default, 5 s on the local cluster), a new pod's start and readiness, twice over for the sample
#: that straddles the change.
SCALE_UP_TIMEOUT = 2 * (15 + 15 + 60)
#: The stabilization window on top of that, for the scale-down.
SCALE_DOWN_TIMEOUT = SCALE_DOWN_STABILIZATION_SECONDS + SCALE_UP_TIMEOUT


@pytest.fixture(scope="module")
def autoscaled(marina: Any, metrics_api: None) -> Any:
    autoscaling = {
        "minReplicas": 1,
        "maxReplicas": MAX_REPLICAS,
        "targetCPUUtilizationPercentage": TARGET_CPU_PERCENT,
        "scaleDownStabilizationSeconds": SCALE_DOWN_STABILIZATION_SECONDS,
    }
    requests = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    marina.apply_ready(*marina.pipeline(NAME, autoscaling=autoscaling, resources=requests))
    return marina


def hpa(marina: Any) -> dict[str, Any]:
    return dict(marina.get("horizontalpodautoscaler", NAME))


def measured_utilization(marina: Any) -> int | None:
    """The CPU utilization the HPA last read from the Metrics API (None while it shows `<unknown>`)."""
    for metric in hpa(marina).get("status", {}).get("currentMetrics") or []:
        if metric.get("type") == "Resource" and metric["resource"]["name"] == "cpu":
            value = metric["resource"]["current"].get("averageUtilization")
            return int(value) if value is not None else None
    return None


def ready_replicas(marina: Any) -> int:
    return int(marina.status("modeldeployment", NAME).get("readyReplicas", 0))


def deployment_replicas(marina: Any) -> int:
    return int(marina.get("deployment", NAME)["spec"].get("replicas", 0))


def top_pods(marina: Any) -> dict[str, str] | None:
    """`kubectl top pods` of the ModelDeployment's pods: pod name -> CPU (None until metrics are in)."""
    listed = marina.try_kubectl("top", "pods", "-l", SELECTOR, "--no-headers")
    if listed.returncode != 0:
        return None
    rows = [line.split() for line in listed.stdout.splitlines() if line.strip()]
    return {row[0]: row[1] for row in rows} or None


def test_kubectl_top_and_the_hpa_read_the_serving_pods_cpu(autoscaled: Any) -> None:
    marina = autoscaled
    pods = set(marina.kubectl("get", "pods", "-l", SELECTOR, "-o", "name").split())
    top = marina.wait_for("kubectl top pods to list the serving pod", lambda: top_pods(marina), timeout=120)
    assert {f"pod/{name}" for name in top} == pods
    assert all(cpu.endswith("m") and int(cpu[:-1]) >= 0 for cpu in top.values()), top
    marina.wait_for(
        "the HPA to read CPU utilization (not <unknown>)",
        lambda: measured_utilization(marina) is not None,
        timeout=SCALE_UP_TIMEOUT,
    )
    spec = hpa(marina)["spec"]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == SCALE_DOWN_STABILIZATION_SECONDS
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, MAX_REPLICAS)


def test_the_hpa_scales_up_under_load_and_back_without_a_failed_request(autoscaled: Any) -> None:
    marina = autoscaled
    marina.wait_for("1 ready replica before the load", lambda: ready_replicas(marina) == 1, timeout=120)
    url = marina.service_url(NAME)
    first_answer(marina, url, NAME)
    rows = np.asarray(load_diabetes().data, dtype=np.float64)
    with Traffic(url, NAME, rows, workers=LOAD_WORKERS) as load:
        started = time.monotonic()
        marina.wait_for(
            "at least 2 ready replicas under load",
            lambda: ready_replicas(marina) >= 2,
            timeout=SCALE_UP_TIMEOUT,
            every=1.0,
        )
        scaled_up = time.monotonic() - started
        peak_utilization = measured_utilization(marina)
        load.pause = TRICKLE_PAUSE_SECONDS  # a trickle keeps checking the Service while pods go
        lowered = time.monotonic()
        marina.wait_for(
            "back to 1 ready replica",
            lambda: ready_replicas(marina) == 1 and deployment_replicas(marina) == 1,
            timeout=SCALE_DOWN_TIMEOUT,
            every=1.0,
        )
        scaled_down = time.monotonic() - lowered
    print(
        f"\nautoscaling: >= 2 ready replicas {scaled_up:.1f}s after the load began (HPA read "
        f"{peak_utilization}% of the request), back to 1 {scaled_down:.1f}s after it dropped "
        f"(stabilization {SCALE_DOWN_STABILIZATION_SECONDS}s); {load.summary()}"
    )
    load.assert_none_failed()
    assert load.answers > 100
    rescales = [
        event["message"]
        for event in json.loads(marina.kubectl("get", "events", "-o", "json"))["items"]
        if event["involvedObject"]["kind"] == "HorizontalPodAutoscaler"
        and event["reason"] == "SuccessfulRescale"
    ]
    assert len(rescales) >= 2, rescales  # up, and down again
