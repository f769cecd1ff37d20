"""A ModelDeployment's canary rollout through the reconciler, on the fake API: the canary Deployment
beside the stable one, each step's analysis of the pods' counters, the abort and the promotion."""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
import pytest

from marina.contract import API_VERSION
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import canary, rollout
from marina.controller.modeldeployments import manifests as modeldeployment_manifests
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.modeldeployments.handlers import in_canary
from marina.controller.shared import builders, observation
from marina.controller.shared.builders import ModelReference
from marina.controller.shared.conditions import State
from marina.serving.traffic import Traffic

OLD, NEW = "a" * 64, "b" * 64
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
CANARY_SPEC = {
    "strategy": "Canary",
    "steps": [{"weight": 50, "pauseSeconds": 10}, {"weight": 100, "pauseSeconds": 10}],
    "analysis": {"maxPredictionShift": 1.0, "minRequests": 10},
}


class Cluster:
    """The fake API plus the parts of the cluster the canary needs: a clock, Deployments that become
    ready on request, and what each serving pod's counters say."""

    def __init__(self, kube: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kube, self.settings, self.moment = kube, settings, START
        self.predictions: dict[str, list[float]] = {}  # model sha256 -> what its pods answered so far
        monkeypatch.setattr(observation, "now", lambda: self.moment)
        monkeypatch.setattr(canary, "read_traffic", lambda kube, owner: self.readings())

    def train(self, sha: str) -> None:
        status = {
            "phase": "Succeeded",
            "model": {"uri": f"s3://marina/models/default/ridge/{sha}.json", "sha256": sha},
        }
        if self.kube.get(API_VERSION, "TrainingJob", "default", "ridge") is None:
            self.kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}}, status)
        else:
            self.kube.set_status(API_VERSION, "TrainingJob", "ridge", status)

    def settle(self, name: str) -> None:
        body = self.kube.objects[("apps/v1", "Deployment", "default", name)]
        count = body["spec"]["replicas"]
        body["status"] = {
            "observedGeneration": body["metadata"]["generation"],
            **{key: count for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")},
        }

    def serve(self, sha: str, values: list[float]) -> None:
        self.predictions.setdefault(sha, []).extend(values)

    def readings(self) -> list[rollout.PodTraffic]:
        found = []
        for sha, values in self.predictions.items():
            counters = Traffic()
            for value in values:
                counters.observe("v1_predict", 200, 0.003)
                counters.predicted(np.array([value]))
            found.append(rollout.PodTraffic.parse(counters.document("diabetes", sha[:12]), f"pod-{sha[:4]}"))
        return found

    def reconcile(self, seconds: float = 0.0) -> Any:
        self.moment += datetime.timedelta(seconds=seconds)
        body = self.kube.current("ModelDeployment", "diabetes")
        return modeldeployments.reconcile(self.kube, self.settings, body)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.kube.current("ModelDeployment", "diabetes")["status"]
        return status

    def served_by(self, name: str) -> str | None:
        model = modeldeployment_manifests.deployed_model(
            self.kube.get("apps/v1", "Deployment", "default", name)
        )
        return model.sha256 if model else None


@pytest.fixture
def cluster(kube: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """A ModelDeployment with a canary rollout, serving model OLD on 2 replicas."""
    cluster = Cluster(kube, settings, monkeypatch)
    cluster.train(OLD)
    spec = {"model": {"trainingJob": "ridge"}, "replicas": 2, "rollout": CANARY_SPEC}
    kube.add_resource("ModelDeployment", "diabetes", spec)
    assert cluster.reconcile().reason == "RollingOut"  # the first model has nothing to compare with
    cluster.settle("diabetes")
    assert cluster.reconcile().state is State.READY
    return cluster


def start_canary(cluster: Cluster) -> None:
    cluster.train(NEW)
    outcome = cluster.reconcile()
    assert (outcome.state, outcome.reason) == (State.PROGRESSING, "Canary")
    canary = cluster.kube.get("apps/v1", "Deployment", "default", "diabetes-canary")
    assert canary["spec"]["replicas"] == 1  # 50% of 2
    assert canary["spec"]["selector"]["matchLabels"] == {
        "marina.dev/modeldeployment": "diabetes",
        "marina.dev/track": "canary",
    }
    labels = canary["spec"]["template"]["metadata"]["labels"]
    service = cluster.kube.get("v1", "Service", "default", "diabetes")
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())  # the Service sends it traffic
    assert cluster.served_by("diabetes-canary") == NEW and cluster.served_by("diabetes") == OLD
    assert cluster.status()["rollout"]["stepStartedAt"] is None  # its pause waits for its pods
    cluster.settle("diabetes-canary")
    cluster.serve(OLD, [100.0, 120.0] * 50)  # counted before the step: in the baseline
    cluster.reconcile()
    assert cluster.status()["rollout"]["stepStartedAt"] == "2026-01-01T00:00:00Z"
    assert {b["pod"] for b in cluster.status()["rollout"]["baseline"]} == {f"pod-{OLD[:4]}"}


def test_a_shifted_challenger_is_rolled_back_at_the_first_step(cluster: Cluster) -> None:
    start_canary(cluster)
    cluster.serve(OLD, [100.0, 120.0] * 20)
    cluster.serve(NEW, [10000.0, 12000.0] * 10)
    assert cluster.reconcile(seconds=9).reason == "Canary"  # the pause is not over: nothing judged
    outcome = cluster.reconcile(seconds=1)
    assert (outcome.state, outcome.reason) == (State.DEGRADED, "RolledBack")
    assert cluster.kube.get("apps/v1", "Deployment", "default", "diabetes-canary") is None
    assert cluster.served_by("diabetes") == OLD
    status = cluster.status()
    assert status["model"]["sha256"] == OLD and status["failedModel"]["sha256"] == NEW
    failed = status["rollout"]["analysis"]["failed"]
    assert failed["metric"] == "predictionShift" and failed["threshold"] == 1.0
    assert failed["value"] == pytest.approx((11000 - 110) / 10)  # stable's std of 100/120 is 10
    assert status["rollout"]["phase"] == "RolledBack" and status["rollout"]["weights"] == "100/0"
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "RolledBack")
    assert "predictionShift 1089 exceeds maxPredictionShift 1" in ready["message"]
    assert cluster.kube.events[-1][1:3] == ("Warning", "RolledBack")
    # the rolled-back model is not tried again
    assert cluster.reconcile(seconds=30).reason == "RolledBack"
    assert cluster.kube.get("apps/v1", "Deployment", "default", "diabetes-canary") is None


