"""Decisions as pure functions of what was observed: a Job's step, a child's write and the Deployment as it
is once written, and a ModelDeployment's plan (its outcome and its writes, in order). The cluster here is
plain data: a decision asks for a read (`Unobserved`), `decided` answers it from the objects given."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from tests.controller.conftest import matches

from marina.contract import Failure, FailureKind, encode
from marina.controller.datasets import reconcile as datasets
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import children, manifests
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.modeldeployments import spec as modeldeployment_spec
from marina.controller.shared import builders, jobs, ownership
from marina.controller.shared.conditions import Outcome, State
from marina.controller.shared.observation import (
    Get,
    Listing,
    Observation,
    Preflight,
    ProgressReport,
    StoredResult,
    Unobserved,
)
from marina.controller.shared.plan import Apply, Create, Delete, Plan, Post
from marina.controller.shared.termination import JobPhase

NOW = datetime.datetime(2026, 1, 1, 0, 1, tzinfo=datetime.UTC)
SETTINGS = Settings(probe_storage=False)
OWNER = builders.Owner("Dataset", "d", "default", "uid-d")
BLOCKED = Outcome(State.WAITING, "StorageUnavailable", "object storage is unreachable; retrying")
SHA_A, SHA_B = "a" * 64, "b" * 64


def decided(
    decide: Callable[[Observation], Any],
    body: Mapping[str, Any],
    objects: Sequence[Mapping[str, Any]] = (),
    blocked: Outcome | None = None,
) -> Any:
    """What `decide` decides when the cluster holds `objects` (and nothing is stored or reported)."""
    seen = Observation(body, NOW)
    while True:
        try:
            return decide(seen)
        except Unobserved as missing:
            seen = seen.with_read(missing.read, answer(missing.read, objects, blocked))


def answer(read: Any, objects: Sequence[Mapping[str, Any]], blocked: Outcome | None) -> Any:
    if isinstance(read, Get):
        named = (o for o in objects if (o["kind"], o["metadata"]["name"]) == (read.kind, read.name))
        return next(named, None)
    if isinstance(read, Listing):
        kind = [o for o in objects if o["kind"] == read.kind]
        return tuple(o for o in kind if matches(o["metadata"].get("labels") or {}, read.selector))
    if isinstance(read, Preflight):
        return blocked
    assert isinstance(read, StoredResult | ProgressReport)
    return None


def summary(plan: Plan) -> list[str]:
    """The plan's writes, in order: `create Deployment/web`, `delete Job/x`, `event Warning RolledBack`."""
    said = []
    for action in plan.actions:
        if isinstance(action, Create | Apply):
            verb = "create" if isinstance(action, Create) else "apply"
            said.append(f"{verb} {action.body['kind']}/{action.body['metadata']['name']}")
        elif isinstance(action, Delete):
            said.append(f"delete {action.kind}/{action.name}")
        else:
            assert isinstance(action, Post)
            said.append(f"event {action.type} {action.reason}")
    return said


# -- a Job's step --------------------------------------------------------------------------------------

JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "d-prepare-1", "namespace": "default"}}


def job(
    condition: str | None = None, when: str = "2026-01-01T00:00:00Z", ours: bool = True
) -> dict[str, Any]:
    meta = {**JOB["metadata"], "ownerReferences": [builders.owner_reference(OWNER)] if ours else []}
    conditions = [{"type": condition, "status": "True", "lastTransitionTime": when}] if condition else []
    return {**JOB, "metadata": meta, "status": {"conditions": conditions}}


def pod(message: str, exit_code: int = 0) -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "message": message}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"job-name": JOB["metadata"]["name"]}},
        "status": {"containerStatuses": [{"name": "marina", "state": {"terminated": terminated}}]},
    }


STORAGE_DOWN = Failure(FailureKind.STORAGE_UNAVAILABLE, "storage down")


