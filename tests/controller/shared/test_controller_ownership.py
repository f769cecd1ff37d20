"""Many teams on one cluster: Marina touches only its own children, and every child the API server
refuses reaches the status (a condition and a Warning event) with the server's words, its retry
decided by the code and reason, never by those words."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kopf
import pytest
from tests.controller.conftest import assert_left_to_the_recheck

from marina.controller.datasets import reconcile as datasets
from marina.controller.kube.client import KubeError
from marina.controller.kube.settings import Settings
from marina.controller.modeldeployments import reconcile as modeldeployments
from marina.controller.shared.conditions import Outcome, State
from marina.controller.shared.reconciler import Reconcile
from marina.controller.shared.registration import raise_for
from marina.controller.trainingjobs import reconcile as trainingjobs

FakeKube = Any  # tests/controller/conftest.py's, by its fixture `kube`

API = "marina.dev/v1alpha1"
RECONCILERS: dict[str, Reconcile] = {
    datasets.KIND: datasets.reconcile,
    trainingjobs.KIND: trainingjobs.reconcile,
    modeldeployments.KIND: modeldeployments.reconcile,
}
SHA = "a" * 64
PREPARED = {"version": "0123456789abcdef", "uri": "s3://marina/datasets/default/diabetes/0123456789abcdef"}
INLINE = {"columns": ["x", "target"], "rows": [[1, 2], [2, 4], [3, 6]]}


def trained_model(kube: FakeKube) -> None:
    model = {"uri": f"s3://marina/models/default/ridge/model-{SHA}.json", "sha256": SHA}
    kube.add_resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}}, {"model": model})


def prepared_dataset(kube: FakeKube) -> None:
    kube.add_resource("Dataset", "diabetes", {"source": {"builtin": "diabetes"}}, PREPARED)


@dataclass(frozen=True)
class Resource:
    """A Marina resource, what it follows already in place, and the children its first reconcile makes."""

    kind: str
    name: str
    spec: dict[str, Any]
    upstream: Callable[[FakeKube], None] = field(default=lambda kube: None)

    def add(self, kube: FakeKube) -> None:
        self.upstream(kube)
        kube.add_resource(self.kind, self.name, self.spec)

    def reconcile(self, kube: FakeKube, settings: Settings) -> Outcome:
        return RECONCILERS[self.kind](kube, settings, kube.current(self.kind, self.name))

    def child(self, kube: FakeKube, settings: Settings, kind: str) -> tuple[str, str]:
        """(apiVersion, name) of the `kind` child a first reconcile creates, learnt on a copy of `kube`."""
        scratch = copy.deepcopy(kube)
        self.add(scratch)
        self.reconcile(scratch, settings)
        return next((v, n) for (v, k, _, n) in scratch.objects if k == kind and (v, k) != (API, self.kind))


SERVING = Resource(
    "ModelDeployment",
    "web",
    {"model": {"trainingJob": "ridge"}, "autoscaling": {"minReplicas": 1, "maxReplicas": 3}},
    trained_model,
)
INLINE_DATASET = Resource("Dataset", "rows", {"source": {"inline": INLINE}})
TRAINING = Resource("TrainingJob", "ridge", {"dataset": {"name": "diabetes"}}, prepared_dataset)
CHILDREN = [
    (SERVING, "Deployment"),
    (SERVING, "Service"),
    (SERVING, "HorizontalPodAutoscaler"),
    (INLINE_DATASET, "ConfigMap"),
    (INLINE_DATASET, "Job"),
    (TRAINING, "Job"),
]
CHILD_IDS = [f"{resource.kind}-{kind}" for resource, kind in CHILDREN]


def foreign(
    api_version: str, kind: str, name: str, owners: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A user's object of that name: its own labels and selector, maybe an owner of its own."""
    metadata: dict[str, Any] = {"name": name, "namespace": "default", "labels": {"app": "web"}}
    if owners:
        metadata["ownerReferences"] = owners
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata,
        "spec": {"selector": {"app": "web"}},
    }


def ready(kube: FakeKube, resource: Resource) -> dict[str, tuple[str, str]]:
    conditions = kube.current(resource.kind, resource.name)["status"]["conditions"]
    return {c["type"]: (c["status"], c["reason"]) for c in conditions}


def in_the_way(kube: FakeKube, settings: Settings, resource: Resource, kind: str) -> tuple[str, str]:
    """A user's object named as the resource's `kind` child, then the resource: (apiVersion, name)."""
    api_version, name = resource.child(kube, settings, kind)
    kube.add(foreign(api_version, kind, name))
    resource.add(kube)
    return api_version, name