def test_a_good_challenger_passes_every_step_and_is_promoted(cluster: Cluster) -> None:
    start_canary(cluster)
    cluster.serve(OLD, [100.0, 120.0] * 20)
    cluster.serve(NEW, [101.0, 119.0] * 10)
    outcome = cluster.reconcile(seconds=10)
    assert outcome.reason == "Canary" and cluster.status()["rollout"]["step"] == 2
    assert cluster.kube.get("apps/v1", "Deployment", "default", "diabetes-canary")["spec"]["replicas"] == 2
    assert cluster.status()["rollout"]["weights"] == "50/50"
    cluster.settle("diabetes-canary")
    cluster.reconcile(seconds=1)
    cluster.serve(OLD, [100.0, 120.0] * 10)
    cluster.serve(NEW, [102.0, 118.0] * 10)
    outcome = cluster.reconcile(seconds=10)
    assert outcome.reason == "RollingOut" and cluster.served_by("diabetes") == NEW  # stable updated
    assert cluster.status()["rollout"]["phase"] == "Promoting"
    assert cluster.kube.get("apps/v1", "Deployment", "default", "diabetes-canary") is not None
    cluster.settle("diabetes")
    outcome = cluster.reconcile()
    assert outcome.state is State.READY
    assert cluster.kube.get("apps/v1", "Deployment", "default", "diabetes-canary") is None
    status = cluster.status()
    assert status["model"]["sha256"] == NEW and status["rollout"]["phase"] == "Promoted"