@pytest.mark.parametrize(
    ("objects", "blocked", "result", "writes"),
    [
        ([], None, JobPhase.RUNNING, ["create Job/d-prepare-1"]),
        ([], BLOCKED, "StorageUnavailable", []),
        ([job()], BLOCKED, JobPhase.RUNNING, []),  # a Job already there needs no preflight
        ([job("Complete"), pod('{"format": "marina.dev/result/v1"}')], None, JobPhase.SUCCEEDED, []),
        ([job("Complete")], None, "ResultLost", ["delete Job/d-prepare-1"]),
        (
            [job("Failed", "2026-01-01T00:00:55Z"), pod(encode(STORAGE_DOWN.to_json()), 75)],
            None,
            "StorageUnavailable",
            [],  # failed 5 s ago: a new Job after the retry delay
        ),
        (
            [job("Failed"), pod(encode(STORAGE_DOWN.to_json()), 75)],
            None,
            "StorageUnavailable",
            ["delete Job/d-prepare-1"],
        ),
    ],
    ids=["absent", "absent, blocked", "running", "succeeded", "result lost", "retry waits", "retry"],
)
def test_a_jobs_step(
    objects: list[dict[str, Any]], blocked: Outcome | None, result: Any, writes: list[str]
) -> None:
    body = {"kind": "Dataset", "metadata": {"name": "d", "namespace": "default", "uid": "uid-d"}}
    step = decided(lambda seen: jobs.run_job(seen, SETTINGS, OWNER, job()), body, objects, blocked)
    got = step.result.reason if isinstance(step.result, Outcome) else step.result.phase
    assert got == result
    assert summary(Plan(Outcome(State.READY, "", ""), step.actions)) == writes


def test_a_job_of_the_name_that_is_not_ours_is_a_name_conflict() -> None:
    body = {"kind": "Dataset", "metadata": {"name": "d", "namespace": "default", "uid": "uid-d"}}
    with pytest.raises(ownership.NameConflict):
        decided(lambda seen: jobs.run_job(seen, SETTINGS, OWNER, job()), body, [job(ours=False)])


def test_a_dataset_decided_twice_on_the_same_observation_plans_the_same() -> None:
    body = {
        "apiVersion": builders.API_VERSION,
        "kind": "Dataset",
        "metadata": {"name": "d", "namespace": "default", "uid": "uid-d", "generation": 1},
        "spec": {"source": {"builtin": "diabetes"}},
    }
    first = decided(lambda seen: datasets.decide(SETTINGS, seen), body)
    assert first == decided(lambda seen: datasets.decide(SETTINGS, seen), body)
    assert first.outcome.reason == "Preparing" and summary(first) == [
        f"create Job/{first.outcome.fields['jobName']}"
    ]


# -- a child written, and as it is once written --------------------------------------------------------

DESIRED = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"template": {}},
}


def test_ensure_creates_an_absent_child_applies_a_changed_one_and_leaves_a_current_one() -> None:
    created, (create,) = children.ensure(OWNER, DESIRED, None)
    assert isinstance(create, Create) and created["metadata"]["generation"] == 1
    assert create.body["metadata"]["annotations"][children.SPEC_HASH] == builders.short_hash(DESIRED)
    current = {**create.body, "metadata": {**create.body["metadata"], "generation": 4}, "status": {"x": 1}}
    assert children.ensure(OWNER, DESIRED, current) == (current, ())
    changed = {**DESIRED, "spec": {"template": {"changed": True}}}
    written, (apply,) = children.ensure(OWNER, changed, current)
    assert isinstance(apply, Apply) and apply.body["spec"] == changed["spec"]
    # not rolled out yet: a generation its controller has not observed, with the status it last wrote
    assert written["metadata"]["generation"] == 5 and written["status"] == {"x": 1}
    assert not children.rollout_complete(written) and not children.rollout_stuck(written)


def test_the_replica_count_an_hpa_owns_stays_in_the_deployment_as_written() -> None:
    existing = {**DESIRED, "metadata": {**DESIRED["metadata"], "generation": 1}, "spec": {"replicas": 4}}
    assert children.as_written(DESIRED, existing)["spec"]["replicas"] == 4
    assert children.as_written({**DESIRED, "spec": {"replicas": 2}}, existing)["spec"]["replicas"] == 2


# -- a ModelDeployment's plan ----------------------------------------------------------------------------

MD_OWNER = builders.Owner("ModelDeployment", "web", "default", "uid-m")


def model_deployment(
    spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": builders.API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-m", "generation": 1},
        "spec": {"model": {"trainingJob": "ridge"}, "replicas": 2, **(spec or {})},
        "status": status or {},
    }