@pytest.mark.parametrize(("resource", "kind"), CHILDREN, ids=CHILD_IDS)
def test_a_name_taken_by_someone_else_blocks_and_changes_nothing(
    kube: FakeKube, settings: Settings, resource: Resource, kind: str
) -> None:
    api_version, name = in_the_way(kube, settings, resource, kind)
    theirs = kube.get(api_version, kind, "default", name)

    outcome = resource.reconcile(kube, settings)

    assert (outcome.state, outcome.reason) == (State.BLOCKED, "NameConflict")
    assert (
        f"{kind} {name} already exists and is not this {resource.kind}'s (it has no owner)" in outcome.message
    )
    assert f"rename the {resource.kind} or remove that {kind}" in outcome.message
    # at most a create of that very name, which the API server answers with AlreadyExists
    assert set(kube.writes) <= {f"create {kind}/{name}"}
    assert kube.get(api_version, kind, "default", name) == theirs
    assert ready(kube, resource)["Ready"] == ("False", "NameConflict")
    assert ready(kube, resource)["Stalled"] == ("True", "NameConflict")
    assert kube.events == [(resource.name, "Warning", "NameConflict", outcome.message)]
    with pytest.raises(kopf.TemporaryError):  # Stalled, yet looked at again: the object may be removed
        raise_for(outcome, settings)

    kube.delete(API, resource.kind, "default", resource.name)  # and the garbage collector runs
    assert kube.get(api_version, kind, "default", name) == theirs


@pytest.mark.parametrize(("resource", "kind"), CHILDREN, ids=CHILD_IDS)
def test_work_starts_once_the_object_in_the_way_is_removed(
    kube: FakeKube, settings: Settings, resource: Resource, kind: str
) -> None:
    api_version, name = in_the_way(kube, settings, resource, kind)
    assert resource.reconcile(kube, settings).reason == "NameConflict"
    del kube.objects[(api_version, kind, "default", name)]
    assert resource.reconcile(kube, settings).state is State.PROGRESSING
    uid = kube.current(resource.kind, resource.name)["metadata"]["uid"]
    child = kube.get(api_version, kind, "default", name)
    assert child is not None and [ref["uid"] for ref in child["metadata"]["ownerReferences"]] == [uid]


def test_a_child_of_an_earlier_resource_of_that_name_is_not_adopted(
    kube: FakeKube, settings: Settings
) -> None:
    """Deleted and re-created at once: the old Deployment waits for the garbage collector, not for us."""
    earlier = {
        "apiVersion": API,
        "kind": "ModelDeployment",
        "name": "web",
        "uid": "uid-earlier",
        "controller": True,
    }
    kube.add(foreign("apps/v1", "Deployment", "web", [earlier]))
    SERVING.add(kube)
    outcome = SERVING.reconcile(kube, settings)
    assert outcome.reason == "NameConflict" and kube.writes == []
    assert (
        "it belongs to an earlier ModelDeployment web (uid uid-earlier), not to this one" in outcome.message
    )
    kube.delete(API, "ModelDeployment", "default", "web")
    assert kube.get("apps/v1", "Deployment", "default", "web") is not None


def test_another_owner_is_named(kube: FakeKube, settings: Settings) -> None:
    other = {"apiVersion": "example.com/v1", "kind": "WebApp", "name": "shop", "uid": "u", "controller": True}
    kube.add(foreign("v1", "Service", "web", [other]))
    SERVING.add(kube)
    assert "(it belongs to WebApp shop)" in SERVING.reconcile(kube, settings).message


def test_a_foreign_hpa_is_left_alone_when_autoscaling_is_off(kube: FakeKube, settings: Settings) -> None:
    kube.add(foreign("autoscaling/v2", "HorizontalPodAutoscaler", "web"))
    fixed = Resource("ModelDeployment", "web", {"model": {"trainingJob": "ridge"}}, trained_model)
    fixed.add(kube)
    assert fixed.reconcile(kube, settings).reason == "RollingOut"
    assert kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "default", "web") is not None
    assert not [w for w in kube.writes if "HorizontalPodAutoscaler" in w]


def test_old_jobs_are_forgotten_only_when_ours(kube: FakeKube, settings: Settings) -> None:
    """A Job that merely carries a Dataset's labels is not deleted with the Dataset's old Jobs."""
    labels = {"marina.dev/dataset": "rows", "app.kubernetes.io/component": "prepare"}
    lookalike = foreign("batch/v1", "Job", "rows-prepare-lookalike")
    lookalike["metadata"]["labels"] = labels
    kube.add(lookalike)
    INLINE_DATASET.add(kube)
    INLINE_DATASET.reconcile(kube, settings)
    (job_name,) = [n for n in kube.jobs() if n != "rows-prepare-lookalike"]
    kube.finish_job(job_name, json.dumps({**PREPARED, "columns": ["x", "target"], "rows": 3}))
    assert INLINE_DATASET.reconcile(kube, settings).state is State.READY
    assert "rows-prepare-lookalike" in kube.jobs()