def test_a_step_waits_for_the_traffic_it_needs(cluster: Cluster) -> None:
    start_canary(cluster)
    cluster.serve(NEW, [100.0] * 5)
    outcome = cluster.reconcile(seconds=10)
    assert outcome.reason == "Canary" and "waiting for traffic" in outcome.message
    cluster.serve(OLD, [100.0, 120.0] * 10)
    cluster.serve(NEW, [101.0, 119.0] * 5)
    cluster.reconcile(seconds=2)
    assert cluster.status()["rollout"]["step"] == 2


def test_a_canary_that_never_gets_ready_is_rolled_back(cluster: Cluster) -> None:
    cluster.train(NEW)
    cluster.reconcile()
    body = cluster.kube.objects[("apps/v1", "Deployment", "default", "diabetes-canary")]
    stuck = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": "late",
    }
    body["status"] = {"observedGeneration": body["metadata"]["generation"], "conditions": [stuck]}
    outcome = cluster.reconcile()
    assert outcome.reason == "RolledBack" and "never became ready" in outcome.message
    assert cluster.kube.get("apps/v1", "Deployment", "default", "diabetes-canary") is None


def test_the_canary_index_lists_only_rollouts_under_way() -> None:
    assert in_canary("ns", "md", {"rollout": {"phase": "Progressing"}}) == {"ns": "md"}
    assert in_canary("ns", "md", {"rollout": {"phase": "Promoting"}}) == {"ns": "md"}
    assert in_canary("ns", "md", {"rollout": {"phase": "RolledBack"}}) == {}
    assert in_canary("ns", "md", None) == {}


def test_the_canary_deployment_is_the_stable_one_plus_the_track() -> None:
    owner = builders.Owner("ModelDeployment", "md", "ns", "uid-1")
    spec = modeldeployment_spec.parse({"model": {"trainingJob": "t"}, "replicas": 3})
    model = ModelReference("s3://b/m.json", NEW)
    stable = modeldeployment_manifests.deployment(Settings(probe_storage=False), owner, spec, model)
    canary = modeldeployment_manifests.canary_deployment(Settings(probe_storage=False), owner, spec, model, 1)
    assert canary["metadata"]["name"] == "md-canary" and canary["spec"]["replicas"] == 1
    assert canary["metadata"]["ownerReferences"] == stable["metadata"]["ownerReferences"]
    canary_pods, stable_pods = canary["spec"]["template"]["spec"], stable["spec"]["template"]["spec"]
    # The canary's server knows its track (for its payload log); the stable's is the default
    canary_args, stable_args = canary_pods["containers"][0]["args"], stable_pods["containers"][0]["args"]
    assert canary_args == [*stable_args, "--track", "canary"]
    canary_args[-2:] = []
    assert {**canary_pods, "topologySpreadConstraints": None} == {
        **stable_pods,
        "topologySpreadConstraints": None,
    }
    (spread,) = canary_pods["topologySpreadConstraints"]  # each Deployment's pods spread among themselves
    assert spread["labelSelector"]["matchLabels"] == canary["spec"]["selector"]["matchLabels"]
    container = canary_pods["containers"][0]
    assert (
        container["readinessProbe"] and container["lifecycle"]["preStop"]
    )  # ready before traffic, drained after


def test_switching_to_rolling_update_mid_canary_ends_it(cluster: Cluster) -> None:
    start_canary(cluster)
    body = cluster.kube.objects[(API_VERSION, "ModelDeployment", "default", "diabetes")]
    body["spec"]["rollout"] = {"strategy": "RollingUpdate"}
    assert cluster.reconcile().reason == "RollingOut" and cluster.served_by("diabetes") == NEW
    assert cluster.status()["rollout"]["phase"] == "Progressing"  # until the stable has settled
    cluster.settle("diabetes")
    assert cluster.reconcile().state is State.READY
    assert cluster.kube.get("apps/v1", "Deployment", "default", "diabetes-canary") is None
    assert "rollout" not in cluster.status()  # no canary runs, so none is on record as running
