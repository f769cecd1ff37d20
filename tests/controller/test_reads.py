"""Each reconcile reads every object (and every list, stored result and progress report) at most once, in
every main situation of each kind, whatever triggered it: a kopf handler with kopf's body reads the object
itself not at all, a child's event or the background loop once. Each monitoring tick reads the
ModelDeployment once and writes its status at most once. Counted by the fake API (`FakeKube.gets`)."""

from __future__ import annotations

import datetime
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from tests.controller.conftest import FakeKube
from tests.controller.test_controller_reconcilers import (
    PREPARED,
    SHA_A,
    SHA_B,
    deployment_settles,
    ready_dataset,
    trained,
    trained_job,
)

from marina.contract import Failure, FailureKind
from marina.controller.datasets import reconcile as datasets
from marina.controller.kube.health import Health
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import canary, collector, monitor, rollout
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.shared import observation
from marina.controller.shared.reconciler import Reconcile
from marina.controller.shared.runtime import Runtime
from marina.controller.trainingjobs import reconcile as trainingjobs
from marina.serving.traffic import Traffic

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
CANARY = {"strategy": "Canary", "steps": [{"weight": 50, "pauseSeconds": 10}], "analysis": {"minRequests": 1}}
RECONCILERS: dict[str, Reconcile] = {
    datasets.KIND: datasets.reconcile,
    trainingjobs.KIND: trainingjobs.reconcile,
    modeldeployments.KIND: modeldeployments.reconcile,
}


class Storage:
    """Object storage as the reconcilers read it (progress reports, stored results), counting each read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads: Counter[str] = Counter()
        monkeypatch.setattr("marina.jobs.progress.read", self.read)
        monkeypatch.setattr("marina.jobs.results.read_stored", self.read)

    def read(self, uri: str) -> None:
        self.reads[uri] += 1


class Pods:
    """The serving pods' traffic counters (a canary step reads them), counting each reading; with
    `traffic`, both models' pods answer 20 more requests between two readings."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, traffic: bool = False) -> None:
        self.readings, self.traffic = 0, traffic
        monkeypatch.setattr(canary, "read_traffic", self.read)

    def read(self, kube: Any, owner: Any) -> list[rollout.PodTraffic]:
        self.readings += 1
        return [self.pod(SHA_A, self.readings), self.pod(SHA_B, self.readings)] if self.traffic else []

    @staticmethod
    def pod(sha: str, readings: int) -> rollout.PodTraffic:
        counters = Traffic()
        for value in [100.0, 120.0] * 10 * readings:
            counters.observe("v1_predict", 200, 0.003)
            counters.predicted(np.array([value]))
        return rollout.PodTraffic.parse(counters.document("diabetes", sha[:12]), f"pod-{sha[:4]}")


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.moment = START
        monkeypatch.setattr(observation, "now", lambda: self.moment)

    def wait(self, seconds: float) -> None:
        self.moment += datetime.timedelta(seconds=seconds)


@dataclass
class World:
    kube: FakeKube
    settings: Settings
    clock: Clock

    def reconcile(self, kind: str, name: str) -> Any:
        return RECONCILERS[kind](self.kube, self.settings, self.kube.current(kind, name))

    def job(self, part: str) -> str:
        return next(name for name in self.kube.jobs() if f"-{part}-" in name)


Setup = Callable[[World], None]  # prepares a situation of the object its id names (OBJECTS)


def dataset(world: World) -> None:
    world.kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})


def preparing(world: World) -> None:
    dataset(world)
    world.reconcile("Dataset", "diabetes")


def prepared(world: World) -> None:
    preparing(world)
    world.kube.finish_job(world.job("prepare"), json.dumps(PREPARED))


def preparation_failed(world: World) -> None:
    preparing(world)
    world.kube.fail_job(world.job("prepare"), Failure(FailureKind.DATA, "column 'x' is not a number"))


def preparation_lost(world: World) -> None:
    prepared(world)
    world.kube.delete("v1", "Pod", "default", f"{world.job('prepare')}-pod")


def training(world: World, spec: dict[str, Any] | None = None) -> None:
    ready_dataset(world.kube)
    world.kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}, **(spec or {})})


def trains(world: World) -> None:
    training(world)
    world.reconcile("TrainingJob", "ridge")


def trained_model(world: World) -> None:
    trains(world)
    world.kube.finish_job(world.job("train"), json.dumps(trained(SHA_A)))


def training_failed(world: World) -> None:
    trains(world)
    world.kube.fail_job(world.job("train"), Failure(FailureKind.INTERNAL, "it went wrong"))


def shards_running(world: World) -> None:
    training(world, {"parallelism": 3})
    world.reconcile("TrainingJob", "ridge")
    world.kube.objects[("batch/v1", "Job", "default", world.job("shard"))]["status"] = {"succeeded": 1}


def shards_done(world: World) -> None:
    shards_running(world)
    world.kube.finish_job(world.job("shard"), json.dumps({"format": "marina.dev/result/v1"}))