REJECTIONS = [
    (
        422,
        "Invalid",
        'is invalid: spec.selector: Invalid value: {"app":"web"}: field is immutable',
        State.FAILED,
        "ChildRejected",
    ),
    (400, "BadRequest", "the body of the request was in an unknown format", State.FAILED, "ChildRejected"),
    (
        403,
        "Forbidden",
        'is forbidden: User "system:serviceaccount:marina-system:marina" cannot create',
        State.WAITING,
        "Forbidden",
    ),
    (
        403,
        "Forbidden",
        "is forbidden: exceeded quota: team, requested: count/jobs.batch=1, used: 5, limited: 5",
        State.WAITING,
        "Forbidden",
    ),
    (
        409,
        "Conflict",
        "the object has been modified; please apply your changes to the latest version",
        State.WAITING,
        "Conflict",
    ),
    (
        500,
        "InternalError",
        'Internal error occurred: failed calling webhook "policy.example.com"',
        State.WAITING,
        "ChildRejected",
    ),
    (
        422,
        "Invalid",
        "exceeded quota; temporarily unavailable, try again later",
        State.FAILED,
        "ChildRejected",
    ),
]
REJECTION_IDS = ["invalid", "bad-request", "rbac", "quota", "conflict", "webhook-down", "words-do-not-matter"]


@pytest.mark.parametrize(("resource", "kind"), CHILDREN, ids=CHILD_IDS)
@pytest.mark.parametrize(("code", "reason", "said", "state", "condition"), REJECTIONS, ids=REJECTION_IDS)
def test_a_refused_child_reaches_the_status_and_an_event(
    kube: FakeKube,
    settings: Settings,
    resource: Resource,
    kind: str,
    code: int,
    reason: str,
    said: str,
    state: State,
    condition: str,
) -> None:
    _, name = resource.child(kube, settings, kind)
    kube.reject("create", kind, code, reason, said)
    resource.add(kube)

    outcome = resource.reconcile(kube, settings)

    assert (outcome.state, outcome.reason) == (state, condition)
    refused = f"the API server refused to create {kind} default/{name}: {code} {reason}: {said}"
    assert outcome.message.startswith(refused)
    retried = state is State.WAITING
    assert outcome.message.endswith("retrying every 20s" if retried else "not retried until the spec changes")
    assert ready(kube, resource)["Ready"] == ("False", condition)
    assert ready(kube, resource)["Stalled"][0] == ("False" if retried else "True")
    assert kube.events[-1] == (resource.name, "Warning", condition, outcome.message)
    if retried:
        assert_left_to_the_recheck(kube, resource.kind, resource.name, outcome, settings)
    else:
        with pytest.raises(kopf.PermanentError):
            raise_for(outcome, settings)


@pytest.mark.parametrize(
    ("verb", "kind", "change"),
    [
        ("apply", "Deployment", {"resources": {"limits": {"memory": "2Gi"}}}),
        ("delete", "HorizontalPodAutoscaler", {"autoscaling": None}),
    ],
)
def test_refused_updates_and_deletes_are_reported_too(
    kube: FakeKube, settings: Settings, verb: str, kind: str, change: dict[str, Any]
) -> None:
    SERVING.add(kube)
    SERVING.reconcile(kube, settings)
    kube.reject(verb, kind, 403, "Forbidden", f"cannot {verb}")
    spec = kube.objects[(API, "ModelDeployment", "default", "web")]["spec"]
    spec.update(change)
    outcome = SERVING.reconcile(kube, settings)
    assert (outcome.state, outcome.reason) == (State.WAITING, "Forbidden")
    assert f"refused to {verb} {kind} default/web: 403 Forbidden: cannot {verb}" in outcome.message


def test_failed_reads_are_left_to_kopf(
    kube: FakeKube, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that fails says nothing about a child: the API server is in trouble, and kopf retries."""

    def unavailable(*_: Any) -> None:
        raise KubeError("get", "Deployment", "default/web", 503, "ServiceUnavailable", "etcd is down")

    SERVING.add(kube)
    body = kube.current("ModelDeployment", "web")
    monkeypatch.setattr(kube, "get", unavailable)
    with pytest.raises(KubeError):
        RECONCILERS["ModelDeployment"](kube, settings, body)