def training_job(sha: str) -> dict[str, Any]:
    model = {"uri": f"s3://marina/models/default/ridge/model-{sha}.json", "sha256": sha}
    meta = {"name": "ridge", "namespace": "default"}
    return {
        "apiVersion": builders.API_VERSION,
        "kind": "TrainingJob",
        "metadata": meta,
        "status": {"model": model},
    }


def served(sha: str, settled: bool = True, stuck: bool = False) -> list[dict[str, Any]]:
    """The Deployment and Service of a ModelDeployment serving model `sha`, as a reconcile left them."""
    parsed = modeldeployment_spec.parse(model_deployment()["spec"])
    model = builders.ModelReference(training_job(sha)["status"]["model"]["uri"], sha)
    found = []
    for desired in (
        manifests.deployment(SETTINGS, MD_OWNER, parsed, model),
        manifests.service(MD_OWNER),
        manifests.pod_disruption_budget(MD_OWNER, 1),
    ):
        written, _ = children.ensure(MD_OWNER, desired, None)
        found.append(written)
    deployment = found[0]
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    deployment["status"] = {
        "observedGeneration": 1,
        **{
            k: 2 if settled else 0
            for k in ("replicas", "updatedReplicas", "availableReplicas", "readyReplicas")
        },
        "conditions": [condition] if stuck else [],
    }
    return found


def hpa() -> dict[str, Any]:
    return manifests.horizontal_pod_autoscaler(MD_OWNER, modeldeployment_spec.Autoscaling(1, 3, 80))


HPA = "HorizontalPodAutoscaler"
COMPANIONS = ["create Service/web", "create PodDisruptionBudget/web"]  # two replicas: a budget
SERVING_A = {"model": {"uri": training_job(SHA_A)["status"]["model"]["uri"], "sha256": SHA_A}}


@pytest.mark.parametrize(
    ("status", "objects", "blocked", "reason", "writes"),
    [
        ({}, [training_job(SHA_A)], None, "RollingOut", [*COMPANIONS, "create Deployment/web"]),
        ({}, [training_job(SHA_A)], BLOCKED, "StorageUnavailable", COMPANIONS),
        (SERVING_A, [training_job(SHA_A), *served(SHA_A)], BLOCKED, "Available", []),
        (SERVING_A, [training_job(SHA_A), *served(SHA_A), hpa()], None, "Available", [f"delete {HPA}/web"]),
        (SERVING_A, [training_job(SHA_B), *served(SHA_A)], None, "RollingOut", ["apply Deployment/web"]),
        (
            SERVING_A,
            [training_job(SHA_B), *served(SHA_B, False, True)],
            None,
            "RolledBack",
            ["apply Deployment/web"],
        ),
        ({}, [], None, "TrainingJobNotFound", []),
    ],
    ids=[
        "first rollout",
        "first rollout, blocked",
        "settled",
        "autoscaling off",
        "new model",
        "stuck",
        "no model",
    ],
)
def test_a_model_deployments_plan(
    status: dict[str, Any],
    objects: list[dict[str, Any]],
    blocked: Outcome | None,
    reason: str,
    writes: list[str],
) -> None:
    body = model_deployment(status=status)
    plan = decided(lambda seen: modeldeployments.decide(SETTINGS, seen), body, objects, blocked)
    assert plan.outcome.reason == reason and summary(plan) == writes


@pytest.mark.parametrize(
    ("spec", "writes"),
    [
        ({"replicas": 1}, ["delete PodDisruptionBudget/web"]),  # one replica: a budget would block drains
        ({"replicas": 1, "disruption": {"maxUnavailable": 1}}, []),  # asked for: it stays
        ({"replicas": 4, "disruption": {"maxUnavailable": "50%"}}, ["apply PodDisruptionBudget/web"]),
        ({"replicas": 1, "autoscaling": {"minReplicas": 2, "maxReplicas": 4}}, [f"create {HPA}/web"]),
    ],
    ids=["one replica", "asked for", "a percentage", "autoscaled from two"],
)
def test_the_disruption_budget_follows_the_replicas(spec: dict[str, Any], writes: list[str]) -> None:
    body = model_deployment(spec=spec, status=SERVING_A)
    objects = [training_job(SHA_A), *served(SHA_A)]
    plan = decided(lambda seen: modeldeployments.decide(SETTINGS, seen), body, objects, None)
    assert [w for w in summary(plan) if "Deployment/" not in w] == writes