def deployment(world: World, spec: dict[str, Any] | None = None) -> None:
    trained_job(world.kube, SHA_A)
    md = {"model": {"trainingJob": "ridge"}, "replicas": 2, **(spec or {})}
    world.kube.add_resource("ModelDeployment", "diabetes", md)


def rolling_out(world: World) -> None:
    deployment(world)
    world.reconcile("ModelDeployment", "diabetes")


def available(world: World, spec: dict[str, Any] | None = None) -> None:
    deployment(world, spec)
    world.reconcile("ModelDeployment", "diabetes")
    deployment_settles(world.kube)
    world.reconcile("ModelDeployment", "diabetes")


def rollout_stuck(world: World) -> None:
    available(world)
    trained_job(world.kube, SHA_B)
    world.reconcile("ModelDeployment", "diabetes")
    deployment_settles(world.kube, ready=False, stuck=True)


def canary_starts(world: World) -> None:
    available(world, {"rollout": CANARY})
    trained_job(world.kube, SHA_B)


def canary_ready(world: World) -> None:
    canary_starts(world)
    world.reconcile("ModelDeployment", "diabetes")
    canary_settles(world.kube)


def canary_settles(kube: FakeKube) -> None:
    body = kube.objects[("apps/v1", "Deployment", "default", "diabetes-canary")]
    count = body["spec"]["replicas"]
    body["status"] = {
        "observedGeneration": body["metadata"]["generation"],
        **{key: count for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")},
    }


def canary_analysed(world: World) -> None:
    canary_ready(world)
    world.reconcile("ModelDeployment", "diabetes")  # the step's pause starts
    world.clock.wait(10)


def evaluating(world: World) -> None:
    available(world, {"promotion": {"policy": "IfBetter"}})
    trained_job(world.kube, SHA_B)
    world.reconcile("ModelDeployment", "diabetes")


def evaluated(world: World) -> None:
    evaluating(world)
    scores = {"mse": 1.0, "rmse": 1.0, "mae": 1.0, "r2": 0.5}
    result = {
        "champion": {"sha256": SHA_A, "metrics": scores},
        "challenger": {"sha256": SHA_B, "metrics": scores},
        "datasetVersion": "2222222222222222",
        "format": "marina.dev/result/v1",
    }
    world.kube.finish_job(world.job("eval"), json.dumps(result))


OBJECTS = {
    "dataset": ("Dataset", "diabetes"),
    "trainingjob": ("TrainingJob", "ridge"),
    "modeldeployment": ("ModelDeployment", "diabetes"),
}
SITUATIONS: dict[str, Setup] = {
    "dataset: first reconcile creates the Job": dataset,
    "dataset: Job running": preparing,
    "dataset: Job succeeded": prepared,
    "dataset: Job failed": preparation_failed,
    "dataset: Job succeeded, its pod and result lost": preparation_lost,
    "trainingjob: first reconcile creates the Job": training,
    "trainingjob: Job running": trains,
    "trainingjob: Job succeeded": trained_model,
    "trainingjob: Job failed": training_failed,
    "trainingjob: shards running": shards_running,
    "trainingjob: shards done, the reduce starts": shards_done,
    "modeldeployment: first reconcile creates the children": deployment,
    "modeldeployment: rolling out": rolling_out,
    "modeldeployment: available": available,
    "modeldeployment: stuck rollout rolled back": rollout_stuck,
    "modeldeployment: canary starts": canary_starts,
    "modeldeployment: canary's pods ready, its pause starts": canary_ready,
    "modeldeployment: canary step analysed": canary_analysed,
    "modeldeployment: promotion gate evaluating": evaluating,
    "modeldeployment: promotion gate decided": evaluated,
}


@dataclass(frozen=True)
class Reads:
    gets: Counter[tuple[str, str, str]]
    lists: Counter[tuple[str, str, str]]
    stored: Counter[str]
    traffic: int

    @property
    def most(self) -> int:
        """The most times one thing was read."""
        return max([*self.gets.values(), *self.lists.values(), *self.stored.values(), self.traffic, 0])


def reads(world: World, situation: str, storage: Storage, pods: Pods, from_kopf: bool) -> Reads:
    """What one reconcile in the situation reads: triggered by kopf (with its body) or by a child's event
    (without)."""
    SITUATIONS[situation](world)
    kind, name = OBJECTS[situation.split(":")[0]]
    kube = world.kube
    body = kube.current(kind, name) if from_kopf else None
    kube.forget_reads()
    storage.reads.clear()
    pods.readings = 0
    runtime = Runtime(world.settings, Health(60), lambda: kube)
    outcome = runtime.reconcile(kind, RECONCILERS[kind], "default", name, body)
    assert outcome is not None
    return Reads(Counter(kube.gets), Counter(kube.lists), Counter(storage.reads), pods.readings)


@pytest.fixture
def world(kube: FakeKube, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(kube, settings, Clock(monkeypatch))


@pytest.mark.parametrize("from_kopf", [True, False], ids=["kopf's body", "a child's event"])
@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_a_reconcile_reads_each_object_at_most_once(
    world: World, monkeypatch: pytest.MonkeyPatch, situation: str, from_kopf: bool
) -> None:
    counted = reads(world, situation, Storage(monkeypatch), Pods(monkeypatch), from_kopf)
    kind, name = OBJECTS[situation.split(":")[0]]
    assert counted.most == 1
    assert counted.gets[(kind, "default", name)] == (0 if from_kopf else 1)


def test_kopfs_body_older_than_a_status_this_process_wrote_is_read_again(world: World) -> None:
    """A child's event wrote the status while kopf's handler waited for the lock: kopf's body is stale, so
    the object is read once; a body that carries that status (whatever else moved since: kopf's own
    annotations, the spec) is used as it is."""
    preparing(world)
    kind, name = OBJECTS["dataset"]
    kube = world.kube
    runtime = Runtime(world.settings, Health(60), lambda: kube)
    stale = kube.current(kind, name)
    kube.finish_job(world.job("prepare"), json.dumps(PREPARED))
    runtime.reconcile(kind, datasets.reconcile, "default", name)  # the Job's event: writes Ready
    kube.forget_reads()
    outcome = runtime.reconcile(kind, datasets.reconcile, "default", name, stale)
    assert outcome is not None and outcome.reason == "Prepared"
    assert kube.gets[(kind, "default", name)] == 1 and kube.status_writes == []  # nothing to write again
    assert [e[2] for e in kube.events].count("Prepared") == 1  # no second transition event

    stored = kube.objects[("marina.dev/v1alpha1", kind, "default", name)]
    stored["metadata"]["annotations"] = {"kopf.marina.dev/last-handled-configuration": "{}"}
    kube._touch(stored)  # kopf's own patch after the handler: a new resourceVersion, the same status
    kube.forget_reads()
    runtime.reconcile(kind, datasets.reconcile, "default", name, kube.current(kind, name))
    assert kube.gets[(kind, "default", name)] == 0


TICK_SPECS = {
    "drift check": {"monitoring": {"intervalSeconds": 10}},
    "drift check and a scheduled retrain": {
        "monitoring": {"intervalSeconds": 10, "onDrift": "Retrain"},
        "retraining": {"everySeconds": 3600, "cooldownSeconds": 60},
    },
    "a scheduled retrain without monitoring": {"retraining": {"everySeconds": 3600, "cooldownSeconds": 60}},
}


@pytest.mark.parametrize("situation", list(TICK_SPECS))
def test_a_monitoring_tick_reads_each_object_once_and_writes_the_status_once(
    kube: FakeKube, situation: str
) -> None:
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}})
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}})
    spec = {"model": {"trainingJob": "ridge"}, **TICK_SPECS[situation]}
    status = {"model": {"uri": "s3://b/k", "sha256": SHA_A}, "monitoring": {"level": "Stable"}}
    added = kube.add_resource("ModelDeployment", "m", spec, status)
    kube.objects[kube.key(added)]["metadata"]["creationTimestamp"] = "2025-12-31T00:00:00Z"
    labels = {"marina.dev/modeldeployment": "m"}
    ready = {"conditions": [{"type": "Ready", "status": "True"}], "podIP": "10.0.0.1"}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "m-1", "namespace": "default"}}
    kube.add({**pod, "metadata": {**pod["metadata"], "labels": labels}, "status": ready})
    kube.forget_reads()

    def unanswered(url: str) -> Any:
        raise collector.CollectError("connection refused")

    monitor.tick(kube, "default", "m", {}, unanswered, lambda: START.timestamp())
    assert kube.gets[("ModelDeployment", "default", "m")] == 1
    assert max([*kube.gets.values(), *kube.lists.values()]) == 1 and len(kube.status_writes) == 1
    retrains = "retraining" in TICK_SPECS[situation]
    assert (kube.current("Dataset", "diabetes")["metadata"].get("annotations") is not None) is retrains


def test_the_canary_analysis_reads_the_traffic_once_even_when_the_next_step_begins_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two steps of the same size: the reading that passes a step is the next one's baseline."""
    pods = Pods(monkeypatch, traffic=True)
    steps = [{"weight": 50, "pauseSeconds": 10}, {"weight": 60, "pauseSeconds": 10}]  # one pod each
    available(world, {"rollout": {**CANARY, "steps": steps}})
    trained_job(world.kube, SHA_B)
    world.reconcile("ModelDeployment", "diabetes")  # the canary of the first step
    canary_settles(world.kube)
    world.reconcile("ModelDeployment", "diabetes")  # its pods are ready: the pause starts
    world.clock.wait(10)
    before = pods.readings
    outcome = world.reconcile("ModelDeployment", "diabetes")
    rollout_status = world.kube.current("ModelDeployment", "diabetes")["status"]["rollout"]
    assert outcome.reason == "Canary" and rollout_status["step"] == 2 and rollout_status["stepStartedAt"]
    assert pods.readings - before == 1
